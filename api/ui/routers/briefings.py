"""经验交流 page (总结交流经验, seed 002 §六(五)): the round's circulated briefings for everyone
in it, the submission form for secretaries and townships, and the county office's 选编交流
button with its note. Every rule is ``chuangzheng.services.briefings``'; the page renders
and posts. A refused briefing (:data:`~api.ui.forms.SHOWN_AGAIN`) answers with the page
again, its title and text as typed (the file is chosen again) and what to correct."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from activities.channels import ChannelRouter, build_notifier
from api.auth import User
from api.blocking import run_sync
from api.callers import service_caller
from api.deps import SessionDep, SessionsDep, SettingsDep
from api.errors import ApiError, as_api_error, not_found
from api.routers.briefings import attachment
from api.ui.context import round_info
from api.ui.forms import FORM_KEY, SHOWN_AGAIN, STILL_RUNNING, error_text, submitted_once
from api.ui.render import page
from api.ui.session import UiRoute, UiUser, redirect, same_origin
from chuangzheng.services import briefings
from chuangzheng.services.callers import Caller
from chuangzheng.services.errors import ServiceError
from domain.briefing import CIRCULATOR_ROLES, SUBMITTER_ROLES
from domain.organisation import Role

router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)
BACK = "/ui/briefings"


@router.get("/briefings")
async def briefings_page(
    request: Request,
    session: SessionDep,
    user: UiUser,
    round: str = "",
    msg: str = "",
    error: str = "",
) -> Response:
    """The round's briefings the caller sees, with the forms their role may use."""
    context = await run_sync(_context, session, user, service_caller(user, request), round)
    return page(request, "briefings.html", context | {"msg": msg, "error": error})


def _context(session: Session, user: User, caller: Caller, round_id: str) -> dict[str, Any]:
    info = round_info(session, round_id or None, user.counties)
    if info is None:
        raise not_found("尚无轮次")
    return {
        "user": user,
        "info": info,
        "briefings": briefings.list_briefings(session, caller, info.round_id),
        "can_submit": user.role in SUBMITTER_ROLES,
        "can_circulate": user.role in CIRCULATOR_ROLES,
        "own_org": user.scope_key if user.role is Role.SECRETARY else "",
        # The briefing form runs once per rendering (``submitted_once``).
        "form_key": uuid.uuid4().hex,
        # The briefing form's title and text as typed after a refusal; none on a GET.
        "typed": {},
    }


@router.post("/briefings")
async def post_briefing(
    request: Request, sessions: SessionsDep, settings: SettingsDep, user: UiUser
) -> Response:
    """Submit a briefing from the form (title, text, optional file)."""
    same_origin(request)
    form = await request.form()
    round_id = str(form.get("round", ""))
    upload = form.get("file")
    attachment = None
    if isinstance(upload, UploadFile) and upload.filename:
        data = await upload.read(briefings.MAX_FILE_BYTES + 1)
        attachment = briefings.Attachment(filename=upload.filename, data=data)
    caller = service_caller(user, request)

    async def submit() -> tuple[Response, bool]:
        try:
            await run_sync(
                lambda: briefings.submit(
                    sessions,
                    caller,
                    round_id,
                    title=str(form.get("title", "")),
                    text=str(form.get("text", "")),
                    org_id=user.scope_key if user.role is Role.SECRETARY else None,
                    township=user.scope_key if user.role is Role.TOWNSHIP else None,
                    attachment=attachment,
                    upload_dir=settings.upload_directory,
                )
            )
        except ServiceError as exc:
            error = as_api_error(exc)
            if error.status_code in SHOWN_AGAIN:
                raise error from None  # the key goes back; the form is shown again below
            return redirect(BACK, round=round_id, error=error_text(error)), False
        return redirect(BACK, round=round_id, msg="简报已报送，待县委活动办选编"), True

    try:
        return await submitted_once(
            sessions,
            user,
            str(form.get(FORM_KEY, "")) or None,
            submit,
            busy=lambda: redirect(BACK, round=round_id, error=STILL_RUNNING),
        )
    except ApiError as exc:
        if exc.status_code not in SHOWN_AGAIN:
            raise
        # The page again with the title and text as typed: a 50-character account of a
        # practice is not retyped for a title one character too long. The file is not kept.
        typed = {"title": str(form.get("title", "")), "text": str(form.get("text", ""))}

        def context() -> dict[str, Any]:
            with sessions() as session:
                return _context(session, user, caller, round_id)

        shown = await run_sync(context)
        again = page(
            request,
            "briefings.html",
            shown | {"typed": typed, "error": error_text(exc)},
            status_code=exc.status_code,
        )
        again.headers.update(exc.headers)
        return again


@router.post("/briefings/{briefing_id}/circulate")
async def post_circulate(
    briefing_id: str,
    request: Request,
    sessions: SessionsDep,
    settings: SettingsDep,
    user: UiUser,
) -> Response:
    """The county office selects and circulates a briefing."""
    same_origin(request)
    form = await request.form()
    round_id = str(form.get("round", ""))
    caller = service_caller(user, request)
    try:
        _, messages = await run_sync(
            lambda: briefings.circulate(
                sessions, caller, round_id, briefing_id, note=str(form.get("note", ""))
            )
        )
    except ServiceError as exc:
        error = as_api_error(exc)
        if error.status_code == 404:
            # No such briefing or round, or a round of a county the caller does not see
            # (named in the form's body): the answer itself, not a redirect to that round.
            raise error from None
        return redirect(BACK, round=round_id, error=error_text(error))
    notifier = await run_sync(build_notifier, sessions, settings)
    await briefings.send(notifier if isinstance(notifier, ChannelRouter) else None, messages)
    return redirect(BACK, round=round_id, msg=f"已选编交流，送达 {len(messages)} 个单位")


@router.get("/briefings/{briefing_id}/file")
async def briefing_file(
    briefing_id: str,
    request: Request,
    sessions: SessionsDep,
    settings: SettingsDep,
    user: UiUser,
    round: str = "",
) -> Response:
    """A briefing's attachment for the signed-in page (the API's download wants a bearer
    token, which a page does not send: it answered 401 JSON); the same visibility rule."""
    return await attachment(sessions, settings, service_caller(user, request), round, briefing_id)
