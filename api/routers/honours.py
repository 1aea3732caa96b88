"""评选表彰 (seed 002 §五(五)), deciding: the ranking, the standing committee's 审定
(recorded by the county office, strikes and additions each with a reason), publication of
the honours list (immutable afterwards) and the certificates (PDF).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from activities.certificates import Certificate, render_certificate
from activities.commendation_store import Stage, stage, standings
from activities.roster_store import load_organisation
from activities.tables import (
    CommendationApprovalRow,
    CommendationDecisionRow,
    CommendationHonourRow,
    CommendationPublicationRow,
)
from api.commendation_common import audit_row, commendation_round, one_writer, require_stage
from api.commendation_views import honour_view, ranking_view
from api.deps import CurrentUser, SessionDep, SessionsDep, require_role
from api.errors import ApiError, not_found
from api.idempotency import idempotent
from api.responses import AUTHENTICATED, WITH_BODY, errors, file_response
from api.routers.commendation import (
    ApprovalRecorded,
    Publication,
    PublishedHonours,
    RankingView,
)
from api.scope import covers
from domain.commendation_approval import approve, honours_list
from domain.organisation import Role
from domain.rubric import HonourCategory

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

    meeting: str = Field(
        min_length=2, max_length=200, description="审定会议，如县委常委会第12次会议"
    )
    struck: list[Entry] = Field(default_factory=list, max_length=500)
    added: list[Entry] = Field(default_factory=list, max_length=500)


@router.get("/ranking", summary="综合考评排名（县委活动办）", response_model=RankingView)
def ranking(round_id: str, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """Scores, outlier flags and ranks per honour and system, with the 审定 once recorded.
    Only the county office sees it, so assessors score without seeing each other's totals."""
    context = commendation_round(session, round_id)
    require_role(user, Role.COUNTY_OFFICE)
    _, groups = standings(session, context)
    approval = session.get(CommendationApprovalRow, round_id)
    decisions = session.scalars(
        select(CommendationDecisionRow).where(CommendationDecisionRow.round_id == round_id)
    ).all()
    return ranking_view(context, stage(session, round_id), groups, approval, list(decisions))


@router.post(
    "/approval",
    status_code=201,
    summary="记录县委常委会审定",
    response_model=ApprovalRecorded,
    responses=errors(*WITH_BODY),
)
async def record_approval(
    round_id: str, body: Approve, request: Request, user: CurrentUser, sessions: SessionsDep
) -> Any:
    """Approve the proposed list, striking and adding entries, each with a reason."""

    def action() -> dict[str, Any]:
        with one_writer(), sessions.begin() as session:
            context = commendation_round(session, round_id, lock=True)
            require_role(user, Role.COUNTY_OFFICE)
            require_stage(session, round_id, Stage.OPEN, "本轮名单已审定，不能再次审定")
            by_id, groups = standings(session, context)
            approved, decisions = approve(
                groups,
                by_id,
                [(e.declaration_id, e.reason) for e in body.struck],
                [(e.declaration_id, e.reason) for e in body.added],
            )
            honours = honours_list(round_id, approved)
            now = datetime.now(UTC)
            session.add(
                CommendationApprovalRow(
                    round_id=round_id,
                    meeting=body.meeting.strip(),
                    approved_by=user.username,
                    approved_at=now,
                    proposal=ranking_view(context, Stage.OPEN, groups, None, []),
                    approved={"honours": [h.model_dump(mode="json") for h in honours]},
                )
            )
            session.add_all(
                CommendationDecisionRow(
                    round_id=round_id,
                    declaration_id=d.declaration_id,
                    kind=d.kind.value,
                    reason=d.reason,
                    decided_by=user.username,
                    decided_at=now,
                )
                for d in decisions
            )
            session.add(
                audit_row(
                    user,
                    request,
                    "approved",
                    round_id,
                    None,
                    {"meeting": body.meeting, "decisions": len(decisions)},
                )
            )
            return {
                "round_id": round_id,
                "meeting": body.meeting.strip(),
                "approved_at": now,
                "honours": [h.model_dump(mode="json") for h in honours],
                "decisions": [d.model_dump(mode="json") for d in decisions],
            }

    async def run() -> dict[str, Any]:
        return await run_in_threadpool(action)  # SQL off the event loop

    return await idempotent(request, sessions, user, run, status_code=201)


