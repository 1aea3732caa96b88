"""推演 page (县委活动办): draft a change to the running round — extend a phase for everyone
or a township, add or move a rung, change the rectification period — rehearse it over the
live county in the background, and read both arms and their difference here or in Excel;
a finished result is applied as the round's next plan version in one action (采用此方案);
beside it, the round's 预警 threshold (its change is audited). Other roles: 403. Every rule
is the services' (``chuangzheng.services.what_if``, ``…forecast_warning``)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select

from activities.tables import CampaignStatusRow
from api.auth import User
from api.blocking import run_sync
from api.callers import service_caller
from api.deps import SessionDep, SessionsDep, SettingsDep, TemporalClientDep
from api.errors import ApiError, as_api_error, not_found
from api.routers.audit import xlsx_response
from api.ui.context import round_info
from api.ui.forms import form_fields
from api.ui.render import page
from api.ui.session import UiRoute, UiUser, redirect, same_origin
from chuangzheng.services import forecast_warning, what_if, what_if_jobs
from chuangzheng.services.errors import ServiceError
from domain.organisation import Role
from domain.phases import WORKING_PHASES
from domain.what_if import ChangeKind

router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)
BACK = "/ui/what-if"
#: Organisations whose outcome changes, listed on the page (all of them are in the Excel).
LISTED = 50


def _county_office(user: User) -> None:
    if user.role is not Role.COUNTY_OFFICE:
        raise ApiError(403, "forbidden", "推演仅县委活动办可用")


def _error_text(exc: ApiError) -> str:
    reasons = "；".join(f"{e.get('field')}：{e.get('reason')}" for e in exc.errors)
    return exc.message + (f"（{reasons}）" if reasons else "")


def _refused(round_id: str, exc: ServiceError) -> Response:
    """Back to the page with what the service said; a 404 (no such round, or one of a county
    the caller does not see: the form names it in its body) is the answer itself, not a
    redirect to a page about that round."""
    error = as_api_error(exc)
    if error.status_code == 404:
        raise error from None
    return redirect(BACK, round=round_id, error=_error_text(error))


def _page_data(session: Any, round_id: str, data_dir: Any) -> dict[str, Any]:
    townships = sorted(
        session.scalars(
            select(CampaignStatusRow.township)
            .where(CampaignStatusRow.round_id == round_id)
            .distinct()
        )
    )
    return {
        "townships": townships,
        "job": what_if_jobs.job_status(data_dir, round_id),
        "result": what_if_jobs.job_result(data_dir, round_id),
        "rung": forecast_warning.round_rung(session, round_id),
        "threshold": forecast_warning.round_threshold(session, round_id),
    }


@router.get("/what-if")
async def what_if_page(
    request: Request,
    session: SessionDep,
    user: UiUser,
    settings: SettingsDep,
    round: str = "",
    msg: str = "",
    error: str = "",
) -> Response:
    """The draft form, the latest job's status (refreshing while it runs) and its result."""
    _county_office(user)
    info = await run_sync(round_info, session, round or None, user.counties)
    if info is None:
        raise not_found("尚无轮次")
    data = await run_sync(_page_data, session, info.round_id, settings.data_dir)
    ladder = info.plan.ladder_for(info.round_plan) if info.plan and info.round_plan else None
    unit = "分钟" if ladder and ladder.rungs[0].delay.minutes is not None else "个工作日"
    result = data["result"]
    changed = sorted(result.changed_outcomes.items())[:LISTED] if result else []
    return page(
        request,
        "what_if.html",
        {
            "user": user,
            "info": info,
            "msg": msg,
            "error": error,
            "unit": unit,
            "rungs": [r.name for r in ladder.rungs] if ladder else [],
            "KINDS": [(k.value, k.label) for k in ChangeKind],
            "PHASES": [(p.value, p.label) for p in WORKING_PHASES],
            "RECIPIENTS": [
                (r.value, r.label)
                for r in (Role.INSTRUCTOR, Role.TOWNSHIP, Role.GUIDANCE_GROUP, Role.COUNTY_OFFICE)
            ],
            "OUTCOMES": what_if.OUTCOME_LABELS,
            "changed": changed,
            "listed": LISTED,
            # One per page view: a double click on 采用此方案 posts the same key.
            "form_key": uuid.uuid4().hex,
            **data,
        },
    )


def _span(value: object, unit: str) -> dict[str, int] | None:
    text = str(value or "").strip()
    if not text:
        return None
    try:
        amount = int(text)
    except ValueError:
        # Kept as text: the draft's own validation names the field and the reason.
        return {unit: text}  # type: ignore[dict-item]
    return {unit: amount}


