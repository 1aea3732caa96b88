"""A county's guidance groups (分系统指导小组) as data (issue 15): every signed-in role of a
county lists them; the county office defines and renames them. The rules are
``chuangzheng.services.guidance_groups``'."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from api.callers import service_caller
from api.deps import CurrentUser, SessionDep, SessionsDep, require_role
from api.errors import as_api_error
from api.responses import AUTHENTICATED, WITH_BODY, errors
from api.ui.render import forget_system_names
from chuangzheng.services import guidance_groups
from chuangzheng.services.errors import ServiceError
from domain.organisation import ABOVE_COUNTY_ROLES, Role

router = APIRouter(prefix="/api/v1", tags=["名册 roster"], responses=errors(*AUTHENTICATED))


class GuidanceGroupView(BaseModel):
    """A guidance group of the caller's county and its active organisations."""

    key: str
    name: str
    department: str
    label: str
    organisations: int


class GuidanceGroupBody(BaseModel):
    """A guidance group's name and leading department (the key is the path's)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="指导小组名称，如“街道社区指导小组”")
    department: str = Field(default="", description="牵头部门，如“县委组织部”")


@router.get(
    "/guidance-groups",
    summary="本县指导小组（分系统）",
    response_model=list[GuidanceGroupView],
    responses=errors(403),
)
def list_groups(session: SessionDep, user: CurrentUser) -> list[dict[str, Any]]:
    """The guidance groups of the caller's county, in order, with their organisations."""
    if user.role in ABOVE_COUNTY_ROLES:
        require_role(user, Role.COUNTY_OFFICE)  # no county of its own: 403
    return [v.document() for v in guidance_groups.list_groups(session, user.county)]


@router.put(
    "/guidance-groups/{key}",
    summary="设立或修改指导小组",
    response_model=GuidanceGroupView,
    responses=errors(403, 404, *WITH_BODY),
)
def save_group(
    key: str, body: GuidanceGroupBody, request: Request, sessions: SessionsDep, user: CurrentUser
) -> dict[str, Any]:
    """Define the group ``key`` in the caller's county, or rename it (county office;
    audited). Organisations name it in the roster's 所属系统 column afterwards."""
    require_role(user, *guidance_groups.MANAGERS)  # before the body's checks: 403 first
    caller = service_caller(user, request)
    try:
        group = guidance_groups.check_group(key, body.name, body.department)
        with sessions.begin() as session:
            saved = guidance_groups.save_group(session, caller, group).document()
    except ServiceError as exc:
        raise as_api_error(exc) from None
    forget_system_names()  # the pages' memoised names
    return saved
