"""The bounded round's read-model side: its plan stored once by content address, its
aggregate counted from ``campaign_status`` and ``phase_status`` (for the round's check,
read in the same pass as the cohort members: :func:`read_round_check`), its status row,
and the schedule resolved once (so it is pinned in the round's history).

The aggregate is also what the API's round status page shows (:func:`round_aggregate`):
the page reads the read model and never waits on Temporal.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.db import upsert_insert
from activities.round_contracts import (
    FINAL_STATUSES,
    AggregateRequest,
    RoundAggregate,
    RoundStatus,
    RoundStatusRecord,
    ScheduleRequest,
)
from activities.tables import (
    CampaignStatusRow,
    PhaseStatusRow,
    RoundPlanRow,
    RoundRow,
    RoundVerdictRow,
)
from activities.tables.round_state import round_plans
from domain.calendar import CalendarGap
from domain.cohort import CohortMember
from domain.errors import DomainError
from domain.lights import Light
from domain.phases import WORKING_PHASES, Phase
from domain.plan import CampaignPlan
from domain.schedule import RoundSchedule, is_rebased, resolve_schedule
from domain.state import Outcome
from workflows.contracts import RoundProgress

log = structlog.get_logger(__name__)

# Plans parsed per worker process; a round reads its plan on every start and fan-out page.
_PLAN_CACHE_SIZE = 32


def plan_ref_of(plan: CampaignPlan) -> str:
    """The plan's content address: the sha256 of its canonical JSON (224 bits, hex)."""
    return "sha256-" + hashlib.sha256(plan.model_dump_json().encode("utf-8")).hexdigest()[:56]


def store_plan_in(session: Session, plan: CampaignPlan) -> str:
    """Store the plan once (idempotent by content) in ``session``'s transaction and return
    its reference; whoever kicks a round off calls this before starting ``CampaignRound``
    with ``plan_ref``."""
    ref = plan_ref_of(plan)
    stmt = upsert_insert(session, round_plans).values(
        plan_ref=ref,
        campaign_id=plan.id,
        plan_json=plan.model_dump_json(),
        created_at=datetime.now(UTC),
    )
    session.execute(stmt.on_conflict_do_nothing(index_elements=["plan_ref"]))
    return ref


def store_plan(sessions: sessionmaker[Session], plan: CampaignPlan) -> str:
    """:func:`store_plan_in` in a transaction of its own."""
    with sessions.begin() as session:
        return store_plan_in(session, plan)


class PlanStore:
    """Plans by reference, parsed once per process (a small LRU)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._cache: OrderedDict[str, CampaignPlan] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, ref: str) -> CampaignPlan:
        """The stored plan; a missing one is a non-retryable failure (a kick-off bug)."""
        with self._lock:
            plan = self._cache.get(ref)
            if plan is not None:
                self._cache.move_to_end(ref)
                return plan
        with self._sessions() as session:
            row = session.get(RoundPlanRow, ref)
            if row is None:
                raise ApplicationError(
                    f"轮次计划 {ref} 不在数据库中", type="plan_missing", non_retryable=True
                )
            plan = CampaignPlan.model_validate_json(row.plan_json)
        with self._lock:
            self._cache[ref] = plan
            while len(self._cache) > _PLAN_CACHE_SIZE:
                self._cache.popitem(last=False)
        return plan


def round_aggregate(session: Session, round_id: str, *, as_of: datetime) -> RoundAggregate:
    """Count the round's organisations by phase, light, overdue, finished and behind, and
    its phases by outcome: a handful of GROUP BY queries over indexed columns."""
    status = CampaignStatusRow
    where = status.round_id == round_id
    by_phase: dict[Phase, int] = {}
    by_light: dict[Light, int] = {}
    for phase, light, count in session.execute(
        select(status.phase, status.light, func.count())
        .where(where)
        .group_by(status.phase, status.light)
    ):
        by_phase[Phase(phase)] = by_phase.get(Phase(phase), 0) + count
        by_light[Light(light)] = by_light.get(Light(light), 0) + count
    reported = sum(by_phase.values())
    overdue = session.scalar(select(func.count()).where(where, status.overdue.is_(True))) or 0
    finished = (
        session.scalar(
            select(func.count()).where(
                where, (status.phase == Phase.COMPLETED.value) | status.closed.is_(True)
            )
        )
        or 0
    )
    behind = (
        session.scalar(
            select(func.count()).where(
                RoundVerdictRow.round_id == round_id, RoundVerdictRow.behind.is_(True)
            )
        )
        or 0
    )
    return RoundAggregate(
        round_id=round_id,
        reported=reported,
        finished=finished,
        by_phase=by_phase,
        by_light=by_light,
        overdue=overdue,
        behind=behind,
        outcomes=_outcomes(session, round_id),
        as_of=as_of,
    )


def _outcomes(session: Session, round_id: str) -> dict[Phase, dict[Outcome, int]]:
    """The round's phases counted by outcome (``phase_status``)."""
    outcomes: dict[Phase, dict[Outcome, int]] = {}
    for phase, outcome, count in session.execute(
        select(PhaseStatusRow.phase, PhaseStatusRow.outcome, func.count())
        .where(PhaseStatusRow.round_id == round_id, PhaseStatusRow.outcome.is_not(None))
        .group_by(PhaseStatusRow.phase, PhaseStatusRow.outcome)
    ):
        if outcome is not None:
            outcomes.setdefault(Phase(phase), {})[Outcome(outcome)] = count
    return outcomes


