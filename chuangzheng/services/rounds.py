"""Rounds, the county office's use cases: create a round from a plan (a shipped plan or an
uploaded YAML), kick it off, move one phase's deadline for the whole round, apply newly
published calendar data, close it; and read a round's status from the read model.

The commands that reach Temporal are the methods of :class:`Rounds` (the read model's session
factory, the Temporal client and the settings, as the bootstrap built them); creating a round
(:func:`create_round`) needs the read model only, and the reads (:func:`round_status`,
:func:`list_rounds`) take a session and never call Temporal, so a slow or unreachable
Temporal cannot fail a status page. Every command is the county office's
(:func:`authorise`, which a caller may run first, e.g. before replaying a stored answer).

Refusals are :mod:`chuangzheng.services.errors`: a plan that does not load, a start that
reaches a year with no calendar data (the year named, on ``starts_at``), or a start in the
past (:func:`retroactive_start`, ``past_start`` on ``starts_at``) is :class:`InvalidInput`
before anything is written or any workflow starts; an unknown round is
:class:`NotFound`; a duplicate round id, a calendar update of a round not yet kicked off or
of a minute-scale round, and kicking off a round that has ended are :class:`Conflict`;
Temporal's trouble is :class:`TemporalUnavailable`. Synchronous SQLAlchemy runs in worker
threads, never on the loop.
"""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import anyio.to_thread
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy

from activities.db import write_lock
from activities.roster_store import write_roster_snapshot
from activities.round_contracts import FINAL_STATUSES, RoundStatus
from activities.round_progress import plan_ref_of, round_progress, store_plan
from activities.tables import AuditRow, OrganisationRow, RoundDefinitionRow, RoundRow
from chuangzheng.plans import check_kickoff, parse_plan, shipped_plan_text
from chuangzheng.schedules import delete_schedules, ensure_schedules
from chuangzheng.services import workflow_calls
from chuangzheng.services.callers import account_county
from chuangzheng.services.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    Refused,
    from_domain,
)
from chuangzheng.services.field_errors import invalid_input
from chuangzheng.services.plan_versions import current_plan_in
from chuangzheng.settings import Settings
from domain.actions import CalendarUpdate, CloseRound
from domain.calendar import SHANGHAI, CalendarGap
from domain.errors import DomainError, FieldError, PlanError
from domain.organisation import Role
from domain.phases import Phase
from domain.plan import CalendarPlan, CampaignPlan
from domain.schedule import RoundSchedule, reresolve_round
from domain.state import Actor
from domain.text import free_text_problem
from workflows.contracts import RoundExtensionRequest, RoundKickoff, RoundProgress
from workflows.ids import round_workflow_id
from workflows.round_contracts import ROUND_WORKFLOW_TYPE, CampaignRoundInput, RoundTerms

if TYPE_CHECKING:
    from chuangzheng.bootstrap import Services

P = ParamSpec("P")
T = TypeVar("T")

#: The roles that see a round's progress (the round is county-wide; the others see their
#: own organisations elsewhere).
PROGRESS_ROLES = frozenset({Role.COUNTY_OFFICE, Role.ASSESSMENT_GROUP})
_FORBIDDEN = "当前角色无权执行此操作"
_NO_ROUND = "轮次不存在"
#: The years a round may start in: a start in year 1 or 9999 is a typing error, and dates
#: that far out overflow the calendars and the databases' date arithmetic.
FIRST_START_YEAR, LAST_START_YEAR = 2000, 2100
#: How far past the round's planned end a round-wide extension may reach.
EXTENSION_MARGIN = timedelta(days=365)


@dataclass(frozen=True)
class RoundRecord:
    """A round as the read model holds it: its plan, start and status (``status_reason``
    says why a round failed), and, when read for a role that sees it, its progress."""

    round_id: str
    name: str
    campaign_id: str
    round_plan_id: str
    starts_at: datetime
    status: str
    plan_source: str | None
    kicked_off_at: datetime | None
    status_reason: str | None
    progress: RoundProgress | None = None


@dataclass(frozen=True)
class PublishedCalendar:
    """Newly published calendar data for a running round (e.g. the State Council's notice
    for a new year): holidays, 调休 make-up working days and the years it vouches for."""

    holidays: tuple[date, ...] = ()
    workdays: tuple[date, ...] = ()
    supplied_years: tuple[int, ...] = ()


