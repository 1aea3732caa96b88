"""Activities that project a campaign's progress into the SQL read model and deliver notices.

Temporal history is the source of truth; these writes only mirror it for dashboards. Every
write is idempotent (keyed by event id, notice id, round id or (round, organisation)) and
ordered writes are guarded, so a retried or late activity never double-writes and never
moves a status backwards.

Under a deadline storm thousands of workflows record at once: ``record_events`` calls are
written together (:mod:`activities.group_commit`), a few hundred batches per transaction,
with statements built once and run as ``executemany``. The notices of a batch go into the
inbox in the same transaction (the outbox), so ``deliver_notices`` only looks them up and
sends them on the external channels, if any. ``record_outbox`` (what organisation workflows
call since the patch ``external-delivery-only``) also answers which of the batch's notices an
external channel carries: a workflow schedules ``deliver_notices`` for those alone, so on an
inbox-only deployment a rung costs one workflow task, not two and an activity.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import Executable, bindparam, select, update
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.contracts import (
    NOTICES_NOT_RECORDED,
    STATUS_ROW_MISSING,
    CampaignSnapshot,
    DeliveryReport,
    EventBatch,
    NoticeBatch,
    RecordReceipt,
    RoundRecord,
    StatusChange,
)
from activities.db import dialect_insert
from activities.group_commit import GroupCommit
from activities.guidance_groups import name_groups_in_notices
from activities.notifier import (
    ExternalChannels,
    InboxNotifier,
    Notifier,
    RoutesNotices,
    notice_row,
)
from activities.projection import (
    Addressees,
    execute_writes,
    load_addressees,
    needs_addressees,
    projection_writes,
)
from activities.tables import (
    NaiveDatetimeError,
    campaign_events,
    campaign_status,
    notices,
    rounds,
)
from domain.notices import Notice
from domain.state import CampaignEvent

log = structlog.get_logger(__name__)

#: Groups a PostgreSQL worker writes at once (SQLite takes one writer at a time: 1 there).
POSTGRES_GROUP_WRITERS = 2


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


@functools.cache
def _insert_events(dialect: str) -> Executable:
    """Insert events once each; only inserted rows come back (the count of new events)."""
    return (
        dialect_insert(dialect, campaign_events)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(campaign_events.c.event_id)
    )


@functools.cache
def _upsert_status(dialect: str) -> Executable:
    """Insert or overwrite a status row unless the stored one is newer (``event_seq``)."""
    stmt = dialect_insert(dialect, campaign_status)
    keys = ("round_id", "org_id")
    return stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={c.name: stmt.excluded[c.name] for c in campaign_status.columns if c.name not in keys},
        # The ordering guard: equal seq rewrites the same values (a retry).
        where=campaign_status.c.event_seq <= stmt.excluded.event_seq,
    )


def _change_params(change: StatusChange) -> dict[str, Any]:
    """The parameters of :func:`_apply_status_change` for ``change``; enums by value."""
    params: dict[str, Any] = {
        "k_round_id": change.round_id,
        "k_org_id": change.org_id,
        "v_event_seq": change.event_seq,
        "v_updated_at": change.updated_at,
    }
    for name, value in change.changes().items():
        params[f"v_{name}"] = getattr(value, "value", value)
    return params


@functools.cache
def _apply_status_change(columns: tuple[str, ...]) -> Executable:
    """Update ``columns`` (and ``event_seq``, ``updated_at``) of a status row unless the
    stored one is newer (the same guard as :func:`_upsert_status`)."""
    c = campaign_status.c
    return (
        update(campaign_status)
        .where(
            c.round_id == bindparam("k_round_id"),
            c.org_id == bindparam("k_org_id"),
            c.event_seq <= bindparam("v_event_seq"),
        )
        .values({name: bindparam(f"v_{name}") for name in (*columns, "event_seq", "updated_at")})
    )


@dataclass(frozen=True)
class _Where:
    """What the projection needs of a status row: the batch's last sequence number and the
    organisation's township and system (from the stored row, for a status change)."""

    event_seq: int
    township: str
    system: str


