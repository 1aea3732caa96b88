"""The roster (县委活动办): import it (organisations, the accounts that follow, departures)
and decide what happens to organisations that left it while a round was running.

Thin routes over ``chuangzheng.services.roster`` and ``chuangzheng.services.departures``:
parse, call, map the service's refusals to HTTP.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Request, UploadFile
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session, sessionmaker

from activities.guidance_groups import county_groups
from activities.roster_files import ROSTER_LIMITS, read_roster_bytes
from api.auth import User
from api.blocking import parse_off_loop, run_sync
from api.deps import (
    CurrentUser,
    SessionDep,
    SessionsDep,
    TemporalClientDep,
    client_ip,
    require_role,
)
from api.errors import as_api_error
from api.responses import AUTHENTICATED, TEMPORAL, UPLOAD, WITH_BODY, Timestamp, errors
from api.uploads import read_table_upload
from chuangzheng.services import roster as roster_service
from chuangzheng.services.departures import Departure, Departures, list_departures
from chuangzheng.services.errors import ServiceError
from chuangzheng.services.roster import DepartureDecision, RosterImportResult
from domain.organisation import GuidanceGroup, Role
from domain.state import Actor

router = APIRouter(
    prefix="/api/v1/roster", tags=["名册 roster"], responses=errors(*AUTHENTICATED, 404, 422)
)


class TakenAccountView(BaseModel):
    """An account the roster calls for that the import could not make: its name is held by
    another account (``reason``, in Chinese, says what to do)."""

    username: str
    role: Role
    scope_key: str
    reason: str


class RosterImport(BaseModel):
    """What a roster import changed: only organisations whose state changed are counted
    (importing the same file again reports 0 added, updated, deactivated, reactivated).
    ``accounts_taken`` and ``taken_accounts`` appear only when some account the roster
    calls for could not be made because its name is taken."""

    added: int
    updated: int
    deactivated: int
    reactivated: int
    unchanged: int
    total: int
    accounts_created: int
    accounts_rescoped: int
    accounts_unscoped: int
    accounts_renamed: int
    departures_pending: int
    departures_withdrawn: int
    accounts_taken: int = 0
    taken_accounts: list[TakenAccountView] = []


class DepartureView(BaseModel):
    """An organisation that left the roster in a running round, and the decision."""

    round_id: str
    org_id: str
    org_name: str
    township: str
    detected_at: Timestamp
    decision: DepartureDecision
    decision_label: str
    reason: str | None
    decided_by: str | None
    decided_at: Timestamp | None


class DepartureBody(BaseModel):
    """The county office's choice: ``close`` (reason required) or ``keep``."""

    decision: DepartureDecision
    reason: str = Field(default="", max_length=500)


def _county_groups(sessions: sessionmaker[Session], county: str) -> tuple[GuidanceGroup, ...]:
    with sessions() as session:
        return county_groups(session, county)


def _actor(user: User, request: Request) -> Actor:
    return Actor(user=user.username, name=user.display_name, role=user.role, ip=client_ip(request))


def _departure_view(departure: Departure) -> dict[str, Any]:
    return {
        "round_id": departure.round_id,
        "org_id": departure.org_id,
        "org_name": departure.org_name,
        "township": departure.township,
        "detected_at": departure.detected_at,
        "decision": departure.decision,
        "decision_label": departure.decision.label,
        "reason": departure.reason,
        "decided_by": departure.decided_by,
        "decided_at": departure.decided_at,
    }


@router.post(
    "",
    summary="导入组织名册（CSV/XLSX），同步账号",
    response_model=RosterImport,
    # The taken accounts' fields only when there are some (the answer is otherwise as it was).
    response_model_exclude_defaults=True,
    responses=errors(*UPLOAD),
)
async def import_roster(
    request: Request,
    sessions: SessionsDep,
    user: CurrentUser,
    file: Annotated[UploadFile, File()],
) -> dict[str, Any]:
    """Import the whole roster; any bad row refuses the file (422, every row listed).
    Limits (413/422, named in the answer): see ``activities.roster_files.ROSTER_LIMITS``.
    Accounts follow the roster (see ``chuangzheng.services.roster``)."""
    require_role(user, Role.COUNTY_OFFICE)
    suffix, data = await read_table_upload(file, ROSTER_LIMITS.max_bytes)
    # Parsing is seconds of CPU for a big sheet: a worker thread, never the event loop.
    # 所属系统 must name one of the county's own guidance groups (issue 15), row by row.
    groups = await run_sync(_county_groups, sessions, user.county)
    roster = await parse_off_loop(read_roster_bytes, data, suffix, ROSTER_LIMITS, groups)
    actor = _actor(user, request)
    try:
        result: RosterImportResult = await run_sync(
            roster_service.import_roster, sessions, actor, roster
        )
    except ServiceError as exc:
        raise as_api_error(exc) from None
    taken = [
        {"username": t.username, "role": t.role, "scope_key": t.scope_key, "reason": t.reason}
        for t in result.taken
    ]
    return dict(result.counts) | {"taken_accounts": taken}


@router.get("/departures", summary="退出名册但仍在进行中的组织", response_model=list[DepartureView])
def departures(
    session: SessionDep, user: CurrentUser, decision: DepartureDecision | None = None
) -> list[dict[str, Any]]:
    """Organisations that left the roster while a round was running (``decision=pending``
    for the ones still waiting), the oldest first."""
    require_role(user, Role.COUNTY_OFFICE)
    actor = Actor(user=user.username, name=user.display_name, role=user.role)
    return [_departure_view(d) for d in list_departures(session, actor, decision=decision)]


@router.post(
    "/departures/{round_id}/{org_id}",
    summary="决定退出名册组织的去留（关闭或保留）",
    response_model=DepartureView,
    responses=errors(409, *WITH_BODY, *TEMPORAL),
)
async def decide_departure(
    round_id: str,
    org_id: str,
    body: DepartureBody,
    request: Request,
    sessions: SessionsDep,
    user: CurrentUser,
    client: TemporalClientDep,
) -> dict[str, Any]:
    """``close`` closes that organisation's campaign in the round with the reason; ``keep``
    lets it run on. Deciding again the same way changes nothing; differently is 409."""
    require_role(user, Role.COUNTY_OFFICE)
    try:
        departure, _ = await Departures(sessions, client).decide(
            _actor(user, request), round_id, org_id, body.decision, body.reason
        )
    except ServiceError as exc:
        raise as_api_error(exc) from None
    return _departure_view(departure)