@router.post("/what-if")
async def post_what_if(
    request: Request, sessions: SessionsDep, user: UiUser, settings: SettingsDep
) -> Response:
    """Start the rehearsal of the drafted change."""
    _county_office(user)
    same_origin(request)
    fields = await form_fields(request)
    round_id = str(fields.get("round", ""))
    unit = "minutes" if fields.get("unit") == "minutes" else "working_days"
    kind = str(fields.get("kind", ""))
    change: dict[str, Any] = {"kind": kind, "reason": str(fields.get("reason", "")).strip()}
    if kind == ChangeKind.EXTEND_PHASE.value:
        change |= {
            "phase": fields.get("phase") or None,
            "township": fields.get("township") or None,
            "by": _span(fields.get("amount"), unit),
        }
    elif kind == ChangeKind.ADD_RUNG.value:
        change |= {
            "rung_name": str(fields.get("new_rung", "")).strip() or None,
            "recipient": fields.get("recipient") or None,
            "delay": _span(fields.get("amount"), unit),
        }
    elif kind == ChangeKind.MOVE_RUNG.value:
        change |= {
            "rung_name": fields.get("rung") or None,
            "delay": _span(fields.get("amount"), unit),
        }
    else:
        change |= {"period": _span(fields.get("amount"), unit)}
    seed_text = str(fields.get("seed", "")).strip() or "1"
    caller = service_caller(user, request)

    def start() -> None:
        try:
            seed = int(seed_text)
        except ValueError:
            raise ApiError(
                422, "invalid", "随机种子有误", [{"field": "seed", "reason": "须为非负整数"}]
            ) from None
        draft = what_if.parse_change(change)
        with sessions.begin() as session:
            what_if_jobs.start_job(
                session,
                caller,
                round_id,
                draft,
                data_dir=settings.data_dir,
                seed=seed,
                launch=what_if_jobs.launcher(settings.database_url),
            )

    try:
        await run_sync(start)
    except ServiceError as exc:
        return _refused(round_id, exc)
    except ApiError as exc:
        return redirect(BACK, round=round_id, error=_error_text(exc))
    return redirect(BACK, round=round_id, msg="推演已开始，页面将自动刷新")


@router.post("/what-if/apply")
async def post_apply(
    request: Request,
    sessions: SessionsDep,
    client: TemporalClientDep,
    user: UiUser,
    settings: SettingsDep,
) -> Response:
    """采用此方案: the reviewed what-if becomes the round's next plan version, applied once
    per form key (a double click applies once)."""
    _county_office(user)
    same_origin(request)
    fields = await form_fields(request)
    round_id = str(fields.get("round", ""))
    key = str(fields.get("form_key", "")).strip() or uuid.uuid4().hex
    try:
        applied = await what_if.apply_what_if(
            sessions,
            client,
            what_if_jobs.job_result(settings.data_dir, round_id),
            round_id,
            job_id=str(fields.get("job_id", "")),
            reason=str(fields.get("reason", "")),
            caller=service_caller(user, request),
            idempotency_key=f"what-if:{key}",
        )
    except ServiceError as exc:
        return _refused(round_id, exc)
    done = "已采用推演方案，启用" if applied.applied else "此前已采用，无新调整："
    return redirect(BACK, round=round_id, msg=f"{done}计划第{applied.version}版")


@router.post("/what-if/threshold")
async def post_threshold(request: Request, sessions: SessionsDep, user: UiUser) -> Response:
    """Change the round's 预警 threshold (audited)."""
    _county_office(user)
    same_origin(request)
    fields = await form_fields(request)
    round_id = str(fields.get("round", ""))
    caller = service_caller(user, request)
    text = str(fields.get("threshold", "")).strip().rstrip("%")

    def change() -> float:
        try:
            value = float(text)
        except ValueError:
            raise ApiError(
                422, "invalid", "预警线有误", [{"field": "threshold", "reason": "须为数字"}]
            ) from None
        # The form takes a percentage (30 means 30 %); a share below 1 is taken as is.
        threshold = value / 100 if value >= 1 else value
        with sessions.begin() as session:
            made = forecast_warning.set_round_threshold(
                session, caller, round_id, threshold, reason=str(fields.get("reason", ""))
            )
        return made.threshold

    try:
        threshold = await run_sync(change)
    except ServiceError as exc:
        return _refused(round_id, exc)
    except ApiError as exc:
        return redirect(BACK, round=round_id, error=_error_text(exc))
    return redirect(BACK, round=round_id, msg=f"预警线已改为 {threshold:.0%}")


@router.get("/what-if.xlsx")
async def what_if_xlsx(
    request: Request, session: SessionDep, user: UiUser, settings: SettingsDep, round: str = ""
) -> Response:
    """The latest finished what-if as Excel."""
    _county_office(user)
    info = await run_sync(round_info, session, round or None, user.counties)
    if info is None:
        raise not_found("尚无轮次")
    result = what_if_jobs.job_result(settings.data_dir, info.round_id)
    if result is None:
        raise not_found("本轮尚无推演结果")
    return xlsx_response(what_if.export_xlsx(result), "推演结果.xlsx")
