"""评选表彰 (seed 002 §五(五)), declaring and scoring.

A secretary declares for their organisation and a township for the organisations of its
township (各级党委自行申报); the assessment group (县委考核组) scores, each assessor on their
own sheet, editable until submitted. The organisation a request names is checked for scope
first (404 outside it), then the role (403). Each write is one transaction: nothing
half-written. Ranking, 审定, publication and certificates: :mod:`api.routers.honours`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from activities.commendation_store import Stage, stage
from activities.tables import CommendationDeclarationRow, CommendationScoreSheetRow, OrganisationRow
from api.commendation_common import (
    audit_row,
    commendation_round,
    one_writer,
    require_stage,
    visible_declaration,
)
from api.commendation_views import declaration_view, sheet_view
from api.deps import CurrentUser, SessionDep, SessionsDep, require_role
from api.errors import ApiError, not_found
from api.idempotency import idempotent
from api.limits import Evidence
from api.responses import AUTHENTICATED, WITH_BODY, Timestamp, errors
from api.routers.organisations import visible_organisation
from api.scope import scope_condition
from domain.commendation import check_declaration, check_scores
from domain.commendation_approval import Decision, Honour
from domain.errors import FieldError, ValidationFailed
from domain.organisation import Role
from domain.rubric import CommendationRules, HonourCategory

router = APIRouter(
    prefix="/api/v1/rounds/{round_id}/commendation",
    tags=["评选表彰 commendation"],
    responses=errors(*AUTHENTICATED, 404, 409, 422),
)

DECLARERS = (Role.SECRETARY, Role.TOWNSHIP)


class Declare(BaseModel):
    """A 申报: ``nominee`` only for 优秀共产党员 and 优秀党务工作者."""

    category: HonourCategory
    org_id: str = Field(min_length=1, max_length=64)
    nominee: str | None = Field(default=None, max_length=30)
    deeds: str = Field(max_length=5000)


class Sheet(BaseModel):
    """An assessor's scores per rubric item; ``submit`` closes the sheet for good."""

    scores: Evidence = Field(max_length=50)
    submit: bool = False


class RulesView(CommendationRules):
    """The round's commendation rules and where the round's commendation stands."""

    stage: str


class DeclarationView(BaseModel):
    """A declaration (``my_sheet``: the caller's sheet state, for assessors only)."""

    declaration_id: str
    round_id: str
    category: str
    category_label: str
    org_id: str
    org_name: str
    system: str
    system_label: str
    township: str
    nominee: str
    deeds: str
    declared_by: str
    declared_at: str
    my_sheet: str = Field(default="draft", description="draft / submitted；非考核组无此字段")


class SheetView(BaseModel):
    """One assessor's sheet with its weighted total (numbers as decimal strings)."""

    declaration_id: str
    assessor: str
    scores: dict[str, str]
    total: str
    max_total: str
    submitted: bool
    updated_at: str
    submitted_at: str | None


class SheetTotal(BaseModel):
    """One submitted sheet's total against the median of all totals."""

    assessor: str
    total: str
    median: str | None
    outlier: bool


class StandingView(BaseModel):
    """A declaration's place in its group."""

    declaration_id: str
    nominee: str
    org_id: str
    org_name: str
    township: str
    rank: int | None
    shares_rank: bool
    proposed: bool
    tied_at_quota_line: bool
    score: str | None
    sheets_submitted: int
    outliers: int
    sheets: list[SheetTotal]


class RankingGroup(BaseModel):
    """The ranking of one honour in one system."""

    category: str
    title: str
    system: str
    system_label: str
    quota: int
    over_quota_by_tie: bool
    entries: list[StandingView]


class DecisionView(BaseModel):
    """A strike or addition recorded at 审定."""

    declaration_id: str
    kind: str
    kind_label: str
    reason: str


class ApprovalView(BaseModel):
    """The recorded 审定."""

    meeting: str
    approved_by: str
    approved_at: str
    honours: list[Honour]
    decisions: list[DecisionView]


