"""The audit log (县委活动办): who did what, when, from where; filtered, paged, to Excel.

Thin routes over ``chuangzheng.services.audit_log``. Times in the answer are UTC with
their offset (``at``) and as Asia/Shanghai wall time (``at_local``), as the page shows them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel

from api.auth import User
from api.deps import CurrentUser, SessionDep, require_role
from api.errors import as_api_error
from api.responses import AUTHENTICATED, Timestamp, errors
from chuangzheng.services import audit_log
from chuangzheng.services.audit_log import AuditEntry, AuditFilter
from chuangzheng.services.errors import ServiceError
from domain.organisation import Role
from domain.state import Actor

router = APIRouter(
    prefix="/api/v1", tags=["审计 audit"], responses=errors(*AUTHENTICATED, 403, 422)
)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class AuditEntryView(BaseModel):
    """One action in the log."""

    audit_id: str
    at: Timestamp
    at_local: str
    user: str
    role: str | None
    role_label: str
    action: str
    action_label: str
    round_id: str | None
    org_id: str | None
    ip: str | None
    detail: dict[str, Any]


class AuditPageView(BaseModel):
    """A page of the log, newest first; ``next_cursor`` (pass it back as ``cursor``) is
    null on the last page."""

    items: list[AuditEntryView]
    next_cursor: str | None


def _actor(user: User) -> Actor:
    require_role(user, Role.COUNTY_OFFICE)
    return Actor(user=user.username, name=user.display_name, role=user.role)


def audit_filter(
    person: str | None = None,
    org_id: str | None = None,
    round_id: str | None = None,
    action: str | None = None,
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: datetime | None = None,
) -> AuditFilter:
    """The filters from the query string (``from`` inclusive, ``to`` exclusive)."""
    return AuditFilter(
        person=person or None,
        org_id=org_id or None,
        round_id=round_id or None,
        action=action or None,
        since=from_,
        until=to,
    )


def entry_view(entry: AuditEntry) -> dict[str, Any]:
    """An entry as the API answers it."""
    return {
        "audit_id": entry.audit_id,
        "at": entry.at,
        "at_local": entry.local_at,
        "user": entry.user,
        "role": entry.role,
        "role_label": entry.role_label,
        "action": entry.action,
        "action_label": entry.action_label,
        "round_id": entry.round_id,
        "org_id": entry.org_id,
        "ip": entry.ip,
        "detail": entry.detail,
    }


@router.get("/audit", summary="审计日志（筛选、分页）", response_model=AuditPageView)
def audit(
    session: SessionDep,
    user: CurrentUser,
    person: str | None = None,
    org_id: str | None = None,
    round_id: str | None = None,
    action: str | None = None,
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: datetime | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=audit_log.MAX_PAGE)] = 100,
) -> dict[str, Any]:
    """The log, newest first, filtered by person (account), organisation, round, action and
    time (``from`` inclusive, ``to`` exclusive, with their offset)."""
    filters = audit_filter(person, org_id, round_id, action, from_, to)
    try:
        page = audit_log.search(session, _actor(user), filters, limit=limit, cursor=cursor)
    except ServiceError as exc:
        raise as_api_error(exc) from None
    return {"items": [entry_view(e) for e in page.entries], "next_cursor": page.next_cursor}


@router.get(
    "/audit.xlsx",
    summary="审计日志导出 Excel",
    response_class=Response,
    responses={200: {"content": {XLSX: {}}, "description": "审计日志 .xlsx"}},
)
def audit_xlsx(
    session: SessionDep,
    user: CurrentUser,
    person: str | None = None,
    org_id: str | None = None,
    round_id: str | None = None,
    action: str | None = None,
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: datetime | None = None,
) -> Response:
    """The same filter as ``/audit``, every matching row (newest first) in one sheet."""
    filters = audit_filter(person, org_id, round_id, action, from_, to)
    try:
        data = audit_log.export_xlsx(session, _actor(user), filters)
    except ServiceError as exc:
        raise as_api_error(exc) from None
    return xlsx_response(data, "审计日志.xlsx")


def xlsx_response(data: bytes, filename: str) -> Response:
    """An .xlsx download named ``filename`` (UTF-8, as browsers read it)."""
    disposition = f"attachment; filename*=UTF-8''{quote(filename)}"
    return Response(data, media_type=XLSX, headers={"Content-Disposition": disposition})
