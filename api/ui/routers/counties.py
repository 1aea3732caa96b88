"""The counties page (市委/省委组织部): the supervised counties side by side (organisations,
lights per phase, laggards and overdue), each linking to its read-only overview and laggard
list (``api.tenancy`` lets the office read them and refuses its actions)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.deps import SessionDep
from api.errors import ApiError
from api.routers.counties import READERS
from api.ui.render import page
from api.ui.session import UiRoute, UiUser
from chuangzheng.services.counties import counties_view
from domain.lights import Light
from domain.phases import Phase

router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)


@router.get("/counties")
def counties_page(request: Request, session: SessionDep, user: UiUser) -> Response:
    """所辖各县对比."""
    if user.role not in READERS:
        raise ApiError(403, "forbidden", "各县对比仅市委、省委组织部和县委活动办可查看")
    views = counties_view(session, user.counties)
    return page(
        request,
        "counties.html",
        {
            "user": user,
            "info": None,
            "counties": views,
            "phases": [p for p in Phase if any(p.value in v.phases for v in views)],
            "lights": list(Light),
        },
    )
