"""Activities that project a campaign's progress into the SQL read model and deliver notices.

Temporal history is the source of truth; these writes only mirror it for dashboards. Every
write is idempotent (keyed by event id, notice id, round id or (round, organisation)) and
ordered writes are guarded, so a retried or late activity never double-writes and never
moves a status backwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.contracts import (
    CampaignSnapshot,
    DeliveryReport,
    EventBatch,
    NoticeBatch,
    RoundRecord,
)
from activities.db import upsert_insert
from activities.notifier import Notifier, notice_row
from activities.projection import project_events
from activities.tables import (
    NaiveDatetimeError,
    campaign_events,
    campaign_status,
    notices,
    rounds,
)
from domain.state import CampaignEvent

log = structlog.get_logger(__name__)

#: Events per INSERT statement: stays far below SQLite's bound-parameter limit (32,766 with
#: 12 columns per row) while keeping round trips few for large batches.
EVENT_CHUNK = 500


def _activity_context() -> dict[str, Any]:
    """Activity and workflow ids for log context (empty when called outside an activity)."""
    if not activity.in_activity():
        return {}
    info = activity.info()
    return {"activity_id": info.activity_id, "workflow_id": info.workflow_id}


@contextmanager
def _naive_datetimes_are_fatal() -> Iterator[None]:
    """Turn a refused naive datetime into a non-retryable failure.

    The same input would be refused on every attempt, so retrying only delays the bug report.
    """
    try:
        yield
    except StatementError as exc:
        if isinstance(exc.orig, NaiveDatetimeError):
            raise ApplicationError(str(exc.orig), type="NaiveDatetime", non_retryable=True) from exc
        raise


def _event_row(event: CampaignEvent, recorded_at: datetime) -> dict[str, Any]:
    """The ``campaign_events`` row of an event; enums stored by value."""
    actor = event.actor
    return {
        "event_id": event.event_id,
        "round_id": event.round_id,
        "org_id": event.org_id,
        "kind": event.kind,
        "phase": event.phase.value if event.phase is not None else None,
        "step_id": event.step_id,
        "actor_user": actor.user if actor is not None else None,
        "actor_role": actor.role.value if actor is not None else None,
        "actor_name": actor.name if actor is not None else None,
        "at": event.at,
        # JSON mode: details may carry datetimes or enums, which JSON columns cannot hold.
        "detail": event.model_dump(mode="json", include={"detail"})["detail"],
        "recorded_at": recorded_at,
    }


def _status_row(snapshot: CampaignSnapshot) -> dict[str, Any]:
    """The ``campaign_status`` row of a snapshot; enums stored by value."""
    return {
        "round_id": snapshot.round_id,
        "org_id": snapshot.org_id,
        "org_name": snapshot.org_name,
        "township": snapshot.township,
        "system": snapshot.system,
        "org_type": snapshot.org_type.value,
        "phase": snapshot.phase.value,
        "phase_status": (
            snapshot.phase_status.value if snapshot.phase_status is not None else None
        ),
        "light": snapshot.light.value,
        "overdue": snapshot.overdue,
        "deadline": snapshot.deadline,
        "top_rung": snapshot.top_rung,
        "closed": snapshot.closed,
        "event_seq": snapshot.event_seq,
        "updated_at": snapshot.updated_at,
        "progress": snapshot.progress,
    }


def _round_row(record: RoundRecord) -> dict[str, Any]:
    """The ``rounds`` row of a round record (the actor is stored by account)."""
    return {
        "round_id": record.round_id,
        "name": record.name,
        "campaign_id": record.campaign_id,
        "round_plan_id": record.round_plan_id,
        "starts_at": record.starts_at,
        "status": record.status,
        "kicked_off_by": record.kicked_off_by.user,
        "updated_at": record.updated_at,
    }


def _chunks(rows: Sequence[dict[str, Any]], size: int) -> Iterator[Sequence[dict[str, Any]]]:
    """Consecutive slices of at most ``size`` rows."""
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


class RecordingActivities:
    """Read-model writes and notice delivery, holding their database and notification channel.

    Register the bound methods with the worker:
    ``activities=[rec.record_events, rec.deliver_notices, rec.record_round]``.
    """

    def __init__(self, session_factory: sessionmaker[Session], notifier: Notifier) -> None:
        """Keep the dependencies; nothing is opened until an activity runs."""
        self._session_factory = session_factory
        self._notifier = notifier
        # SQLite takes one writer at a time: queue this process's writers on a lock rather
        # than have them collide and sleep through "database is locked" retries.
        engine = session_factory.kw.get("bind")
        sqlite = engine is not None and engine.dialect.name == "sqlite"
        self._write_lock: contextlib.AbstractContextManager[object] = (
            threading.Lock() if sqlite else contextlib.nullcontext()
        )

    @activity.defn(name="record_events")
    async def record_events(self, batch: EventBatch) -> int:
        """Record events (once each) and the status snapshot; return how many events were new.

        The snapshot overwrites the stored status only if its ``event_seq`` is not lower, so
        an older batch arriving late leaves the newer status in place.
        """
        snapshot = batch.snapshot
        with structlog.contextvars.bound_contextvars(
            **_activity_context(), round_id=snapshot.round_id, org_id=snapshot.org_id
        ):
            # Blocking SQLAlchemy work runs in a thread (which inherits the log context).
            inserted = await asyncio.to_thread(self._record_events, batch, datetime.now(UTC))
            log.info(
                "events recorded",
                events=len(batch.events),
                inserted=inserted,
                event_seq=snapshot.event_seq,
                phase=snapshot.phase.value,
                light=snapshot.light.value,
            )
            return inserted

    def _record_events(self, batch: EventBatch, recorded_at: datetime) -> int:
        """Insert events and upsert the status in one transaction."""
        rows = [_event_row(event, recorded_at) for event in batch.events]
        inserted = 0
        with (
            self._write_lock,
            _naive_datetimes_are_fatal(),
            self._session_factory.begin() as session,
        ):
            for chunk in _chunks(rows, EVENT_CHUNK):
                stmt = (
                    upsert_insert(session, campaign_events)
                    .values(list(chunk))
                    .on_conflict_do_nothing(index_elements=["event_id"])
                    # Only inserted rows come back: the count of new events on both dialects.
                    .returning(campaign_events.c.event_id)
                )
                inserted += len(session.execute(stmt).all())

            status = upsert_insert(session, campaign_status).values(_status_row(batch.snapshot))
            keys = ("round_id", "org_id")
            session.execute(
                status.on_conflict_do_update(
                    index_elements=list(keys),
                    set_={
                        col.name: status.excluded[col.name]
                        for col in campaign_status.columns
                        if col.name not in keys
                    },
                    # The ordering guard: equal seq rewrites the same values (a retry).
                    where=campaign_status.c.event_seq <= status.excluded.event_seq,
                )
            )
            # Detail tables (steps, submissions, escalations, audit) in the same transaction.
            project_events(session, batch.events, batch.snapshot)
            # The outbox: each notice is in the inbox exactly when its escalation is recorded.
            if batch.notices:
                session.execute(
                    upsert_insert(session, notices)
                    .values([notice_row(n, delivered_at=recorded_at) for n in batch.notices])
                    .on_conflict_do_nothing(index_elements=["notice_id"])
                )
        return inserted

    @activity.defn(name="deliver_notices")
    async def deliver_notices(self, batch: NoticeBatch) -> DeliveryReport:
        """Deliver each notice through the notifier; count new and earlier deliveries."""
        rounds_ = {n.round_id for n in batch.notices}
        orgs = {n.org_id for n in batch.notices}
        with structlog.contextvars.bound_contextvars(
            **_activity_context(),
            round_id=next(iter(rounds_)) if len(rounds_) == 1 else None,
            org_id=next(iter(orgs)) if len(orgs) == 1 else None,
        ):
            delivered = 0
            failures: list[str] = []
            with _naive_datetimes_are_fatal():
                for notice in batch.notices:
                    # One at a time, heartbeating, and past a failing one: a dead worker is
                    # noticed within the heartbeat timeout, and one recipient's broken
                    # channel does not hold back everyone else's notices. A retry reports
                    # what was delivered as such instead of sending it again.
                    if activity.in_activity():  # also callable directly, e.g. by operators
                        activity.heartbeat(notice.notice_id)
                    try:
                        if await self._notifier.deliver(notice):
                            delivered += 1
                    except Exception as exc:
                        log.warning(
                            "notice not delivered", notice_id=notice.notice_id, error=str(exc)
                        )
                        failures.append(f"{notice.notice_id}: {exc}")
            if failures:
                raise RuntimeError(f"{len(failures)} 条通知未送达：" + "；".join(failures[:5]))
            report = DeliveryReport(
                delivered=delivered, already_delivered=len(batch.notices) - delivered
            )
            log.info(
                "notices delivered",
                notices=len(batch.notices),
                delivered=report.delivered,
                already_delivered=report.already_delivered,
            )
            return report

    @activity.defn(name="record_round")
    async def record_round(self, record: RoundRecord) -> None:
        """Insert or update the round's row; an older record never overwrites a newer one."""
        with structlog.contextvars.bound_contextvars(
            **_activity_context(), round_id=record.round_id
        ):
            await asyncio.to_thread(self._record_round, record)
            log.info("round recorded", status=record.status)

    def _record_round(self, record: RoundRecord) -> None:
        """Upsert guarded by ``updated_at`` (a retried, stale write leaves the newer row)."""
        with _naive_datetimes_are_fatal(), self._session_factory.begin() as session:
            stmt = upsert_insert(session, rounds).values(_round_row(record))
            session.execute(
                stmt.on_conflict_do_update(
                    index_elements=["round_id"],
                    set_={
                        col.name: stmt.excluded[col.name]
                        for col in rounds.columns
                        if col.name != "round_id"
                    },
                    where=rounds.c.updated_at <= stmt.excluded.updated_at,
                )
            )
