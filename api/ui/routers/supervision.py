"""督促检查 pages: the round's spot checks (draw, re-draw check, inspection results), 座谈会 and
督查 records, and supervisors' rectification orders; an organisation's own supervision
timeline with the 限期整改 form. Every rule is the services' (``chuangzheng.services``
rectification_orders, inspections, supervision_records); pages only render and post.
Outside the caller's scope: 404, as everywhere.

A refused draw, inspection result, record or order (:data:`~api.ui.forms.SHOWN_AGAIN`) answers
with its page again, the form as typed and what to correct, not a redirect to an emptied
form. The re-draw check is a page of its own over the service the API's re-draw route calls
(that route wants a bearer token, which a page does not send).
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session, sessionmaker

from api.auth import User
from api.blocking import run_sync
from api.callers import service_caller
from api.deps import SessionDep, SessionsDep, TemporalClientDep
from api.errors import ApiError, as_api_error, not_found
from api.ui.context import RoundInfo, round_info
from api.ui.forms import (
    FORM_KEY,
    SHOWN_AGAIN,
    STILL_RUNNING,
    error_text,
    form_fields,
    submitted_once,
)
from api.ui.render import page
from api.ui.session import UiRoute, UiUser, redirect, same_origin
from chuangzheng.services import inspections, rectification_orders, supervision_records
from chuangzheng.services.callers import Caller, visible_organisation
from chuangzheng.services.errors import ServiceError
from domain.inspection import (
    DISCRETION_ROLES,
    RECORD_ROLES,
    SPOT_CHECK_ROLES,
    InspectionVerdict,
    RectificationGround,
    SupervisionKind,
)
from domain.organisation import Role
from domain.sampling import Stratum

router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)

#: Roles that see the round's supervision page (a secretary has their own task page).
READERS = frozenset(set(RECORD_ROLES) | {Role.ASSESSMENT_GROUP, Role.LEADING_CADRE})


def _round_page(session: Any, caller: Caller, round_id: str) -> dict[str, Any]:
    return {
        "draws": [d.document() for d in inspections.list_draws(session, caller, round_id)],
        "records": [
            r.document() for r in supervision_records.list_records(session, caller, round_id)
        ],
        "orders": [
            rectification_orders.order_document(o)
            for o in rectification_orders.list_orders(session, caller, round_id)
        ],
        "organisations": supervision_records.round_organisations(session, caller, round_id),
    }


def _choices() -> dict[str, Any]:
    return {
        "STRATA": [(s.value, s.label) for s in Stratum],
        "VERDICTS": [(v.value, v.label) for v in InspectionVerdict if v.value != "pending"],
        "KINDS": [(k.value, k.label) for k in SupervisionKind],
        "GROUNDS": [(g.value, g.label) for g in RectificationGround if g.value != "spot_check"],
        "STRATUM_LABELS": {s.value: s.label for s in Stratum},
    }


def _round_context(session: Any, user: User, caller: Caller, info: RoundInfo) -> dict[str, Any]:
    data = _round_page(session, caller, info.round_id)
    return {
        "user": user,
        "info": info,
        "names": dict(data["organisations"]),
        "can_draw": user.role in SPOT_CHECK_ROLES,
        "can_record": user.role in RECORD_ROLES,
        # One key per rendering: the draw and the record forms each run once however
        # often they are posted (``submitted_once``); the redirect renders a new one.
        "form_key": uuid.uuid4().hex,
        # A refused form's fields as typed, by form ("record", "result"); none on a GET.
        "typed": {},
        **data,
        **_choices(),
    }


@router.get("/supervision")
async def supervision_page(
    request: Request,
    session: SessionDep,
    user: UiUser,
    round: str = "",
    msg: str = "",
    error: str = "",
) -> Response:
    """The round's spot checks, supervision records and orders in the caller's scope."""
    if user.role not in READERS:
        raise not_found()
    info = await run_sync(round_info, session, round or None, user.counties)
    if info is None:
        raise not_found("尚无轮次")
    caller = service_caller(user, request)
    context = await run_sync(_round_context, session, user, caller, info)
    return page(request, "supervision.html", context | {"msg": msg, "error": error})


#: Where the round page's forms return.
BACK = "/ui/supervision"


async def _round_again(
    request: Request,
    sessions: sessionmaker[Session],
    user: User,
    round_id: str,
    exc: ApiError,
    typed: dict[str, Any],
) -> Response:
    """The round page again after a refused form: the form as typed (``typed``, by form)
    and what to correct, with the refusal's status."""
    if user.role not in READERS:  # no page to show again: where the redirect went before
        return redirect(BACK, round=round_id, error=error_text(exc))
    caller = service_caller(user, request)

    def context() -> dict[str, Any]:
        with sessions() as session:
            info = round_info(session, round_id or None, user.counties)
            if info is None:
                raise not_found("尚无轮次")
            return _round_context(session, user, caller, info)

    shown = await run_sync(context)
    again = page(
        request,
        "supervision.html",
        shown | {"typed": typed, "error": error_text(exc)},
        status_code=exc.status_code,
    )
    again.headers.update(exc.headers)
    return again


