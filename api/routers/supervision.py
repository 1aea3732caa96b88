"""Supervision views of a round, within the caller's scope: counts by township, system or
type × phase with lights; the overdue list; escalations; the forecast of missed deadlines."""

from __future__ import annotations

import base64
from collections import defaultdict
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel
from sqlalchemy import and_, func, or_, select

from activities.tables import CampaignStatusRow, EscalationRow, OrganisationRow
from api.deps import CurrentUser, SessionDep, SettingsDep
from api.errors import ApiError
from api.responses import AUTHENTICATED, Timestamp, errors
from api.scope import scope_condition
from chuangzheng.services.forecast import kept_forecasts

router = APIRouter(
    prefix="/api/v1/rounds/{round_id}/supervision",
    tags=["督查 supervision"],
    responses=errors(*AUTHENTICATED, 404, 422),
)

_GROUP_COLUMNS = {
    "township": CampaignStatusRow.township,
    "system": CampaignStatusRow.system,
    "type": CampaignStatusRow.org_type,
}


class Counts(BaseModel):
    """A group's totals: by phase and light (phase -> light -> count), by light, overdue."""

    total: int
    overdue: int
    by_phase: dict[str, dict[str, int]]
    by_light: dict[str, int]


class CountsByTownship(Counts):
    """Counts of one township (``by=township``)."""

    township: str


class CountsBySystem(Counts):
    """Counts of one system (``by=system``)."""

    system: str


class CountsByType(Counts):
    """Counts of one organisation type (``by=type``)."""

    type: str


class OverdueOrganisation(BaseModel):
    """An organisation past its current phase's deadline."""

    org_id: str
    org_name: str
    township: str
    phase: str
    phase_status: str | None
    deadline: Timestamp | None
    top_rung: int | None
    light: str


class Escalation(BaseModel):
    """A rung that fired, and who signed for it."""

    org_id: str
    phase: str
    rung: int
    name: str
    recipient_role: str
    recipient_key: str
    fired_at: Timestamp
    working_days_overdue: int
    acknowledged_by: str | None
    acknowledged_at: Timestamp | None


class ForecastItem(BaseModel):
    """One organisation's forecast for one open phase: the probability of missing its
    deadline, whether it is above the warning threshold (预警), and the main reasons."""

    org_id: str
    org_name: str
    township: str
    phase: str
    probability: float
    warn: bool
    reasons: list[str]


class ForecastList(BaseModel):
    """The round's forecasts within the caller's scope, the likeliest misses first; no
    items and ``fitted`` false until a forecast model has been fitted and kept."""

    fitted: bool
    threshold: float | None
    fitted_on: str
    items: list[ForecastItem]


def _in_scope(user: CurrentUser) -> Any:
    return select(OrganisationRow.org_id).where(scope_condition(user))


@router.get(
    "/counts",
    summary="分乡镇/系统/类型 × 阶段 统计（含亮灯）",
    response_model=list[CountsByTownship | CountsBySystem | CountsByType],
)
def counts(
    round_id: str,
    session: SessionDep,
    user: CurrentUser,
    by: Literal["township", "system", "type"] = "township",
) -> list[dict[str, Any]]:
    """One row per group: totals by phase and by light, and how many are overdue."""
    column = _GROUP_COLUMNS[by]
    rows = session.execute(
        select(
            column,
            CampaignStatusRow.phase,
            CampaignStatusRow.light,
            CampaignStatusRow.overdue,
            func.count(),
        )
        .where(CampaignStatusRow.round_id == round_id)
        .where(CampaignStatusRow.org_id.in_(_in_scope(user)))
        .group_by(
            column, CampaignStatusRow.phase, CampaignStatusRow.light, CampaignStatusRow.overdue
        )
    ).all()
    groups: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"total": 0, "overdue": 0, "by_phase": defaultdict(dict), "by_light": {}}
    )
    for key, phase, light, overdue, n in rows:
        group = groups[key]
        group["total"] += n
        group["overdue"] += n if overdue else 0
        group["by_light"][light] = group["by_light"].get(light, 0) + n
        cell = group["by_phase"][phase]
        cell[light] = cell.get(light, 0) + n
    return [{by: key, **value} for key, value in sorted(groups.items())]


OVERDUE_PAGE = 500  # a county's overdue list fits in one page; a province's is paged
OVERDUE_MAX_PAGE = 5000
_PAGE_HEADERS = {
    "X-Total-Count": {
        "description": "这一筛选下的逾期组织总数（所有页）",
        "schema": {"type": "integer"},
    },
    "X-Next-Cursor": {
        "description": "下一页的游标（作为 cursor 传回）；最后一页没有此头",
        "schema": {"type": "string"},
    },
    "Link": {
        "description": '下一页的地址（rel="next"）；最后一页没有此头',
        "schema": {"type": "string"},
    },
}


