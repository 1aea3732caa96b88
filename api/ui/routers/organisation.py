"""Organisation page: the timeline of phases, steps, submissions (with files), escalations
and notices; supervisor actions as forms that run the API's Updates. Outside scope: 404."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from activities.tables import UploadedFileRow
from api.blocking import run_sync
from api.deps import SessionDep, SessionsDep, SettingsDep, TemporalClientDep, client_ip
from api.errors import ApiError, not_found
from api.routers.organisations import visible_organisation
from api.ui.actions import run_action
from api.ui.context import round_info
from api.ui.forms import error_text, form_fields, local_deadline
from api.ui.org_view import OrgView, load_records, load_state
from api.ui.render import page
from api.ui.session import UiRoute, UiUser, redirect, same_origin
from api.ui.supervise import extend, remind, require_supervisor
from api.uploads import UploadStorageDep, download_response
from chuangzheng.services.forecast import kept_forecasts
from domain.forecast import Forecast
from domain.organisation import Role
from domain.phases import WORKING_PHASES
from domain.state import RectificationStatus

router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)


async def org_view(
    session: SessionDep, client: TemporalClientDep, user: Any, org_id: str, round_id: str
) -> OrgView:
    """The organisation (404 outside the caller's scope) in the round; the read model is
    read in the threadpool, the workflow's state by a query on the loop."""
    org = await run_sync(visible_organisation, session, user, org_id)
    view = OrgView(org=org, round_id=round_id, status=None, state=None)
    try:
        view.state = await load_state(client, round_id, org_id)
    except ApiError as exc:
        view.query_error = exc.message
    await run_sync(load_records, session, view)
    return view


@router.get("/orgs/{org_id}")
async def organisation_page(
    request: Request,
    org_id: str,
    session: SessionDep,
    client: TemporalClientDep,
    settings: SettingsDep,
    user: UiUser,
    round: str = "",
    msg: str = "",
    error: str = "",
) -> Response:
    # 404 first: nothing about the round leaks.
    await run_sync(visible_organisation, session, user, org_id)
    info = await run_sync(round_info, session, round or None, user.counties)
    if info is None:
        raise not_found("尚无轮次")
    view = await org_view(session, client, user, org_id, info.round_id)
    supervisor = user.role in (
        Role.COUNTY_OFFICE, Role.GUIDANCE_GROUP, Role.TOWNSHIP, Role.INSTRUCTOR
    )  # fmt: skip
    # The forecast is a supervision aid: shown to supervisors, for the open phases.
    forecasts: list[Forecast] = []
    if supervisor:
        _, kept = await run_sync(
            kept_forecasts, session, info.round_id, settings.data_dir,
            now=datetime.now(UTC), org_ids=[org_id],
        )  # fmt: skip
        forecasts = sorted(kept.values(), key=lambda f: WORKING_PHASES.index(f.phase))
    # The current phase's step plans: who may write or decide each step (领导点评).
    steps: dict[str, Any] = {}
    if view.state is not None and view.state.phase in WORKING_PHASES:
        steps = {
            s.id: s
            for s in info.steps(view.state.phase, view.org.type, ethnic_area=view.org.ethnic_area)
        }
    return page(
        request,
        "organisation.html",
        {
            "user": user,
            "info": info,
            "view": view,
            "steps": steps,
            "supervisor": supervisor,
            "form_key": uuid.uuid4().hex,
            "RectificationStatus": RectificationStatus,
            "default_deadline": datetime.now(UTC) + timedelta(days=7),
            "msg": msg,
            "error": error,
            "forecasts": forecasts,
        },
    )


@router.post("/orgs/{org_id}/act")
async def act(
    request: Request,
    org_id: str,
    session: SessionDep,
    sessions: SessionsDep,
    settings: SettingsDep,
    client: TemporalClientDep,
    user: UiUser,
) -> Response:
    """Run one supervisor action from the page; back to the page with the outcome."""
    same_origin(request)
    org = await run_sync(visible_organisation, session, user, org_id)
    fields = await form_fields(request)
    round_id = str(fields.pop("round", ""))
    name = str(fields.pop("action", ""))
    key = str(fields.pop("form_key", "")) or None
    back = str(fields.pop("back", ""))
    back = back if back.startswith("/ui/") and "//" not in back else f"/ui/orgs/{org_id}"
    ip = client_ip(request)
    try:
        if isinstance(fields.get("new_deadline"), str):
            fields["new_deadline"] = local_deadline(fields["new_deadline"])
        if name == "extend":
            require_supervisor(user)
            message = await extend(
                client, user, ip, round_id=round_id, org_id=org_id,
                new_deadline=fields.get("new_deadline") or local_deadline(""),
                reason=str(fields.get("reason", "")), form_key=key or uuid.uuid4().hex,
            )  # fmt: skip
        elif name == "remind":
            sent = await remind(
                client, sessions, user, ip, round_id=round_id, org=org,
                task_queue=settings.task_queue, now=datetime.now(UTC),
            )  # fmt: skip
            message = "已催办" if sent else "今日已催办过，未重复发送"
        else:
            await run_action(
                client, user, ip, round_id=round_id, org_id=org_id, name=name,
                fields=fields, form_key=key,
            )  # fmt: skip
            message = "操作成功"
    except ApiError as exc:
        return redirect(back, round=round_id, error=error_text(exc))
    return redirect(back, round=round_id, msg=message)


@router.get("/files/{round_id}/{org_id}/{sha256}")
def download(
    round_id: str,
    org_id: str,
    sha256: str,
    session: SessionDep,
    storage: UploadStorageDep,
    user: UiUser,
) -> Response:
    """An uploaded evidence file, for those who may see the organisation (streamed from the
    configured storage: a directory or an S3-compatible bucket)."""
    visible_organisation(session, user, org_id)
    row = session.get(UploadedFileRow, f"{round_id}/{org_id}/{sha256}")
    served = (
        None
        if row is None
        else download_response(
            storage, sha256, filename=row.filename, content_type=row.content_type
        )
    )
    if row is None or served is None:
        raise not_found("文件不存在")
    return served