def _redraw_page(session: Any, caller: Caller, round_id: str, draw_id: str) -> dict[str, Any]:
    found = inspections.get_draw(session, caller, round_id, draw_id)
    again = inspections.redraw(session, caller, round_id, draw_id)
    return {
        "draw": found.document(),
        "recorded": list(again.recorded),
        "redrawn": list(again.redrawn),
        "same": again.same,
        "names": dict(supervision_records.round_organisations(session, caller, round_id)),
    }


@router.get("/supervision/draws/{draw_id}/redraw")
async def redraw_page(
    request: Request,
    draw_id: str,
    session: SessionDep,
    user: UiUser,
    round: str = "",
) -> Response:
    """A spot check drawn again from its record (population, size, stratification, seed),
    beside the sample recorded, and whether the two agree: the check the round page links,
    through ``inspections.redraw`` as the API's re-draw route."""
    if user.role not in READERS:
        raise not_found()
    info = await run_sync(round_info, session, round or None, user.counties)
    if info is None:
        raise not_found("尚无轮次")
    caller = service_caller(user, request)
    try:
        data = await run_sync(_redraw_page, session, caller, info.round_id, draw_id)
    except ServiceError as exc:
        raise as_api_error(exc) from None
    return page(
        request,
        "supervision_redraw.html",
        {"user": user, "info": info, **data, **_choices()},
    )


@router.post("/supervision/draws")
async def post_draw(request: Request, sessions: SessionsDep, user: UiUser) -> Response:
    """Draw a spot-check sample from the form; refused (:data:`~api.ui.forms.SHOWN_AGAIN`:
    a size that is not a number, a share outside 0–1), the page again with the form as typed
    and what to correct, and the form's key given back."""
    same_origin(request)
    fields = await form_fields(request)
    round_id = str(fields.pop("round", ""))
    body: dict[str, Any] = {"stratify_by": fields.get("stratify_by") or "none"}
    if str(fields.get("seed", "")).strip():
        body["seed"] = str(fields["seed"]).strip()
    size = str(fields.get("size", "")).strip()
    if fields.get("size_kind") == "share":
        body["share"] = size
    else:
        body["count"] = size
    key = str(fields.pop(FORM_KEY, "")) or None

    async def submit() -> tuple[Response, bool]:
        try:
            made = await inspections.draw(
                sessions, service_caller(user, request), round_id, inspections.parse_draw(body)
            )
        except ServiceError as exc:
            error = as_api_error(exc)
            if error.status_code in SHOWN_AGAIN:
                raise error from None  # the key goes back; the form is shown again below
            return redirect(BACK, round=round_id, error=error_text(error)), False
        drawn = "、".join(made.row.sample["org_ids"])
        return redirect(BACK, round=round_id, msg=f"已抽取（种子 {made.row.seed}）：{drawn}"), True

    try:
        return await submitted_once(sessions, user, key, submit, busy=lambda: _busy(round_id))
    except ApiError as exc:
        if exc.status_code not in SHOWN_AGAIN:
            raise
        typed = {
            k: str(fields.get(k, "") or "") for k in ("size_kind", "size", "stratify_by", "seed")
        }
        return await _round_again(request, sessions, user, round_id, exc, {"draw": typed})


