"""Organisations: scoped lists with filters, detail, campaign status and timeline (the roster
import is ``api.routers.roster``).

Who is in a round: an organisation takes part in a round when the round's ``campaign_status``
has its row, whether or not it is still on the roster (the rule of every list of a round, see
``chuangzheng.services.departures``). So ``GET /organisations`` lists the active organisations,
and with ``round_id`` also those that left the roster but still take part in that round,
marked ``left_roster: true`` with their ``departure`` decision (``pending``, ``close`` or
``keep``) until, and after, the county office decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, sessionmaker

from activities.guidance_groups import group_map
from activities.roster_store import load_organisation
from activities.tables import (
    CampaignEventRow,
    CampaignStatusRow,
    OrganisationRow,
    RosterDepartureRow,
)
from api.auth import User
from api.blocking import run_sync
from api.deps import CurrentUser, SessionDep, SessionsDep, TemporalClientDep
from api.errors import ApiError, not_found
from api.responses import AUTHENTICATED, TEMPORAL, Timestamp, errors
from api.scope import covers, scope_condition
from api.workflow_calls import query
from domain.campaign_rules import CampaignStatus
from domain.lights import Light
from domain.organisation import (
    SYSTEM_KEY_PATTERN,
    GuidanceGroup,
    Organisation,
    OrgType,
    system_label,
)
from domain.phases import Phase
from workflows.ids import organisation_workflow_id

router = APIRouter(
    prefix="/api/v1", tags=["组织 organisations"], responses=errors(*AUTHENTICATED, 404, 422)
)


class RoundStatus(BaseModel):
    """An organisation's standing in one round (the read model's row)."""

    phase: str
    phase_label: str
    phase_status: str | None
    light: str
    light_label: str
    overdue: bool
    deadline: Timestamp | None
    top_rung: int | None
    closed: bool


class OrganisationView(BaseModel):
    """An organisation; the round's status fields only when a ``round_id`` was given and
    the organisation takes part in it (absent otherwise, not null)."""

    org_id: str
    name: str
    type: str
    type_label: str
    township: str
    system: str
    system_label: str
    member_count: int
    secretary: str
    instructor: str
    active: bool
    phase: str = ""
    phase_label: str = ""
    phase_status: str | None = None
    light: str = ""
    light_label: str = ""
    overdue: bool = False
    deadline: Timestamp | None = None
    top_rung: int | None = None
    closed: bool = False
    left_roster: bool = False
    departure: str | None = None


class OrganisationRound(RoundStatus):
    """The organisation's status in one round it takes part in."""

    round_id: str


class OrganisationDetail(BaseModel):
    """One organisation with its status in every round it takes part in."""

    org_id: str
    name: str
    type: str
    type_label: str
    township: str
    system: str
    system_label: str
    member_count: int
    secretary: str
    instructor: str
    active: bool
    rounds: list[OrganisationRound]


class TimelineEvent(BaseModel):
    """A recorded state change."""

    event_id: str
    kind: str
    phase: str | None
    step_id: str | None
    actor: str | None
    actor_name: str | None
    at: Timestamp
    detail: dict[str, Any]


def visible_organisation(session: SessionDep, user: User, org_id: str) -> Organisation:
    """The organisation if it exists and ``user`` may see it; 404 otherwise (no leak)."""
    org = load_organisation(session, org_id)
    if org is None or not covers(user, org):
        raise not_found()
    return org


def check_visible(sessions: sessionmaker[Session], user: User, org_id: str) -> Organisation:
    """:func:`visible_organisation` in a session of its own (for ``run_sync`` from async
    routes, which must not touch the database on the event loop)."""
    with sessions() as session:
        return visible_organisation(session, user, org_id)


def _org_view(
    row: OrganisationRow,
    status: CampaignStatusRow | None,
    groups: Mapping[str, GuidanceGroup],
) -> dict[str, Any]:
    view: dict[str, Any] = {
        "org_id": row.org_id,
        "name": row.name,
        "type": row.org_type,
        "type_label": OrgType(row.org_type).label,
        "township": row.township,
        "system": row.system,
        # The county's own name for its guidance group (issue 15).
        "system_label": system_label(row.system, groups),
        "member_count": row.member_count,
        "secretary": row.secretary,
        "instructor": row.instructor,
        "active": row.active,
    }
    if status is not None:
        view.update(
            phase=status.phase,
            phase_label=Phase(status.phase).label,
            phase_status=status.phase_status,
            light=status.light,
            light_label=Light(status.light).label,
            overdue=status.overdue,
            deadline=status.deadline,
            top_rung=status.top_rung,
            closed=status.closed,
        )
    return view


