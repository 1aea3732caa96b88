"""The outbox's ledger: one row per (notice, channel) saying whether it was sent.

The inbox row (``notices``) is the notice's dedup record; this table is the channels'. A
delivery is claimed (``pending``, attempts + 1) in its own transaction before the send and
closed (``sent`` or ``failed`` with the error) after it, so a retried activity skips what was
sent, and a failure stays visible until a later attempt succeeds.

A claim is a lease: while a ``pending`` row is younger than :data:`IN_FLIGHT_LEASE`, another
attempt (a Temporal retry overlapping a slow send) stays away instead of sending twice.

A worker dying between the send and the closing write leaves ``pending`` with no way to know
whether the receiver got the message. What happens after the lease depends on the channel:

- a channel that takes an idempotency key (mail: the ``Message-ID``, derived from the
  message id, which mail stores use to suppress a second delivery) is claimed and sent
  again, so the message reaches the mailbox exactly once;
- a channel without one (group robots) must not post twice: the delivery turns
  ``uncertain`` and is listed with the failed ones for an operator to check the group and
  resend (``retry``) or leave it. The ledger row is the dedup record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Row, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from activities.db import upsert_insert
from activities.tables import NoticeRow, OrganisationRow, notice_deliveries
from domain.organisation import DEFAULT_COUNTY

#: How long a claimed delivery is left alone; above the channels' own timeouts (10 s).
IN_FLIGHT_LEASE = timedelta(seconds=60)

#: Errors are stored for people to read; a whole traceback or HTML page is not needed.
MAX_ERROR = 2000


class DeliveryStatus(StrEnum):
    """Where one notice stands on one channel."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    #: Claimed, then the worker vanished: the receiver may or may not have it.
    UNCERTAIN = "uncertain"

    @property
    def label(self) -> str:
        """Chinese label for operators."""
        return {"pending": "发送中", "sent": "已发送", "failed": "失败", "uncertain": "结果不明"}[
            self.value
        ]


#: Statuses an operator sees in the failed list and may resend.
NEEDS_OPERATOR = (DeliveryStatus.FAILED.value, DeliveryStatus.UNCERTAIN.value)

#: What ``last_error`` says of an uncertain delivery.
UNCERTAIN_ERROR = "发送过程中断，无法确认对方是否收到；为避免重复，未自动重发，请核实后重发"


class Claim(StrEnum):
    """The outcome of :func:`claim_delivery`."""

    CLAIMED = "claimed"
    ALREADY_SENT = "already_sent"
    IN_FLIGHT = "in_flight"
    #: Left for an operator (see the module docstring); not an error of this attempt.
    UNCERTAIN = "uncertain"


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
    sessions: sessionmaker[Session],
    *,
    notice_id: str,
    channel: str,
    address: str,
    now: datetime,
    resend_uncertain: bool = True,
    by_operator: bool = False,
) -> Claim:
    """Claim the right to send ``notice_id`` on ``channel`` now, unless sent or in flight.

    One ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` statement, so two concurrent attempts
    cannot both claim the same row. An abandoned claim (pending past its lease) is taken over
    only when ``resend_uncertain`` (the channel deduplicates by the message id); otherwise it
    turns ``uncertain``. ``by_operator`` (an operator's explicit resend) also claims uncertain
    deliveries.
    """
    t = notice_deliveries
    abandoned = (t.c.status == DeliveryStatus.PENDING.value) & (
        t.c.updated_at < now - IN_FLIGHT_LEASE
    )
    reclaimable = [t.c.status == DeliveryStatus.FAILED.value]
    if resend_uncertain:
        reclaimable.append(abandoned)
    if by_operator:
        reclaimable.append(t.c.status == DeliveryStatus.UNCERTAIN.value)
    with sessions.begin() as session:
        if not resend_uncertain:
            session.execute(
                update(t)
                .where(t.c.notice_id == notice_id, t.c.channel == channel)
                .where(abandoned)
                .values(
                    status=DeliveryStatus.UNCERTAIN.value,
                    last_error=UNCERTAIN_ERROR,
                    updated_at=now,
                )
            )
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
                where=or_(*reclaimable),
            ).returning(t.c.notice_id)
        ).first()
        if claimed is not None:
            return Claim.CLAIMED
        status = session.execute(
            select(t.c.status).where(t.c.notice_id == notice_id, t.c.channel == channel)
        ).scalar_one()
    return {
        DeliveryStatus.SENT.value: Claim.ALREADY_SENT,
        DeliveryStatus.UNCERTAIN.value: Claim.UNCERTAIN,
    }.get(status, Claim.IN_FLIGHT)


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


def failed_deliveries(
    sessions: sessionmaker[Session], *, limit: int = 100, county: str | None = None
) -> list[Delivery]:
    """Failed and uncertain deliveries, oldest first: what an operator looks at and resends
    (of ``county``'s notices only when given: a notice belongs to its organisation's county)."""
    t = notice_deliveries
    stmt = select(t).where(t.c.status.in_(NEEDS_OPERATOR))
    if county is not None:
        notices_of = select(NoticeRow.notice_id).join(
            OrganisationRow, OrganisationRow.org_id == NoticeRow.org_id
        )
        if county == DEFAULT_COUNTY:
            # As a single-county deployment had it: everything but other counties' notices
            # (a delivery whose notice is not in the inbox table stays visible).
            elsewhere = notices_of.where(OrganisationRow.county != DEFAULT_COUNTY)
            stmt = stmt.where(t.c.notice_id.not_in(elsewhere))
        else:
            stmt = stmt.where(t.c.notice_id.in_(notices_of.where(OrganisationRow.county == county)))
    with sessions() as session:
        rows = session.execute(stmt.order_by(t.c.updated_at, t.c.notice_id).limit(limit))
        return [_delivery(row) for row in rows]
