"""群众评议: the upper level (or, for its members, the organisation) opens a ballot, prints
its one-time tokens, follows it, may close it early, and reads the result.

The use cases are ``chuangzheng.services.evaluations``; the routes parse the request, call
them and map their errors to HTTP (``api.errors.as_api_error``); printing the slips (HTML
or PDF) is :mod:`api.routers.evaluation_slips`. Casting is public (``api.public.ballots``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from api.callers import service_caller
from api.deps import (
    CurrentUser,
    SessionDep,
    SessionsDep,
    SettingsDep,
    TemporalClientDep,
)
from api.errors import as_api_error
from api.idempotency import idempotent
from api.public.render import page
from api.responses import AUTHENTICATED, TEMPORAL, WITH_BODY, errors, file_response
from api.routers.evaluation_bodies import ClosedEvaluation, EvaluationView, OpenEvaluation
from api.routers.evaluation_slips import slips, slips_pdf, title_of
from chuangzheng.services import evaluations
from chuangzheng.services.errors import ServiceError
from domain.calendar import SHANGHAI

T = TypeVar("T")

router = APIRouter(
    prefix="/api/v1", tags=["群众评议 evaluations"], responses=errors(*AUTHENTICATED, 404, 409, 422)
)


def _local(moment: datetime | None) -> str | None:
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M") if moment else None


def _mapped(call: Callable[[], T]) -> T:
    try:
        return call()
    except ServiceError as exc:
        raise as_api_error(exc) from None


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
    service = evaluations.Evaluations(sessions=sessions, temporal=client, settings=settings)
    caller = service_caller(user, request)

    def check(session: Session) -> None:
        _mapped(lambda: service.check_opener(session, caller, org_id, body.target))

    async def action() -> dict[str, Any]:
        try:
            return await service.open(caller, round_id, org_id, body.request())
        except ServiceError as exc:
            raise as_api_error(exc) from None

    return await idempotent(request, sessions, user, action, status_code=201, check=check)


@router.get(
    "/rounds/{round_id}/organisations/{org_id}/evaluations",
    summary="本组织的评议",
    response_model=list[EvaluationView],
    response_model_exclude_unset=True,
)
def list_evaluations(
    round_id: str, org_id: str, request: Request, session: SessionDep, user: CurrentUser
) -> list[dict[str, Any]]:
    """Every evaluation of the organisation (and its members) in the round."""
    caller = service_caller(user, request)
    return _mapped(lambda: evaluations.evaluations_of(session, caller, round_id, org_id))


@router.get(
    "/evaluations/{evaluation_id}",
    summary="评议状态与结果",
    response_model=EvaluationView,
    response_model_exclude_unset=True,
)
def get_evaluation(
    evaluation_id: str, request: Request, session: SessionDep, user: CurrentUser
) -> dict[str, Any]:
    """Status, window, votes so far (a count only) and, once closed, the tally."""
    caller = service_caller(user, request)
    return _mapped(lambda: evaluations.evaluation(session, caller, evaluation_id))


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
    sessions: SessionsDep,
    settings: SettingsDep,
    user: CurrentUser,
    client: TemporalClientDep,
) -> dict[str, Any]:
    """The organiser closes the ballot now (the meeting is over); tallying follows."""
    service = evaluations.Evaluations(sessions=sessions, temporal=client, settings=settings)
    try:
        return await service.close(service_caller(user, request), evaluation_id)
    except ServiceError as exc:
        raise as_api_error(exc) from None


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
    caller = service_caller(user, request)
    row = _mapped(lambda: evaluations.printable(session, caller, evaluation_id))
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
