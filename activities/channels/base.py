"""Channels behind one interface, and the router that sends each message through its role's.

A channel is one class with a ``name``, a ``takes_idempotency_key`` flag and an async
``send(message, address)`` that raises on failure. The :class:`ChannelRouter` is the
:class:`~activities.notifier.Notifier` the worker uses: the in-app inbox first (always; its
row is the notice's dedup record), then every channel routed for the recipient's role, each
delivery claimed and closed in the ``notice_deliveries`` ledger so a retried activity never
re-sends what was sent. Daily digests and circular notices, whose inbox rows the digest
activities write, go out through :meth:`ChannelRouter.send_message` the same way.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import httpx
import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from activities.channels.config import ROBOT_TIMEOUT_SECONDS, ChannelsConfig
from activities.channels.deliveries import (
    Claim,
    ClaimRequest,
    Closing,
    claim_deliveries,
    failed_deliveries,
    finish_deliveries,
)
from activities.channels.message import Outgoing, from_digest_row, from_notice
from activities.group_commit import GroupCommit
from activities.notifier import InboxNotifier
from activities.tables import OrganisationRow, RoundRow, digests, notices
from domain.notices import Notice
from domain.organisation import DEFAULT_COUNTY

log = structlog.get_logger(__name__)


@runtime_checkable
class Channel(Protocol):
    """A way to reach a person outside the application (mail, a group robot...)."""

    #: The name used in routes, addresses and the delivery ledger (``email``, ``wecom``...).
    name: str
    #: Whether the receiver drops a second copy carrying the same message id (mail's
    #: ``Message-ID``): then an interrupted send may be repeated; otherwise it is left to an
    #: operator (see ``deliveries``).
    takes_idempotency_key: bool

    async def send(self, message: Outgoing, address: str) -> None:
        """Send ``message`` to ``address``; raise on any failure (nothing is retried here)."""
        ...


class ChannelError(RuntimeError):
    """A channel could not deliver (refused by the receiver, bad reply, unreachable)."""


class DeliveryFailed(RuntimeError):
    """Some channels failed for a notice; raised so Temporal retries the activity."""


class RobotPoster:
    """POSTs robot messages (WeCom, DingTalk) over one HTTP client per event loop.

    A client is made once and kept: building an ``httpx.AsyncClient`` loads the trust store
    (about 20 ms of CPU, on the worker's event loop), which per message made a deadline
    storm with robots configured wait on the loop for tens of seconds; a kept client also
    keeps its connections alive. A client belongs to the loop it was made in (its pooled
    connections do), so another loop (tests run one per test) gets its own. The worker's
    clients go with its process.
    """

    def __init__(self, *, timeout: float = ROBOT_TIMEOUT_SECONDS) -> None:
        """Keep the per-request timeout (connect, read, write, and waiting for a pooled
        connection)."""
        self._timeout = timeout
        self._clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            # Drop the clients of loops that are gone (their connections went with them).
            for gone in [other for other in self._clients if other.is_closed()]:
                del self._clients[gone]
            client = self._clients[loop] = httpx.AsyncClient(timeout=self._timeout)
        return client

    async def post(self, url: str, payload: Mapping[str, Any]) -> None:
        """POST a robot message and check the reply: HTTP 2xx and ``errcode == 0``.

        WeCom and DingTalk both answer HTTP 200 with ``{"errcode": ..., "errmsg": ...}``; a
        non-zero errcode (bad key, rate limit, content refused) is a failure like a 5xx.
        """
        response = await self._client().post(url, json=payload)
        if response.status_code >= 300:
            raise ChannelError(f"HTTP {response.status_code}: {response.text[:300]}")
        try:
            reply = response.json()
        except ValueError as exc:
            raise ChannelError(f"回复不是 JSON：{response.text[:300]}") from exc
        if not isinstance(reply, dict) or reply.get("errcode") != 0:
            raise ChannelError(f"机器人拒绝：{reply}")

    async def aclose(self) -> None:
        """Close this loop's client (tests; a worker's closes with its process)."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()


def _error_text(exc: BaseException) -> str:
    """What is stored as ``last_error``: the exception's type and message."""
    return f"{type(exc).__name__}: {exc}"


