"""The counties side by side (市委/省委组织部): organisations, lights per county and phase,
laggards; each county links to its own read-only pages. A county office sees its own
county's row; other roles are refused."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from api.blocking import run_sync
from api.deps import CurrentUser, SessionsDep, require_role
from api.responses import AUTHENTICATED, errors
from chuangzheng.services.counties import counties_view
from domain.organisation import Role

router = APIRouter(
    prefix="/api/v1/counties", tags=["各县对比 counties"], responses=errors(*AUTHENTICATED)
)

#: Who reads the comparison: the offices above the county, and a county office (its own).
READERS = (Role.CITY_OFFICE, Role.PROVINCE_OFFICE, Role.COUNTY_OFFICE)


class CountyFiguresView(BaseModel):
    """One county: organisations on the roster, the round shown (the newest running one),
    its organisations by light and by phase and light, laggards (not green, still open)
    and overdue organisations."""

    code: str
    name: str
    organisations: int
    round_id: str | None
    round_name: str | None
    round_status: str | None
    lights: dict[str, int]
    phases: dict[str, dict[str, int]]
    laggards: int
    overdue: int
    in_round: int


@router.get(
    "", summary="所辖各县对比（组织数、各阶段灯色、滞后数）", response_model=list[CountyFiguresView]
)
async def list_counties(sessions: SessionsDep, user: CurrentUser) -> list[dict[str, Any]]:
    """The caller's counties side by side, by county code."""
    require_role(user, *READERS)

    def read() -> list[dict[str, Any]]:
        with sessions() as session:
            return [
                asdict(view) | {"in_round": view.in_round}
                for view in counties_view(session, user.counties)
            ]

    return await run_sync(read)
