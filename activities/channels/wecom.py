"""WeCom (企业微信) group robots: a markdown message POSTed to the robot's webhook URL.

Documented format: ``{"msgtype": "markdown", "markdown": {"content": "..."}}``, at most 4096
bytes of UTF-8 content; the reply is ``{"errcode": 0, "errmsg": "ok"}`` on success.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from activities.channels.base import ChannelError, RobotPoster
from activities.channels.config import WECOM, Robot
from activities.channels.message import Outgoing
from activities.channels.render import render_markdown

#: WeCom's limit on markdown content, in UTF-8 bytes.
MAX_CONTENT_BYTES = 4096


class WeComChannel:
    """Sends a message to a WeCom group robot named in the channels configuration."""

    name = WECOM
    # A webhook post has no idempotency key: an interrupted send is left to an operator.
    takes_idempotency_key = False

    def __init__(
        self, robots: Mapping[str, Robot], *, base_url: str, poster: RobotPoster | None = None
    ) -> None:
        """Keep the WeCom robots by name; addresses are robot names, not URLs."""
        self._robots = {name: r for name, r in robots.items() if r.kind == WECOM}
        self._base_url = base_url
        # Shared with the other robot channel (one kept HTTP client); see RobotPoster.
        self._poster = poster or RobotPoster()

    def payload(self, message: Outgoing) -> dict[str, Any]:
        """The robot message for ``message`` in WeCom's markdown format."""
        content = render_markdown(message, self._base_url, max_bytes=MAX_CONTENT_BYTES)
        return {"msgtype": "markdown", "markdown": {"content": content.text}}

    async def send(self, message: Outgoing, address: str) -> None:
        """POST the message to the robot ``address`` names; raise unless errcode is 0."""
        robot = self._robots.get(address)
        if robot is None:
            raise ChannelError(f"未配置的企业微信机器人：{address}")
        await self._poster.post(robot.url, self.payload(message))
