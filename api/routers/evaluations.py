"""群众评议: the upper level (or, for its members, the organisation) opens a ballot, prints
its one-time tokens, follows it, may close it early, and reads the result.

Opening checks the rater composition against the plan (422 naming the field), stores the
evaluation and its token hashes in one transaction and starts ``EvaluationWorkflow``, which
holds the window. Casting is public (``api.public.ballots``).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from temporalio.client import Client

from activities.evaluations import register_evaluation
from activities.tables import BallotTokenRow, EvaluationRow, RoundDefinitionRow
from api.auth import User
from api.blocking import run_sync
from api.deps import (
    CurrentUser,
    SessionDep,
    SessionsDep,
    SettingsDep,
    TemporalClientDep,
    client_ip,
)
from api.errors import ApiError, not_found
from api.idempotency import idempotent
from api.plans import parse_plan
from api.public.render import page
from api.responses import AUTHENTICATED, TEMPORAL, WITH_BODY, errors, file_response
from api.routers.evaluation_bodies import (
    ClosedEvaluation,
    EvaluationView,
    OpenEvaluation,
    rater_counts,
)
from api.routers.evaluation_slips import slips, slips_pdf, title_of
from api.routers.organisations import visible_organisation
from api.workflow_calls import update
from domain.calendar import SHANGHAI, CalendarGap
from domain.errors import FieldError, ValidationFailed
from domain.evaluation import EvaluationResult, EvaluationTarget, check_composition
from domain.organisation import SUPERVISOR_ROLES, Organisation, Role
from domain.state import Actor
from workflows.evaluation import EvaluationWorkflow, evaluation_workflow_id
from workflows.evaluation_contracts import CloseNow, EvaluationInput, EvaluationStatus
from workflows.ids import organisation_workflow_id

router = APIRouter(
    prefix="/api/v1", tags=["群众评议 evaluations"], responses=errors(*AUTHENTICATED, 404, 409, 422)
)
_LIVE = ("opening", "open", "closed")


def _may_open(user: User, target: EvaluationTarget) -> None:
    allowed = SUPERVISOR_ROLES | ({Role.SECRETARY} if target is EvaluationTarget.MEMBER else set())
    if user.role not in allowed:
        who = "上级党组织" if target is EvaluationTarget.ORGANISATION else "本组织或上级党组织"
        raise ApiError(403, "forbidden", f"只有{who}可以组织此项评议")


def _local(moment: datetime | None) -> str | None:
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M") if moment else None


def evaluation_view(row: EvaluationRow, used: int | None = None) -> dict[str, Any]:
    """An evaluation as the API shows it (the result once tallied; invalid ones marked)."""
    result = EvaluationResult.model_validate(row.result) if row.result is not None else None
    base = f"/api/v1/evaluations/{row.evaluation_id}"
    view: dict[str, Any] = {
        "evaluation_id": row.evaluation_id,
        "round_id": row.round_id,
        "org_id": row.org_id,
        "target": row.target,
        "subject": row.subject,
        "seq": row.seq,
        "status": row.status,
        "issued": {"member": row.issued_members, "non_member": row.issued_non_members},
        "opens_at": row.opens_at,
        "closes_at": row.closes_at,
        "closed_at": row.closed_at,
        "published_at": row.published_at,
        "votes_so_far": used,
        "valid": None if result is None else result.valid,
        "verdict": row.verdict,
        "satisfaction": row.satisfaction,
        "rectification": row.rectification,
        "links": {
            "tokens_html": f"{base}/tokens?format=html",
            "tokens_pdf": f"{base}/tokens?format=pdf",
            "public_results": f"/ballot/results/{row.evaluation_id}",
        },
    }
    if result is not None:
        view["result"] = result.model_dump(mode="json") | {"turnout": result.turnout}
    return view


def _visible(session: SessionDep, user: User, evaluation_id: str) -> EvaluationRow:
    row = session.get(EvaluationRow, evaluation_id)
    if row is None:
        raise not_found("评议不存在或无权查看")
    visible_organisation(session, user, row.org_id)
    return row


@router.post(
    "/rounds/{round_id}/organisations/{org_id}/evaluations",
    status_code=201,
    summary="开启群众评议（发放一次性选票凭证）",
    response_model=EvaluationView,
    response_model_exclude_unset=True,
    responses=errors(*WITH_BODY, *TEMPORAL),
)
async def open_evaluation(
    round_id: str,
    org_id: str,
    body: OpenEvaluation,
    request: Request,
    user: CurrentUser,
    sessions: SessionsDep,
    settings: SettingsDep,
    client: TemporalClientDep,
) -> Any:
    """Check the composition, store the evaluation and its token hashes, start the window."""

    def load() -> tuple[Organisation, RoundDefinitionRow | None]:
        with sessions() as session:
            return (
                visible_organisation(session, user, org_id),
                session.get(RoundDefinitionRow, round_id),
            )

    org, definition = await run_sync(load)
    _may_open(user, body.target)
    if definition is None:
        raise not_found("轮次不存在")
    if definition.kicked_off_at is None:
        raise ApiError(409, "not_started", "本轮活动尚未启动，不能开展评议")
    counts, field = rater_counts(body)
    plan = await run_sync(parse_plan, definition.plan_yaml)
    rules = plan.evaluation
    problems = check_composition(rules.for_target(body.target), counts, field)
    if problems:
        raise ApiError(
            422,
            "invalid_composition",
            "评议人员构成不符合计划要求",
            [{"field": e.field, "reason": e.reason} for e in problems],
        )
    try:
        plan.calendar.build().deadline_after(datetime.now(UTC), rules.window)
    except CalendarGap as gap:
        raise ValidationFailed([FieldError("window", str(gap))]) from None
    subject = (body.member or "").strip() or org.name
    actor = Actor(user=user.username, name=user.display_name, role=user.role, ip=client_ip(request))

    async def action() -> dict[str, Any]:
        evaluation_id = f"ev-{secrets.token_hex(8)}"
        target_key = (
            body.target.value
            if body.target is EvaluationTarget.ORGANISATION
            else (f"member/{subject}")
        )
        evaluation = EvaluationInput(
            evaluation_id=evaluation_id,
            round_id=round_id,
            org_id=org_id,
            org_workflow_id=organisation_workflow_id(round_id, org_id),
            target=body.target,
            subject=subject,
            opened_by=actor,
            rules=rules,
            calendar=plan.calendar,
        )

        def register() -> str:
            with sessions.begin() as session:
                earlier = session.scalars(
                    select(EvaluationRow).where(
                        EvaluationRow.round_id == round_id,
                        EvaluationRow.org_id == org_id,
                        EvaluationRow.target == body.target.value,
                        EvaluationRow.subject == subject,
                    )
                ).all()
                if any(e.status in (*_LIVE, "published") for e in earlier):
                    raise ApiError(409, "evaluation_exists", "该对象本轮已有进行中或已公布的评议")
                seq = len(earlier) + 1
                workflow_id = evaluation_workflow_id(round_id, org_id, target_key, seq)
                register_evaluation(
                    session,
                    settings.secret_key,
                    evaluation=evaluation,
                    seq=seq,
                    workflow_id=workflow_id,
                    raters=counts,
                    now=datetime.now(UTC),
                )
                return workflow_id

        def view() -> dict[str, Any]:
            with sessions() as session:
                row = session.get(EvaluationRow, evaluation_id)
                assert row is not None
                return evaluation_view(row, 0)

        try:
            workflow_id = await run_sync(register)
        except IntegrityError:
            raise ApiError(409, "evaluation_exists", "该对象本轮已有进行中的评议") from None
        await _start(client, sessions, settings.task_queue, evaluation, workflow_id)
        return await run_sync(view)

    return await idempotent(request, sessions, user, action, status_code=201)


async def _start(
    client: Client,
    sessions: SessionsDep,
    task_queue: str,
    evaluation: EvaluationInput,
    workflow_id: str,
) -> None:
    """Start the window's workflow; if it cannot start, take the evaluation back out."""
    try:
        handle = await client.start_workflow(
            EvaluationWorkflow.run, evaluation, id=workflow_id, task_queue=task_queue
        )
        await handle.execute_update(EvaluationWorkflow.opened)
    except Exception:

        def take_back() -> None:
            with sessions.begin() as session:
                evaluation_id = evaluation.evaluation_id
                session.query(BallotTokenRow).filter_by(evaluation_id=evaluation_id).delete()
                session.query(EvaluationRow).filter_by(evaluation_id=evaluation_id).delete()

        await run_sync(take_back)
        raise