@dataclass(frozen=True)
class CalendarUpdateOutcome:
    """The round's answer to new calendar data (``result``: the Update's ``action_id`` and
    ``applied``, False when the same ``update_id`` was applied before) and the command it
    applied (the pinned calendar and every phase's window)."""

    result: dict[str, Any]
    update: CalendarUpdate


def authorise(actor: Actor) -> None:
    """Every round command is the county office's: :class:`Refused` (``forbidden``) otherwise."""
    if actor.role is not Role.COUNTY_OFFICE:
        raise Refused("forbidden", _FORBIDDEN)


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """Domain refusals (a plan that does not load, a calendar gap) as service errors."""
    try:
        yield
    except DomainError as exc:
        raise from_domain(exc) from None


async def _in_thread(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    return await anyio.to_thread.run_sync(functools.partial(func, *args, **kwargs))


def _aware(moment: datetime) -> datetime:
    """A stored moment as an aware one (SQLite hands back naive UTC)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _check_scope_townships(
    session: Session, plan: CampaignPlan, round_plan_id: str, county: str
) -> None:
    """Refuse a kick-off whose scope names a township with no organisation on the county's
    roster: a typo once ran a round over nobody, which then showed as completed, or silently
    dropped that township from a round of several."""
    index = next(i for i, r in enumerate(plan.rounds) if r.id == round_plan_id)
    townships = plan.rounds[index].scope.townships
    if not townships:
        return
    # No autoflush: the kick-off's pending writes would open its write transaction here,
    # and on SQLite the plan's own transaction (stored next, before the commit) then waited
    # for it and timed out ("database_unavailable" at every scoped kick-off).
    with session.no_autoflush:
        known = set(
            session.scalars(
                select(OrganisationRow.township)
                .where(OrganisationRow.county == county, OrganisationRow.active.is_(True))
                .where(OrganisationRow.township.in_(townships))
                .distinct()
            )
        )
    missing = [
        FieldError(
            field=f"rounds[{index}].scope.townships[{i}]",
            reason=f"本县花名册中没有“{name}”的组织，请核对乡镇（街道）名称",
        )
        for i, name in enumerate(townships)
        if name not in known
    ]
    if missing:
        raise PlanError(missing)


def _record(
    row: RoundRow, definition: RoundDefinitionRow | None, progress: RoundProgress | None = None
) -> RoundRecord:
    return RoundRecord(
        round_id=row.round_id,
        name=row.name,
        campaign_id=row.campaign_id,
        round_plan_id=row.round_plan_id,
        starts_at=row.starts_at,
        status=row.status,
        plan_source=definition.plan_source if definition else None,
        kicked_off_at=definition.kicked_off_at if definition else None,
        # Why the round failed (e.g. a calendar gap), written by the round workflow.
        status_reason=row.status_reason,
        progress=progress,
    )


def _load(session: Session, round_id: str) -> tuple[RoundRow, RoundDefinitionRow]:
    row = session.get(RoundRow, round_id)
    definition = session.get(RoundDefinitionRow, round_id)
    if row is None or definition is None:
        raise NotFound(_NO_ROUND)
    return row, definition


def _audit(
    actor: Actor, action: str, round_id: str, now: datetime, detail: dict[str, Any] | None = None
) -> AuditRow:
    return AuditRow(
        audit_id=f"{action}/{round_id}",
        user=actor.user,
        role=actor.role.value,
        action=action,
        round_id=round_id,
        org_id=None,
        ip=actor.ip,
        at=now,
        detail=detail or {},
    )


def _round_input(kickoff: RoundKickoff) -> CampaignRoundInput:
    """The bounded round's input: the plan by its content address (stored by the caller)
    and the schedule resolved here, with its pinned calendar, so the workflow never
    resolves it from whatever calendar package the worker has installed."""
    assert kickoff.starts_at is not None  # the kick-off fixes it
    return CampaignRoundInput(
        terms=RoundTerms(
            round_id=kickoff.round_id,
            round_plan_id=kickoff.round_plan_id,
            roster_source=kickoff.roster_source,
            actor=kickoff.actor,
            starts_at=kickoff.starts_at,
            history_limit=kickoff.history_limit,
            org_history_limit=kickoff.history_limit,
            cohort_check_every=kickoff.cohort_check_every,
            behind_tolerance=kickoff.behind_tolerance,
        ),
        plan_ref=plan_ref_of(kickoff.plan),
        schedule=check_kickoff(kickoff.plan, kickoff.round_plan_id, kickoff.starts_at),
    )


def round_status(session: Session, round_id: str, *, role: Role, as_of: datetime) -> RoundRecord:
    """The round and, once kicked off, its progress for the roles that see it
    (:data:`PROGRESS_ROLES`), from the read model, never a query to Temporal.
    :class:`NotFound` for an unknown round."""
    row, definition = _load(session, round_id)
    progress = None
    if definition.kicked_off_at is not None and role in PROGRESS_ROLES:
        progress = round_progress(session, row, as_of=as_of)
    return _record(row, definition, progress)


def list_rounds(session: Session, counties: Collection[str] | None = None) -> list[RoundRecord]:
    """Every round of ``counties`` (None: of every county), the latest start first (rounds
    are county-wide; what each caller sees inside them is scoped elsewhere)."""
    query = select(RoundRow).order_by(RoundRow.starts_at.desc())
    if counties is not None:
        query = query.where(RoundRow.county.in_(sorted(counties)))
    rows = session.scalars(query).all()
    return [_record(r, session.get(RoundDefinitionRow, r.round_id)) for r in rows]


def retroactive_start(schedule: RoundSchedule, now: datetime) -> str | None:
    """Why a round kicked off at ``now`` on ``schedule`` would act as if it had run in the
    past (the reason, in Chinese, for ``starts_at``), or None.

    A round whose deadlines lie behind its kick-off fires its whole escalation ladder at
    once: reminders, instructors, guidance groups, circulars and rectification orders to
    every organisation, for work nobody was ever asked to do in time. Two rules:

    * a round that counts days may not start before today (Asia/Shanghai). The rule is the
      day, not the first deadline: periods counted in days begin on the day after the start
      (民法典 第二百零一条), so any hour of today resolves the same deadlines as the kick-off
      itself, while an earlier day shortens every organisation's windows behind its back and
      makes the pro-rata schedule (序时进度) show everyone behind at once, even with the
      first deadline still ahead. The date is one people can check on the form;
    * whatever the plan counts (a minute-scale demo plan counts no days), no phase's
      deadline may have passed at the kick-off. A start minutes ago whose deadlines are all
      still ahead is allowed: the load tests set the start so that a deadline falls just
      after the kick-off."""
    if schedule.calendar is not None:
        today = now.astimezone(SHANGHAI).date()
        if schedule.starts_at.astimezone(SHANGHAI).date() < today:
            return f"开始时间不能早于今天（{today.isoformat()}）"
    passed = [w for w in schedule.windows if w.deadline <= now]
    if passed:
        first = min(passed, key=lambda w: w.deadline)
        shown = first.deadline.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
        return (
            f"开始时间过早：{first.phase.label}阶段的截止时间（{shown}）在启动时已经过去，"
            "启动后会立即向各组织发出全部提醒、通报和整改通知"
        )
    return None


def _check_reason(reason: str, *, required: bool) -> None:
    """A round action's reason as a reader sees it (``domain.text.free_text_problem``), for
    the pages and the CLI as for the API's bodies: zero-width characters are no reason, and
    a direction override could hide what it says. An optional reason may be blank."""
    if not required and not reason.strip():
        return
    problem = free_text_problem(reason)
    if problem is not None:
        raise InvalidInput(
            "invalid", "请求参数有误", [{"field": "reason", "reason": f"理由{problem}"}]
        )


def _past_start(reason: str) -> InvalidInput:
    return InvalidInput("past_start", reason, [{"field": "starts_at", "reason": reason}])


def _allowed_past_start(
    schedule: RoundSchedule, now: datetime, *, allow_past_start: bool
) -> dict[str, Any]:
    """Nothing when the start is not in the past; the audit's record when it is and the
    operator allowed it explicitly; :class:`InvalidInput` (``past_start``) otherwise."""
    reason = retroactive_start(schedule, now)
    if reason is None:
        return {}
    if not allow_past_start:
        raise _past_start(reason)
    return {"past_start_allowed": {"starts_at": schedule.starts_at.isoformat(), "reason": reason}}


def check_start(starts_at: datetime | None) -> None:
    """:class:`InvalidInput` on ``starts_at`` unless it falls in
    :data:`FIRST_START_YEAR`–:data:`LAST_START_YEAR` (a start in the past is refused once
    the plan's schedule is known: :func:`retroactive_start`)."""
    if starts_at is not None and not FIRST_START_YEAR <= starts_at.year <= LAST_START_YEAR:
        raise InvalidInput(
            "invalid",
            "请求参数有误",
            [
                {
                    "field": "starts_at",
                    "reason": f"开始时间应在 {FIRST_START_YEAR} 年至 {LAST_START_YEAR} 年之间",
                }
            ],
        )


async def create_round(
    sessions: sessionmaker[Session],
    actor: Actor,
    *,
    round_id: str,
    round_plan_id: str,
    plan_id: str | None = None,
    plan_yaml: str | None = None,
    starts_at: datetime | None = None,
    allow_past_start: bool = False,
) -> RoundRecord:
    """Create ``round_id`` from a shipped plan (``plan_id``) or an uploaded plan
    (``plan_yaml``), exactly one of them. The plan and its round are checked now, and a
    start that reaches a year with no calendar data is refused naming the year, so a bad
    plan is refused before kick-off; nothing is written then. Needs no Temporal. :class:`Conflict`
    (``duplicate``) when the round id exists.

    A start in the past (:func:`retroactive_start`) is :class:`InvalidInput`
    (``past_start``) on ``starts_at``, nothing written, unless ``allow_past_start``: the
    operator's explicit escape for re-entering a round that ran before (a lost round run
    again on its announced dates, a historic round recorded for its commendation), which the
    round's ``round_created`` audit records with the start and the reason it was past.
    No API or page sets it."""
    authorise(actor)
    check_start(starts_at)
    if (plan_id is None) == (plan_yaml is None):
        raise from_domain(
            PlanError(
                [FieldError(field="plan_id", reason="请选择已有计划或上传计划文件（二选一）")]
            )
        )
    return await _in_thread(
        _create,
        sessions,
        actor,
        round_id,
        round_plan_id,
        plan_id,
        plan_yaml,
        starts_at,
        allow_past_start,
    )


def _create(
    sessions: sessionmaker[Session],
    actor: Actor,
    round_id: str,
    round_plan_id: str,
    plan_id: str | None,
    plan_yaml: str | None,
    starts_at: datetime | None,
    allow_past_start: bool,
) -> RoundRecord:
    with _refusals():
        text = plan_yaml if plan_yaml is not None else shipped_plan_text(plan_id or "")
        plan = parse_plan(text)
        if round_plan_id not in {r.id for r in plan.rounds}:
            raise PlanError([FieldError(field="round_plan_id", reason="计划中没有该轮次")])
        round_plan = plan.round(round_plan_id)
        now = datetime.now(UTC)
        schedule = check_kickoff(plan, round_plan.id, starts_at or now)
    # Without a start of its own the round starts when it is kicked off: never in the past.
    past: dict[str, Any] = {}
    if starts_at is not None:
        past = _allowed_past_start(schedule, now, allow_past_start=allow_past_start)
    with sessions.begin() as session:
        if session.get(RoundRow, round_id) is not None:
            raise Conflict("duplicate", "轮次编号已存在")
        # The round runs over the organisations of its creator's county.
        county = account_county(session, actor.user)
        definition = RoundDefinitionRow(
            round_id=round_id,
            plan_source=plan_id or "uploaded",
            plan_yaml=text,
            round_plan_id=round_plan_id,
            starts_at=starts_at,
            roster_snapshot=None,
            created_by=actor.user,
            created_at=now,
            kicked_off_at=None,
        )
        row = RoundRow(
            round_id=round_id,
            name=round_plan.name,
            campaign_id=plan.id,
            round_plan_id=round_plan.id,
            starts_at=starts_at or now,
            status="created",
            kicked_off_by=actor.user,
            updated_at=now,
            county=county,
        )
        session.add_all([definition, row, _audit(actor, "round_created", round_id, now, past)])
    return _record(row, definition)


def _lock_round(session: Session, round_id: str) -> None:
    """Lock ``round_id`` for the rest of the session's transaction, first thing in it: on
    SQLite the database's write lock (``activities.db.write_lock``: taken up front, never a
    read upgraded to a write later), on PostgreSQL the round's row (``FOR NO KEY UPDATE``:
    kick-offs wait for one another, rows that merely refer to the round do not). The reads
    after it see the latest commit."""
    write_lock(session, RoundRow)
    session.get(RoundRow, round_id, with_for_update={"key_share": True})


def _kickoff_checks(
    session: Session, round_id: str, now: datetime, allow_past_start: bool
) -> tuple[RoundRow, RoundDefinitionRow, CampaignPlan, datetime, dict[str, Any]]:
    """The round, its definition and plan, the start the kick-off gives it and the
    past-start record of a first kick-off, once every refusal has been checked; nothing is
    written. A round that has ended is :class:`Conflict`; a start reaching a year with no
    calendar data, a first kick-off whose start has passed (unless ``allow_past_start``) and
    a scope naming a township not on the roster are refused as at creation."""
    row, definition = _load(session, round_id)
    if row.status in (RoundStatus.CLOSED, RoundStatus.COMPLETED):
        # The round workflow has ended or is ending: a start would run the round again
        # under the same id, or recreate the schedules its close deleted.
        raise Conflict("already_closed", "本轮活动已经结束，不能再次启动")
    plan = parse_plan(definition.plan_yaml)
    past: dict[str, Any] = {}
    if definition.kicked_off_at is None and definition.starts_at is not None:
        # Checked before the roster snapshot is written: a refusal leaves nothing behind.
        # The calendar's refusal (a year without data) comes first, as at creation.
        schedule = check_kickoff(plan, definition.round_plan_id, _aware(definition.starts_at))
        try:
            past = _allowed_past_start(schedule, now, allow_past_start=allow_past_start)
        except InvalidInput as refused:
            # The start passed between creation and kick-off: say what to do with the round.
            raise _past_start(f"{refused.message}。本轮无法再启动：请关闭本轮，另建一轮") from None
    starts_at = definition.starts_at or definition.kicked_off_at or now
    # Refused with the year named (nothing written) before any workflow starts.
    check_kickoff(plan, definition.round_plan_id, starts_at)
    _check_scope_townships(session, plan, definition.round_plan_id, row.county)
    return row, definition, plan, starts_at, past


@dataclass(frozen=True)
class Rounds:
    """The round commands with their dependencies: the read model's session factory, the
    Temporal client and the settings (task queue, data directory, schedules' times)."""

    sessions: sessionmaker[Session]
    temporal: Client
    settings: Settings

    @classmethod
    def from_services(cls, services: Services) -> Rounds:
        """The use cases over the bootstrap's services."""
        return cls(
            sessions=services.sessions, temporal=services.temporal, settings=services.settings
        )

    async def kick_off(
        self, actor: Actor, round_id: str, *, allow_past_start: bool = False
    ) -> RoundRecord:
        """Snapshot the roster and start the round workflow with its plan (stored by content
        address) and schedule resolved now; create the round's digest and circular
        schedules; audit. Kicking off twice is harmless, at once too (kick-offs of a round
        wait for one another): one workflow, the first start kept, the same answer.
        A round that was closed or has completed is :class:`Conflict` (``already_closed``).

        A start that reaches a year with no calendar data is :class:`InvalidInput` on
        ``starts_at`` naming the year, before any workflow starts, and nothing is written
        (one transaction spans the Temporal calls: nothing is committed unless the workflow
        started). So is a first kick-off whose start (the one the round was created with)
        has passed meanwhile (:func:`retroactive_start`, ``past_start``), unless
        ``allow_past_start``: the operator's explicit escape, recorded in the
        ``round_kicked_off`` audit (see :func:`create_round`). A repeated kick-off of a
        round already running is not checked again: it starts nothing new."""
        authorise(actor)
        now = datetime.now(UTC)
        # The plan is committed in a transaction of its own before the workflow can ask for
        # it: if a later step fails, the kick-off's own transaction rolls back, but a round
        # workflow already started must still find its plan. It is stored before the
        # kick-off's transaction takes its lock (on SQLite the database's write lock: a
        # second writer of this process would wait for it until the busy timeout), once the
        # kick-off has passed its checks (a refusal stores nothing). Storing is idempotent
        # by content, so a retried or concurrent kick-off stores nothing new; a round's plan
        # never changes after creation, so the locked reading below finds the same one.
        with _refusals():
            plan = await _in_thread(self._checked_plan, round_id, now, allow_past_start)
        await _in_thread(store_plan, self.sessions, plan)
        session = self.sessions()
        try:
            with _refusals():
                row, definition, kickoff, past = await _in_thread(
                    self._prepare_kickoff, session, actor, round_id, now, allow_past_start
                )
                workflow_input = _round_input(kickoff)
            settings = self.settings
            with workflow_calls.temporal_trouble("start_round", round_workflow_id(round_id)):
                await self.temporal.start_workflow(
                    ROUND_WORKFLOW_TYPE,
                    workflow_input,
                    id=round_workflow_id(round_id),
                    task_queue=settings.task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                )
                # The round's daily digest and weekly circular (idempotent: updates if present).
                await ensure_schedules(
                    self.temporal,
                    round_id,
                    task_queue=settings.task_queue,
                    digest_time=settings.digest_time,
                    circular_weekday=settings.circular_weekday,
                    circular_time=settings.circular_time,
                )

            def finish() -> RoundRecord:
                # A repeated kick-off keeps the first one's record (who kicked off, when), as
                # the workflow keeps the first start.
                if session.get(AuditRow, f"round_kicked_off/{round_id}") is None:
                    session.add(_audit(actor, "round_kicked_off", round_id, now, past))
                session.commit()
                return _record(row, definition)

            return await _in_thread(finish)
        finally:
            await _in_thread(session.close)

    def _checked_plan(self, round_id: str, now: datetime, allow_past_start: bool) -> CampaignPlan:
        """The round's plan, once the kick-off's checks pass (read only, no lock): what is
        stored before the kick-off's own transaction (see :meth:`kick_off`)."""
        with self.sessions() as session:
            return _kickoff_checks(session, round_id, now, allow_past_start)[2]

    def _prepare_kickoff(
        self,
        session: Session,
        actor: Actor,
        round_id: str,
        now: datetime,
        allow_past_start: bool,
    ) -> tuple[RoundRow, RoundDefinitionRow, RoundKickoff, dict[str, Any]]:
        # Kick-offs of one round run one after the other: the round's row is locked first,
        # for the whole kick-off (until its commit after the Temporal calls), so a second
        # kick-off reads the first one's committed state and starts nothing new. Without
        # it, two at once both read "created" and went ahead as the first: on SQLite the
        # write of one (flushed early when it changed who kicked off) held the lock while
        # the other's and its own plan's transaction waited for it (503 for both, the round
        # left "created"); on PostgreSQL each recorded its own kick-off time.
        _lock_round(session, round_id)
        row, definition, plan, starts_at, past = _kickoff_checks(
            session, round_id, now, allow_past_start
        )
        if definition.kicked_off_at is None:
            row.kicked_off_by = actor.user
        snapshot = self.settings.data_dir / "rosters" / f"{round_id}.csv"
        if definition.roster_snapshot is None:
            write_roster_snapshot(session, snapshot, county=row.county)
            definition.roster_snapshot = str(snapshot)
        definition.starts_at, definition.kicked_off_at = starts_at, definition.kicked_off_at or now
        row.starts_at, row.status, row.updated_at = starts_at, RoundStatus.RUNNING.value, now
        kickoff = RoundKickoff(
            round_id=round_id,
            plan=plan,
            round_plan_id=definition.round_plan_id,
            roster_source=definition.roster_snapshot,
            actor=actor,
            starts_at=starts_at,
        )
        if kickoff.plan.ladder_for(kickoff.plan.round(kickoff.round_plan_id)).blue_within.minutes:
            # A minute-scale (demo) plan: compare cohorts every minute, not every day.
            kickoff = kickoff.model_copy(update={"cohort_check_every": timedelta(minutes=1)})
        return row, definition, kickoff, past

    async def extend(
        self,
        actor: Actor,
        round_id: str,
        *,
        phase: Phase,
        new_deadline: datetime,
        reason: str,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """Move ``phase``'s deadline for every organisation of the round (an Update on the
        round workflow). The round applies each ``request_id`` once (a fresh id when None):
        a retry answers ``applied`` False. The answer is the Update's small result
        (``action_id``, ``applied``); rounds of the legacy workflow type answer with their
        progress."""
        authorise(actor)
        _check_reason(reason, required=True)
        latest = await _in_thread(self._latest_deadline, round_id)
        if new_deadline > latest:
            shown = latest.astimezone(SHANGHAI).strftime("%Y-%m-%d")
            raise InvalidInput(
                "invalid",
                "请求参数有误",
                [
                    {
                        "field": "new_deadline",
                        "reason": f"延期后的截止时间不能晚于 {shown}（本轮计划结束后一年）",
                    }
                ],
            )
        try:
            command = RoundExtensionRequest(
                actor=actor,
                phase=phase,
                new_deadline=new_deadline,
                reason=reason,
                request_id=request_id or uuid.uuid4().hex,
            )
        except ValidationError as exc:
            raise invalid_input(exc, RoundExtensionRequest) from None
        result: dict[str, Any] = await workflow_calls.update(
            self.temporal, round_workflow_id(round_id), "extend_phase", command, dict
        )
        return result

    def _latest_deadline(self, round_id: str) -> datetime:
        """The latest deadline a round-wide extension may set: the round's planned end (its
        last phase's deadline as resolved from its start) plus :data:`EXTENSION_MARGIN`.
        :class:`NotFound` for an unknown round."""
        with self.sessions() as session:
            row, definition = _load(session, round_id)
            plan_text, round_plan_id = definition.plan_yaml, definition.round_plan_id
            starts_at = definition.starts_at or row.starts_at
        if starts_at.tzinfo is None:  # SQLite hands back naive UTC
            starts_at = starts_at.replace(tzinfo=UTC)
        try:
            schedule = check_kickoff(parse_plan(plan_text), round_plan_id, starts_at)
            end = max(w.deadline for w in schedule.windows)
        except (DomainError, ValueError):
            # No schedule to measure by (e.g. calendar data missing): two years from the start.
            end = starts_at + EXTENSION_MARGIN
        return end + EXTENSION_MARGIN

    async def close(self, actor: Actor, round_id: str, *, reason: str = "") -> dict[str, Any]:
        """Close the round: every organisation stops where it stands, the round's schedules
        are deleted (no digests or circulars after the close) and the round is marked
        ``closed``. The answer is the Update's result (the progress, for legacy rounds).

        An unknown round is :class:`NotFound`; a round not kicked off (``not_started``) or
        already closed or finished (``already_closed``) is :class:`Conflict`, said of the
        round."""
        authorise(actor)
        _check_reason(reason, required=False)
        withdrawn = await _in_thread(self._withdraw_unstarted, actor, round_id, reason)
        if withdrawn is not None:
            return withdrawn
        await _in_thread(self._check_closable, round_id)
        command = CloseRound(actor=actor, reason=reason)
        try:
            result: dict[str, Any] = await workflow_calls.update(
                self.temporal, round_workflow_id(round_id), "close", command, dict
            )
        except (NotFound, Conflict):
            # The round's workflow is gone or finished although the read model had not
            # caught up: the round has ended.
            raise Conflict("already_closed", "本轮活动已经结束，无需再次结束") from None
        with workflow_calls.temporal_trouble("delete_schedules", round_workflow_id(round_id)):
            await delete_schedules(self.temporal, round_id)
        await _in_thread(self._mark_closed, round_id)
        return result

    def _withdraw_unstarted(
        self, actor: Actor, round_id: str, reason: str
    ) -> dict[str, Any] | None:
        """Close a round that was never kicked off (it has no workflow): marked ``closed``
        with why, and audited, so a round refused at its kick-off (a start that had passed
        meanwhile) or created by mistake does not stay "created" for ever. None when the
        round was kicked off: the round workflow closes it. Under the round's lock, so a
        kick-off at the same moment either came first or finds the round closed."""
        with self.sessions.begin() as session:
            _lock_round(session, round_id)
            row, definition = _load(session, round_id)
            if definition.kicked_off_at is not None or row.status != "created":
                return None
            now = datetime.now(UTC)
            row.status, row.updated_at = RoundStatus.CLOSED.value, now
            row.status_reason = f"未启动即关闭：{reason}" if reason.strip() else "未启动即关闭"
            session.add(_audit(actor, "round_withdrawn", round_id, now, {"reason": reason}))
        return {"round_id": round_id, "status": RoundStatus.CLOSED.value, "started": 0}

    def _check_closable(self, round_id: str) -> None:
        with self.sessions() as session:
            row, definition = _load(session, round_id)
            if row.status in FINAL_STATUSES:  # a withdrawn round too: closed, never kicked off
                raise Conflict("already_closed", "本轮活动已经结束，无需再次结束")
            if definition.kicked_off_at is None or row.status == "created":
                raise Conflict("not_started", "本轮尚未启动，不能结束")

    def _mark_closed(self, round_id: str) -> None:
        with self.sessions.begin() as session:
            row = session.get(RoundRow, round_id)
            if row is not None:
                row.status, row.updated_at = RoundStatus.CLOSED.value, datetime.now(UTC)

    async def update_calendar(
        self,
        actor: Actor,
        round_id: str,
        published: PublishedCalendar,
        *,
        reason: str,
        update_id: str | None = None,
    ) -> CalendarUpdateOutcome:
        """Re-resolve the round's schedule from its kick-off date with ``published``
        (``domain.schedule.reresolve_round``) and apply it to the round: every open deadline
        and timer moves, completed phases stay. The round applies each ``update_id`` once (a
        fresh id when None). Audited in the read model.

        :class:`Conflict` when the round is not kicked off (``not_started``) or counts
        minutes rather than working days (``no_calendar``); a year the data still does not
        cover is :class:`InvalidInput` on ``supplied_years``."""
        authorise(actor)
        _check_reason(reason, required=True)
        update_id = update_id or uuid.uuid4().hex
        command = await _in_thread(
            self._calendar_command, actor, round_id, published, reason, update_id
        )
        result: dict[str, Any] = await workflow_calls.update(
            self.temporal, round_workflow_id(round_id), "update_calendar", command, dict
        )
        await _in_thread(self._audit_calendar, actor, round_id, published, command, result)
        return CalendarUpdateOutcome(result=result, update=command)

    def _calendar_command(
        self,
        actor: Actor,
        round_id: str,
        published: PublishedCalendar,
        reason: str,
        update_id: str,
    ) -> CalendarUpdate:
        with self.sessions() as session:
            _, definition = _load(session, round_id)
            if definition.kicked_off_at is None or definition.starts_at is None:
                raise Conflict("not_started", "本轮尚未启动，请在计划中修改日历")
            with _refusals():
                # The plan version in force (a plan version may have moved deadlines).
                plan = current_plan_in(session, round_id) or parse_plan(definition.plan_yaml)
            calendar = CalendarPlan(
                holidays=tuple(sorted(set(published.holidays))),
                workdays=tuple(sorted(set(published.workdays))),
                supplied_years=tuple(sorted(set(published.supplied_years))),
            )
            try:
                schedule = reresolve_round(
                    plan, plan.round(definition.round_plan_id), definition.starts_at, calendar
                )
            except CalendarGap as gap:
                raise from_domain(
                    PlanError([FieldError(field="supplied_years", reason=str(gap))])
                ) from None
        if schedule.calendar is None:
            raise Conflict("no_calendar", "本轮按分钟计时，不使用工作日日历")
        try:
            return CalendarUpdate(
                update_id=update_id,
                calendar=schedule.calendar,
                windows=schedule.windows,
                actor=actor,
                reason=reason,
            )
        except ValidationError as exc:
            raise invalid_input(exc, CalendarUpdate) from None

    def _audit_calendar(
        self,
        actor: Actor,
        round_id: str,
        published: PublishedCalendar,
        command: CalendarUpdate,
        result: dict[str, Any],
    ) -> None:
        audit_id = f"round_calendar_updated/{round_id}/{command.update_id}"
        try:
            with self.sessions.begin() as session:
                # A retry of the same update (applied=False) must not overwrite the record of
                # the call that applied it.
                if session.get(AuditRow, audit_id) is not None:
                    return
                session.add(
                    AuditRow(
                        audit_id=audit_id,
                        user=actor.user,
                        role=actor.role.value,
                        action="round_calendar_updated",
                        round_id=round_id,
                        org_id=None,
                        ip=actor.ip,
                        at=datetime.now(UTC),
                        detail={
                            "update_id": command.update_id,
                            "reason": command.reason,
                            "applied": bool(result.get("applied")),
                            "source": command.calendar.source,
                            "first_day": command.calendar.first_day.isoformat(),
                            "last_day": command.calendar.last_day.isoformat(),
                            "holidays": [d.isoformat() for d in published.holidays],
                            "workdays": [d.isoformat() for d in published.workdays],
                            "supplied_years": list(published.supplied_years),
                        },
                    )
                )
        except IntegrityError:
            pass  # a concurrent retry recorded the same update first
