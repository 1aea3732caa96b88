"""The audit-log page (县委活动办): filters (person, organisation, round, action, dates in
Asia/Shanghai), the table newest first with a next-page link, and the Excel export of the
same filter. Both read through ``chuangzheng.services.audit_log``."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.auth import User
from api.deps import SessionDep
from api.errors import ApiError, as_api_error
from api.routers.audit import xlsx_response
from api.ui.render import page
from api.ui.session import UiRoute, UiUser
from chuangzheng.services import audit_log
from chuangzheng.services.audit_log import AuditFilter, action_choices
from chuangzheng.services.errors import ServiceError
from domain.calendar import SHANGHAI
from domain.organisation import Role
from domain.state import Actor

router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)
PAGE_SIZE = 100
#: The query parameters the filter form sends (kept on the export and next-page links).
FILTER_KEYS = ("person", "org", "round", "action", "from", "to")


def _actor(user: User) -> Actor:
    if user.role is not Role.COUNTY_OFFICE:
        raise ApiError(403, "forbidden", "审计日志仅县委活动办可查看")
    return Actor(user=user.username, name=user.display_name, role=user.role)


def _day(value: str, field: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ApiError(
            422, "invalid", "请求参数有误", [{"field": field, "reason": "日期格式应为 YYYY-MM-DD"}]
        ) from None


def filter_from(params: dict[str, str]) -> AuditFilter:
    """The filter from the form: dates are whole days in Asia/Shanghai, ``to`` included."""
    since, until = _day(params.get("from", ""), "from"), _day(params.get("to", ""), "to")
    return AuditFilter(
        person=params.get("person") or None,
        org_id=params.get("org") or None,
        round_id=params.get("round") or None,
        action=params.get("action") or None,
        since=datetime.combine(since, time(), SHANGHAI) if since else None,
        until=datetime.combine(until + timedelta(days=1), time(), SHANGHAI) if until else None,
    )


@router.get("/audit")
def audit_page(request: Request, session: SessionDep, user: UiUser, cursor: str = "") -> Response:
    """The filtered log, newest first, :data:`PAGE_SIZE` rows a page."""
    actor = _actor(user)
    params = {k: v for k, v in request.query_params.items() if k in FILTER_KEYS and v}
    try:
        result = audit_log.search(
            session, actor, filter_from(params), limit=PAGE_SIZE, cursor=cursor or None
        )
    except ServiceError as exc:
        raise as_api_error(exc) from None
    context: dict[str, Any] = {
        "user": user,
        "entries": result.entries,
        "next_cursor": result.next_cursor,
        "params": params,
        "actions": action_choices(),
        "first_page": not cursor,
    }
    return page(request, "audit.html", context)


@router.get("/audit.xlsx")
def audit_xlsx(request: Request, session: SessionDep, user: UiUser) -> Response:
    """The page's filter as an Excel file (every matching row, newest first)."""
    actor = _actor(user)
    params = {k: v for k, v in request.query_params.items() if k in FILTER_KEYS and v}
    try:
        data = audit_log.export_xlsx(session, actor, filter_from(params))
    except ServiceError as exc:
        raise as_api_error(exc) from None
    return xlsx_response(data, "审计日志.xlsx")
