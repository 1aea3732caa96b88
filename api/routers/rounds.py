"""Rounds: create from a plan, kick off, status, round-wide extension, close (县委活动办)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from pydantic import AwareDatetime, BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session
from temporalio.common import WorkflowIDConflictPolicy

from activities.roster_store import write_roster_snapshot
from activities.round_progress import round_progress, store_plan_in
from activities.tables import AuditRow, RoundDefinitionRow, RoundRow
from api.blocking import run_sync
from api.deps import (
    CurrentUser,
    SessionDep,
    SessionsDep,
    SettingsDep,
    TemporalClientDep,
    client_ip,
    require_role,
)
from api.errors import ApiError, not_found
from api.idempotency import idempotent
from api.plans import check_kickoff, parse_plan, shipped_plan_text
from api.responses import AUTHENTICATED, TEMPORAL, WITH_BODY, Timestamp, errors
from api.workflow_calls import update
from chuangzheng.schedules import delete_schedules, ensure_schedules
from domain.actions import CalendarUpdate, CloseRound
from domain.calendar import CalendarGap
from domain.errors import FieldError, PlanError
from domain.organisation import Role
from domain.phases import Phase
from domain.plan import CalendarPlan
from domain.schedule import PhaseWindow, reresolve_round
from domain.state import Actor
from workflows.contracts import RoundExtensionRequest, RoundKickoff, RoundProgress
from workflows.ids import round_workflow_id
from workflows.round_contracts import (
    ROUND_WORKFLOW_TYPE,
    CampaignRoundInput,
    RoundActionResult,
    RoundTerms,
)

router = APIRouter(
    prefix="/api/v1/rounds", tags=["轮次 rounds"], responses=errors(*AUTHENTICATED, 404)
)


class CreateRound(BaseModel):
    """A new round: a shipped plan (``plan_id``) or an uploaded plan (``plan_yaml``)."""

    round_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-]*$", max_length=64)
    plan_id: str | None = Field(default=None, max_length=64)
    plan_yaml: str | None = Field(default=None, max_length=200_000)
    round_plan_id: str = Field(min_length=1, max_length=64)
    starts_at: AwareDatetime | None = None


class ExtendRound(BaseModel):
    """Move one phase's deadline for every organisation of the round."""

    phase: Phase
    new_deadline: AwareDatetime
    reason: str = Field(min_length=1, max_length=2000)
    # The round dedupes by it (two retries, one extension); the Idempotency-Key header, or
    # a fresh id, when absent.
    request_id: str | None = Field(default=None, min_length=1, max_length=200)


class Close(BaseModel):
    """Close the round."""

    reason: str = Field(default="", max_length=2000)


class RoundView(BaseModel):
    """A round: its plan, start and status (``status_reason`` says why a round failed)."""

    round_id: str
    name: str
    campaign_id: str
    round_plan_id: str
    starts_at: Timestamp
    status: str = Field(examples=["created", "running", "completed", "failed", "closed"])
    plan_source: str | None
    kicked_off_at: Timestamp | None
    status_reason: str | None


class RoundStatusView(RoundView):
    """A round and, once kicked off, its progress from the read model (county-wide roles
    only; absent otherwise, not null)."""

    progress: RoundProgress | None = None


class CalendarSpan(BaseModel):
    """The days the round's pinned calendar now covers, and where its data came from."""

    first_day: date
    last_day: date
    source: str


class CalendarUpdateResult(BaseModel):
    """The round's answer to new calendar data: whether it was applied now (False: the same
    ``update_id`` was applied before), the pinned calendar and every phase's window."""

    action_id: str
    applied: bool
    calendar: CalendarSpan
    windows: list[PhaseWindow]


def _actor(user: CurrentUser, request: Request) -> Actor:
    return Actor(user=user.username, name=user.display_name, role=user.role, ip=client_ip(request))


def _round_view(row: RoundRow, definition: RoundDefinitionRow | None) -> dict[str, Any]:
    return {
        "round_id": row.round_id,
        "name": row.name,
        "campaign_id": row.campaign_id,
        "round_plan_id": row.round_plan_id,
        "starts_at": row.starts_at,
        "status": row.status,
        "plan_source": definition.plan_source if definition else None,
        "kicked_off_at": definition.kicked_off_at if definition else None,
        # Why the round failed (e.g. a calendar gap), written by the round workflow.
        "status_reason": row.status_reason,
    }


