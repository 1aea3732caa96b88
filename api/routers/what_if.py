"""The what-if (推演) and the 预警 threshold of a running round, for the county office.

``POST /rounds/{id}/what-if`` starts a rehearsal of a draft change as a background job
(202; one at a time per round), ``GET /rounds/{id}/what-if`` gives the latest job and its
result, ``…/what-if.xlsx`` the result as Excel. ``PUT /rounds/{id}/early-warning/threshold``
changes the round's 预警 threshold (audited); ``POST …/what-if/apply`` applies the latest
finished what-if as the round's next plan version (once per idempotency key). Every rule is in
``chuangzheng.services.what_if`` (its background job: ``…what_if_jobs``) and
``chuangzheng.services.forecast_warning``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api.blocking import run_sync
from api.callers import service_caller
from api.deps import CurrentUser, SessionDep, SessionsDep, SettingsDep, TemporalClientDep
from api.errors import ApiError, as_api_error
from api.responses import AUTHENTICATED, WITH_BODY, errors
from api.routers.audit import XLSX, xlsx_response
from chuangzheng.services import forecast_warning, what_if, what_if_jobs
from chuangzheng.services.errors import ServiceError
from domain.organisation import Role

router = APIRouter(
    prefix="/api/v1", tags=["推演与预警 what-if"], responses=errors(*AUTHENTICATED, 404, 422)
)


def _county_office(user: Any) -> None:
    if user.role is not Role.COUNTY_OFFICE:
        raise ApiError(403, "forbidden", "推演与预警线仅县委活动办可用")


class WhatIfStart(BaseModel):
    """A draft change to rehearse (see ``domain.what_if.DraftChange``) and the seed."""

    change: dict[str, Any]
    seed: int = Field(default=1, ge=0, lt=2**31)


class WhatIfView(BaseModel):
    """The round's latest what-if job, and its result once one has finished."""

    job: what_if_jobs.JobStatus | None
    result: what_if.WhatIfReport | None


class ThresholdBody(BaseModel):
    """The round's new 预警 threshold and why."""

    threshold: float
    reason: str = Field(default="", max_length=2000)


@router.post(
    "/rounds/{round_id}/what-if",
    status_code=202,
    summary="发起推演（后台运行）",
    response_model=what_if_jobs.JobStatus,
    responses=errors(*WITH_BODY, 409),
)
def start_what_if(
    round_id: str,
    body: WhatIfStart,
    request: Request,
    user: CurrentUser,
    sessions: SessionsDep,
    settings: SettingsDep,
) -> Any:
    """Start rehearsing the draft over the live county; poll ``GET …/what-if``."""
    _county_office(user)
    try:
        change = what_if.parse_change(body.change)
        with sessions.begin() as session:
            status = what_if_jobs.start_job(
                session,
                service_caller(user, request),
                round_id,
                change,
                data_dir=settings.data_dir,
                seed=body.seed,
                launch=what_if_jobs.launcher(settings.database_url),
            )
    except ServiceError as exc:
        raise as_api_error(exc) from None
    return status


@router.get("/rounds/{round_id}/what-if", summary="推演状态与结果", response_model=WhatIfView)
def get_what_if(
    round_id: str, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> Any:
    """The round's latest what-if job and its result (null until one has finished)."""
    _county_office(user)
    from activities.tables import RoundRow

    if session.get(RoundRow, round_id) is None:
        raise ApiError(404, "not_found", "轮次不存在")
    status = what_if_jobs.job_status(settings.data_dir, round_id)
    result = what_if_jobs.job_result(settings.data_dir, round_id)
    return WhatIfView(job=status, result=result)


@router.get(
    "/rounds/{round_id}/what-if.xlsx",
    summary="推演结果 Excel",
    response_class=Response,
    responses={200: {"content": {XLSX: {}}, "description": "推演结果 .xlsx"}},
)
def what_if_xlsx(round_id: str, user: CurrentUser, settings: SettingsDep) -> Response:
    """The latest finished what-if as an Excel workbook."""
    _county_office(user)
    result = what_if_jobs.job_result(settings.data_dir, round_id)
    if result is None:
        raise ApiError(404, "not_found", "本轮尚无推演结果")
    return xlsx_response(what_if.export_xlsx(result), "推演结果.xlsx")


class WhatIfApply(BaseModel):
    """采用此方案: which reviewed result, why, and the key that makes a retry a no-op."""

    job_id: str = Field(default="", max_length=100)
    reason: str = Field(max_length=2000)
    idempotency_key: str = Field(min_length=1, max_length=100)


class WhatIfApplied(BaseModel):
    """The plan version the what-if became; ``applied`` False: the key was applied before."""

    round_id: str
    version: int
    applied: bool
    plan_ref: str
    changes: list[str]


@router.post(
    "/rounds/{round_id}/what-if/apply",
    summary="采用推演方案（成为本轮计划的新版本）",
    response_model=WhatIfApplied,
    responses=errors(*WITH_BODY, 409, 503),
)
async def apply_what_if(
    round_id: str,
    body: WhatIfApply,
    request: Request,
    user: CurrentUser,
    sessions: SessionsDep,
    client: TemporalClientDep,
    settings: SettingsDep,
) -> Any:
    """Apply the round's latest finished what-if (``job_id``: the one reviewed) as the next
    plan version, once per key; 409 if the round's plan changed since it ran, 422 for a
    draft a plan cannot express (a township-only extension)."""
    _county_office(user)
    try:
        applied = await what_if.apply_what_if(
            sessions,
            client,
            what_if_jobs.job_result(settings.data_dir, round_id),
            round_id,
            job_id=body.job_id,
            reason=body.reason,
            caller=service_caller(user, request),
            idempotency_key=f"api:{body.idempotency_key}",
        )
    except ServiceError as exc:
        raise as_api_error(exc) from None
    return WhatIfApplied(
        round_id=applied.round_id,
        version=applied.version,
        applied=applied.applied,
        plan_ref=applied.plan_ref,
        changes=applied.changes,
    )


@router.put(
    "/rounds/{round_id}/early-warning/threshold",
    summary="修改本轮预警线（审计）",
    response_model=forecast_warning.ThresholdChange,
    responses=errors(*WITH_BODY, 409),
)
async def put_threshold(
    round_id: str, body: ThresholdBody, request: Request, user: CurrentUser, sessions: SessionsDep
) -> Any:
    """The round's 预警 threshold from now on (the plan rung's until changed)."""
    caller = service_caller(user, request)

    def change() -> forecast_warning.ThresholdChange:
        try:
            with sessions.begin() as session:
                return forecast_warning.set_round_threshold(
                    session, caller, round_id, body.threshold, reason=body.reason
                )
        except ServiceError as exc:
            raise as_api_error(exc) from None

    return await run_sync(change)
