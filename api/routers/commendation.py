"""评选表彰 (seed 002 §五(五)), declaring and scoring.

The use cases are ``chuangzheng.services.commendation`` (the organisations' steps they settle,
``chuangzheng.services.commendation_steps``); the routes parse the request, call them and map
their errors to HTTP (``api.errors.as_api_error``). The response models of both
commendation routers are here; ranking, 审定, publication and certificates are in
:mod:`api.routers.honours`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import User
from api.callers import service_caller
from api.deps import CurrentUser, SessionDep, SessionsDep, TemporalClientDep
from api.errors import as_api_error
from api.idempotency import idempotent
from api.limits import Evidence
from api.responses import AUTHENTICATED, TEMPORAL, WITH_BODY, Timestamp, errors
from chuangzheng.services import commendation, commendation_steps
from chuangzheng.services.callers import Caller
from chuangzheng.services.errors import ServiceError
from domain.commendation_approval import Decision, Honour
from domain.rubric import CommendationRules, HonourCategory, RubricItem

router = APIRouter(
    prefix="/api/v1/rounds/{round_id}/commendation",
    tags=["评选表彰 commendation"],
    responses=errors(*AUTHENTICATED, 404, 409, 422),
)


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


class RecordLineView(BaseModel):
    """One input of the campaign record: what was counted, its weight and its points."""

    key: str
    label: str
    value: str
    shown: str
    weight: str
    points: str


class RecordView(BaseModel):
    """The organisation's campaign record as the plan weighs it (结合年度考核、日常检查)."""

    points: str
    lines: list[RecordLineView]


class UnitConditionsView(BaseModel):
    """A unit's own conditions (具体条件) a declaration is also scored on."""

    unit: str
    reviewed_by: str
    reviewed_on: str
    items: list[RubricItem]


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
    step: str | None = Field(
        default=None,
        description="申报先进基层党组织时，本组织“申报”步骤的结果：settled，或未能完成的原因",
    )
    record: RecordView | None = Field(
        default=None,
        description="考核组与县委活动办可见：先进基层党组织的活动记录及其计分（计划设定权重时）",
    )
    conditions: list[UnitConditionsView] = Field(
        default_factory=list,
        description="考核组与县委活动办可见：本申报另需评分的所在乡镇、系统的具体条件（已经县委活动办审核）",
    )


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
    score: str | None = Field(description="综合得分：评分表得分 + 活动记录分")
    sheet_score: str | None = Field(default=None, description="评分表得分（各表总分平均）")
    record: RecordView | None = Field(default=None, description="活动记录及其计分")
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
    score_rule: list[str] = Field(default_factory=list, description="得分的计算方法（中文）")
    groups: list[RankingGroup]
    approval: ApprovalView | None


class ApprovalRecorded(BaseModel):
    """The 审定 just recorded: the approved list and each strike and addition."""

    round_id: str
    meeting: str
    approved_at: Timestamp
    honours: list[Honour]
    decisions: list[Decision]
    steps: dict[str, str] = Field(
        default_factory=dict,
        description="各申报组织“县委常委会审定”步骤的结果：settled，或未能完成的原因",
    )


class ApprovalSteps(BaseModel):
    """The 审定 steps settled again: per organisation, "settled" or why not."""

    steps: dict[str, str]


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


async def answer_once(
    request: Request,
    sessions: SessionsDep,
    user: User,
    call: Callable[[Caller], Any],
    *,
    status_code: int = 200,
    after: Callable[[Caller, dict[str, Any]], Awaitable[dict[str, Any]]] | None = None,
) -> Response:
    """Run the write ``call`` once per Idempotency-Key, in the threadpool (SQL off the event
    loop), its errors mapped to HTTP; then ``after`` (the organisations' steps the write
    settles, on the workflows), whose fields join the answer."""
    caller = service_caller(user, request)

    async def run() -> Any:
        try:
            answer = await run_in_threadpool(call, caller)
        except ServiceError as exc:
            raise as_api_error(exc) from None
        if after is not None:
            answer = answer | await after(caller, answer)
        return answer

    return await idempotent(request, sessions, user, run, status_code=status_code)


def mapped(call: Callable[[], Any]) -> Any:
    """The read ``call``'s answer, its errors mapped to HTTP."""
    try:
        return call()
    except ServiceError as exc:
        raise as_api_error(exc) from None


