"""指导小组 page (分系统指导小组, seed 002 §六(二); issue 15): the county's guidance groups as
data, with the county office's form to define a new one or rename one. The rules are
``chuangzheng.services.guidance_groups``'; the page renders and posts."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.blocking import run_sync
from api.callers import service_caller
from api.deps import SessionDep, SessionsDep
from api.errors import ApiError, as_api_error
from api.ui.render import forget_system_names, page
from api.ui.session import UiRoute, UiUser, redirect, same_origin
from chuangzheng.services import guidance_groups
from chuangzheng.services.errors import ServiceError

router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)
BACK = "/ui/systems"


def _error_text(exc: ServiceError) -> str:
    api = as_api_error(exc)
    reasons = "；".join(f"{e.get('field')}：{e.get('reason')}" for e in api.errors)
    return api.message + (f"（{reasons}）" if reasons else "")


@router.get("/systems")
def systems_page(
    request: Request, session: SessionDep, user: UiUser, msg: str = "", error: str = ""
) -> Response:
    """The county's guidance groups (county office)."""
    if user.role not in guidance_groups.MANAGERS:
        raise ApiError(403, "forbidden", guidance_groups.FORBIDDEN)
    groups = guidance_groups.list_groups(session, user.county)
    context = {"user": user, "info": None, "groups": groups, "msg": msg, "error": error}
    return page(request, "systems.html", context)


@router.post("/systems")
async def post_system(request: Request, sessions: SessionsDep, user: UiUser) -> Response:
    """Define or rename a guidance group from the form (key, name, leading department)."""
    same_origin(request)
    form = await request.form()
    caller = service_caller(user, request)

    def save() -> str:
        group = guidance_groups.check_group(
            str(form.get("key", "")).strip(),
            str(form.get("name", "")),
            str(form.get("department", "")),
        )
        with sessions.begin() as session:
            return guidance_groups.save_group(session, caller, group).group.label

    try:
        label = await run_sync(save)
    except ServiceError as exc:
        return redirect(BACK, error=_error_text(exc))
    forget_system_names()
    return redirect(BACK, msg=f"已保存：{label}")