@dataclass(frozen=True)
class RoundReading:
    """One read of a round for its check (:func:`read_round_check`): the cohort members,
    the stored verdicts and the aggregate, all from the same rows."""

    members: list[CohortMember]
    verdicts: dict[str, bool]
    aggregate: RoundAggregate


def read_round_check(session: Session, round_id: str, *, as_of: datetime) -> RoundReading:
    """Everything the round's check needs in one pass: the round's ``campaign_status`` rows
    read once (the cohort members and the counts by phase, light, overdue and finished come
    from the same rows, so the verdicts and the aggregate describe one moment), its stored
    verdicts, and its phases by outcome. Three queries, where the cohort check and
    :func:`round_aggregate` apart take seven. ``behind`` counts the verdicts as stored; the
    check replaces it with its own count once it has stored the new ones."""
    status = CampaignStatusRow
    members: list[CohortMember] = []
    by_phase: dict[Phase, int] = {}
    by_light: dict[Light, int] = {}
    overdue = finished = 0
    rows = session.execute(
        select(
            status.org_id,
            status.township,
            status.system,
            status.phase,
            status.light,
            status.progress,
            status.closed,
            status.overdue,
        ).where(status.round_id == round_id)
    )
    for row in rows:
        phase, light = Phase(row.phase), Light(row.light)
        members.append(
            CohortMember(
                org_id=row.org_id,
                township=row.township,
                system=row.system,
                phase=phase,
                progress=min(1.0, max(0.0, row.progress or 0.0)),
                closed=row.closed,
            )
        )
        by_phase[phase] = by_phase.get(phase, 0) + 1
        by_light[light] = by_light.get(light, 0) + 1
        overdue += bool(row.overdue)
        finished += phase is Phase.COMPLETED or bool(row.closed)
    verdicts: dict[str, bool] = {
        org_id: bool(behind)
        for org_id, behind in session.execute(
            select(RoundVerdictRow.org_id, RoundVerdictRow.behind).where(
                RoundVerdictRow.round_id == round_id
            )
        )
    }
    aggregate = RoundAggregate(
        round_id=round_id,
        reported=len(members),
        finished=finished,
        by_phase=by_phase,
        by_light=by_light,
        overdue=overdue,
        behind=sum(verdicts.values()),
        outcomes=_outcomes(session, round_id),
        as_of=as_of,
    )
    return RoundReading(members=members, verdicts=verdicts, aggregate=aggregate)


def round_progress(session: Session, row: RoundRow, *, as_of: datetime) -> RoundProgress:
    """The round's progress as its status page shows it: the kick-off cursor from its row
    and the counts from the read model (no call to Temporal, so it answers while Temporal is
    slow or down). Rounds of the legacy workflow have no cursor: the organisations with a
    status row stand for the started ones."""
    aggregate = round_aggregate(session, row.round_id, as_of=as_of)
    started = row.started if row.started is not None else aggregate.reported
    return RoundProgress(
        round_id=row.round_id,
        total=row.total if row.total is not None else (started or None),
        started=started,
        starting_done=bool(row.starting_done) if row.started is not None else started > 0,
        closed=row.status == RoundStatus.CLOSED.value,
        by_phase=aggregate.by_phase,
        by_light=aggregate.by_light,
        overdue=aggregate.overdue,
        outcomes={p: aggregate.outcomes.get(p, {}) for p in WORKING_PHASES},
        reported=aggregate.reported,
        behind=aggregate.behind,
        as_of=as_of,
    )