def _cursor(deadline: datetime, org_id: str) -> str:
    raw = f"{deadline.astimezone(UTC).isoformat()}|{org_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _after(cursor: str) -> tuple[datetime, str]:
    """The (deadline, org_id) a cursor names; 422 for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, org_id = raw.split("|", 1)
        deadline = datetime.fromisoformat(at)
        if deadline.tzinfo is None or not org_id:
            raise ValueError(cursor)
    except ValueError:
        raise ApiError(422, "invalid", "分页游标无效") from None
    return deadline, org_id


@router.get(
    "/overdue",
    summary="逾期组织（按截止时间分页）",
    response_model=list[OverdueOrganisation],
    responses={200: {"headers": _PAGE_HEADERS}},
)
def overdue(
    round_id: str,
    request: Request,
    response: Response,
    session: SessionDep,
    user: CurrentUser,
    cursor: Annotated[
        str | None, Query(description="上一页响应头 X-Next-Cursor 的值；不传为第一页")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=OVERDUE_MAX_PAGE, description="每页条数")] = OVERDUE_PAGE,
) -> list[dict[str, Any]]:
    """Organisations past their current phase's deadline, the longest-overdue first
    (deadline, then organisation id), a page at a time. The body is the page's list; the
    headers carry the total (``X-Total-Count``) and, unless this is the last page, the
    cursor of the next (``X-Next-Cursor``, also as a ``Link: rel="next"``). The cursor
    names the last row returned, so rows written between two requests are neither repeated
    nor skipped (a row whose deadline moves is listed where it now belongs)."""
    s = CampaignStatusRow
    listed = (
        select(s)
        .where(s.round_id == round_id, s.overdue.is_(True), s.deadline.is_not(None))
        .where(s.org_id.in_(_in_scope(user)))
    )
    total = session.scalar(select(func.count()).select_from(listed.subquery())) or 0
    page = listed
    if cursor:
        deadline, org_id = _after(cursor)
        page = page.where(
            or_(s.deadline > deadline, and_(s.deadline == deadline, s.org_id > org_id))
        )
    rows = session.scalars(page.order_by(s.deadline, s.org_id).limit(limit + 1)).all()
    more, rows = len(rows) > limit, rows[:limit]
    response.headers["X-Total-Count"] = str(total)
    if more and rows[-1].deadline is not None:
        after = _cursor(rows[-1].deadline, rows[-1].org_id)
        response.headers["X-Next-Cursor"] = after
        following = request.url.include_query_params(cursor=after, limit=limit)
        response.headers["Link"] = f'<{following}>; rel="next"'
    return [
        {
            "org_id": r.org_id,
            "org_name": r.org_name,
            "township": r.township,
            "phase": r.phase,
            "phase_status": r.phase_status,
            "deadline": r.deadline,
            "top_rung": r.top_rung,
            "light": r.light,
        }
        for r in rows
    ]


@router.get("/forecast", summary="逾期风险预测（含主要原因）", response_model=ForecastList)
def forecast(
    round_id: str, session: SessionDep, settings: SettingsDep, user: CurrentUser
) -> dict[str, Any]:
    """Every open organisation and phase in scope with its forecast (read only)."""
    names = {
        r.org_id: (r.org_name, r.township)
        for r in session.execute(
            select(CampaignStatusRow.org_id, CampaignStatusRow.org_name, CampaignStatusRow.township)
            .where(CampaignStatusRow.round_id == round_id)
            .where(CampaignStatusRow.org_id.in_(_in_scope(user)))
        ).all()
    }
    model, forecasts = kept_forecasts(
        session, round_id, settings.data_dir, now=datetime.now(UTC), org_ids=names
    )
    items = [
        {
            "org_id": org_id,
            "org_name": names[org_id][0],
            "township": names[org_id][1],
            "phase": phase.value,
            "probability": round(f.probability, 4),
            "warn": f.warn,
            "reasons": [r.text for r in f.reasons],
        }
        for (org_id, phase), f in forecasts.items()
    ]
    items.sort(key=lambda i: (-i["probability"], i["org_id"], i["phase"]))
    return {
        "fitted": model is not None,
        "threshold": model.threshold if model is not None else None,
        "fitted_on": model.fitted_on if model is not None else "",
        "items": items,
    }


@router.get("/escalations", summary="督办记录", response_model=list[Escalation])
def escalations(round_id: str, session: SessionDep, user: CurrentUser) -> list[dict[str, Any]]:
    """Every rung that fired in the round, newest first, with who signed for it."""
    rows = session.scalars(
        select(EscalationRow)
        .where(EscalationRow.round_id == round_id)
        .where(EscalationRow.org_id.in_(_in_scope(user)))
        .order_by(EscalationRow.fired_at.desc())
    ).all()
    return [
        {
            "org_id": r.org_id,
            "phase": r.phase,
            "rung": r.rung,
            "name": r.name,
            "recipient_role": r.recipient_role,
            "recipient_key": r.recipient_key,
            "fired_at": r.fired_at,
            "working_days_overdue": r.working_days_overdue,
            "acknowledged_by": r.acknowledged_by,
            "acknowledged_at": r.acknowledged_at,
        }
        for r in rows
    ]
