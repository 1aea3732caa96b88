"""Rounds: create from a plan, kick off, status, round-wide extension, close (县委活动办)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from pydantic import AwareDatetime, BaseModel, Field
from sqlalchemy import select
from temporalio.common import WorkflowIDConflictPolicy

from activities.roster_store import write_roster_snapshot
from activities.tables import AuditRow, RoundDefinitionRow, RoundRow
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
from api.workflow_calls import query, update
from chuangzheng.schedules import delete_schedules, ensure_schedules
from domain.actions import CloseRound
from domain.errors import FieldError, PlanError
from domain.organisation import Role
from domain.phases import Phase
from domain.state import Actor
from workflows.contracts import RoundExtensionRequest, RoundInput, RoundKickoff, RoundProgress
from workflows.ids import round_workflow_id

router = APIRouter(prefix="/api/v1/rounds", tags=["轮次 rounds"])


class CreateRound(BaseModel):
    """A new round: a shipped plan (``plan_id``) or an uploaded plan (``plan_yaml``)."""

    round_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-]*$", max_length=64)
    plan_id: str | None = None
    plan_yaml: str | None = Field(default=None, max_length=200_000)
    round_plan_id: str = Field(min_length=1, max_length=64)
    starts_at: AwareDatetime | None = None


class ExtendRound(BaseModel):
    """Move one phase's deadline for every organisation of the round."""

    phase: Phase
    new_deadline: AwareDatetime
    reason: str = Field(min_length=1, max_length=2000)


class Close(BaseModel):
    """Close the round."""

    reason: str = Field(default="", max_length=2000)


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
    }


@router.post("", status_code=201, summary="由计划文件创建轮次")
async def create_round(
    body: CreateRound, request: Request, user: CurrentUser, sessions: SessionsDep
) -> Any:
    """Validate the plan and its round now, so a bad plan is refused before kick-off."""
    require_role(user, Role.COUNTY_OFFICE)
    if (body.plan_id is None) == (body.plan_yaml is None):
        raise PlanError(
            [FieldError(field="plan_id", reason="请选择已有计划或上传计划文件（二选一）")]
        )

    async def action() -> dict[str, Any]:
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


@router.get("", summary="轮次列表")
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


@router.get("/{round_id}", summary="轮次状态")
async def get_round(
    round_id: str, session: SessionDep, user: CurrentUser, client: TemporalClientDep
) -> dict[str, Any]:
    """The round and, once kicked off, its progress (county-wide roles only)."""
    row, definition = _load(session, round_id)
    view = _round_view(row, definition)
    if definition.kicked_off_at is not None and user.role in (
        Role.COUNTY_OFFICE,
        Role.ASSESSMENT_GROUP,
    ):
        progress = await query(client, round_workflow_id(round_id), "progress", RoundProgress)
        view["progress"] = progress.model_dump(mode="json")
    return view


@router.post("/{round_id}/kickoff", summary="启动轮次")
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
        with sessions.begin() as session:
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
                kickoff = kickoff.model_copy(update={"cohort_check_every": timedelta(minutes=1)})
            await client.start_workflow(
                "CampaignRoundWorkflow",
                RoundInput(kickoff=kickoff),
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
            session.merge(_audit(user, request, "round_kicked_off", row, now))
            return _round_view(row, definition)

    return await idempotent(request, sessions, user, action)


@router.post("/{round_id}/extensions", summary="统一延期")
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
    )

    async def action() -> RoundProgress:
        return await update(client, round_workflow_id(round_id), "extend_phase", cmd, RoundProgress)

    return await idempotent(request, sessions, user, action)


@router.post("/{round_id}/close", summary="结束轮次")
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

    async def action() -> RoundProgress:
        progress = await update(client, round_workflow_id(round_id), "close", cmd, RoundProgress)
        await delete_schedules(client, round_id)  # no digests or circulars after the close
        with sessions.begin() as session:
            row = session.get(RoundRow, round_id)
            if row is not None:
                row.status, row.updated_at = "closed", datetime.now(UTC)
        return progress

    return await idempotent(request, sessions, user, action)
