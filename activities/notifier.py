"""Notification channels: where a :class:`~domain.notices.Notice` goes to reach its recipient.

Every channel is idempotent by ``notice_id``: activities are retried, so a channel must
remember what it delivered and say so instead of sending twice. A new channel (SMTP, WeCom,
DingTalk) is one class with an async ``deliver``; ``worker.py`` chooses which to wire in.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from sqlalchemy.orm import Session, sessionmaker

from activities.db import upsert_insert
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
    """The in-app inbox: a notice is delivered once its row exists in ``notices``."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        """Keep the session factory; one short transaction per delivery."""
        self._session_factory = session_factory

    async def deliver(self, notice: Notice) -> bool:
        """Store the notice unless a row with its id exists; True if it was stored now."""
        # SQLAlchemy's ORM is blocking: run it in a thread so the worker's event loop keeps
        # serving other activities and heartbeats meanwhile.
        return await asyncio.to_thread(self._insert, notice, datetime.now(UTC))

    def _insert(self, notice: Notice, delivered_at: datetime) -> bool:
        """``INSERT ... ON CONFLICT DO NOTHING`` and report whether a row was inserted."""
        with self._session_factory.begin() as session:
            stmt = (
                upsert_insert(session, notices)
                .values(notice_row(notice, delivered_at=delivered_at))
                .on_conflict_do_nothing(index_elements=["notice_id"])
                # RETURNING yields a row only when the insert happened, on both dialects;
                # more reliable than rowcount across drivers.
                .returning(notices.c.notice_id)
            )
            return session.execute(stmt).first() is not None
