"""Notification channels: where a :class:`~domain.notices.Notice` goes to reach its recipient.

Every channel is idempotent by ``notice_id``: activities are retried, so a channel must
remember what it delivered and say so instead of sending twice. A new channel (SMTP, WeCom,
DingTalk) is one class with an async ``deliver``; ``worker.py`` chooses which to wire in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from activities.db import upsert_insert
from activities.group_commit import GroupCommit
from activities.guidance_groups import name_groups_in_notices
from activities.tables import notices
from domain.notices import Notice


@runtime_checkable
class Notifier(Protocol):
    """A channel that delivers notices at most once each."""

    async def deliver(self, notice: Notice) -> bool:
        """Deliver ``notice``; True if newly delivered, False if it had been delivered before.

        ``notice.notice_id`` is the idempotency key. Raise on transient failure so the
        activity is retried; the retry must not deliver twice.
        """
        ...


@runtime_checkable
class ExternalChannels(Protocol):
    """A notifier that also reaches people outside the application (mail, group robots).

    ``deliver_notices`` files notices in the inbox itself, in one statement for the batch,
    and then calls :meth:`send_notice` for the channels alone.
    """

    async def send_notice(self, notice: Notice) -> bool:
        """Send ``notice``, already in the inbox, on its channels; True if some sent it now."""
        ...


@runtime_checkable
class RoutesNotices(Protocol):
    """A notifier that can tell, before sending, whether a notice has anywhere to go
    besides the inbox (``record_outbox`` asks, so no delivery is scheduled for nothing)."""

    def carries(self, notice: Notice) -> bool:
        """Whether some external channel is configured for ``notice``'s recipient."""
        ...


def notice_row(notice: Notice, *, delivered_at: datetime) -> dict[str, Any]:
    """The ``notices`` row of a notice; enums stored by value (drivers differ on enums)."""
    return {
        "notice_id": notice.notice_id,
        "round_id": notice.round_id,
        "org_id": notice.org_id,
        "org_name": notice.org_name,
        "phase": notice.phase.value,
        "kind": notice.kind.value,
        "rung": notice.rung,
        "recipient_role": notice.recipient_role.value,
        "recipient_key": notice.recipient_key,
        "recipient_label": notice.recipient_label,
        "title": notice.title,
        "body": notice.body,
        "link_path": notice.link_path,
        "created_at": notice.created_at,
        "delivered_at": delivered_at,
        "read_at": None,
    }


class InboxNotifier:
    """The in-app inbox: a notice is delivered once its row exists in ``notices``.

    The row is the notice's ledger: the outbox (``record_events``) writes it with the
    escalation it belongs to, so delivery usually finds it there and writes nothing. Only
    notices that came another way (a supervisor's reminder, a workflow from before the
    outbox) are inserted here.
    """

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        """Keep the session factory; filings of concurrent deliveries are grouped."""
        self._session_factory = session_factory
        # Many deliveries at once (a deadline storm) share one look-up and one transaction.
        self._filings: GroupCommit[_Filing, set[str]] = GroupCommit(self._file_all)

    async def deliver(self, notice: Notice) -> bool:
        """Store the notice unless a row with its id exists; True if it was stored now."""
        return notice.notice_id in await self.file([notice])

    async def file(self, batch: Sequence[Notice]) -> set[str]:
        """Store the notices of ``batch`` that are not in the inbox yet; the ids stored now."""
        if not batch:
            return set()
        # SQLAlchemy is blocking: the group runs in a thread so the worker's event loop keeps
        # serving other activities and heartbeats meanwhile.
        return await self._filings.submit(_Filing(tuple(batch), datetime.now(UTC)))

    def _file_all(self, filings: Sequence[_Filing]) -> list[set[str]]:
        """Look every id up (a read: no write lock); insert only the missing ones, each
        credited to the first filing that brings it."""
        ids = {n.notice_id for f in filings for n in f.notices}
        with self._session_factory() as session:
            found = set(
                session.scalars(select(notices.c.notice_id).where(notices.c.notice_id.in_(ids)))
            )
        owner: dict[str, int] = {}
        rows: list[dict[str, Any]] = []
        for index, filing in enumerate(filings):
            for notice in filing.notices:
                if notice.notice_id not in found and notice.notice_id not in owner:
                    owner[notice.notice_id] = index
                    rows.append(notice_row(notice, delivered_at=filing.delivered_at))
        filed: list[set[str]] = [set() for _ in filings]
        if not rows:
            return filed
        with self._session_factory.begin() as session:
            name_groups_in_notices(session, rows)  # a county's own guidance group (issue 15)
            stmt = (
                upsert_insert(session, notices)
                .on_conflict_do_nothing(index_elements=["notice_id"])
                # RETURNING yields a row only when the insert happened, on both dialects
                # (another attempt may have filed it since the look-up).
                .returning(notices.c.notice_id)
            )
            for notice_id in session.execute(stmt, rows).scalars():
                filed[owner[notice_id]].add(notice_id)
        return filed


@dataclass(frozen=True)
class _Filing:
    """One delivery's notices waiting for their group, and when they were delivered."""

    notices: tuple[Notice, ...]
    delivered_at: datetime