class RankingView(BaseModel):
    """The ranking per honour and system, and the 审定 once recorded (null before)."""

    round_id: str
    stage: str
    stage_label: str
    min_sheets: int
    outlier_points: str
    groups: list[RankingGroup]
    approval: ApprovalView | None


class ApprovalRecorded(BaseModel):
    """The 审定 just recorded: the approved list and each strike and addition."""

    round_id: str
    meeting: str
    approved_at: Timestamp
    honours: list[Honour]
    decisions: list[Decision]


class HonourView(BaseModel):
    """One line of the published list, with its certificate's download path."""

    declaration_id: str
    position: int
    category: str
    title: str
    nominee: str
    org_id: str
    org_name: str
    system: str
    system_label: str
    rank: int | None
    score: str | None
    added: bool
    certificate_no: str
    certificate: str


class Publication(BaseModel):
    """The list just published."""

    round_id: str
    published_at: Timestamp
    honours: list[HonourView]


class PublishedHonours(BaseModel):
    """The published list of a round."""

    round_id: str
    round_name: str
    published_at: Timestamp
    honours: list[HonourView]


@router.get("/rules", summary="评选表彰规则（评分标准与名额）", response_model=RulesView)
def rules(round_id: str, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """The round's rubrics, quotas and outlier rule (from its plan)."""
    context = commendation_round(session, round_id)
    return context.rules.model_dump(mode="json") | {"stage": stage(session, round_id).value}


@router.post(
    "/declarations",
    status_code=201,
    summary="申报（书记、乡镇党委）",
    response_model=DeclarationView,
    response_model_exclude_unset=True,
    responses=errors(*WITH_BODY),
)
async def declare(
    round_id: str, body: Declare, request: Request, user: CurrentUser, sessions: SessionsDep
) -> Any:
    """Declare an organisation, or a person it nominates, for an honour."""

    def action() -> dict[str, Any]:
        with one_writer(), sessions.begin() as session:
            context = commendation_round(session, round_id, lock=True)
            org = visible_organisation(session, user, body.org_id)
            require_role(user, *DECLARERS)
            require_stage(session, round_id, Stage.OPEN, "本轮评选表彰已审定，不能再申报")
            check_declaration(context.rules, body.category, body.nominee, body.deeds)
            if not context.covers(org):
                raise ValidationFailed([FieldError("org_id", "该组织不在本轮活动范围内")])
            nominee = (body.nominee or "").strip() if body.category.for_person else org.name
            duplicate = session.scalar(
                select(CommendationDeclarationRow.declaration_id).where(
                    CommendationDeclarationRow.round_id == round_id,
                    CommendationDeclarationRow.category == body.category.value,
                    CommendationDeclarationRow.org_id == org.id,
                    CommendationDeclarationRow.nominee == nominee,
                )
            )
            if duplicate is not None:
                raise ApiError(409, "duplicate", f"{nominee}已申报{body.category.label}")
            row = CommendationDeclarationRow(
                declaration_id=f"dec-{uuid.uuid4().hex[:16]}",
                round_id=round_id,
                category=body.category.value,
                org_id=org.id,
                org_name=org.name,
                system=org.system.value,
                township=org.township,
                nominee=nominee,
                deeds=body.deeds.strip(),
                declared_by=user.username,
                declared_role=user.role.value,
                declared_at=datetime.now(UTC),
            )
            session.add(row)
            session.add(
                audit_row(
                    user,
                    request,
                    "declared",
                    round_id,
                    org.id,
                    {"declaration_id": row.declaration_id},
                )
            )
            return declaration_view(row, None)

    async def run() -> dict[str, Any]:
        return await run_in_threadpool(action)  # SQL off the event loop

    return await idempotent(request, sessions, user, run, status_code=201)


@router.get(
    "/declarations",
    summary="申报列表（按权限范围）",
    response_model=list[DeclarationView],
    response_model_exclude_unset=True,
)
def list_declarations(
    round_id: str, session: SessionDep, user: CurrentUser
) -> list[dict[str, Any]]:
    """The declarations the caller may see; an assessor also sees their own sheet's state."""
    commendation_round(session, round_id)
    rows = session.scalars(
        select(CommendationDeclarationRow)
        .join(OrganisationRow, OrganisationRow.org_id == CommendationDeclarationRow.org_id)
        .where(CommendationDeclarationRow.round_id == round_id)
        .where(scope_condition(user))
        .order_by(CommendationDeclarationRow.declared_at)
    ).all()
    sheets: dict[str, CommendationScoreSheetRow] = {}
    if user.role is Role.ASSESSMENT_GROUP:
        sheets = {
            s.declaration_id: s
            for s in session.scalars(
                select(CommendationScoreSheetRow)
                .where(CommendationScoreSheetRow.round_id == round_id)
                .where(CommendationScoreSheetRow.assessor == user.username)
            )
        }
    return [declaration_view(r, sheets.get(r.declaration_id)) for r in rows]


@router.put(
    "/declarations/{declaration_id}/sheets/mine",
    summary="评分（县委考核组）",
    response_model=SheetView,
    responses=errors(*WITH_BODY),
)
async def score(
    round_id: str,
    declaration_id: str,
    body: Sheet,
    request: Request,
    user: CurrentUser,
    sessions: SessionsDep,
) -> Any:
    """Save the caller's sheet; ``submit: true`` needs every item and closes it."""

    def action() -> dict[str, Any]:
        with one_writer(), sessions.begin() as session:
            context = commendation_round(session, round_id, lock=True)
            row = visible_declaration(session, user, round_id, declaration_id)
            require_role(user, Role.ASSESSMENT_GROUP)
            require_stage(session, round_id, Stage.OPEN, "本轮评选表彰已审定，评分已锁定")
            category = context.rules.category(HonourCategory(row.category))
            if category is None:
                raise ApiError(409, "not_awarded", "本轮计划不再评选该项表彰")
            sheet = session.get(CommendationScoreSheetRow, (declaration_id, user.username))
            if sheet is not None and sheet.submitted_at is not None:
                raise ApiError(409, "sheet_submitted", "评分表已提交，不能修改")
            scores = check_scores(category, body.scores, complete=body.submit)
            now = datetime.now(UTC)
            if sheet is None:
                sheet = CommendationScoreSheetRow(
                    declaration_id=declaration_id, assessor=user.username, round_id=round_id
                )
                session.add(sheet)
            sheet.scores = {k: str(v) for k, v in scores.items()}
            sheet.updated_at = now
            sheet.submitted_at = now if body.submit else None
            kind = "sheet_submitted" if body.submit else "sheet_saved"
            session.add(
                audit_row(
                    user,
                    request,
                    kind,
                    round_id,
                    row.org_id,
                    {"declaration_id": declaration_id, "scores": sheet.scores},
                )
            )
            return sheet_view(category, sheet)

    async def run() -> dict[str, Any]:
        return await run_in_threadpool(action)  # SQL off the event loop

    return await idempotent(request, sessions, user, run)


@router.get(
    "/declarations/{declaration_id}/sheets/mine", summary="我的评分表", response_model=SheetView
)
def my_sheet(
    round_id: str, declaration_id: str, session: SessionDep, user: CurrentUser
) -> dict[str, Any]:
    """The caller's own sheet (assessors never see each other's sheets here)."""
    context = commendation_round(session, round_id)
    row = visible_declaration(session, user, round_id, declaration_id)
    sheet = session.get(CommendationScoreSheetRow, (declaration_id, user.username))
    category = context.rules.category(HonourCategory(row.category))
    if sheet is None or category is None:
        raise not_found("尚未评分")
    return sheet_view(category, sheet)