@router.post(
    "",
    status_code=201,
    summary="由计划文件创建轮次",
    response_model=RoundView,
    responses=errors(409, *WITH_BODY),
)
async def create_round(
    body: CreateRound, request: Request, user: CurrentUser, sessions: SessionsDep
) -> Any:
    """Validate the plan and its round now, so a bad plan is refused before kick-off."""
    require_role(user, Role.COUNTY_OFFICE)
    if (body.plan_id is None) == (body.plan_yaml is None):
        raise PlanError(
            [FieldError(field="plan_id", reason="请选择已有计划或上传计划文件（二选一）")]
        )

    def action() -> dict[str, Any]:  # no Temporal call: the threadpool runs it
        text = (
            body.plan_yaml if body.plan_yaml is not None else shipped_plan_text(body.plan_id or "")
        )
        plan = parse_plan(text)
        if body.round_plan_id not in {r.id for r in plan.rounds}:
            raise PlanError([FieldError(field="round_plan_id", reason="计划中没有该轮次")])
        round_plan = plan.round(body.round_plan_id)
        now = datetime.now(UTC)
        # A start that reaches a year with no calendar data is refused now (422, the year
        # named), not found by the workflow after a 201.
        check_kickoff(plan, round_plan.id, body.starts_at or now)
        with sessions.begin() as session:
            if session.get(RoundRow, body.round_id) is not None:
                raise ApiError(409, "duplicate", "轮次编号已存在")
            definition = RoundDefinitionRow(
                round_id=body.round_id,
                plan_source=body.plan_id or "uploaded",
                plan_yaml=text,
                round_plan_id=body.round_plan_id,
                starts_at=body.starts_at,
                roster_snapshot=None,
                created_by=user.username,
                created_at=now,
                kicked_off_at=None,
            )
            row = RoundRow(
                round_id=body.round_id,
                name=round_plan.name,
                campaign_id=plan.id,
                round_plan_id=round_plan.id,
                starts_at=body.starts_at or now,
                status="created",
                kicked_off_by=user.username,
                updated_at=now,
            )
            session.add_all([definition, row, _audit(user, request, "round_created", row, now)])
        return _round_view(row, definition)

    return await idempotent(request, sessions, user, action, status_code=201)