def _record_status(session: Session, record: RoundStatusRecord) -> bool:
    """Move the round's row to ``record``'s status (never out of a final one); insert the
    row if the round was not created through the API. True if the row changed.

    "Never out of a final one" is checked by the UPDATE itself, not only by the row read
    first: on SQLite ``FOR UPDATE`` locks nothing and the read runs before the write's
    transaction, so a close committed in between (``Rounds._mark_closed``) was overwritten
    by a late ``running`` (CI saw a closed round read back as running)."""
    row = session.get(RoundRow, record.round_id, with_for_update=True)
    values: dict[str, Any] = {"updated_at": record.at}
    if record.started is not None:
        values.update(
            started=record.started, total=record.total, starting_done=record.starting_done
        )
    if row is None:
        session.add(
            RoundRow(
                round_id=record.round_id,
                name=record.round_id,
                campaign_id="",
                round_plan_id=record.round_plan_id,
                starts_at=record.starts_at or record.at,
                status=record.status.value,
                kicked_off_by=record.kicked_off_by,
                status_reason=record.reason or None,
                **values,
            )
        )
        return True
    final = [s.value for s in FINAL_STATUSES]
    this_round = RoundRow.round_id == record.round_id
    if row.status not in final:
        moved = session.execute(
            update(RoundRow)
            .where(this_round, RoundRow.status.not_in(final))
            .values(**values, status=record.status.value, status_reason=record.reason or None)
            .execution_options(synchronize_session=False)
        )
        if getattr(moved, "rowcount", 1) == 1:
            return True
    # A final status stays; only the cursor of a late kick-off report may still land.
    if record.status in FINAL_STATUSES or record.started is None:
        return False
    values.pop("updated_at")
    session.execute(
        update(RoundRow).where(this_round).values(**values)
        .execution_options(synchronize_session=False)
    )  # fmt: skip
    return True


class RoundProgressActivities:
    """The round's read-model activities, holding the session factory and the plan store."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self.plans = PlanStore(sessions)
        engine = sessions.kw.get("bind")
        self._sqlite = engine is not None and engine.dialect.name == "sqlite"

    @activity.defn(name="record_round_status")
    async def record_round_status(self, record: RoundStatusRecord) -> bool:
        """Write the round's status (created, running, completed, failed, closed) and its
        kick-off cursor; idempotent, and a final status is never left."""

        def write() -> bool:
            with self._sessions.begin() as session:
                return _record_status(session, record)

        changed = await asyncio.to_thread(write)
        log.info(
            "round status recorded",
            round_id=record.round_id,
            status=record.status.value,
            changed=changed,
            reason=record.reason or None,
        )
        return changed

    @activity.defn(name="load_round_aggregate")
    async def load_round_aggregate(self, request: AggregateRequest) -> RoundAggregate:
        """The round's counts from the read model."""

        def read() -> RoundAggregate:
            with self._sessions() as session:
                return round_aggregate(session, request.round_id, as_of=datetime.now(UTC))

        return await asyncio.to_thread(read)

    @activity.defn(name="resolve_round_schedule")
    async def resolve_round_schedule(self, request: ScheduleRequest) -> RoundSchedule:
        """Resolve the round's schedule from its stored plan, once: the result is pinned in
        the round's history. A calendar gap fails the round with the year named."""
        plan = await asyncio.to_thread(self.plans.get, request.plan_ref)
        round_plan = plan.round(request.round_plan_id)
        try:
            return resolve_schedule(
                plan,
                round_plan,
                request.starts_at,
                rebased=is_rebased(round_plan, request.starts_at),
            )
        except CalendarGap as gap:
            raise ApplicationError(str(gap), type="calendar_gap", non_retryable=True) from None
        except DomainError as exc:
            raise ApplicationError(str(exc), type="invalid_plan", non_retryable=True) from None
