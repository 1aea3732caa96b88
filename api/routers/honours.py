"""评选表彰 (seed 002 §五(五)), deciding: the ranking, the standing committee's 审定
(recorded by the county office, strikes and additions each with a reason), publication of
the honours list (immutable afterwards) and the certificates (PDF).

The use cases are ``chuangzheng.services.commendation``; the routes parse, call and map
errors as in :mod:`api.routers.commendation`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api.callers import service_caller
from api.deps import CurrentUser, SessionDep, SessionsDep, TemporalClientDep
from api.responses import AUTHENTICATED, TEMPORAL, WITH_BODY, errors, file_response
from api.routers.commendation import (
    ApprovalRecorded,
    Publication,
    PublishedHonours,
    RankingView,
    answer_once,
    mapped,
)
from chuangzheng.services import commendation, commendation_steps
from chuangzheng.services.callers import Caller
from domain.text import Visible

router = APIRouter(
    prefix="/api/v1/rounds/{round_id}/commendation",
    tags=["评选表彰 commendation"],
    responses=errors(*AUTHENTICATED, 404, 409, 422),
)


class Entry(BaseModel):
    """One strike or addition; the reason is checked by the domain (field + Chinese reason)."""

    declaration_id: str = Field(min_length=1, max_length=64)
    reason: str = Field(default="", max_length=2000)


class Approve(BaseModel):
    """The standing committee's 审定, recorded by the county office."""

    # Counted as a reader sees it, direction overrides refused (domain.text.Visible).
    meeting: Annotated[str, Visible(2)] = Field(
        max_length=200, description="审定会议，如县委常委会第12次会议"
    )
    struck: list[Entry] = Field(default_factory=list, max_length=500)
    added: list[Entry] = Field(default_factory=list, max_length=500)


@router.get("/ranking", summary="综合考评排名（县委活动办）", response_model=RankingView)
def ranking(
    round_id: str, request: Request, session: SessionDep, user: CurrentUser
) -> dict[str, Any]:
    """Scores, outlier flags and ranks per honour and system, with the 审定 once recorded.
    Only the county office sees it, so assessors score without seeing each other's totals."""
    caller = service_caller(user, request)
    result: dict[str, Any] = mapped(lambda: commendation.ranking(session, caller, round_id))
    return result


@router.post(
    "/approval",
    status_code=201,
    summary="记录县委常委会审定",
    response_model=ApprovalRecorded,
    responses=errors(*WITH_BODY, *TEMPORAL),
)
async def record_approval(
    round_id: str,
    body: Approve,
    request: Request,
    user: CurrentUser,
    sessions: SessionsDep,
    temporal: TemporalClientDep,
) -> Any:
    """Approve the proposed list, striking and adding entries, each with a reason; then
    settle each declared organisation's 审定 step with its outcome (``steps``)."""

    def call(caller: Caller) -> dict[str, Any]:
        return commendation.record_approval(
            sessions,
            caller,
            round_id,
            meeting=body.meeting,
            struck=[commendation.Entry(e.declaration_id, e.reason) for e in body.struck],
            added=[commendation.Entry(e.declaration_id, e.reason) for e in body.added],
        )

    async def settle(caller: Caller, _: dict[str, Any]) -> dict[str, Any]:
        steps = await commendation_steps.settle_approval(temporal, sessions, caller.actor, round_id)
        return {"steps": steps}

    return await answer_once(request, sessions, user, call, status_code=201, after=settle)


@router.post("/publication", status_code=201, summary="公布表彰名单", response_model=Publication)
async def publish(round_id: str, request: Request, user: CurrentUser, sessions: SessionsDep) -> Any:
    """Publish the approved list: public from now on, and never changed afterwards."""

    def call(caller: Caller) -> dict[str, Any]:
        return commendation.publish(sessions, caller, round_id)

    return await answer_once(request, sessions, user, call, status_code=201)


@router.get("/honours", summary="已公布的表彰名单", response_model=PublishedHonours)
def honours(round_id: str, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """The published list (404 before publication)."""
    result: dict[str, Any] = mapped(lambda: commendation.published_honours(session, round_id))
    return result


@router.get(
    "/honours/{declaration_id}/certificate",
    summary="下载荣誉证书（PDF）",
    response_class=Response,
    responses=file_response("application/pdf"),
)
def certificate(
    round_id: str, declaration_id: str, request: Request, session: SessionDep, user: CurrentUser
) -> Response:
    """The honour's certificate, for those whose scope covers the organisation."""
    caller = service_caller(user, request)
    file: commendation.CertificateFile = mapped(
        lambda: commendation.certificate(session, caller, round_id, declaration_id)
    )
    return Response(
        file.pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{file.filename}"'},
    )