@router.get(
    "/organisations",
    summary="组织列表（按权限范围）",
    response_model=list[OrganisationView],
    response_model_exclude_unset=True,
)
def list_organisations(
    session: SessionDep,
    user: CurrentUser,
    round_id: str | None = None,
    township: str | None = None,
    system: Annotated[str | None, Query(pattern=SYSTEM_KEY_PATTERN)] = None,
    type: OrgType | None = None,
    phase: Phase | None = None,
    light: Light | None = None,
    overdue: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> list[dict[str, Any]]:
    """Organisations the caller may see; phase, light and overdue need ``round_id``."""
    if round_id is None and (phase or light or overdue is not None):
        raise ApiError(
            422,
            "invalid",
            "请求参数有误",
            [{"field": "round_id", "reason": "按阶段、亮灯或逾期筛选时必须指定轮次"}],
        )
    join_on = and_(
        CampaignStatusRow.org_id == OrganisationRow.org_id, CampaignStatusRow.round_id == round_id
    )
    departed_on = and_(
        RosterDepartureRow.org_id == OrganisationRow.org_id,
        RosterDepartureRow.round_id == round_id,
    )
    stmt = (
        select(OrganisationRow, CampaignStatusRow, RosterDepartureRow.decision)
        .outerjoin(CampaignStatusRow, join_on)
        .outerjoin(RosterDepartureRow, departed_on)
    )
    # Active organisations; with a round, also those that left the roster but take part.
    in_round = CampaignStatusRow.org_id.is_not(None)
    stmt = stmt.where(scope_condition(user), or_(OrganisationRow.active.is_(True), in_round))
    conditions = [
        (township, OrganisationRow.township == township),
        (system, OrganisationRow.system == system),
        (type, OrganisationRow.org_type == (type.value if type else None)),
        (phase, CampaignStatusRow.phase == (phase.value if phase else None)),
        (light, CampaignStatusRow.light == (light.value if light else None)),
    ]
    for given, condition in conditions:
        if given is not None:
            stmt = stmt.where(condition)
    if overdue is not None:
        stmt = stmt.where(CampaignStatusRow.overdue.is_(overdue))
    stmt = stmt.order_by(OrganisationRow.row_number, OrganisationRow.org_id)
    rows = session.execute(stmt.limit(limit).offset(offset)).all()
    groups = group_map(session, user.counties)
    views = []
    for org, status, decision in rows:
        view = _org_view(org, status, groups)
        if round_id is not None and status is not None:
            view.update(left_roster=not org.active, departure=decision)
        views.append(view)
    return views


@router.get("/organisations/{org_id}", summary="组织详情", response_model=OrganisationDetail)
def get_organisation(org_id: str, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """One organisation, with its status in every round it takes part in."""
    visible_organisation(session, user, org_id)
    row = session.get(OrganisationRow, org_id)
    assert row is not None
    groups = group_map(session, {row.county})
    view = _org_view(row, None, groups)
    statuses = session.scalars(
        select(CampaignStatusRow).where(CampaignStatusRow.org_id == org_id)
    ).all()
    view["rounds"] = [
        {
            "round_id": s.round_id,
            **{k: v for k, v in _org_view(row, s, groups).items() if k not in view},
        }
        for s in statuses
    ]
    return view


@router.get(
    "/rounds/{round_id}/organisations/{org_id}/status",
    summary="组织本轮活动状态",
    response_model=CampaignStatus,
    responses=errors(*TEMPORAL),
)
async def campaign_status(
    round_id: str, org_id: str, sessions: SessionsDep, user: CurrentUser, client: TemporalClientDep
) -> dict[str, Any]:
    """Phases, steps, submissions, deadlines, light, escalations (the workflow's query)."""
    await run_sync(check_visible, sessions, user, org_id)
    status = await query(
        client, organisation_workflow_id(round_id, org_id), "status", CampaignStatus
    )
    return status.model_dump(mode="json")


@router.get(
    "/rounds/{round_id}/organisations/{org_id}/timeline",
    summary="组织本轮时间线",
    response_model=list[TimelineEvent],
)
def timeline(
    round_id: str, org_id: str, session: SessionDep, user: CurrentUser
) -> list[dict[str, Any]]:
    """Every recorded state change, oldest first."""
    visible_organisation(session, user, org_id)
    rows = session.scalars(
        select(CampaignEventRow)
        .where(CampaignEventRow.round_id == round_id, CampaignEventRow.org_id == org_id)
        .order_by(CampaignEventRow.at, CampaignEventRow.recorded_at)
    ).all()
    return [
        {
            "event_id": r.event_id,
            "kind": r.kind,
            "phase": r.phase,
            "step_id": r.step_id,
            "actor": r.actor_user,
            "actor_name": r.actor_name,
            "at": r.at,
            "detail": r.detail,
        }
        for r in rows
    ]
