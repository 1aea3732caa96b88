"""Read-model queries of the dashboard, all filtered by the caller's scope (as SQL)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from activities.tables import CampaignStatusRow, OrganisationRow, PhaseStatusRow
from api.auth import User
from api.scope import COUNTY_WIDE, scope_condition
from domain.phases import WORKING_PHASES, Phase

_S = TypeVar("_S", bound=Select)  # type: ignore[type-arg]  # any row shape
ANY_LIGHT = "all"  # the light filter's value for "every light, green included"
PHASE_ORDER: tuple[str, ...] = tuple(p.value for p in (*WORKING_PHASES, Phase.COMPLETED))
LIGHT_RANK: dict[str, int] = {"red": 0, "yellow": 1, "blue": 2, "green": 3}


@dataclass(frozen=True)
class Filters:
    """The list filters a page accepts (empty string = no filter)."""

    township: str = ""
    system: str = ""
    org_type: str = ""
    phase: str = ""
    light: str = ""  # "" every light but green, ANY_LIGHT every light, or one light
    rung: str = ""  # "" any, "none" no rung yet, or the rung number (0-based)


def scoped(stmt: _S, user: User, round_id: str, filters: Filters) -> _S:
    """``stmt`` over ``campaign_status`` limited to the round, the scope and the filters."""
    s = CampaignStatusRow
    stmt = stmt.where(s.round_id == round_id)
    if user.role not in COUNTY_WIDE:  # the county sees everything: skip the sub-select
        in_scope = select(OrganisationRow.org_id).where(scope_condition(user)).correlate(None)
        stmt = stmt.where(s.org_id.in_(in_scope))
    for value, column in (
        (filters.township, s.township),
        (filters.system, s.system),
        (filters.org_type, s.org_type),
        (filters.phase, s.phase),
        (filters.light if filters.light != ANY_LIGHT else "", s.light),
    ):
        if value:
            stmt = stmt.where(column == value)
    if filters.rung == "none":
        stmt = stmt.where(s.top_rung.is_(None))
    elif filters.rung.isdigit():
        stmt = stmt.where(s.top_rung == int(filters.rung))
    return stmt


@dataclass
class Cell:
    """One township × phase cell: how many organisations, by light."""

    total: int = 0
    lights: dict[str, int] = field(default_factory=dict)

    def add(self, light: str, n: int) -> None:
        self.total += n
        self.lights[light] = self.lights.get(light, 0) + n


@dataclass
class Matrix:
    """The county overview: townships × phases, with totals per row, column and light."""

    rows: dict[str, dict[str, Cell]] = field(default_factory=dict)
    row_totals: dict[str, Cell] = field(default_factory=dict)
    column_totals: dict[str, Cell] = field(default_factory=lambda: defaultdict(Cell))
    total: Cell = field(default_factory=Cell)
    overdue: int = 0


def matrix(session: Session, user: User, round_id: str, filters: Filters) -> Matrix:
    """Counts by township, phase and light in one grouped query."""
    s = CampaignStatusRow
    stmt = scoped(
        select(s.township, s.phase, s.light, s.overdue, func.count()), user, round_id, filters
    ).group_by(s.township, s.phase, s.light, s.overdue)
    result = Matrix()
    for township, phase, light, overdue, n in session.execute(stmt).all():
        result.rows.setdefault(township, defaultdict(Cell))[phase].add(light, n)
        result.row_totals.setdefault(township, Cell()).add(light, n)
        result.column_totals[phase].add(light, n)
        result.total.add(light, n)
        result.overdue += n if overdue else 0
    result.rows = dict(sorted(result.rows.items()))
    return result


def completion_series(
    session: Session, user: User, round_id: str, filters: Filters, buckets: int = 40
) -> dict[str, Any]:
    """Phase completion over time: for each phase, how many had completed it by each
    instant (from ``phase_status.completed_at``), sampled at up to ``buckets`` points."""
    p = PhaseStatusRow
    s = CampaignStatusRow
    stmt = scoped(
        select(p.phase, p.completed_at).join(
            s, (s.round_id == p.round_id) & (s.org_id == p.org_id)
        ),
        user,
        round_id,
        filters,
    ).where(p.completed_at.is_not(None))
    by_phase: dict[str, list[datetime]] = defaultdict(list)
    for phase, completed_at in session.execute(stmt).all():
        if completed_at is not None:
            by_phase[phase].append(completed_at)
    every = sorted(t for times in by_phase.values() for t in times)
    if not every:
        return {"times": [], "series": {}}
    first, last = every[0], every[-1]
    step = (last - first) / max(1, buckets - 1)
    points = [first + step * i for i in range(buckets)] if last > first else [first]
    series: dict[str, list[int]] = {}
    for phase in PHASE_ORDER[:-1]:
        times = sorted(by_phase.get(phase, []))
        counts, index = [], 0
        for point in points:
            while index < len(times) and times[index] <= point:
                index += 1
            counts.append(index)
        series[phase] = counts
    return {"times": points, "series": series}


@dataclass(frozen=True)
class Laggard:
    """A row of the laggard list."""

    org_id: str
    org_name: str
    township: str
    system: str
    org_type: str
    phase: str
    phase_status: str | None
    light: str
    overdue: bool
    deadline: datetime | None
    top_rung: int | None


def laggards(session: Session, user: User, round_id: str, filters: Filters) -> list[Laggard]:
    """Organisations whose light is not green (or the one light asked for)."""
    s = CampaignStatusRow
    stmt = scoped(
        select(
            s.org_id, s.org_name, s.township, s.system, s.org_type, s.phase,
            s.phase_status, s.light, s.overdue, s.deadline, s.top_rung,
        ),
        user,
        round_id,
        filters,
    )  # fmt: skip
    if not filters.light:  # the default list: every light but green
        stmt = stmt.where(s.light != "green")
    return [Laggard(*row) for row in session.execute(stmt).all()]


SORT_KEYS: dict[str, Any] = {
    "org": lambda r, days: r.org_name,
    "township": lambda r, days: (r.township, r.org_name),
    "system": lambda r, days: (r.system, r.org_name),
    "type": lambda r, days: (r.org_type, r.org_name),
    "phase": lambda r, days: PHASE_ORDER.index(r.phase) if r.phase in PHASE_ORDER else 9,
    "light": lambda r, days: LIGHT_RANK.get(r.light, 9),
    "deadline": lambda r, days: r.deadline.timestamp() if r.deadline else float("inf"),
    "overdue": lambda r, days: days,
    "rung": lambda r, days: -1 if r.top_rung is None else r.top_rung,
}