@router.get(
    "/rounds/{round_id}/organisations/{org_id}/evaluations",
    summary="本组织的评议",
    response_model=list[EvaluationView],
    response_model_exclude_unset=True,
)
def list_evaluations(
    round_id: str, org_id: str, session: SessionDep, user: CurrentUser
) -> list[dict[str, Any]]:
    """Every evaluation of the organisation (and its members) in the round."""
    visible_organisation(session, user, org_id)
    rows = session.scalars(
        select(EvaluationRow)
        .where(EvaluationRow.round_id == round_id, EvaluationRow.org_id == org_id)
        .order_by(EvaluationRow.created_at)
    ).all()
    return [evaluation_view(r) for r in rows]


@router.get(
    "/evaluations/{evaluation_id}",
    summary="评议状态与结果",
    response_model=EvaluationView,
    response_model_exclude_unset=True,
)
def get_evaluation(evaluation_id: str, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """Status, window, votes so far (a count only) and, once closed, the tally."""
    row = _visible(session, user, evaluation_id)
    used = session.scalar(
        select(func.count()).where(
            BallotTokenRow.evaluation_id == evaluation_id, BallotTokenRow.used.is_(True)
        )
    )
    return evaluation_view(row, used or 0)


@router.post(
    "/evaluations/{evaluation_id}/close",
    status_code=202,
    summary="提前结束投票",
    response_model=ClosedEvaluation,
    responses=errors(*TEMPORAL),
)
async def close_evaluation(
    evaluation_id: str,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    client: TemporalClientDep,
) -> dict[str, Any]:
    """The organiser closes the ballot now (the meeting is over); tallying follows."""
    row = await run_sync(_visible, session, user, evaluation_id)
    _may_open(user, EvaluationTarget(row.target))
    actor = Actor(user=user.username, name=user.display_name, role=user.role, ip=client_ip(request))
    status = await update(
        client, row.workflow_id, "close_now", CloseNow(actor=actor), EvaluationStatus
    )
    return {"evaluation_id": evaluation_id, "stage": status.stage.value}


@router.get(
    "/evaluations/{evaluation_id}/tokens",
    summary="打印一次性选票凭证（二维码）",
    response_class=Response,
    responses=file_response("text/html", "application/pdf"),
)
def print_tokens(
    evaluation_id: str,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    format: Annotated[Literal["html", "pdf"], Query()] = "html",
) -> Response:
    """The slips, while the ballot is open: an HTML page or an A4 PDF."""
    row = _visible(session, user, evaluation_id)
    _may_open(user, EvaluationTarget(row.target))
    if row.status not in ("opening", "open"):
        raise ApiError(409, "window_closed", "投票已截止，不再打印选票凭证")
    items = slips(row, settings.secret_key, str(request.base_url))
    closes_at = _local(row.closes_at) or ""
    if format == "pdf":
        return Response(
            slips_pdf(row, items, closes_at),
            media_type="application/pdf",
            headers={
                "Content-Disposition": f'attachment; filename="{evaluation_id}.pdf"',
                "Cache-Control": "no-store",
            },
        )
    response: HTMLResponse = page(
        request,
        "ballot_tokens.html",
        {"title": title_of(row), "slips": items, "closes_at": closes_at, "row": row},
    )
    response.headers["Cache-Control"] = "no-store"  # the tokens are the ballots' keys
    return response