def _round_input(session: Session, kickoff: RoundKickoff) -> CampaignRoundInput:
    """The bounded round's input: the plan stored once in the read model (by content
    address) and the schedule resolved here, with its pinned calendar, so the workflow never
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
        plan_ref=store_plan_in(session, kickoff.plan),
        schedule=check_kickoff(kickoff.plan, kickoff.round_plan_id, kickoff.starts_at),
    )


def _audit(
    user: CurrentUser, request: Request, action: str, row: RoundRow, now: datetime
) -> AuditRow:
    return AuditRow(
        audit_id=f"{action}/{row.round_id}",
        user=user.username,
        role=user.role.value,
        action=action,
        round_id=row.round_id,
        org_id=None,
        ip=client_ip(request),
        at=now,
        detail={},
    )


@router.get("", summary="轮次列表", response_model=list[RoundView])
def list_rounds(session: SessionDep, user: CurrentUser) -> list[dict[str, Any]]:
    """Every round (rounds are county-wide; what each caller sees inside is scoped)."""
    rows = session.scalars(select(RoundRow).order_by(RoundRow.starts_at.desc())).all()
    return [_round_view(r, session.get(RoundDefinitionRow, r.round_id)) for r in rows]


def _load(session: SessionDep, round_id: str) -> tuple[RoundRow, RoundDefinitionRow]:
    row = session.get(RoundRow, round_id)
    definition = session.get(RoundDefinitionRow, round_id)
    if row is None or definition is None:
        raise not_found("轮次不存在")
    return row, definition


@router.get(
    "/{round_id}",
    summary="轮次状态",
    response_model=RoundStatusView,
    response_model_exclude_unset=True,
)
async def get_round(round_id: str, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """The round and, once kicked off, its progress (county-wide roles only)."""
    row, definition = await run_sync(_load, session, round_id)
    view = _round_view(row, definition)
    if definition.kicked_off_at is not None and user.role in (
        Role.COUNTY_OFFICE,
        Role.ASSESSMENT_GROUP,
    ):
        # From the read model, never a query to Temporal: a slow or unreachable Temporal
        # cannot fail the status page.
        progress = await run_sync(round_progress, session, row, as_of=datetime.now(UTC))
        view["progress"] = progress.model_dump(mode="json")
    return view


@router.post(
    "/{round_id}/kickoff",
    summary="启动轮次",
    response_model=RoundView,
    responses=errors(409, 422, *TEMPORAL),
)
async def kick_off(
    round_id: str,
    request: Request,
    user: CurrentUser,
    sessions: SessionsDep,
    settings: SettingsDep,
    client: TemporalClientDep,
) -> Any:
    """Snapshot the roster and start the round workflow (starting twice is harmless)."""
    require_role(user, Role.COUNTY_OFFICE)

    async def action() -> dict[str, Any]:
        now = datetime.now(UTC)
        # One transaction across the Temporal calls (nothing is committed unless the
        # workflow started): its statements run in the threadpool, the awaits on the loop.
        session = sessions()
        try:

            def prepare() -> tuple[RoundRow, RoundDefinitionRow, RoundKickoff]:
                row, definition = _load(session, round_id)
                snapshot = settings.data_dir / "rosters" / f"{round_id}.csv"
                if definition.roster_snapshot is None:
                    write_roster_snapshot(session, snapshot)
                    definition.roster_snapshot = str(snapshot)
                starts_at = definition.starts_at or definition.kicked_off_at or now
                definition.starts_at, definition.kicked_off_at = (
                    starts_at,
                    definition.kicked_off_at or now,
                )
                row.starts_at, row.status, row.updated_at = starts_at, "running", now
                row.kicked_off_by = user.username
                kickoff = RoundKickoff(
                    round_id=round_id,
                    plan=parse_plan(definition.plan_yaml),
                    round_plan_id=definition.round_plan_id,
                    roster_source=definition.roster_snapshot,
                    actor=_actor(user, request),
                    starts_at=starts_at,
                )
                # Refused with the year named (422, nothing written) before any workflow starts.
                check_kickoff(kickoff.plan, kickoff.round_plan_id, starts_at)
                if kickoff.plan.ladder_for(
                    kickoff.plan.round(kickoff.round_plan_id)
                ).blue_within.minutes:
                    # A minute-scale (demo) plan: compare cohorts every minute, not every day.
                    kickoff = kickoff.model_copy(
                        update={"cohort_check_every": timedelta(minutes=1)}
                    )
                return row, definition, kickoff

            row, definition, kickoff = await run_sync(prepare)
            await client.start_workflow(
                ROUND_WORKFLOW_TYPE,
                await run_sync(_round_input, session, kickoff),
                id=round_workflow_id(round_id),
                task_queue=settings.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )
            # The round's daily digest and weekly circular (idempotent: updates if present).
            await ensure_schedules(
                client,
                round_id,
                task_queue=settings.task_queue,
                digest_time=settings.digest_time,
                circular_weekday=settings.circular_weekday,
                circular_time=settings.circular_time,
            )

            def finish() -> dict[str, Any]:
                session.merge(_audit(user, request, "round_kicked_off", row, now))
                session.commit()
                return _round_view(row, definition)

            return await run_sync(finish)
        finally:
            await run_sync(session.close)

    return await idempotent(request, sessions, user, action)


@router.post(
    "/{round_id}/extensions",
    summary="统一延期",
    # Rounds of the legacy workflow type answer with their progress.
    response_model=RoundActionResult | RoundProgress,
    responses=errors(409, *WITH_BODY, *TEMPORAL),
)
async def extend(
    round_id: str,
    body: ExtendRound,
    request: Request,
    user: CurrentUser,
    sessions: SessionsDep,
    client: TemporalClientDep,
) -> Any:
    """Move a phase's deadline for everyone (an Update on the round workflow)."""
    require_role(user, Role.COUNTY_OFFICE)
    cmd = RoundExtensionRequest(
        actor=_actor(user, request),
        phase=body.phase,
        new_deadline=body.new_deadline,
        reason=body.reason,
        request_id=body.request_id or request.headers.get("Idempotency-Key") or uuid.uuid4().hex,
    )

    async def action() -> dict[str, Any]:
        # A small result ({action_id, applied}); rounds of the legacy type answer with their
        # progress, hence a plain dict.
        result: dict[str, Any] = await update(
            client, round_workflow_id(round_id), "extend_phase", cmd, dict
        )
        return result

    return await idempotent(request, sessions, user, action)