def _stored_status(session: Session, keys: set[tuple[str, str]]) -> dict[tuple[str, str], _Where]:
    """The township and system of the stored status rows of ``keys`` (event_seq 0: unused)."""
    # Per round, ``round_id = :r AND org_id IN (…)``: a search of the primary key. The row
    # value ``(round_id, org_id) IN ((…), …)`` it replaces made SQLite 3.40 scan the whole
    # table for every group written (EXPLAIN QUERY PLAN: ``SCAN campaign_status``), a cost
    # growing with every round ever recorded, paid once per group in a deadline storm
    # (docs/performance.md, "Storm at 2,000, session 7").
    c = campaign_status.c
    found: dict[tuple[str, str], _Where] = {}
    by_round: dict[str, list[str]] = {}
    for round_id, org_id in sorted(keys):
        by_round.setdefault(round_id, []).append(org_id)
    for round_id, org_ids in by_round.items():
        for start in range(0, len(org_ids), 500):  # bound the number of parameters
            rows = session.execute(
                select(c.org_id, c.township, c.system).where(
                    c.round_id == round_id, c.org_id.in_(org_ids[start : start + 500])
                )
            )
            for row in rows:
                found[(round_id, row.org_id)] = _Where(0, row.township, row.system)
    return found


def _status_writes(session: Session, changes: Sequence[StatusChange]) -> None:
    """Apply status changes: per organisation in sequence order (a group rarely holds more
    than one of an organisation: a retry), the same columns together as one executemany."""
    by_key: dict[tuple[str, str], list[StatusChange]] = {}
    for change in changes:
        by_key.setdefault((change.round_id, change.org_id), []).append(change)
    for queue in by_key.values():
        queue.sort(key=lambda change: (change.event_seq, change.updated_at))
    for layer in range(max((len(q) for q in by_key.values()), default=0)):
        statements: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for queue in by_key.values():
            if layer < len(queue):
                change = queue[layer]
                statements.setdefault(tuple(sorted(change.changes())), []).append(
                    _change_params(change)
                )
        for columns, params in statements.items():
            session.execute(_apply_status_change(columns), params)


@functools.cache
def _insert_notices(dialect: str) -> Executable:
    """Put notices in the inbox once each (the outbox)."""
    return dialect_insert(dialect, notices).on_conflict_do_nothing(index_elements=["notice_id"])


@functools.cache
def _upsert_round(dialect: str) -> Executable:
    """Insert or update a round's row unless the stored one is newer (``updated_at``)."""
    stmt = dialect_insert(dialect, rounds)
    return stmt.on_conflict_do_update(
        index_elements=["round_id"],
        set_={c.name: stmt.excluded[c.name] for c in rounds.columns if c.name != "round_id"},
        where=rounds.c.updated_at <= stmt.excluded.updated_at,
    )


@dataclass(frozen=True)
class _Recording:
    """One ``record_events`` call waiting for its group: the batch and when it arrived."""

    batch: EventBatch
    recorded_at: datetime