def _busy(round_id: str) -> Response:
    return redirect(BACK, round=round_id, error=STILL_RUNNING)


@router.post("/supervision/inspections/{inspection_id}")
async def post_result(
    request: Request,
    inspection_id: str,
    sessions: SessionsDep,
    client: TemporalClientDep,
    user: UiUser,
) -> Response:
    """Record an inspection's result from the form (差 orders rectification)."""
    same_origin(request)
    fields = await form_fields(request)
    round_id = str(fields.pop("round", ""))
    period = str(fields.get("period_working_days", "")).strip()
    body = {
        "inspectors": fields.get("inspectors", ""),
        "inspected_on": fields.get("inspected_on", ""),
        "findings": fields.get("findings", ""),
        "verdict": fields.get("verdict", ""),
        "period_working_days": period or None,
    }
    try:
        await inspections.record_result(
            sessions,
            client,
            service_caller(user, request),
            round_id=round_id,
            inspection_id=inspection_id,
            result=inspections.parse_result(body),
        )
    except ServiceError as exc:
        error = as_api_error(exc)
        if error.status_code not in SHOWN_AGAIN:
            return redirect(BACK, round=round_id, error=error_text(error))
        typed = {k: str(v or "") for k, v in body.items()} | {"inspection_id": inspection_id}
        return await _round_again(request, sessions, user, round_id, error, {"result": typed})
    return redirect(BACK, round=round_id, msg="抽查结果已记录")


@router.post("/supervision/records")
async def post_record(request: Request, sessions: SessionsDep, user: UiUser) -> Response:
    """Keep a 座谈会 or 督查 record from the form."""
    same_origin(request)
    fields = await form_fields(request)
    round_id = str(fields.pop("round", ""))
    orgs = fields.get("org_ids", [])
    typed_supervisors = str(fields.get("supervisors", ""))
    supervisors = typed_supervisors.replace("，", "、").replace(",", "、")
    body = {
        "kind": fields.get("kind", ""),
        "held_on": fields.get("held_on", ""),
        "title": fields.get("title", ""),
        "supervisors": [s.strip() for s in supervisors.split("、") if s.strip()],
        "org_ids": orgs if isinstance(orgs, list) else [orgs],
        "findings": fields.get("findings", ""),
        "follow_ups": fields.get("follow_ups", ""),
    }
    caller = service_caller(user, request)
    key = str(fields.pop(FORM_KEY, "")) or None

    def store() -> None:
        request_ = supervision_records.parse_request(body)
        with sessions.begin() as session:
            supervision_records.record(session, caller, round_id, request_)

    async def submit() -> tuple[Response, bool]:
        try:
            await run_sync(store)
        except ServiceError as exc:
            error = as_api_error(exc)
            if error.status_code in SHOWN_AGAIN:
                raise error from None  # the key goes back; the form is shown again below
            return redirect(BACK, round=round_id, error=error_text(error)), False
        return redirect(BACK, round=round_id, msg="督查记录已保存"), True

    try:
        return await submitted_once(sessions, user, key, submit, busy=lambda: _busy(round_id))
    except ApiError as exc:
        if exc.status_code not in SHOWN_AGAIN:
            raise
        typed = {k: str(v or "") for k, v in body.items() if isinstance(v, str)} | {
            "supervisors": typed_supervisors,
            "org_ids": [str(o) for o in body["org_ids"]],
        }
        return await _round_again(request, sessions, user, round_id, exc, {"record": typed})


