"""评选表彰 pages: the assessment group's list of declarations with each organisation's
campaign record beside their own sheet's state, and the county office's ranking with every
score explained (评分表得分 + 活动记录分, seed 002 §五(五) "结合年度考核、日常检查"). Every
rule is ``chuangzheng.services.commendation``'s; the pages only render."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.blocking import run_sync
from api.callers import service_caller
from api.deps import SessionDep
from api.errors import as_api_error, not_found
from api.ui.context import round_info
from api.ui.render import page
from api.ui.session import UiRoute, UiUser
from chuangzheng.services import commendation
from chuangzheng.services.errors import ServiceError

router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)

#: Who has a page here: the assessors (their declarations) and the county office (ranking).
READERS = commendation.ASSESSORS | commendation.DECIDERS


@router.get("/commendation")
async def commendation_page(
    request: Request, session: SessionDep, user: UiUser, round: str = ""
) -> Response:
    """Declarations with their campaign record; for the county office, the ranking too."""
    if user.role not in READERS:
        raise not_found()
    info = await run_sync(round_info, session, round or None, user.counties)
    if info is None:
        raise not_found("尚无轮次")
    caller = service_caller(user, request)

    def load() -> dict[str, Any]:
        data: dict[str, Any] = {
            "declarations": commendation.declarations(session, caller, info.round_id)
        }
        if user.role in commendation.DECIDERS:
            data["ranking"] = commendation.ranking(session, caller, info.round_id)
        else:
            context = commendation.commendation_round(session, info.round_id)
            data["score_rule"] = commendation.score_rule(context.rules)
        return data

    try:
        data = await run_sync(load)
    except ServiceError as exc:
        raise as_api_error(exc) from None
    return page(request, "commendation.html", {"user": user, "info": info, **data})
