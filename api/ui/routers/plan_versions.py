"""The round's plan page (县委活动办): the version in force, every version with what it
changed, and the form that previews and applies a new version (the plan's YAML edited).

Thin: everything goes through ``chuangzheng.services.plan_versions``. A refused draft is
shown again with the reasons, field by field, so the county office loses nothing it typed.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.auth import User
from api.blocking import run_sync
from api.deps import SessionDep, SessionsDep, TemporalClientDep, client_ip
from api.errors import ApiError
from api.ui.forms import form_fields
from api.ui.render import page
from api.ui.session import UiRoute, UiUser, redirect, same_origin
from chuangzheng.services import plan_versions
from chuangzheng.services.errors import NotFound, ServiceError
from chuangzheng.services.plan_versions import PlanVersionPreview
from domain.organisation import Role
from domain.state import Actor

router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)


def _actor(user: User, request: Request) -> Actor:
    if user.role is not Role.COUNTY_OFFICE:
        raise ApiError(403, "forbidden", "只有县委活动办可以调整本轮计划")
    return Actor(user=user.username, name=user.display_name, role=user.role, ip=client_ip(request))


async def _render(
    request: Request,
    session: Any,
    sessions: Any,
    client: Any,
    user: User,
    actor: Actor,
    round_id: str,
    *,
    draft: str | None = None,
    reason: str = "",
    preview: PlanVersionPreview | None = None,
    error: ServiceError | None = None,
    msg: str = "",
) -> Response:
    try:
        versions = await run_sync(plan_versions.plan_versions, session, round_id)
    except NotFound:
        raise ApiError(404, "not_found", "轮次不存在") from None
    current = None
    unavailable = ""
    try:
        current = await plan_versions.current_plan(sessions, client, round_id, caller=actor)
    except ServiceError as exc:  # not kicked off, legacy round, Temporal down: say so
        unavailable = exc.message
    context: dict[str, Any] = {
        "user": user,
        "round_id": round_id,
        "versions": versions,
        "current": current,
        "unavailable": unavailable,
        "draft": draft if draft is not None else (current.yaml_text() if current else ""),
        "reason": reason,
        "base_version": preview.base_version if preview else (current.version if current else ""),
        "preview": preview,
        "error": error,
        "msg": msg,
        "form_key": uuid.uuid4().hex,
    }
    return page(request, "plan_versions.html", context, status_code=422 if error else 200)


@router.get("/rounds/{round_id}/plan")
async def plan_page(
    round_id: str,
    request: Request,
    session: SessionDep,
    sessions: SessionsDep,
    client: TemporalClientDep,
    user: UiUser,
    msg: str = "",
) -> Response:
    """The version in force, the versions with what each changed, the form."""
    actor = _actor(user, request)
    return await _render(request, session, sessions, client, user, actor, round_id, msg=msg)


@router.post("/rounds/{round_id}/plan")
async def plan_post(
    round_id: str,
    request: Request,
    session: SessionDep,
    sessions: SessionsDep,
    client: TemporalClientDep,
    user: UiUser,
) -> Response:
    """预览 (check and show what changes) or 启用 (apply once per form key)."""
    same_origin(request)
    actor = _actor(user, request)
    fields = await form_fields(request)
    text = str(fields.get("plan_yaml", ""))
    reason = str(fields.get("reason", ""))
    base = str(fields.get("base_version", "")).strip()
    key = str(fields.get("form_key", "")).strip() or uuid.uuid4().hex
    try:
        draft = plan_versions.parse_draft(text)
        if fields.get("do") == "apply":
            applied = await plan_versions.apply_plan_version(
                sessions,
                client,
                round_id,
                draft,
                reason=reason,
                caller=actor,
                idempotency_key=f"ui:{key}",
                base_version=int(base) if base.isdecimal() else None,
            )
            done = "已启用" if applied.applied else "此前已启用"
            return redirect(f"/ui/rounds/{round_id}/plan", msg=f"{done}计划第{applied.version}版")
        preview = await plan_versions.preview_plan_version(
            sessions, client, round_id, draft, caller=actor
        )
    except ServiceError as exc:
        return await _render(
            request, session, sessions, client, user, actor, round_id,
            draft=text, reason=reason, error=exc,
        )  # fmt: skip
    return await _render(
        request, session, sessions, client, user, actor, round_id,
        draft=text, reason=reason, preview=preview,
    )  # fmt: skip
