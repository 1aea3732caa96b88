"""Laggard list: sortable and filterable (township, system, type, phase, light, rung), with
working days overdue and the current rung; bulk remind and extend for supervisors."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.auth import User
from api.blocking import run_sync
from api.deps import SessionDep, SessionsDep, SettingsDep, TemporalClientDep, client_ip
from api.errors import ApiError, not_found
from api.routers.organisations import visible_organisation
from api.ui.context import Overdue, RoundInfo, round_info, rounds
from api.ui.forms import form_fields, local_deadline
from api.ui.queries import (
    ANY_LIGHT,
    SORT_KEYS,
    Filters,
    Laggard,
    laggard_page,
    laggards,
    township_options,
)
from api.ui.render import page, pager
from api.ui.session import UiRoute, UiUser, redirect, same_origin
from api.ui.supervise import extend, remind, require_supervisor
from chuangzheng.services.forecast import by_organisation, kept_forecasts

router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)
PAGE_SIZE = 100
BULK_CONCURRENCY = 8


@dataclass(frozen=True)
class LaggardLine:
    """A laggard with what the list computes: working days overdue and the rung's name."""

    row: Laggard
    days_overdue: int
    rung_name: str


def laggard_lines(
    session: SessionDep, user: User, info: RoundInfo, filters: Filters, sort: str, desc: bool
) -> list[LaggardLine]:
    """The filtered laggards, sorted in Python (the most overdue first by default): only for
    what needs every row in Python (the forecast's ``risk`` sort and ``warn`` filter); every
    other list is sorted and paged by the database (:func:`api.ui.queries.laggard_page`)."""
    days = Overdue(info.calendar, datetime.now(UTC))
    lines = [
        LaggardLine(r, days(r.deadline, r.overdue), info.rung_name(r.top_rung))
        for r in laggards(session, user, info.round_id, filters)
    ]
    key = SORT_KEYS.get(sort, SORT_KEYS["overdue"])
    lines.sort(key=lambda ln: (key(ln.row, ln.days_overdue), ln.row.org_id), reverse=desc)
    return lines


def filters_from(params: dict[str, str]) -> Filters:
    """The list filters from query parameters."""
    return Filters(
        township=params.get("township", ""),
        system=params.get("system", ""),
        org_type=params.get("type", ""),
        phase=params.get("phase", ""),
        light=params.get("light", ""),
        rung=params.get("rung", ""),
    )


