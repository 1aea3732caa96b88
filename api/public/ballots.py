"""Public ballot pages, no login: the ballot reached by a token (the QR code's URL), casting,
and the published results.

The token travels in the URL only to show the ballot (that is what a QR code can carry);
the form posts it in its body to ``/ballot``, so the casting request's URL holds no token.
A ballot is checked, its token burnt and the ballot stored in one transaction
(``activities.evaluations.cast_ballot``); nothing about the caster is logged here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from activities.evaluations import (
    BallotRefused,
    cast_ballot,
    find_token,
    items_of,
    refuse_unless_open,
)
from activities.tables import EvaluationItemRow, EvaluationRow
from api.blocking import run_sync
from api.deps import SessionDep, SessionsDep
from api.public.render import page
from domain.evaluation import EvaluationResult, EvaluationTarget, Rating

router = APIRouter(tags=["公开页面 public"], include_in_schema=False)
RATINGS = [(r.value, r.label) for r in Rating]
#: Where a cast ballot lands (post/redirect/get): refreshing it shows the thanks again
#: instead of posting the burnt token a second time, which answered "已经投过票" (409).
THANKS = "/ballot/thanks"


def _refused(request: Request, refusal: BallotRefused) -> HTMLResponse:
    return page(
        request,
        "ballot_message.html",
        {"title": "无法投票", "message": refusal.message, "code": refusal.code, "errors": []},
        status_code=refusal.status,
    )


def _what(row: EvaluationRow) -> str:
    kind = "党员评议" if row.target == EvaluationTarget.MEMBER.value else "群众评议"
    return f"{row.subject} · {kind}"


@router.get("/ballot/results/{evaluation_id}", response_class=HTMLResponse)
def results(evaluation_id: str, request: Request, session: SessionDep) -> HTMLResponse:
    """The tally per item, only once published (a result below the quorum never is)."""
    row = session.get(EvaluationRow, evaluation_id)
    if row is None or row.status != "published" or row.result is None:
        return page(
            request,
            "ballot_message.html",
            {"title": "结果未公布", "message": "该评议结果尚未公布", "code": "not_published"},
            status_code=404,
        )
    items = session.scalars(
        select(EvaluationItemRow)
        .where(EvaluationItemRow.evaluation_id == evaluation_id)
        .order_by(EvaluationItemRow.position)
    ).all()
    result = EvaluationResult.model_validate(row.result)
    return page(
        request,
        "ballot_results.html",
        {"title": _what(row), "row": row, "items": items, "result": result},
    )


@router.get(THANKS, response_class=HTMLResponse)
def thanks(request: Request) -> HTMLResponse:
    """After casting (declared before ``/ballot/{token}``, which would take the path)."""
    return page(
        request,
        "ballot_message.html",
        {
            "title": "投票成功",
            "message": "感谢参与！您的选票已记录，本凭证已作废。",
            "code": "cast",
        },
    )


@router.get("/ballot/{token}", response_class=HTMLResponse)
def ballot(token: str, request: Request, session: SessionDep) -> HTMLResponse:
    """The ballot: every item with 满意 / 比较满意 / 基本满意 / 不满意."""
    try:
        row, evaluation = find_token(session, token)
        if row.used:
            raise BallotRefused(409, "token_used", "该选票凭证已经投过票，每张凭证只能投一次")
        refuse_unless_open(evaluation, datetime.now(UTC))
    except BallotRefused as refusal:
        return _refused(request, refusal)
    return _form(request, evaluation, token, {}, [])


def _form(
    request: Request,
    evaluation: EvaluationRow,
    token: str,
    chosen: dict[str, str],
    errors: list[Any],
    status_code: int = 200,
) -> HTMLResponse:
    return page(
        request,
        "ballot.html",
        {
            "title": _what(evaluation),
            "evaluation": evaluation,
            "items": items_of(evaluation),
            "ratings": RATINGS,
            "token": token,
            "chosen": chosen,
            "errors": errors,
        },
        status_code=status_code,
    )


@router.post("/ballot", response_class=HTMLResponse)
async def cast(request: Request, sessions: SessionsDep) -> Response:
    """Cast a ballot: one per token, only while the window is open; a cast ballot
    redirects to :data:`THANKS`, a refused one is answered here (an incomplete one with
    its form again, the ticked answers kept)."""
    form = await request.form()
    token = str(form.get("token", ""))
    ratings = {str(k): str(v) for k, v in form.items() if k != "token"}
    try:
        await run_sync(cast_ballot, sessions, token, ratings, datetime.now(UTC))
    except BallotRefused as refusal:
        if refusal.code != "invalid_ballot":
            return _refused(request, refusal)

        def evaluation_of() -> Any:
            with sessions() as session:
                return find_token(session, token)[1]

        evaluation = await run_sync(evaluation_of)
        return _form(request, evaluation, token, ratings, refusal.errors, refusal.status)
    return RedirectResponse(THANKS, status_code=303)