@router.post("/publication", status_code=201, summary="公布表彰名单", response_model=Publication)
async def publish(round_id: str, request: Request, user: CurrentUser, sessions: SessionsDep) -> Any:
    """Publish the approved list: public from now on, and never changed afterwards."""

    def action() -> dict[str, Any]:
        with one_writer(), sessions.begin() as session:
            context = commendation_round(session, round_id, lock=True)
            require_role(user, Role.COUNTY_OFFICE)
            current = stage(session, round_id)
            if current is Stage.PUBLISHED:
                raise ApiError(409, "commendation_published", "名单已公布，不能更改")
            if current is Stage.OPEN:
                raise ApiError(409, "commendation_open", "名单尚未审定，不能公布")
            approval = session.get(CommendationApprovalRow, round_id)
            if approval is None:  # not reached: the APPROVED stage is this row
                raise ApiError(409, "commendation_open", "名单尚未审定，不能公布")
            now = datetime.now(UTC)
            session.add(
                CommendationPublicationRow(
                    round_id=round_id,
                    round_name=context.row.name,
                    published_by=user.username,
                    published_at=now,
                )
            )
            rows = [
                CommendationHonourRow(
                    round_id=round_id,
                    position=position,
                    published_at=now,
                    **{k: h[k] for k in _HONOUR_FIELDS},
                )
                for position, h in enumerate(approval.approved["honours"], start=1)
            ]
            session.add_all(rows)
            session.add(audit_row(user, request, "published", round_id, None, {"count": len(rows)}))
            return {
                "round_id": round_id,
                "published_at": now,
                "honours": [honour_view(r) for r in rows],
            }

    async def run() -> dict[str, Any]:
        return await run_in_threadpool(action)  # SQL off the event loop

    return await idempotent(request, sessions, user, run, status_code=201)


_HONOUR_FIELDS = (
    "declaration_id", "category", "title", "nominee", "org_id", "org_name", "system", "rank",
    "score", "added", "certificate_no",
)  # fmt: skip


@router.get("/honours", summary="已公布的表彰名单", response_model=PublishedHonours)
def honours(round_id: str, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """The published list (404 before publication)."""
    publication = session.get(CommendationPublicationRow, round_id)
    if publication is None:
        raise not_found("名单尚未公布")
    rows = session.scalars(
        select(CommendationHonourRow)
        .where(CommendationHonourRow.round_id == round_id)
        .order_by(CommendationHonourRow.position)
    ).all()
    return {
        "round_id": round_id,
        "round_name": publication.round_name,
        "published_at": publication.published_at,
        "honours": [honour_view(r) for r in rows],
    }


@router.get(
    "/honours/{declaration_id}/certificate",
    summary="下载荣誉证书（PDF）",
    response_class=Response,
    responses=file_response("application/pdf"),
)
def certificate(
    round_id: str, declaration_id: str, session: SessionDep, user: CurrentUser
) -> Response:
    """The honour's certificate, for those whose scope covers the organisation."""
    row = session.get(CommendationHonourRow, declaration_id)
    org = load_organisation(session, row.org_id) if row is not None else None
    publication = session.get(CommendationPublicationRow, round_id)
    if (
        row is None
        or publication is None
        or row.round_id != round_id
        or org is None
        or not covers(user, org)
    ):
        raise not_found()
    category = HonourCategory(row.category)
    context = commendation_round(session, round_id)
    rules = context.rules.category(category)
    pdf = render_certificate(
        Certificate(
            certificate_no=row.certificate_no,
            nominee=row.nominee,
            org_name=row.org_name,
            title=row.title,
            standard=rules.standard if rules else "",
            round_name=publication.round_name,
            for_person=category.for_person,
            issuer=context.rules.issuer,
            published_at=row.published_at,
        )
    )
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{row.certificate_no}.pdf"'},
    )