def _notice_from_row(row: Mapping[str, Any]) -> Notice:
    """Rebuild a notice from its inbox row (the row holds every field of the notice)."""
    fields = {name: row[name] for name in Notice.model_fields}
    return Notice.model_validate(fields)


def _message_rows(sessions: sessionmaker[Session], ids: set[str]) -> dict[str, Outgoing]:
    """The messages of ``ids`` rebuilt from their inbox rows (notices, then digests)."""
    if not ids:
        return {}
    with sessions() as session:
        found = {
            row.notice_id: from_notice(_notice_from_row(dict(row._mapping)))
            for row in session.execute(select(notices).where(notices.c.notice_id.in_(ids)))
        }
        rest = ids - set(found)
        if rest:
            result = session.execute(select(digests).where(digests.c.message_id.in_(rest)))
            found |= {row.message_id: from_digest_row(dict(row._mapping)) for row in result}
    return found


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
        self._sending: set[asyncio.Future[bool]] = set()
        # The ledger's claims and closings of concurrent sends share transactions (a deadline
        # storm sends thousands at once; one SQLite write lock each made them queue).
        self._claims: GroupCommit[ClaimRequest, Claim] = GroupCommit(
            functools.partial(claim_deliveries, sessions)
        )
        self._closings: GroupCommit[Closing, None] = GroupCommit(self._close_all)
        # The county of each organisation and round seen (it never changes).
        self._counties: dict[tuple[str, str], str] = {}
        missing = {n for names in config.routes.values() for n in names} - set(self._channels)
        if missing:
            raise ValueError(f"routes name channels that were not built: {sorted(missing)}")

    def _county_of(self, message: Outgoing) -> str:
        """The county ``message`` belongs to: its organisation's, else its round's, else the
        default county (a message about neither, or about rows the read model lacks)."""
        key = (message.org_id, message.round_id)
        county = self._counties.get(key)
        if county is None:
            with self._sessions() as session:
                found = (
                    session.scalar(
                        select(OrganisationRow.county).where(
                            OrganisationRow.org_id == message.org_id
                        )
                    )
                    if message.org_id
                    else None
                )
                if found is None and message.round_id:
                    found = session.scalar(
                        select(RoundRow.county).where(RoundRow.round_id == message.round_id)
                    )
            county = found or DEFAULT_COUNTY
            if len(self._counties) > 100_000:  # bounded: start over
                self._counties.clear()
            self._counties[key] = county
        return county

    def carries(self, notice: Notice) -> bool:
        """Whether a channel is configured for ``notice``'s recipient role (an address may
        still be missing: :meth:`send_message` logs that gap when it sends)."""
        return bool(self._config.channels_for(notice.recipient_role))

    async def deliver(self, notice: Notice) -> bool:
        """Record ``notice`` in the inbox and send it on every channel of its recipient's role.

        True if anything was delivered now (the inbox row or a channel send). Every channel
        is tried even when one fails, then :class:`DeliveryFailed` is raised so the activity
        is retried; the retry skips the inbox and the channels already sent.
        """
        delivered = await self._inbox.deliver(notice)
        return await self.send_notice(notice) or delivered

    async def send_notice(self, notice: Notice) -> bool:
        """Send ``notice``, already in the inbox, on its channels (``deliver_notices`` files
        its batch in the inbox itself); see :meth:`send_message`."""
        return await self.send_message(from_notice(notice))

    async def send_message(self, message: Outgoing) -> bool:
        """Send ``message`` (already in the inbox) on every channel of its recipient's role.

        True if some channel sent it now; raises :class:`DeliveryFailed` after trying them
        all if any failed.
        """
        delivered = False
        errors: list[str] = []
        channels = self._config.channels_for(message.recipient_role)
        county = ""
        if channels:
            # Known counties are answered here; only a first sight costs a thread hop.
            known = self._counties.get((message.org_id, message.round_id))
            if known is None:
                known = await asyncio.to_thread(self._county_of, message)
            county = known
        for channel_name in channels:
            address = self._config.address_of(
                message.recipient_role, message.recipient_key, channel_name, county
            )
            if address is None:
                # The inbox still holds the message; a missing address is a configuration gap
                # for operators to fill, not something a retry can fix.
                log.warning(
                    "no address for channel",
                    channel=channel_name,
                    message_id=message.message_id,
                    role=message.recipient_role.value,
                    key=message.recipient_key,
                )
                continue
            try:
                delivered |= await self._send_once(message, channel_name, address)
            except Exception as exc:  # any channel failure is recorded, then re-raised below
                errors.append(f"{channel_name}: {_error_text(exc)}")
        if errors:
            raise DeliveryFailed(f"通知 {message.message_id} 投递失败：" + "；".join(errors))
        return delivered

    async def _send_once(
        self, message: Outgoing, channel_name: str, address: str, *, by_operator: bool = False
    ) -> bool:
        """Claim, send, close; True if sent now, False if sent before or left to an operator."""
        channel = self._channels[channel_name]
        claim = await self._claims.submit(
            ClaimRequest(
                notice_id=message.message_id,
                channel=channel_name,
                address=address,
                now=datetime.now(UTC),
                resend_uncertain=channel.takes_idempotency_key,
                by_operator=by_operator,
                lease=self._config.delivery_lease,
            )
        )
        if claim is Claim.ALREADY_SENT:
            return False
        if claim is Claim.UNCERTAIN:
            # Not this attempt's failure: retrying the activity cannot settle it.
            log.warning("delivery uncertain", channel=channel_name, message_id=message.message_id)
            return False
        if claim is Claim.IN_FLIGHT:
            # Another attempt is sending right now; fail this one and let Temporal come back.
            raise ChannelError("另一次投递正在进行")
        # Once claimed, the send and its record run to the end even if the activity is
        # cancelled meanwhile (a start-to-close or heartbeat timeout under load): a send cut
        # off after the receiver took it but before it was recorded would stay ``pending``
        # and go out a second time after the lease.
        sending = asyncio.ensure_future(self._send_claimed(channel, message, address))
        self._sending.add(sending)  # held until done: a cancelled caller drops its reference
        sending.add_done_callback(self._sending.discard)
        return await asyncio.shield(sending)

    async def _send_claimed(self, channel: Channel, message: Outgoing, address: str) -> bool:
        """Send a claimed delivery and close it in the ledger: ``sent``, or ``failed``."""
        channel_name = channel.name
        try:
            await channel.send(message, address)
        except Exception as exc:
            await self._closings.submit(
                Closing(message.message_id, channel_name, datetime.now(UTC), _error_text(exc))
            )
            log.warning(
                "channel delivery failed",
                channel=channel_name,
                message_id=message.message_id,
                error=_error_text(exc),
            )
            raise
        await self._closings.submit(
            Closing(message.message_id, channel_name, datetime.now(UTC), None)
        )
        log.info("channel delivery sent", channel=channel_name, message_id=message.message_id)
        return True

    def _close_all(self, closings: Sequence[Closing]) -> list[None]:
        """One group of closings, in one transaction (in a thread, by ``GroupCommit``)."""
        finish_deliveries(self._sessions, closings)
        return [None] * len(closings)

    async def retry_failed(self, *, limit: int = 100, county: str | None = None) -> tuple[int, int]:
        """Send failed and uncertain deliveries again (an operator's decision, after fixing
        the cause or checking the group). Returns (sent, still failing). With ``county``,
        only that county's (the operator's own: what their failed list shows them).

        The message is rebuilt from its inbox row (``notices`` or ``digests``).
        """
        failed = await asyncio.to_thread(
            failed_deliveries, self._sessions, limit=limit, county=county
        )
        messages = await asyncio.to_thread(
            _message_rows, self._sessions, {d.notice_id for d in failed}
        )
        sent = still_failing = 0
        for delivery in failed:
            message = messages.get(delivery.notice_id)
            if message is None or delivery.channel not in self._channels:
                still_failing += 1  # the inbox row is written first, so only a purge does this
                continue
            # The current configuration wins: the fix may well have been a corrected address.
            county = await asyncio.to_thread(self._county_of, message)
            address = self._config.address_of(
                message.recipient_role, message.recipient_key, delivery.channel, county
            )
            try:
                if await self._send_once(
                    message, delivery.channel, address or delivery.address, by_operator=True
                ):
                    sent += 1
            except Exception:
                still_failing += 1
        return sent, still_failing
