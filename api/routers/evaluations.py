"""群众评议: the upper level (or, for its members, the organisation) opens a ballot, prints
its one-time tokens, follows it, may close it early, and reads the result.

The use cases are ``chuangzheng.services.evaluations``; the routes parse the request, call
them and map their errors to HTTP (``api.errors.as_api_error``); printing the slips (HTML
or PDF, a page of them per request, drawn off the event loop) is
:mod:`api.routers.evaluation_slips`. Casting is public (``api.public.ballots``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session, sessionmaker

from activities.tables import EvaluationRow
from api.blocking import parse_off_loop, run_sync
from api.callers import service_caller
from api.deps import (
    CurrentUser,
    SessionDep,
    SessionsDep,
    SettingsDep,
    TemporalClientDep,
)
from api.errors import ApiError, as_api_error
from api.idempotency import idempotent
from api.public.render import page as page_of
from api.responses import AUTHENTICATED, TEMPORAL, WITH_BODY, errors, file_response
from api.routers.evaluation_bodies import ClosedEvaluation, EvaluationView, OpenEvaluation
from api.routers.evaluation_slips import (
    SLIPS_PER_PAGE,
    issued,
    page_count,
    printed,
    qr_svgs,
    slips,
    slips_pdf,
    title_of,
)
from chuangzheng.services import evaluations
from chuangzheng.services.callers import Caller
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


_INTEGER = {"type": "integer"}
_SLIP_PAGE_HEADERS = {
    "X-Total-Count": {"description": "本次评议的选票凭证总张数（所有页）", "schema": _INTEGER},
    "X-Page-Count": {"description": f"总页数（每页 {SLIPS_PER_PAGE} 张）", "schema": _INTEGER},
    "Link": {
        "description": '下一页的地址（rel="next"）；最后一页没有此头',
        "schema": {"type": "string"},
    },
}


def _printable(
    sessions: sessionmaker[Session], caller: Caller, evaluation_id: str
) -> EvaluationRow:
    with sessions() as session:
        return _mapped(lambda: evaluations.printable(session, caller, evaluation_id))


@router.get(
    "/evaluations/{evaluation_id}/tokens",
    summary="打印一次性选票凭证（二维码，分页）",
    response_class=Response,
    responses={
        200: file_response("text/html", "application/pdf")[200] | {"headers": _SLIP_PAGE_HEADERS}
    },
)
async def print_tokens(
    evaluation_id: str,
    request: Request,
    sessions: SessionsDep,
    user: CurrentUser,
    settings: SettingsDep,
    format: Annotated[Literal["html", "pdf"], Query()] = "html",
    page: Annotated[
        int, Query(ge=1, le=10_000, description=f"第几页（从 1 起，每页 {SLIPS_PER_PAGE} 张）")
    ] = 1,
) -> Response:
    """One page of the slips, while the ballot is open: an HTML page or an A4 PDF. The QR
    codes and the PDF are drawn in a parse process (CPU-bound: in a thread they would hold
    the GIL and stall every other request); the headers give the total, the page count and,
    unless this is the last page, the next page's address."""
    caller = service_caller(user, request)
    row = await run_sync(_printable, sessions, caller, evaluation_id)
    pages = page_count(row)
    if page > pages:
        reason = f"共 {pages} 页，没有第 {page} 页"
        raise ApiError(422, "invalid", "页码超出范围", [{"field": "page", "reason": reason}])
    items = slips(row, settings.secret_key, str(request.base_url), page)
    closes_at = _local(row.closes_at) or ""
    headers = {
        "Cache-Control": "no-store",  # the tokens are the ballots' keys
        "X-Total-Count": str(issued(row)),
        "X-Page-Count": str(pages),
    }
    if page < pages:
        headers["Link"] = f'<{request.url.include_query_params(page=page + 1)}>; rel="next"'
    if format == "pdf":
        suffix = f"-{page}" if pages > 1 else ""
        content = await parse_off_loop(slips_pdf, title_of(row), printed(items), closes_at)
        return Response(
            content,
            media_type="application/pdf",
            headers=headers
            | {"Content-Disposition": f'attachment; filename="{evaluation_id}{suffix}.pdf"'},
        )
    svgs = await parse_off_loop(qr_svgs, [s.url for s in items])
    drawn = [replace(s, svg=svg) for s, svg in zip(items, svgs, strict=True)]
    context = {"title": title_of(row), "slips": drawn, "closes_at": closes_at, "row": row}
    context |= {"page": page, "pages": pages, "total": issued(row)}
    response: HTMLResponse = page_of(request, "ballot_tokens.html", context)
    response.headers.update(headers)
    return response
