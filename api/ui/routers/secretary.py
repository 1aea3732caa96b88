"""Secretary view: my organisation's tasks and deadlines, evidence forms generated from the
plan's evidence fields (with uploads), and what was returned and why.

A refused form (:data:`~api.ui.forms.SHOWN_AGAIN`) answers with the task page again, what
was typed in its fields and what to correct, with the refusal's status: the evidence forms
(``/ui/my/submit``) and the page's other forms, the 整改报告, the 延期申请 and the 签收 reply
(``/ui/my/act``, the organisation page's actions for the secretary's own organisation)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import case, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.datastructures import UploadFile

from activities.tables import CampaignStatusRow, RoundRow
from api.auth import User
from api.blocking import run_sync
from api.deps import SessionDep, SessionsDep, TemporalClientDep, client_ip
from api.errors import ApiError, as_api_error, not_found
from api.routers import files
from api.routers.organisations import visible_organisation
from api.ui.actions import run_action
from api.ui.context import RoundInfo, round_info
from api.ui.forms import (
    BALLOT_LABELS,
    SHOWN_AGAIN,
    error_text,
    evidence_values,
    form_fields,
    local_deadline,
    prefill,
    typed_prefill,
)
from api.ui.org_view import OrgView
from api.ui.render import page
from api.ui.routers.organisation import org_view
from api.ui.session import UiRoute, UiUser, redirect, same_origin
from api.uploads import UploadStorageDep
from chuangzheng.services.errors import ServiceError
from chuangzheng.services.evidence_checks import check_evidence
from domain.evidence import BALLOT_KEYS
from domain.machine import StepStatus
from domain.organisation import Role
from domain.phases import Phase
from domain.plan import EvidenceField

router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)


def _checked(
    sessions: sessionmaker[Session], round_id: str, org_id: str, values: dict[str, Any]
) -> None:
    # A session of its own: the request's began before the form's files were uploaded (in
    # their own transaction), and a snapshot that old would not see them.
    try:
        with sessions() as session:
            check_evidence(session, round_id, org_id, values)
    except ServiceError as exc:
        raise as_api_error(exc) from None


def _my_org(user: User) -> str:
    if user.role is not Role.SECRETARY:
        raise ApiError(403, "forbidden", "此页面供党组织书记使用")
    return user.scope_key


@router.get("/my")
async def my_tasks(
    request: Request,
    session: SessionDep,
    client: TemporalClientDep,
    user: UiUser,
    round: str = "",
    msg: str = "",
    error: str = "",
) -> Response:
    if user.role is not Role.SECRETARY:
        return redirect("/ui/overview")
    info = await run_sync(_my_round, session, round, _my_org(user), user.counties)
    if info is None:
        raise not_found("尚无轮次")
    view = await org_view(session, client, user, _my_org(user), info.round_id)
    return _tasks_page(request, user, info, view, msg=msg, error=error)


def _my_round(
    session: Session, round_id: str, org_id: str, counties: frozenset[str] | None
) -> RoundInfo | None:
    """The round named, else the newest running round the organisation takes part in
    (else the newest it took part in): the county's newest round may be scoped to other
    townships, and a secretary has no round to type into the address."""
    if not round_id:
        taking_part = (
            select(RoundRow.round_id)
            .join(CampaignStatusRow, CampaignStatusRow.round_id == RoundRow.round_id)
            .where(CampaignStatusRow.org_id == org_id)
            .order_by(case((RoundRow.status == "running", 0), else_=1), RoundRow.starts_at.desc())
            .limit(1)
        )
        round_id = session.scalar(taking_part) or ""
    return round_info(session, round_id or None, counties)


def _tasks_page(
    request: Request,
    user: User,
    info: RoundInfo,
    view: OrgView,
    *,
    msg: str = "",
    error: str = "",
    shown: Callable[[EvidenceField, Any], str] = prefill,
    typed: dict[str, dict[str, str]] | None = None,
    status_code: int = 200,
) -> Response:
    """The task page; ``shown`` fills the evidence forms' inputs (after a refusal: what was
    typed, :func:`typed_prefill`); ``typed``: after a refused action form, its fields as
    typed, under the action's name (one form of each on the page; the 签收 form's by its
    ``step_id``)."""
    steps: dict[str, Any] = {}
    if view.state is not None and view.state.phase is not Phase.COMPLETED:
        steps = {
            s.id: s
            for s in info.steps(view.state.phase, view.org.type, ethnic_area=view.org.ethnic_area)
        }
    return page(
        request,
        "secretary.html",
        {
            "user": user,
            "info": info,
            "view": view,
            "steps": steps,
            "StepStatus": StepStatus,
            "prefill": shown,
            "ballot_keys": BALLOT_KEYS,
            "ballot_labels": BALLOT_LABELS,
            "form_key": uuid.uuid4().hex,
            "default_deadline": datetime.now(UTC) + timedelta(days=7),
            "typed": typed or {},
            "msg": msg,
            "error": error,
        },
        status_code=status_code,
    )


@router.post("/my/submit")
async def submit(
    request: Request,
    session: SessionDep,
    sessions: SessionsDep,
    storage: UploadStorageDep,
    client: TemporalClientDep,
    user: UiUser,
) -> Response:
    """Upload the form's files, then submit the evidence through ``submit_evidence``. The
    upper level writes the steps the plan gives it (领导点评) from the organisation's page
    with the same form, naming the organisation (``org``); the workflow checks the role."""
    same_origin(request)
    form = await request.form()
    if user.role is Role.SECRETARY:
        org_id, back = _my_org(user), "/ui/my"
    else:
        org_id = str(form.get("org", ""))
        await run_sync(visible_organisation, session, user, org_id)
        back = f"/ui/orgs/{org_id}"
    round_id = str(form.get("round", ""))
    step_id = str(form.get("step_id", ""))
    key = str(form.get("form_key", "")) or None
    info = await run_sync(round_info, session, round_id or None, user.counties)
    if info is None:
        raise not_found("尚无轮次")
    view = await org_view(session, client, user, org_id, info.round_id)
    if view.state is None or view.state.phase is Phase.COMPLETED:
        return redirect(back, round=info.round_id, error="当前没有需要提交的步骤")
    own_steps = info.steps(view.state.phase, view.org.type, ethnic_area=view.org.ethnic_area)
    step = next((s for s in own_steps if s.id == step_id), None)
    if step is None:
        return redirect(back, round=info.round_id, error="没有该步骤")

    async def upload(file: UploadFile) -> dict[str, Any]:
        # The API's upload route itself: same checks, same storage, same answer.
        # A form's file is Starlette's UploadFile; the route declares FastAPI's subclass of
        # it and uses nothing the subclass adds (the only reason for the ignore).
        return await files.upload(
            info.round_id,
            org_id,
            sessions,
            storage,
            user,
            file,  # type: ignore[arg-type]
        )

    try:
        values = await evidence_values(step, form, upload)
        # What the workflow cannot check (the files were uploaded here, the members are on
        # the roster), as the API's submissions route checks it, before the Update.
        await run_sync(_checked, sessions, info.round_id, org_id, values)
        await run_action(
            client, user, client_ip(request), round_id=info.round_id, org_id=org_id,
            name="submit_evidence", fields={"step_id": step_id, "values": values}, form_key=key,
        )  # fmt: skip
    except ApiError as exc:
        error = error_text(exc, info.field_labels())
        if user.role is not Role.SECRETARY:
            return redirect(back, round=info.round_id, error=error)
        # The secretary's own page again, with what was typed, rather than a redirect to
        # empty fields: a 50-line commitment list is not retyped for one bad line.
        typed = typed_prefill(step, form)
        again = _tasks_page(
            request, user, info, view, error=error, shown=typed, status_code=exc.status_code
        )
        again.headers.update(exc.headers)  # a 503's Retry-After
        return again
    waiting = "等待本组织签收" if Role.SECRETARY in step.deciders else "等待审核"
    return redirect(back, round=info.round_id, msg=f"“{step.name}”已提交，{waiting}")


#: What the task page says after each of its action forms went through.
_DONE = {
    "report_rectification": "整改报告已提交，等待上级复查",
    "request_extension": "延期申请已提交，等待审批",
    "decide_submission": "已签收",
}


@router.post("/my/act")
async def act(
    request: Request,
    session: SessionDep,
    client: TemporalClientDep,
    user: UiUser,
) -> Response:
    """The task page's action forms (整改报告, 延期申请, 签收) on the secretary's own
    organisation, through the organisation page's actions (``run_action``: the API's body
    models, the form's key as the command's idempotency key). A refusal in
    :data:`~api.ui.forms.SHOWN_AGAIN` answers with the task page again, the form as typed and
    what to correct; the workflow keeps no key of a refused command, so the corrected form
    goes through, once."""
    same_origin(request)
    org_id = _my_org(user)
    fields = await form_fields(request)
    round_id = str(fields.pop("round", ""))
    name = str(fields.pop("action", ""))
    key = str(fields.pop("form_key", "")) or None
    fields.pop("back", None)  # always back to the task page
    typed = {k: v for k, v in fields.items() if isinstance(v, str)}  # before any parsing
    try:
        if isinstance(fields.get("new_deadline"), str):
            fields["new_deadline"] = local_deadline(fields["new_deadline"])
        await run_action(
            client, user, client_ip(request), round_id=round_id, org_id=org_id, name=name,
            fields=fields, form_key=key,
        )  # fmt: skip
    except ApiError as exc:
        error = error_text(exc)
        info = await run_sync(round_info, session, round_id or None, user.counties)
        if exc.status_code not in SHOWN_AGAIN or info is None:
            return redirect("/ui/my", round=round_id, error=error)
        # The page again with the report, the reason, the deadline as typed: a report of a
        # few hundred characters is not retyped for one refusal.
        view = await org_view(session, client, user, org_id, info.round_id)
        again = _tasks_page(
            request, user, info, view, error=error, typed={name: typed},
            status_code=exc.status_code,
        )  # fmt: skip
        again.headers.update(exc.headers)
        return again
    return redirect("/ui/my", round=round_id, msg=_DONE.get(name, "操作成功"))