@router.get("/laggards")
def laggard_list(
    request: Request, session: SessionDep, settings: SettingsDep, user: UiUser, round: str = "",
    msg: str = "", error: str = "", sort: str = "overdue", dir: str = "desc", page_no: int = 1,
) -> Response:  # fmt: skip
    info = round_info(session, round or None, user.counties)
    if info is None:
        raise not_found("尚无轮次")
    params = dict(request.query_params)
    filters = filters_from(params)
    warn_only = params.get("warn") == "1"
    if warn_only and not filters.light:  # 预警 is about organisations still green, too
        filters = replace(filters, light=ANY_LIGHT)
    if warn_only or sort == "risk":  # the forecast is not in the database: every row here
        lines = laggard_lines(session, user, info, filters, sort, dir != "asc")
        # The forecast of each listed organisation's current phase (none until a model is kept).
        _, forecasts = kept_forecasts(
            session, info.round_id, settings.data_dir, now=datetime.now(UTC),
            org_ids=[ln.row.org_id for ln in lines],
        )  # fmt: skip
        forecast_of = by_organisation(forecasts, {ln.row.org_id: ln.row.phase for ln in lines})
        if warn_only:
            lines = [ln for ln in lines if (f := forecast_of.get(ln.row.org_id)) and f.warn]
        if sort == "risk":

            def risk(ln: LaggardLine) -> tuple[float, str]:
                f = forecast_of.get(ln.row.org_id)
                return (f.probability if f else -1.0, ln.row.org_id)

            lines.sort(key=risk, reverse=dir != "asc")
        total = len(lines)
        pages = max(1, -(-total // PAGE_SIZE))
        page_no = min(max(1, page_no), pages)
        shown = lines[(page_no - 1) * PAGE_SIZE : page_no * PAGE_SIZE]
    else:  # counted, sorted and paged by the database; the forecast of the page's rows only
        days = Overdue(info.calendar, datetime.now(UTC))
        total, page_no, rows = laggard_page(
            session, user, info.round_id, filters, sort, dir != "asc", days,
            page_no=page_no, page_size=PAGE_SIZE,
        )  # fmt: skip
        pages = max(1, -(-total // PAGE_SIZE))
        shown = [
            LaggardLine(r, days(r.deadline, r.overdue), info.rung_name(r.top_rung)) for r in rows
        ]
        _, forecasts = kept_forecasts(
            session, info.round_id, settings.data_dir, now=datetime.now(UTC),
            org_ids=[ln.row.org_id for ln in shown],
        )  # fmt: skip
        forecast_of = by_organisation(forecasts, {ln.row.org_id: ln.row.phase for ln in shown})
    query = {k: v for k, v in params.items() if k not in ("sort", "dir", "page_no", "msg", "error")}
    townships = township_options(session, user, info.round_id)
    return page(
        request,
        "laggards.html",
        {
            "user": user, "info": info, "rounds": rounds(session, user.counties), "lines": shown,
            "total": total, "page_no": page_no, "pages": pages, "sort": sort, "dir": dir,
            "query": query, "filters": filters, "townships": townships, "msg": msg,
            "error": error, "form_key": uuid.uuid4().hex,
            "default_deadline": datetime.now(UTC) + timedelta(days=7),
            "forecast_of": forecast_of, "warn_only": warn_only,
            "pager": pager(page_no, pages),
        },
    )  # fmt: skip


@router.post("/laggards/bulk")
async def bulk(
    request: Request,
    session: SessionDep,
    sessions: SessionsDep,
    settings: SettingsDep,
    client: TemporalClientDep,
    user: UiUser,
) -> Response:
    """Remind or extend the ticked organisations; each is scope-checked and reported."""
    same_origin(request)
    require_supervisor(user)
    fields = await form_fields(request)
    round_id = str(fields.get("round", ""))
    chosen = fields.get("org_id", [])
    org_ids = [chosen] if isinstance(chosen, str) else list(chosen)
    back = str(fields.get("back", "/ui/laggards"))
    back = back if back.startswith("/ui/laggards") else "/ui/laggards"
    if not org_ids:
        return redirect(back, error="请先勾选单位")
    orgs = await run_sync(  # 404 outside scope
        lambda: [visible_organisation(session, user, o) for o in org_ids]
    )
    what = str(fields.get("bulk_action", ""))
    key = str(fields.get("form_key", "")) or uuid.uuid4().hex
    ip = client_ip(request)
    now = datetime.now(UTC)
    limit = asyncio.Semaphore(BULK_CONCURRENCY)

    async def one(org: Any) -> tuple[str, str | None]:
        async with limit:
            try:
                if what == "remind":
                    sent = await remind(
                        client, sessions, user, ip, round_id=round_id, org=org,
                        task_queue=settings.task_queue, now=now,
                    )  # fmt: skip
                    return ("sent" if sent else "again"), None
                if what == "extend":
                    await extend(
                        client, user, ip, round_id=round_id, org_id=org.id,
                        new_deadline=local_deadline(str(fields.get("new_deadline", ""))),
                        reason=str(fields.get("reason", "")), form_key=f"{key}:{org.id}",
                    )  # fmt: skip
                    return "done", None
                raise ApiError(422, "invalid", "未知的批量操作")
            except ApiError as exc:
                return "failed", f"{org.name}：{exc.message}"

    results = await asyncio.gather(*(one(o) for o in orgs))
    return redirect(back, **_summary(what, results))


def _summary(what: str, results: list[tuple[str, str | None]]) -> dict[str, str]:
    count = {k: sum(1 for r, _ in results if r == k) for k in ("sent", "again", "done", "failed")}
    failures = "；".join(e for _, e in results if e)
    verb = "催办" if what == "remind" else "延期"
    ok = count["sent"] + count["done"]
    again = f"，今日已催办过 {count['again']} 个" if count["again"] else ""
    msg = f"{verb}成功 {ok} 个单位{again}"
    return {"msg": msg, "error": f"失败 {count['failed']} 个：{failures}" if failures else ""}