def _write_recordings(sessions: sessionmaker[Session], items: Sequence[_Recording]) -> list[int]:
    """Record every batch of ``items`` in one transaction; the count of new events of each.

    Statement by statement over all batches: the events (each once, credited to the first
    batch that brings it), the status rows (per organisation, the newest snapshot, as if
    applied in turn with the ordering guard; then the status changes, each guarded the
    same way), the detail tables (each organisation's writes in order, see
    :func:`~activities.projection.execute_writes`) and the outbox's notices.

    A status change for an organisation without a status row is refused (non-retryable
    ``StatusRowMissing``): the group is then written item by item and that batch alone
    fails; its workflow sends the whole snapshot instead.
    """
    dialect = sessions.kw["bind"].dialect.name
    addressees: dict[str, Addressees] = {}
    wanted = {i.batch.where.org_id for i in items if needs_addressees(i.batch.events)}
    changes = [i.batch.status for i in items if i.batch.status is not None]
    stored: dict[tuple[str, str], _Where] = {}
    if wanted or changes:
        # Read before the write transaction: on SQLite a transaction that reads first and
        # then writes cannot wait for another process's writer; one that writes first can.
        with sessions() as session:
            if wanted:
                addressees = load_addressees(session, wanted)
            if changes:
                stored = _stored_status(session, {(c.round_id, c.org_id) for c in changes})
    missing = sorted({(c.round_id, c.org_id) for c in changes} - set(stored))
    if missing:
        raise ApplicationError(
            f"没有状态行，无法只写变化的字段：{missing[:5]}",
            [list(key) for key in missing],
            type=STATUS_ROW_MISSING,
            non_retryable=True,
        )

    event_rows: list[dict[str, Any]] = []
    owner: dict[str, int] = {}
    for index, item in enumerate(items):
        for event in item.batch.events:
            if event.event_id not in owner:
                owner[event.event_id] = index
                event_rows.append(_event_row(event, item.recorded_at))
    newest: dict[tuple[str, str], CampaignSnapshot] = {}
    for item in items:
        snap = item.batch.snapshot
        if snap is None:
            continue
        key = (snap.round_id, snap.org_id)
        if key not in newest or newest[key].event_seq <= snap.event_seq:
            newest[key] = snap
    # One sequence of detail writes per organisation, its batches in the order they came.
    sequences: dict[tuple[str, str], list[Any]] = {}
    for item in items:
        standing = item.batch.where
        key = (standing.round_id, standing.org_id)
        where: CampaignSnapshot | _Where
        if isinstance(standing, CampaignSnapshot):
            where = standing
        else:
            where = _Where(standing.event_seq, stored[key].township, stored[key].system)
        sequences.setdefault(key, []).extend(
            projection_writes(dialect, item.batch.events, where, addressees.get(key[1]))
        )
    notice_rows: dict[str, dict[str, Any]] = {}
    for item in items:
        for notice in item.batch.notices:
            notice_rows.setdefault(
                notice.notice_id, notice_row(notice, delivered_at=item.recorded_at)
            )

    counts = [0] * len(items)
    with sessions.begin() as session:
        if event_rows:
            inserted = session.execute(_insert_events(dialect), event_rows).scalars()
            for event_id in inserted:
                counts[owner[event_id]] += 1
        if newest:
            session.execute(_upsert_status(dialect), [_status_row(s) for s in newest.values()])
        # Status changes after the snapshots: a batch's change is only sent once the
        # snapshot before it is recorded, so a snapshot here with it is a retry.
        _status_writes(session, changes)
        # Detail tables (steps, submissions, escalations, audit) in the same transaction.
        execute_writes(session, list(sequences.values()))
        # The outbox: each notice is in the inbox exactly when its escalation is recorded.
        if notice_rows:
            # A county's own guidance group, named by its county's data (issue 15).
            name_groups_in_notices(session, list(notice_rows.values()))
            session.execute(_insert_notices(dialect), list(notice_rows.values()))
    return counts


def _recorded_notices(sessions: sessionmaker[Session], notice_ids: Sequence[str]) -> list[Notice]:
    """The notices of ``notice_ids`` from their inbox rows, in that order; raises
    ``NoticesNotRecorded`` (non-retryable) naming those not in the inbox."""
    with sessions() as session:
        rows = session.execute(select(notices).where(notices.c.notice_id.in_(set(notice_ids))))
        found = {
            row.notice_id: Notice.model_validate(
                {name: row._mapping[name] for name in Notice.model_fields}
            )
            for row in rows
        }
    missing = [notice_id for notice_id in notice_ids if notice_id not in found]
    if missing:
        raise ApplicationError(
            f"{len(missing)} 条通知不在收件箱：" + "；".join(missing[:5]),
            missing,
            type=NOTICES_NOT_RECORDED,
            non_retryable=True,
        )
    return [found[notice_id] for notice_id in dict.fromkeys(notice_ids)]


