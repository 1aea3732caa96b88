"""The outbox's ledger: one row per (notice, channel) saying whether it was sent.

The inbox row (``notices``) is the notice's dedup record; this table is the channels'. A
delivery is claimed (``pending``, attempts + 1) in a committed transaction before the send and
closed (``sent`` or ``failed`` with the error) after it, so a retried activity skips what was
sent, and a failure stays visible until a later attempt succeeds. The claims (and the
closings) of deliveries running at the same moment share a transaction (the router groups
them), so a deadline storm's thousands of sends do not queue one by one for SQLite's write
lock.

A claim is a lease: while a ``pending`` row is younger than the lease (the channels file's
``delivery_lease_seconds``, :data:`IN_FLIGHT_LEASE` by default), another attempt (a Temporal
retry overlapping a slow send) stays away instead of sending twice.

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

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Row, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from activities.db import upsert_insert
from activities.tables import NoticeRow, OrganisationRow, notice_deliveries
from domain.organisation import DEFAULT_COUNTY

#: How long a claimed delivery is left alone by default; well above the channels' own
#: timeouts (10 s by default).
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


@dataclass(frozen=True)
class ClaimRequest:
    """One attempt's wish to send ``notice_id`` on ``channel`` at ``now`` (see
    :func:`claim_deliveries`)."""

    notice_id: str
    channel: str
    address: str
    now: datetime
    resend_uncertain: bool = True
    by_operator: bool = False
    lease: timedelta = IN_FLIGHT_LEASE


@dataclass(frozen=True)
class Closing:
    """A claimed delivery's outcome: sent (``error`` None) or failed with ``error``."""

    notice_id: str
    channel: str
    now: datetime
    error: str | None


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

    An abandoned claim (pending past its lease) is taken over only when
    ``resend_uncertain`` (the channel deduplicates by the message id); otherwise it turns
    ``uncertain``. ``by_operator`` (an operator's explicit resend) also claims uncertain
    deliveries. One claim of :func:`claim_deliveries`.
    """
    request = ClaimRequest(notice_id, channel, address, now, resend_uncertain, by_operator)
    (claim,) = claim_deliveries(sessions, [request])
    return claim


def claim_deliveries(
    sessions: sessionmaker[Session], requests: Sequence[ClaimRequest]
) -> list[Claim]:
    """Claim each of ``requests`` (see :func:`claim_delivery`), in order, in one transaction:
    under a deadline storm the channels' claims of every delivery then running share one
    commit, and on SQLite one wait for the write lock, instead of one each. Each claim is one
    ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` statement, so two attempts (in one group
    or in two processes) cannot both claim the same row."""
    with sessions.begin() as session:
        return [_claim(session, request) for request in requests]


def _claim(session: Session, request: ClaimRequest) -> Claim:
    t = notice_deliveries
    now = request.now
    row = (t.c.notice_id == request.notice_id) & (t.c.channel == request.channel)
    abandoned = (t.c.status == DeliveryStatus.PENDING.value) & (
        t.c.updated_at < now - request.lease
    )
    reclaimable = [t.c.status == DeliveryStatus.FAILED.value]
    if request.resend_uncertain:
        reclaimable.append(abandoned)
    if request.by_operator:
        reclaimable.append(t.c.status == DeliveryStatus.UNCERTAIN.value)
    if not request.resend_uncertain:
        session.execute(
            update(t)
            .where(row & abandoned)
            .values(
                status=DeliveryStatus.UNCERTAIN.value, last_error=UNCERTAIN_ERROR, updated_at=now
            )
        )
    stmt = upsert_insert(session, t).values(
        notice_id=request.notice_id,
        channel=request.channel,
        address=request.address,
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
    status = session.execute(select(t.c.status).where(row)).scalar_one()
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
    finish_deliveries(sessions, [Closing(notice_id, channel, now, error)])


def finish_deliveries(sessions: sessionmaker[Session], closings: Sequence[Closing]) -> None:
    """Close claimed deliveries (see :func:`finish_delivery`) in one transaction."""
    t = notice_deliveries
    with sessions.begin() as session:
        for closing in closings:
            values: dict[str, object] = {"updated_at": closing.now}
            if closing.error is None:
                values |= {
                    "status": DeliveryStatus.SENT.value,
                    "sent_at": closing.now,
                    "last_error": None,
                }
            else:
                values |= {
                    "status": DeliveryStatus.FAILED.value,
                    "last_error": closing.error[:MAX_ERROR],
                }
            session.execute(
                update(t)
                .where(t.c.notice_id == closing.notice_id, t.c.channel == closing.channel)
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
