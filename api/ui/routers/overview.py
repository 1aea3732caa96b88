"""County overview: township × phase matrix with lights, filters by system and type, the
round's timeline, ECharts charts, and a big-screen mode (``?screen=big``) for the office wall."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup

from api.deps import SessionDep
from api.ui.context import RoundInfo, round_info, rounds
from api.ui.queries import Filters, Matrix
from api.ui.queries import overview as read_overview
from api.ui.render import LIGHT_ORDER, local, page, pager, templates
from api.ui.session import UiRoute, UiUser
from domain.phases import PHASE_LABELS, Phase

router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)
BIG_SCREEN_REFRESH_SECONDS = 60


def _timeline(info: RoundInfo, result: Matrix, now: datetime) -> list[dict[str, Any]]:
    """The round's phases with their windows, where today is, and how many are past each."""
    order = [w.phase.value for w in info.windows] + [Phase.COMPLETED.value]

    def passed(phase: Phase) -> int:
        later = order[order.index(phase.value) + 1 :]
        return sum(result.column_totals[p].total for p in later if p in result.column_totals)

    return [
        {
            "passed": passed(w.phase),
            "phase": w.phase.value,
            "label": w.phase.label,
            "opens_at": w.opens_at,
            "deadline": w.deadline,
            "state": "past" if w.deadline < now else "current" if w.opens_at <= now else "future",
        }
        for w in info.windows
    ]


def _charts(result: Matrix, completion: dict[str, Any]) -> dict[str, Any]:
    """What ``dashboard.js`` draws: completion over time and lights by township."""
    townships = list(result.row_totals)
    return {
        "completion": {
            "times": [local(t, "%m-%d %H:%M") for t in completion["times"]],
            "series": [
                {"name": PHASE_LABELS[Phase(p)], "data": counts}
                for p, counts in completion["series"].items()
            ],
        },
        "lights": {
            "townships": townships,
            "series": [
                {
                    "key": light,
                    "data": [result.row_totals[t].lights.get(light, 0) for t in townships],
                }
                for light in LIGHT_ORDER
            ],
        },
    }


@router.get("/overview")
def overview(
    request: Request,
    session: SessionDep,
    user: UiUser,
    round: str = "",
    system: str = "",
    type: str = "",
    screen: str = "",
    tpage: str = "",
    tq: str = "",
) -> Response:
    """The overview of the caller's scope in one round (the newest running one by default).

    A county of more than ``MATRIX_PAGE_SIZE`` townships sees its matrix a page at a time
    (``tpage``), the townships with the most laggards first, or the townships whose name
    holds ``tq``; the totals row and the figures above it always count every township."""
    info = round_info(session, round or None, user.counties)
    context: dict[str, Any] = {
        "user": user,
        "rounds": rounds(session, user.counties),
        "info": info,
        "filters": {"system": system, "type": type, "tq": tq.strip()},
        "big": screen == "big",
        "refresh": BIG_SCREEN_REFRESH_SECONDS,
        "now": datetime.now(UTC),
    }
    if info is not None:
        filters = Filters(system=system, org_type=type)
        page_no = int(tpage) if tpage.isdecimal() else 1  # a mangled link: the first page
        cached = read_overview(
            session, user, info.round_id, filters, wall=screen == "big", page=page_no,
            search=tq,
        )  # fmt: skip
        result, rendered = cached.matrix, cached.rendered
        if "matrix_body" not in rendered:  # once per cached overview (same round and filters)
            body = templates.get_template("_matrix_body.html").render(
                matrix=result, info=info, filters=context["filters"]
            )
            rendered["charts"] = _charts(result, cached.completion)
            rendered["matrix_body"] = Markup(body)  # autoescaped by Jinja
        context.update(
            matrix=result,
            timeline=_timeline(info, result, context["now"]),
            charts=rendered["charts"],
            matrix_body=rendered["matrix_body"],
            matrix_pager=pager(result.page, result.pages) if result.pages > 1 else [],
        )
    return page(request, "overview.html", context)