class RecordingActivities:
    """Read-model writes and notice delivery, holding their database and notification channel.

    Register the bound methods with the worker:
    ``activities=[rec.record_events, rec.deliver_notices, rec.record_round]``.
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        notifier: Notifier,
        *,
        group_writers: int | None = None,
    ) -> None:
        """Keep the dependencies; nothing is opened until an activity runs.

        ``record_events`` calls are written in groups (:class:`GroupCommit`): one writer on
        SQLite, :data:`POSTGRES_GROUP_WRITERS` on PostgreSQL unless ``group_writers`` says.
        """
        self._session_factory = session_factory
        self._notifier = notifier
        self._inbox = (
            notifier if isinstance(notifier, InboxNotifier) else InboxNotifier(session_factory)
        )
        engine = session_factory.kw.get("bind")
        sqlite = engine is not None and engine.dialect.name == "sqlite"
        writers = group_writers or (1 if sqlite else POSTGRES_GROUP_WRITERS)
        self._recordings: GroupCommit[_Recording, int] = GroupCommit(
            functools.partial(_write_recordings, session_factory), writers=writers
        )

    @activity.defn(name="record_events")
    async def record_events(self, batch: EventBatch) -> int:
        """Record events (once each) and the status snapshot; return how many events were new.

        The snapshot overwrites the stored status only if its ``event_seq`` is not lower, so
        an older batch arriving late leaves the newer status in place; a status change
        (``batch.status``) updates only its fields, under the same guard. Batches recorded by
        many workflows at the same moment share a transaction (group commit); each call still
        gets its own result, and a batch that cannot be written fails alone.
        """
        standing = batch.where
        with structlog.contextvars.bound_contextvars(
            **_activity_context(), round_id=standing.round_id, org_id=standing.org_id
        ):
            with _naive_datetimes_are_fatal():
                inserted = await self._recordings.submit(_Recording(batch, datetime.now(UTC)))
            log.info(
                "events recorded",
                events=len(batch.events),
                inserted=inserted,
                event_seq=standing.event_seq,
                phase=standing.phase.value if standing.phase is not None else None,
                light=standing.light.value if standing.light is not None else None,
                changed=None if batch.status is None else sorted(batch.status.changes()),
            )
            return inserted

    @activity.defn(name="record_outbox")
    async def record_outbox(self, batch: EventBatch) -> RecordReceipt:
        """:meth:`record_events`, and the ids of the batch's notices that some external
        channel carries (:meth:`to_send`): the rest are delivered by their inbox row."""
        inserted = await self.record_events(batch)
        return RecordReceipt(inserted=inserted, to_send=self.to_send(batch.notices))

    def to_send(self, batch: Sequence[Notice]) -> list[str]:
        """The notices of ``batch`` that have somewhere to go besides the inbox: none for
        the inbox alone, those whose recipient role has a channel for a router that can
        tell, every one for a notifier that cannot (it is then asked about each)."""
        notifier = self._notifier
        if isinstance(notifier, InboxNotifier):
            return []
        if isinstance(notifier, RoutesNotices):
            return [n.notice_id for n in batch if notifier.carries(n)]
        return [n.notice_id for n in batch]

    @activity.defn(name="deliver_notices")
    async def deliver_notices(self, batch: NoticeBatch) -> DeliveryReport:
        """File the notices in the inbox if not there yet, then send them on the external
        channels (mail, robots) if any are configured; count new and earlier deliveries.

        The inbox row is the notice's ledger. Notices of the outbox are already in it
        (``record_events`` wrote them with their escalation): the workflow names them by
        ``notice_ids`` and they are loaded from it (ids not in the inbox are refused,
        non-retryable ``NoticesNotRecorded``, before anything is sent); notices given
        whole (``notices``) cost one look-up for the batch and are inserted if they came
        another way (a supervisor's reminder, a workflow from before the outbox).
        """
        recorded: list[Notice] = []
        if batch.notice_ids:
            recorded = await asyncio.to_thread(
                _recorded_notices, self._session_factory, batch.notice_ids
            )
        every = [*batch.notices, *recorded]
        rounds_ = {n.round_id for n in every}
        orgs = {n.org_id for n in every}
        with structlog.contextvars.bound_contextvars(
            **_activity_context(),
            round_id=next(iter(rounds_)) if len(rounds_) == 1 else None,
            org_id=next(iter(orgs)) if len(orgs) == 1 else None,
        ):
            with _naive_datetimes_are_fatal():
                filed = await self._inbox.file(batch.notices)
            notifier = self._notifier
            delivered = 0
            failures: list[str] = []
            for notice in every:
                new = notice.notice_id in filed
                if isinstance(notifier, InboxNotifier):
                    delivered += new
                    continue
                # One at a time, heartbeating, and past a failing one: a dead worker is
                # noticed within the heartbeat timeout, and one recipient's broken channel
                # does not hold back everyone else's notices. A retry reports what was
                # delivered as such instead of sending it again.
                if activity.in_activity():  # also callable directly, e.g. by operators
                    activity.heartbeat(notice.notice_id)
                try:
                    with _naive_datetimes_are_fatal():
                        if isinstance(notifier, ExternalChannels):
                            sent = await notifier.send_notice(notice)
                        else:  # a notifier of its own kind: it files and sends itself
                            sent = await notifier.deliver(notice)
                except ApplicationError:
                    raise
                except Exception as exc:
                    log.warning("notice not delivered", notice_id=notice.notice_id, error=str(exc))
                    failures.append(f"{notice.notice_id}: {exc}")
                    continue
                delivered += new or sent
            if failures:
                raise RuntimeError(f"{len(failures)} 条通知未送达：" + "；".join(failures[:5]))
            report = DeliveryReport(delivered=delivered, already_delivered=len(every) - delivered)
            log.info(
                "notices delivered",
                notices=len(every),
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
            dialect = session.get_bind().dialect.name
            session.execute(_upsert_round(dialect), _round_row(record))
