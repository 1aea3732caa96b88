"""联系点: the county office links a leading cadre (党员领导干部, role ``leading_cadre``) to the
organisations of their contact point; the cadre lists their own. See
``chuangzheng.services.contact_points``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from api.blocking import run_sync
from api.callers import service_caller
from api.deps import CurrentUser, SessionDep, SessionsDep
from api.errors import as_api_error
from api.idempotency import idempotent
from api.responses import AUTHENTICATED, WITH_BODY, errors
from chuangzheng.services import contact_points
from chuangzheng.services.contact_points import ContactPointRequest
from chuangzheng.services.errors import ServiceError

router = APIRouter(
    prefix="/api/v1", tags=["督促检查 supervision"], responses=errors(*AUTHENTICATED)
)


class ContactPointView(BaseModel):
    """A contact point and its organisations."""

    point_id: str
    cadre_key: str
    cadre_name: str
    title: str
    org_ids: list[str]
    created_by: str
    created_at: datetime


@router.post(
    "/contact-points",
    status_code=201,
    summary="设置领导干部联系点",
    response_model=ContactPointView,
    responses=errors(*WITH_BODY),
)
async def create_contact_point(
    body: ContactPointRequest, request: Request, user: CurrentUser, sessions: SessionsDep
) -> Any:
    """Link a cadre (their account's scope key) to organisations of the roster; audited."""
    caller = service_caller(user, request)

    def store() -> dict[str, Any]:
        try:
            with sessions.begin() as session:
                return contact_points.save_contact_point(session, caller, body).document()
        except ServiceError as exc:
            raise as_api_error(exc) from None

    async def action() -> dict[str, Any]:
        return await run_sync(store)

    return await idempotent(request, sessions, user, action, status_code=201)


@router.put(
    "/contact-points/{point_id}",
    summary="修改领导干部联系点",
    response_model=ContactPointView,
    responses=errors(404, *WITH_BODY),
)
def replace_contact_point(
    point_id: str,
    body: ContactPointRequest,
    request: Request,
    user: CurrentUser,
    sessions: SessionsDep,
) -> dict[str, Any]:
    """Replace a contact point's cadre, capacity and organisations; audited."""
    caller = service_caller(user, request)
    try:
        with sessions.begin() as session:
            saved = contact_points.save_contact_point(session, caller, body, point_id=point_id)
            return saved.document()
    except ServiceError as exc:
        raise as_api_error(exc) from None


@router.get("/contact-points", summary="领导干部联系点", response_model=list[ContactPointView])
def list_contact_points(
    request: Request, session: SessionDep, user: CurrentUser
) -> list[dict[str, Any]]:
    """Every contact point (county office) or the cadre's own."""
    try:
        found = contact_points.list_contact_points(
            session, service_caller(user, request), user.scope_key
        )
    except ServiceError as exc:
        raise as_api_error(exc) from None
    return [p.document() for p in found]