def _org_page(session: Any, caller: Caller, round_id: str, org_id: str) -> dict[str, Any]:
    org = visible_organisation(session, caller, org_id)
    return {
        "org": org,
        "records": [
            r.document()
            for r in supervision_records.list_records(session, caller, round_id, org_id=org_id)
        ],
        "inspections": [
            inspections.inspection_document(i)
            for i in inspections.list_inspections(session, caller, round_id, org_id=org_id)
        ],
        "orders": [
            rectification_orders.order_document(o)
            for o in rectification_orders.list_orders(session, caller, round_id, org_id=org_id)
        ],
    }


@router.get("/orgs/{org_id}/supervision")
async def org_supervision_page(
    request: Request,
    org_id: str,
    session: SessionDep,
    user: UiUser,
    round: str = "",
    msg: str = "",
    error: str = "",
) -> Response:
    """An organisation's supervision timeline and, for those who may, the 限期整改 form."""
    caller = service_caller(user, request)
    try:
        context = await run_sync(_org_context, session, user, caller, round, org_id)
    except ServiceError as exc:
        raise as_api_error(exc) from None
    return page(request, "org_supervision.html", context | {"msg": msg, "error": error})


def _org_context(
    session: Any, user: User, caller: Caller, round_id: str, org_id: str
) -> dict[str, Any]:
    # 404 for an organisation outside the caller's scope first: nothing about the round leaks.
    visible_organisation(session, caller, org_id)
    info = round_info(session, round_id or None, user.counties)
    if info is None:
        raise not_found("尚无轮次")
    return {
        "user": user,
        "info": info,
        "can_order": user.role in DISCRETION_ROLES,
        "form_key": uuid.uuid4().hex,
        # The 限期整改 form as typed after a refusal; none on a GET.
        "typed": {},
        **_org_page(session, caller, info.round_id, org_id),
        **_choices(),
    }


async def _org_again(
    request: Request,
    sessions: sessionmaker[Session],
    user: User,
    round_id: str,
    org_id: str,
    exc: ApiError,
    typed: dict[str, Any],
) -> Response:
    """The organisation's supervision page again after a refused order: the form as typed
    and what to correct, with the refusal's status."""
    caller = service_caller(user, request)

    def context() -> dict[str, Any]:
        with sessions() as session:
            return _org_context(session, user, caller, round_id, org_id)

    try:
        shown = await run_sync(context)
    except ServiceError as error:
        raise as_api_error(error) from None
    again = page(
        request,
        "org_supervision.html",
        shown | {"typed": typed, "error": error_text(exc)},
        status_code=exc.status_code,
    )
    again.headers.update(exc.headers)
    return again


@router.post("/orgs/{org_id}/rectification-orders")
async def post_order(
    request: Request,
    org_id: str,
    sessions: SessionsDep,
    client: TemporalClientDep,
    user: UiUser,
) -> Response:
    """Order rectification at discretion from the form (the form's key makes a double
    submit one order)."""
    same_origin(request)
    fields = await form_fields(request)
    round_id = str(fields.pop("round", ""))
    key = str(fields.pop("form_key", "")) or None
    back = f"/ui/orgs/{org_id}/supervision"
    typed = {
        "ground": str(fields.get("ground", "")),
        "reason": str(fields.get("reason", "")),
        "period_working_days": str(fields.get("period_working_days", "")),
    }
    try:
        await rectification_orders.order_rectification(
            sessions,
            client,
            service_caller(user, request),
            round_id=round_id,
            org_id=org_id,
            request=rectification_orders.parse_request(dict(typed)),
            idempotency_key=f"ui-order-{key}" if key else None,
        )
    except ServiceError as exc:
        error = as_api_error(exc)
        if error.status_code == 404:
            raise error from None
        if error.status_code in SHOWN_AGAIN:
            return await _org_again(request, sessions, user, round_id, org_id, error, typed)
        return redirect(back, round=round_id, error=error_text(error))
    return redirect(back, round=round_id, msg="已下达限期整改通知")