@router.post(
    "/{round_id}/close",
    summary="结束轮次",
    # Rounds of the legacy workflow type answer with their progress.
    response_model=RoundActionResult | RoundProgress,
    responses=errors(409, *WITH_BODY, *TEMPORAL),
)
async def close(
    round_id: str,
    body: Close,
    request: Request,
    user: CurrentUser,
    sessions: SessionsDep,
    client: TemporalClientDep,
) -> Any:
    """Close the round: every organisation stops where it stands."""
    require_role(user, Role.COUNTY_OFFICE)
    cmd = CloseRound(actor=_actor(user, request), reason=body.reason)

    async def action() -> dict[str, Any]:
        progress: dict[str, Any] = await update(
            client, round_workflow_id(round_id), "close", cmd, dict
        )
        await delete_schedules(client, round_id)  # no digests or circulars after the close

        def mark_closed() -> None:
            with sessions.begin() as session:
                row = session.get(RoundRow, round_id)
                if row is not None:
                    row.status, row.updated_at = "closed", datetime.now(UTC)

        await run_sync(mark_closed)
        return progress

    return await idempotent(request, sessions, user, action)


class UpdateCalendar(BaseModel):
    """Newly published calendar data for a running round (e.g. the State Council's notice
    for a new year): holidays, 调休 make-up working days, and the years it vouches for."""

    holidays: list[date] = Field(default_factory=list, max_length=400)
    workdays: list[date] = Field(default_factory=list, max_length=400)
    supplied_years: list[int] = Field(default_factory=list, max_length=10)
    reason: str = Field(min_length=1, max_length=2000)
    # The round applies each update once; the Idempotency-Key header, or a fresh id.
    update_id: str | None = Field(default=None, min_length=1, max_length=120)


@router.post(
    "/{round_id}/calendar",
    summary="更新本轮日历",
    response_model=CalendarUpdateResult,
    responses=errors(409, *WITH_BODY, *TEMPORAL),
)
async def update_calendar(
    round_id: str,
    body: UpdateCalendar,
    request: Request,
    user: CurrentUser,
    sessions: SessionsDep,
    client: TemporalClientDep,
) -> Any:
    """Re-resolve the round's schedule from its kick-off date with the new calendar data
    (``domain.schedule.reresolve_round``) and apply it to the round: every open deadline and
    timer moves, completed phases stay. Audited in the read model."""
    require_role(user, Role.COUNTY_OFFICE)
    update_id = body.update_id or request.headers.get("Idempotency-Key") or uuid.uuid4().hex
    actor = _actor(user, request)

    def prepare() -> CalendarUpdate:
        with sessions() as session:
            _, definition = _load(session, round_id)
            if definition.kicked_off_at is None or definition.starts_at is None:
                raise ApiError(409, "not_started", "本轮尚未启动，请在计划中修改日历")
            plan = parse_plan(definition.plan_yaml)
            published = CalendarPlan(
                holidays=tuple(sorted(set(body.holidays))),
                workdays=tuple(sorted(set(body.workdays))),
                supplied_years=tuple(sorted(set(body.supplied_years))),
            )
            try:
                schedule = reresolve_round(
                    plan, plan.round(definition.round_plan_id), definition.starts_at, published
                )
            except CalendarGap as gap:
                raise PlanError([FieldError(field="supplied_years", reason=str(gap))]) from None
        if schedule.calendar is None:
            raise ApiError(409, "no_calendar", "本轮按分钟计时，不使用工作日日历")
        return CalendarUpdate(
            update_id=update_id,
            calendar=schedule.calendar,
            windows=schedule.windows,
            actor=actor,
            reason=body.reason,
        )

    async def action() -> dict[str, Any]:
        cmd = await run_sync(prepare)
        result: dict[str, Any] = await update(
            client, round_workflow_id(round_id), "update_calendar", cmd, dict
        )

        def audit() -> None:
            with sessions.begin() as session:
                session.merge(
                    AuditRow(
                        audit_id=f"round_calendar_updated/{round_id}/{update_id}",
                        user=user.username,
                        role=user.role.value,
                        action="round_calendar_updated",
                        round_id=round_id,
                        org_id=None,
                        ip=client_ip(request),
                        at=datetime.now(UTC),
                        detail={
                            "update_id": update_id,
                            "reason": body.reason,
                            "applied": bool(result.get("applied")),
                            "source": cmd.calendar.source,
                            "first_day": cmd.calendar.first_day.isoformat(),
                            "last_day": cmd.calendar.last_day.isoformat(),
                            "holidays": [d.isoformat() for d in body.holidays],
                            "workdays": [d.isoformat() for d in body.workdays],
                            "supplied_years": body.supplied_years,
                        },
                    )
                )

        await run_sync(audit)
        return {
            **result,
            "calendar": {
                "first_day": cmd.calendar.first_day.isoformat(),
                "last_day": cmd.calendar.last_day.isoformat(),
                "source": cmd.calendar.source,
            },
            "windows": [w.model_dump(mode="json") for w in cmd.windows],
        }

    return await idempotent(request, sessions, user, action)