@router.get("/rules", summary="评选表彰规则（评分标准与名额）", response_model=RulesView)
def rules(round_id: str, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """The round's rubrics, quotas and outlier rule (from its plan)."""
    result: dict[str, Any] = mapped(lambda: commendation.rules(session, round_id))
    return result


@router.post(
    "/declarations",
    status_code=201,
    summary="申报（书记、乡镇党委）",
    response_model=DeclarationView,
    response_model_exclude_unset=True,
    responses=errors(*WITH_BODY, *TEMPORAL),
)
async def declare(
    round_id: str,
    body: Declare,
    request: Request,
    user: CurrentUser,
    sessions: SessionsDep,
    temporal: TemporalClientDep,
) -> Any:
    """Declare an organisation, or a person it nominates, for an honour; declaring the
    organisation (先进基层党组织) also settles its 申报 step (``step`` says how it went)."""
    declaration = commendation.Declaration(
        category=body.category, org_id=body.org_id, deeds=body.deeds, nominee=body.nominee
    )

    def call(caller: Caller) -> dict[str, Any]:
        return commendation.declare(sessions, caller, round_id, declaration)

    async def settle(caller: Caller, declared: dict[str, Any]) -> dict[str, Any]:
        step = await commendation_steps.settle_declaration(
            temporal, sessions, caller, round_id, declared
        )
        return {"step": step} if step is not None else {}

    return await answer_once(request, sessions, user, call, status_code=201, after=settle)


class DeclarationStep(BaseModel):
    """What became of the declaration's 申报 step: "settled", why not, or null (nothing to
    settle: a person's nomination, or a plan without the step)."""

    step: str | None


@router.post(
    "/declarations/{declaration_id}/step",
    summary="重新完成申报对应的“申报”步骤（申报方或县委活动办）",
    response_model=DeclarationStep,
    responses=errors(*TEMPORAL),
)
async def settle_declaration_step(
    round_id: str,
    declaration_id: str,
    request: Request,
    user: CurrentUser,
    sessions: SessionsDep,
    temporal: TemporalClientDep,
) -> dict[str, Any]:
    """Settle the 申报 step again: a declaration made before the organisation's
    commendation phase opened, or after a failure; once per declaration."""
    caller = service_caller(user, request)
    try:
        step = await commendation_steps.resettle_declaration(
            temporal, sessions, caller, round_id, declaration_id
        )
    except ServiceError as exc:
        raise as_api_error(exc) from None
    return {"step": step}


@router.post(
    "/approval/steps",
    summary="将审定结果同步到各组织的“县委常委会审定”步骤（县委活动办）",
    response_model=ApprovalSteps,
    responses=errors(*TEMPORAL),
)
async def settle_approval_steps(
    round_id: str,
    request: Request,
    user: CurrentUser,
    sessions: SessionsDep,
    temporal: TemporalClientDep,
) -> dict[str, Any]:
    """Settle again what the 审定 settles (after a failure part-way): each organisation's
    step once, whatever the number of calls."""
    caller = service_caller(user, request)
    try:
        steps = await commendation_steps.resettle_approval(temporal, sessions, caller, round_id)
    except ServiceError as exc:
        raise as_api_error(exc) from None
    return {"steps": steps}


@router.get(
    "/declarations",
    summary="申报列表（按权限范围）",
    response_model=list[DeclarationView],
    response_model_exclude_unset=True,
)
def list_declarations(
    round_id: str, request: Request, session: SessionDep, user: CurrentUser
) -> list[dict[str, Any]]:
    """The declarations the caller may see; an assessor also sees their own sheet's state."""
    caller = service_caller(user, request)
    result: list[dict[str, Any]] = mapped(
        lambda: commendation.declarations(session, caller, round_id)
    )
    return result


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

    def call(caller: Caller) -> dict[str, Any]:
        return commendation.score(
            sessions, caller, round_id, declaration_id, body.scores, submit=body.submit
        )

    return await answer_once(request, sessions, user, call)


@router.get(
    "/declarations/{declaration_id}/sheets/mine", summary="我的评分表", response_model=SheetView
)
def my_sheet(
    round_id: str, declaration_id: str, request: Request, session: SessionDep, user: CurrentUser
) -> dict[str, Any]:
    """The caller's own sheet (assessors never see each other's sheets here)."""
    caller = service_caller(user, request)
    result: dict[str, Any] = mapped(
        lambda: commendation.my_sheet(session, caller, round_id, declaration_id)
    )
    return result
