"""随机抽查: draw a stratified random sample of a round's organisations with a recorded seed,
draw it again to check, and record each drawn organisation's inspection (a verdict of 差
orders rectification). See ``chuangzheng.services.inspections``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from api.callers import service_caller
from api.deps import CurrentUser, SessionDep, SessionsDep, TemporalClientDep
from api.errors import as_api_error
from api.idempotency import idempotent
from api.responses import AUTHENTICATED, TEMPORAL, WITH_BODY, errors
from chuangzheng.services import inspections
from chuangzheng.services.errors import ServiceError
from chuangzheng.services.inspections import DrawRequest, InspectionResult

router = APIRouter(
    prefix="/api/v1", tags=["督促检查 supervision"], responses=errors(*AUTHENTICATED, 404, 409, 422)
)


class InspectionView(BaseModel):
    """One drawn organisation's inspection."""

    inspection_id: str
    draw_id: str
    round_id: str
    org_id: str
    verdict: str
    verdict_label: str
    findings: str
    inspectors: str
    inspected_on: str | None
    recorded_by: str | None
    recorded_at: datetime | None
    order_id: str | None


class DrawView(BaseModel):
    """A draw: seed, size, stratification, the population it drew from, the sample."""

    draw_id: str
    round_id: str
    seed: str
    stratify_by: str
    size: dict[str, int | str]
    population: list[str]
    sample: list[str]
    drawn_by: str
    drawn_by_role: str
    drawn_at: datetime
    inspections: list[InspectionView]


class RedrawView(BaseModel):
    """The recorded sample and the sample drawn again from the record."""

    draw_id: str
    recorded: list[str]
    redrawn: list[str]
    same: bool


@router.post(
    "/rounds/{round_id}/inspection-draws",
    status_code=201,
    summary="随机抽查：抽取样本（记录随机种子）",
    response_model=DrawView,
    responses=errors(*WITH_BODY),
)
async def draw(
    round_id: str, body: DrawRequest, request: Request, user: CurrentUser, sessions: SessionsDep
) -> Any:
    """Draw a count or a share of the round's organisations in the caller's scope,
    stratified by township, system or type; the seed (given or chosen) is recorded."""
    caller = service_caller(user, request)

    async def action() -> dict[str, Any]:
        try:
            made = await inspections.draw(sessions, caller, round_id, body)
        except ServiceError as exc:
            raise as_api_error(exc) from None
        return made.document()

    return await idempotent(request, sessions, user, action, status_code=201)


@router.get(
    "/rounds/{round_id}/inspection-draws",
    summary="本轮随机抽查",
    response_model=list[DrawView],
)
def list_draws(
    round_id: str, request: Request, session: SessionDep, user: CurrentUser
) -> list[dict[str, Any]]:
    """The round's draws the caller may see (whose whole population is in their scope)."""
    try:
        found = inspections.list_draws(session, service_caller(user, request), round_id)
    except ServiceError as exc:
        raise as_api_error(exc) from None
    return [d.document() for d in found]


@router.get(
    "/rounds/{round_id}/inspection-draws/{draw_id}",
    summary="一次随机抽查及其检查记录",
    response_model=DrawView,
)
def get_draw(
    round_id: str, draw_id: str, request: Request, session: SessionDep, user: CurrentUser
) -> dict[str, Any]:
    """The draw and its inspections."""
    try:
        found = inspections.get_draw(session, service_caller(user, request), round_id, draw_id)
    except ServiceError as exc:
        raise as_api_error(exc) from None
    return found.document()


@router.get(
    "/rounds/{round_id}/inspection-draws/{draw_id}/redraw",
    summary="按记录的种子重新抽取并核对",
    response_model=RedrawView,
)
def redraw(
    round_id: str, draw_id: str, request: Request, session: SessionDep, user: CurrentUser
) -> dict[str, Any]:
    """Draw again from the recorded population, size, stratification and seed."""
    try:
        again = inspections.redraw(session, service_caller(user, request), round_id, draw_id)
    except ServiceError as exc:
        raise as_api_error(exc) from None
    return {
        "draw_id": draw_id,
        "recorded": list(again.recorded),
        "redrawn": list(again.redrawn),
        "same": again.same,
    }


@router.put(
    "/rounds/{round_id}/inspections/{inspection_id}",
    summary="记录抽查结果（结论为差时限期整改）",
    response_model=InspectionView,
    responses=errors(*WITH_BODY, *TEMPORAL),
)
async def record_result(
    round_id: str,
    inspection_id: str,
    body: InspectionResult,
    request: Request,
    user: CurrentUser,
    sessions: SessionsDep,
    client: TemporalClientDep,
) -> Any:
    """Who inspected, when, what they found and the verdict; ``rectify`` orders
    rectification within ``period_working_days`` (once, however often it is recorded)."""
    caller = service_caller(user, request)
    try:
        result = inspections.parse_result(body.model_dump())
    except ServiceError as exc:
        raise as_api_error(exc) from None

    async def action() -> dict[str, Any]:
        try:
            row = await inspections.record_result(
                sessions,
                client,
                caller,
                round_id=round_id,
                inspection_id=inspection_id,
                result=result,
            )
        except ServiceError as exc:
            raise as_api_error(exc) from None
        return inspections.inspection_document(row)

    return await idempotent(request, sessions, user, action)


@router.get(
    "/rounds/{round_id}/inspections",
    summary="本轮抽查记录",
    response_model=list[InspectionView],
)
def list_inspections(
    round_id: str,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    org_id: str | None = None,
) -> list[dict[str, Any]]:
    """The round's inspections of organisations in the caller's scope."""
    try:
        rows = inspections.list_inspections(
            session, service_caller(user, request), round_id, org_id=org_id
        )
    except ServiceError as exc:
        raise as_api_error(exc) from None
    return [inspections.inspection_document(r) for r in rows]
