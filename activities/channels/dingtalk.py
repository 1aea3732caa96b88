"""DingTalk (钉钉) group robots: markdown messages, optionally signed with the robot's secret.

Documented format: ``{"msgtype": "markdown", "markdown": {"title": ..., "text": ...}}``.
With 加签 (signed secret) enabled on the robot, each request carries ``timestamp`` (ms) and
``sign`` = base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}")) as query
parameters; DingTalk refuses timestamps more than an hour off, so the sign is made per send.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Any

import httpx

from activities.channels.base import ChannelError, RobotPoster
from activities.channels.config import DINGTALK, Robot
from activities.channels.message import Outgoing
from activities.channels.render import render_markdown

#: DingTalk accepts about 20,000 bytes; staying well below keeps long notices deliverable.
MAX_TEXT_BYTES = 15_000


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """The ``sign`` parameter (base64, before URL encoding) for ``timestamp_ms``."""
    to_sign = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode("utf-8"), to_sign, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def signed_url(url: str, secret: str, timestamp_ms: int) -> str:
    """``url`` with ``timestamp`` and ``sign`` added to its query (URL-encoded once)."""
    params = {"timestamp": str(timestamp_ms), "sign": dingtalk_sign(secret, timestamp_ms)}
    return str(httpx.URL(url).copy_merge_params(params))


class DingTalkChannel:
    """Sends a message to a DingTalk group robot named in the channels configuration."""

    name = DINGTALK
    # A webhook post has no idempotency key: an interrupted send is left to an operator.
    takes_idempotency_key = False

    def __init__(
        self, robots: Mapping[str, Robot], *, base_url: str, poster: RobotPoster | None = None
    ) -> None:
        """Keep the DingTalk robots by name; addresses are robot names, not URLs."""
        self._robots = {name: r for name, r in robots.items() if r.kind == DINGTALK}
        self._base_url = base_url
        # Shared with the other robot channel (one kept HTTP client); see RobotPoster.
        self._poster = poster or RobotPoster()

    def payload(self, message: Outgoing) -> dict[str, Any]:
        """The robot message for ``message`` in DingTalk's markdown format."""
        content = render_markdown(message, self._base_url, max_bytes=MAX_TEXT_BYTES)
        return {"msgtype": "markdown", "markdown": {"title": content.title, "text": content.text}}

    async def send(self, message: Outgoing, address: str) -> None:
        """POST the (signed) message to the robot ``address`` names; raise unless errcode 0."""
        robot = self._robots.get(address)
        if robot is None:
            raise ChannelError(f"未配置的钉钉机器人：{address}")
        url = robot.url
        if robot.secret is not None:
            url = signed_url(url, robot.secret.get_secret_value(), int(time.time() * 1000))
        await self._poster.post(url, self.payload(message))
