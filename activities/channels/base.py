"""Channels behind one interface, and the router that sends each notice through its role's.

A channel is one class with a ``name`` and an async ``send(notice, address)`` that raises on
failure. The :class:`ChannelRouter` is the :class:`~activities.notifier.Notifier` the worker
uses: the in-app inbox first (always; its row is the notice's dedup record), then every
channel routed for the recipient's role, each delivery claimed and closed in the
``notice_deliveries`` ledger so a retried activity never re-sends what was sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import httpx
import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from activities.channels.config import ChannelsConfig
from activities.channels.deliveries import (
    Claim,
    claim_delivery,
    failed_deliveries,
    finish_delivery,
)
from activities.notifier import InboxNotifier
from activities.tables import notices
from domain.notices import Notice

log = structlog.get_logger(__name__)


@runtime_checkable
class Channel(Protocol):
    """A way to reach a person outside the application (mail, a group robot...)."""

    #: The name used in routes, addresses and the delivery ledger (``email``, ``wecom``...).
    name: str

    async def send(self, notice: Notice, address: str) -> None:
        """Send ``notice`` to ``address``; raise on any failure (nothing is retried here)."""
        ...


class ChannelError(RuntimeError):
    """A channel could not deliver (refused by the receiver, bad reply, unreachable)."""


class DeliveryFailed(RuntimeError):
    """Some channels failed for a notice; raised so Temporal retries the activity."""


async def post_robot_message(url: str, payload: Mapping[str, Any], *, timeout: float) -> None:
    """POST a robot message and check the reply: HTTP 2xx and ``errcode == 0``.

    WeCom and DingTalk both answer HTTP 200 with ``{"errcode": ..., "errmsg": ...}``; a
    non-zero errcode (bad key, rate limit, content refused) is a failure like a 5xx.
    """
    async with httpx.AsyncClient(timeout=timeout) as client:
        response = await client.post(url, json=payload)
    if response.status_code >= 300:
        raise ChannelError(f"HTTP {response.status_code}: {response.text[:300]}")
    try:
        reply = response.json()
    except ValueError as exc:
        raise ChannelError(f"回复不是 JSON：{response.text[:300]}") from exc
    if not isinstance(reply, dict) or reply.get("errcode") != 0:
        raise ChannelError(f"机器人拒绝：{reply}")


def _error_text(exc: BaseException) -> str:
    """What is stored as ``last_error``: the exception's type and message."""
    return f"{type(exc).__name__}: {exc}"


def _notice_from_row(row: Mapping[str, Any]) -> Notice:
    """Rebuild a notice from its inbox row (the row holds every field of the notice)."""
    fields = {name: row[name] for name in Notice.model_fields}
    return Notice.model_validate(fields)


class ChannelRouter:
    """The inbox plus the configured channels, each notice once per channel."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        config: ChannelsConfig,
        channels: Iterable[Channel],
    ) -> None:
        """Keep the database, the routing configuration and the channels by name."""
        self._sessions = sessions
        self._config = config
        self._inbox = InboxNotifier(sessions)
        self._channels = {channel.name: channel for channel in channels}
        missing = {n for names in config.routes.values() for n in names} - set(self._channels)
        if missing:
            raise ValueError(f"routes name channels that were not built: {sorted(missing)}")

    async def deliver(self, notice: Notice) -> bool:
        """Record ``notice`` in the inbox and send it on every channel of its recipient's role.

        True if anything was delivered now (the inbox row or a channel send). Every channel
        is tried even when one fails, then :class:`DeliveryFailed` is raised so the activity
        is retried; the retry skips the inbox and the channels already sent.
        """
        delivered = await self._inbox.deliver(notice)
        errors: list[str] = []
        for channel_name in self._config.channels_for(notice.recipient_role):
            address = self._config.address_of(
                notice.recipient_role, notice.recipient_key, channel_name
            )
            if address is None:
                # The inbox still holds the notice; a missing address is a configuration gap
                # for operators to fill, not something a retry can fix.
                log.warning(
                    "no address for channel",
                    channel=channel_name,
                    notice_id=notice.notice_id,
                    role=notice.recipient_role.value,
                    key=notice.recipient_key,
                )
                continue
            try:
                delivered |= await self._send_once(notice, channel_name, address)
            except Exception as exc:  # any channel failure is recorded, then re-raised below
                errors.append(f"{channel_name}: {_error_text(exc)}")
        if errors:
            raise DeliveryFailed(f"通知 {notice.notice_id} 投递失败：" + "；".join(errors))
        return delivered

    async def _send_once(self, notice: Notice, channel_name: str, address: str) -> bool:
        """Claim, send, close; True if sent now, False if it had been sent before."""
        claim = await asyncio.to_thread(
            claim_delivery,
            self._sessions,
            notice_id=notice.notice_id,
            channel=channel_name,
            address=address,
            now=datetime.now(UTC),
        )
        if claim is Claim.ALREADY_SENT:
            return False
        if claim is Claim.IN_FLIGHT:
            # Another attempt is sending right now; fail this one and let Temporal come back.
            raise ChannelError("另一次投递正在进行")
        try:
            await self._channels[channel_name].send(notice, address)
        except Exception as exc:
            await asyncio.to_thread(
                finish_delivery,
                self._sessions,
                notice_id=notice.notice_id,
                channel=channel_name,
                now=datetime.now(UTC),
                error=_error_text(exc),
            )
            log.warning(
                "channel delivery failed",
                channel=channel_name,
                notice_id=notice.notice_id,
                error=_error_text(exc),
            )
            raise
        await asyncio.to_thread(
            finish_delivery,
            self._sessions,
            notice_id=notice.notice_id,
            channel=channel_name,
            now=datetime.now(UTC),
            error=None,
        )
        log.info("channel delivery sent", channel=channel_name, notice_id=notice.notice_id)
        return True

    async def retry_failed(self, *, limit: int = 100) -> tuple[int, int]:
        """Send the failed deliveries again (an operator's retry, after fixing the cause).

        Returns (sent, still failing). The notice is rebuilt from its inbox row.
        """
        failed = await asyncio.to_thread(failed_deliveries, self._sessions, limit=limit)
        ids = {d.notice_id for d in failed}
        rows = await asyncio.to_thread(self._inbox_rows, ids)
        sent = still_failing = 0
        for delivery in failed:
            row = rows.get(delivery.notice_id)
            if row is None or delivery.channel not in self._channels:
                still_failing += 1  # the inbox row is written first, so only a purge does this
                continue
            notice = _notice_from_row(row)
            # The current configuration wins: the fix may well have been a corrected address.
            address = self._config.address_of(
                notice.recipient_role, notice.recipient_key, delivery.channel
            )
            try:
                if await self._send_once(notice, delivery.channel, address or delivery.address):
                    sent += 1
            except Exception:
                still_failing += 1
        return sent, still_failing

    def _inbox_rows(self, notice_ids: set[str]) -> dict[str, Mapping[str, Any]]:
        """The inbox rows of ``notice_ids``, keyed by id."""
        if not notice_ids:
            return {}
        with self._sessions() as session:
            result = session.execute(select(notices).where(notices.c.notice_id.in_(notice_ids)))
            return {row.notice_id: dict(row._mapping) for row in result}
