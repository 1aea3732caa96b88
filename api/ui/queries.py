"""Read-model queries of the dashboard, all filtered by the caller's scope (as SQL)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any, Generic, TypeVar

import structlog
from sqlalchemy import (
    DateTime,
    Engine,
    Integer,
    Select,
    and_,
    bindparam,
    case,
    cast,
    false,
    func,
    null,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from activities.tables import CampaignStatusRow, OrganisationRow, PhaseStatusRow
from api.auth import User
from api.scope import COUNTY_WIDE, scope_condition
from domain.phases import WORKING_PHASES, Phase

log = structlog.get_logger(__name__)
_S = TypeVar("_S", bound=Select)  # type: ignore[type-arg]  # any row shape
ANY_LIGHT = "all"  # the light filter's value for "every light, green included"
PHASE_ORDER: tuple[str, ...] = tuple(p.value for p in (*WORKING_PHASES, Phase.COMPLETED))
LIGHT_RANK: dict[str, int] = {"red": 0, "yellow": 1, "blue": 2, "green": 3}
#: Above any ladder's rung number: a rung filter past it matches no organisation.
MAX_RUNG = 1000


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
    elif filters.rung.isascii() and filters.rung.isdigit():
        # A rung no ladder has selects nothing (as rung 7 of a three-rung ladder does);
        # compared in SQL, a number past 64 bits overflowed the driver (500).
        rung = int(filters.rung)
        stmt = stmt.where(s.top_rung == rung if rung <= MAX_RUNG else false())
    return stmt


@dataclass
class Cell:
    """One township × phase cell: how many organisations, by light."""

    total: int = 0
    lights: dict[str, int] = field(default_factory=dict)

    def add(self, light: str, n: int) -> None:
        self.total += n
        self.lights[light] = self.lights.get(light, 0) + n


#: Townships the overview's matrix shows at once. A county has 10–30 (all shown, by name, as
#: always); a county of thousands (the province-scale benchmark: 5,000) is shown a page at a
#: time, the townships with the most laggards first, with a pager and a name search.
MATRIX_PAGE_SIZE = 50


@dataclass
class Matrix:
    """The county overview: townships × phases, with totals per row, column and light.

    ``rows`` and ``row_totals`` hold the townships shown (every one, or a page of them);
    ``column_totals``, ``total`` and ``overdue`` always count every township."""

    rows: dict[str, dict[str, Cell]] = field(default_factory=dict)
    row_totals: dict[str, Cell] = field(default_factory=dict)
    column_totals: dict[str, Cell] = field(default_factory=lambda: defaultdict(Cell))
    total: Cell = field(default_factory=Cell)
    overdue: int = 0
    townships: int = 0  # townships matching the search (all of them without one)
    page: int = 1
    pages: int = 1
    search: str = ""

    @property
    def paged(self) -> bool:
        """Whether the rows are a page or a search's townships, not every township by name."""
        return self.pages > 1 or bool(self.search)


def matrix(
    session: Session, user: User, round_id: str, filters: Filters, *, page: int = 1,
    search: str = "", page_size: int = MATRIX_PAGE_SIZE,
) -> Matrix:  # fmt: skip
    """Counts by township, phase and light, grouped by the database in one statement.

    The counts by township, phase and light (``g``, one pass over the index ``(round_id,
    township, phase, light, overdue)``) give three things at once: the townships ranked
    (most red, then most laggards, then by name) and ``page`` of them with their cells,
    and the totals by phase and light over every township. Up to ``page_size`` townships
    (and no ``search``) that page is every township, shown by name as a county's page
    always was; a county of 5,000 townships reads and renders 50 rows, and its totals row
    still counts every township."""
    s = CampaignStatusRow
    search = search.strip()
    g = (
        scoped(select(s.township, s.phase, s.light, s.overdue, func.count().label("n")),
               user, round_id, filters)
        .group_by(s.township, s.phase, s.light, s.overdue)
        .cte("g")
    )  # fmt: skip
    # SUM of no rows is NULL, which PostgreSQL sorts first in DESC and SQLite last.
    red = func.coalesce(func.sum(g.c.n).filter(g.c.light == "red"), 0)
    late = func.coalesce(func.sum(g.c.n).filter(g.c.light.in_(NOT_GREEN)), 0)
    rank = (red.desc(), late.desc(), _code_point(session, g.c.township))
    ranking = select(
        g.c.township,
        func.count().over().label("townships"),
        func.row_number().over(order_by=rank).label("rank"),
    ).group_by(g.c.township)
    if search:
        ranking = ranking.where(g.c.township.contains(search, autoescape=True))

    def read(page: int) -> list[Any]:
        r = ranking.order_by(*rank).offset((page - 1) * page_size).limit(page_size).cte("r")
        cells = select(g.c.township, g.c.phase, g.c.light, g.c.overdue, g.c.n, r.c.townships,
                       r.c.rank).join(r, r.c.township == g.c.township)  # fmt: skip
        totals = select(
            null(), g.c.phase, g.c.light, g.c.overdue, func.sum(g.c.n), null(), null()
        ).group_by(g.c.phase, g.c.light, g.c.overdue)
        return list(session.execute(union_all(cells, totals)).all())

    page = max(1, page)
    found = read(page)
    if page > 1 and all(row[0] is None for row in found):  # past the last page: the last
        count = select(func.count()).select_from(ranking.subquery())
        page = max(1, -(-int(session.scalar(count) or 0) // page_size))
        found = read(page)
    cells = [row for row in found if row[0] is not None]
    result = Matrix(townships=int(cells[0][5]) if cells else 0, search=search)
    result.pages = max(1, -(-result.townships // page_size))
    result.page = min(page, result.pages)
    ranks: dict[str, int] = {}
    for township, phase, light, _overdue, n, _, rank_no in cells:
        result.rows.setdefault(township, defaultdict(Cell))[phase].add(light, int(n))
        result.row_totals.setdefault(township, Cell()).add(light, int(n))
        ranks[township] = int(rank_no)
    for _, phase, light, overdue, n, _, _ in (row for row in found if row[0] is None):
        result.column_totals[phase].add(light, int(n))
        result.total.add(light, int(n))
        result.overdue += int(n) if overdue else 0
    # A county's page (one page, no search): by name; a page of many: in ranked order.
    shown = sorted(ranks) if not result.paged else sorted(ranks, key=ranks.__getitem__)
    result.rows = {t: result.rows[t] for t in shown}
    result.row_totals = {t: result.row_totals[t] for t in shown}
    return result


def _code_point(session: Session, column: Any) -> Any:
    """``column`` sorted in code-point order, as Python sorts strings (``COLLATE "C"`` on
    PostgreSQL, SQLite's default)."""
    return column.collate("C") if session.get_bind().dialect.name == "postgresql" else column


def completion_series(
    session: Session, user: User, round_id: str, filters: Filters, buckets: int = 40
) -> dict[str, Any]:
    """Phase completion over time: for each phase, how many had completed it by each
    instant (from ``phase_status.completed_at``), sampled at up to ``buckets`` points.

    Counted by the database: the first and last completion, then the completions grouped
    by phase and by the first sample point at or after them (integer microseconds, so a
    completion exactly on a point counts there, as a comparison of datetimes would)."""
    p = PhaseStatusRow
    first, last = session.execute(
        _completed(select(func.min(p.completed_at), func.max(p.completed_at)), user, round_id,
                   filters)
    ).one()  # fmt: skip
    if first is None or last is None:
        return {"times": [], "series": {}}
    step = (last - first) / max(1, buckets - 1)
    step_us = step // _MICROSECOND
    if step_us == 0:  # every completion within a few microseconds: too few to bucket
        return _completion_in_python(session, user, round_id, filters, buckets)
    points = [first + step * i for i in range(buckets)]
    bucket = _bucket(session, p.completed_at, points, step_us)
    stmt = _completed(select(p.phase, bucket, func.count()), user, round_id, filters)
    per_phase: dict[str, list[int]] = defaultdict(lambda: [0] * buckets)
    for phase, index, n in session.execute(stmt.group_by(p.phase, bucket)).all():
        if int(index) < buckets:  # past the last point (rounding of the step): not counted
            per_phase[phase][int(index)] += n
    series: dict[str, list[int]] = {}
    for phase in PHASE_ORDER[:-1]:
        counts, running = [], 0
        for n in per_phase.get(phase, [0] * buckets):
            running += n
            counts.append(running)
        series[phase] = counts
    return {"times": points, "series": series}


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _completed(stmt: _S, user: User, round_id: str, filters: Filters) -> _S:
    """``stmt`` over the round's completed phases, limited to the scope and the filters (the
    county-wide caller without filters reads ``phase_status`` alone: no join)."""
    p = PhaseStatusRow
    s = CampaignStatusRow
    stmt = stmt.where(p.round_id == round_id, p.completed_at.is_not(None))
    if user.role in COUNTY_WIDE and filters == Filters():
        return stmt
    joined = stmt.join(s, (s.round_id == p.round_id) & (s.org_id == p.org_id))
    return scoped(joined, user, round_id, filters)


def _bucket(session: Session, column: Any, points: list[datetime], step_us: int) -> Any:
    """The index of the first sample point at or after ``column``: on PostgreSQL the
    number of points before it (``width_bucket`` over the points plus a microsecond, a
    binary search per row: the integer arithmetic on ``EXTRACT(epoch …)``, a numeric, was
    most of the chart's second at 200,000 completions); on SQLite ceil((t - first) / step)
    in integer microseconds since the epoch."""
    if session.get_bind().dialect.name == "postgresql":
        after = [point + _MICROSECOND for point in points]  # timestamps are whole µs
        thresholds = bindparam("points", after, type_=ARRAY(DateTime(timezone=True)))
        return func.width_bucket(column, thresholds)
    # SQLite keeps "YYYY-MM-DD HH:MM:SS.ffffff" (UTC): whole seconds, then the microseconds.
    first_us = (points[0] - _EPOCH) // _MICROSECOND
    seconds = cast(func.strftime("%s", func.substr(column, 1, 19)), Integer)  # no rounding
    micros = seconds * 1_000_000 + cast(func.substr(column, 21, 6), Integer)
    return (micros - first_us + step_us - 1) // step_us


def _completion_in_python(
    session: Session, user: User, round_id: str, filters: Filters, buckets: int
) -> dict[str, Any]:
    """The same series from every completion time (only when they span no time at all)."""
    p = PhaseStatusRow
    by_phase: dict[str, list[datetime]] = defaultdict(list)
    for phase, completed_at in session.execute(
        _completed(select(p.phase, p.completed_at), user, round_id, filters)
    ).all():
        if completed_at is not None:
            by_phase[phase].append(completed_at)
    every = sorted(t for times in by_phase.values() for t in times)
    first, last = every[0], every[-1]
    step = (last - first) / max(1, buckets - 1)
    points = [first + step * i for i in range(buckets)] if last > first else [first]
    series = {
        phase: [sum(1 for t in by_phase.get(phase, []) if t <= point) for point in points]
        for phase in PHASE_ORDER[:-1]
    }
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


_LAGGARD_COLUMNS = (
    CampaignStatusRow.org_id, CampaignStatusRow.org_name, CampaignStatusRow.township,
    CampaignStatusRow.system, CampaignStatusRow.org_type, CampaignStatusRow.phase,
    CampaignStatusRow.phase_status, CampaignStatusRow.light, CampaignStatusRow.overdue,
    CampaignStatusRow.deadline, CampaignStatusRow.top_rung,
)  # fmt: skip


#: Every light but green, as a list the index ``(round_id, light, …)`` can range over
#: (``light != 'green'`` reads every row of the round).
NOT_GREEN: tuple[str, ...] = tuple(light for light in LIGHT_RANK if light != "green")


def _laggard_rows(stmt: _S, user: User, round_id: str, filters: Filters) -> _S:
    stmt = scoped(stmt, user, round_id, filters)
    if not filters.light:  # the default list: every light but green
        stmt = stmt.where(CampaignStatusRow.light.in_(NOT_GREEN))
    return stmt


def laggards(session: Session, user: User, round_id: str, filters: Filters) -> list[Laggard]:
    """Organisations whose light is not green (or the one light asked for), unsorted."""
    stmt = _laggard_rows(select(*_LAGGARD_COLUMNS), user, round_id, filters)
    return [Laggard(*row) for row in session.execute(stmt).all()]


DaysOverdue = Callable[[datetime | None, bool], int]
"""Working days overdue of a deadline (``api.ui.context.Overdue``)."""


def laggard_order(
    session: Session, user: User, round_id: str, filters: Filters, sort: str, desc: bool,
    days: DaysOverdue,
) -> list[Any]:  # fmt: skip
    """ORDER BY of the laggard list: the sort key of ``SORT_KEYS`` computed by the database,
    then ``org_id`` (in the same direction, as sorting the tuple in Python would).

    Working days overdue depend only on the deadline (of an overdue row): the distinct
    deadlines of the list are few, so their days are computed here and the database sorts
    by a ``CASE`` over them. Text sorts in code-point order (``COLLATE "C"`` on PostgreSQL,
    SQLite's default), as Python sorts strings."""
    s = CampaignStatusRow

    def text(column: Any) -> Any:
        return _code_point(session, column)

    sort = sort if sort in SORT_KEYS else "overdue"
    keys: list[Any]
    if sort == "org":
        keys = [text(s.org_name)]
    elif sort in ("township", "system", "type"):
        column = {"township": s.township, "system": s.system, "type": s.org_type}[sort]
        keys = [text(column), text(s.org_name)]
    elif sort == "phase":
        keys = [case({p: i for i, p in enumerate(PHASE_ORDER)}, value=s.phase, else_=9)]
    elif sort == "light":
        keys = [case(LIGHT_RANK, value=s.light, else_=9)]
    elif sort == "deadline":
        keys = [case((s.deadline.is_(None), 1), else_=0), s.deadline]
    elif sort == "rung":
        keys = [func.coalesce(s.top_rung, -1)]
    else:  # "overdue": working days overdue
        late = _overdue_deadlines(session, user, round_id, filters, days)
        groups = DayGroups.of(late)
        whens = [(groups.condition(n), n) for n in sorted(groups.days) if n]
        keys = [case(*whens, else_=0)] if whens else []
    keys.append(s.org_id)
    return [k.desc() for k in keys] if desc else keys


@dataclass(frozen=True)
class DayGroups:
    """The list's rows grouped by working days overdue, as SQL conditions.

    Built from every overdue deadline of the list and its working days. Days overdue never
    grow with a later deadline, so each number of days is a range of deadlines: the
    conditions are ranges (``deadline BETWEEN first AND last``, which the index
    ``(round_id, overdue, deadline, org_id)`` reads directly), checked here; were the
    calendar ever not to order them so, they fall back to the lists of deadlines."""

    ranges: dict[int, tuple[datetime, datetime]]
    lists: dict[int, list[datetime]]
    monotonic: bool

    @property
    def days(self) -> list[int]:
        """The positive numbers of days there are."""
        return sorted(self.lists)

    @classmethod
    def of(cls, late: dict[datetime, int]) -> DayGroups:
        ordered = sorted(late.items())
        monotonic = all(a[1] >= b[1] for a, b in pairwise(ordered))
        lists: dict[int, list[datetime]] = defaultdict(list)
        for deadline, n in ordered:
            if n:
                lists[n].append(deadline)
        ranges = {n: (group[0], group[-1]) for n, group in lists.items()}
        return cls(ranges, dict(lists), monotonic)

    def condition(self, n: int) -> Any:
        """The rows overdue by ``n`` working days (``n`` > 0), or by none (0: every row
        outside the positive groups, not overdue or without a deadline included)."""
        s = CampaignStatusRow
        if n:
            if self.monotonic:
                first, last = self.ranges[n]
                return and_(s.overdue.is_(True), s.deadline >= first, s.deadline <= last)
            return and_(s.overdue.is_(True), s.deadline.in_(self.lists[n]))
        if not self.lists:
            return true()
        outside = (
            s.deadline > max(last for _, last in self.ranges.values())
            if self.monotonic
            else s.deadline.not_in([d for group in self.lists.values() for d in group])
        )
        return or_(s.overdue.is_not(True), s.deadline.is_(None), outside)


def _day_counts(
    session: Session, user: User, round_id: str, filters: Filters, days: DaysOverdue
) -> tuple[dict[int, int], DayGroups]:
    """How many of the list are overdue by each number of working days (0: not overdue),
    and the groups' conditions: one query grouped by (overdue, deadline), a handful of
    groups (the phases' deadlines and their extensions), which the index ``(round_id,
    light, overdue, deadline)`` answers without reading the rows."""
    s = CampaignStatusRow
    stmt = _laggard_rows(select(s.overdue, s.deadline, func.count()), user, round_id, filters)
    counts: dict[int, int] = defaultdict(int)
    late: dict[datetime, int] = {}
    for overdue, deadline, n in session.execute(stmt.group_by(s.overdue, s.deadline)).all():
        if overdue and deadline is not None:
            late[deadline] = days(deadline, True)
            counts[late[deadline]] += n
        else:
            counts[0] += n
    return dict(counts), DayGroups.of(late)


def _overdue_deadlines(
    session: Session, user: User, round_id: str, filters: Filters, days: DaysOverdue
) -> dict[datetime, int]:
    """The list's overdue deadlines and their working days overdue: the distinct deadlines
    of its overdue rows (a handful, through the index ``(round_id, overdue, deadline,
    org_id)``)."""
    s = CampaignStatusRow
    deadlines = session.scalars(
        _laggard_rows(select(s.deadline).distinct(), user, round_id, filters).where(
            s.overdue.is_(True), s.deadline.is_not(None)
        )
    ).all()
    return {d: days(d, True) for d in deadlines if d is not None}


def _page_by_days(
    session: Session, user: User, round_id: str, filters: Filters, desc: bool,
    days: DaysOverdue, *, page_no: int, page_size: int,
) -> tuple[int, int, list[Laggard]]:  # fmt: skip
    """The default list (most working days overdue first, then organisation id) without
    sorting it: the rows are counted per number of days, and the page is read from the
    one or two groups it falls in, each in organisation id order straight from an index
    (the primary key, or ``(round_id, overdue, deadline, org_id)`` for one deadline), so
    page 1 of 37,000 laggards reads about a hundred rows instead of sorting them all. The
    order is exactly :func:`laggard_order`'s."""
    s = CampaignStatusRow
    counts, groups = _day_counts(session, user, round_id, filters, days)
    total = sum(counts.values())
    pages = max(1, -(-total // page_size))
    page_no = min(max(1, page_no), pages)
    skip, need = (page_no - 1) * page_size, page_size
    rows: list[Laggard] = []
    for n in sorted(counts, reverse=desc):
        if need <= 0:
            break
        if skip >= counts[n]:
            skip -= counts[n]
            continue
        stmt = _laggard_rows(select(*_LAGGARD_COLUMNS), user, round_id, filters)
        stmt = stmt.where(groups.condition(n))
        stmt = stmt.order_by(s.org_id.desc() if desc else s.org_id).offset(skip).limit(need)
        found = [Laggard(*row) for row in session.execute(stmt).all()]
        rows += found
        need -= len(found)
        skip = 0
    return total, page_no, rows


def laggard_page(
    session: Session, user: User, round_id: str, filters: Filters, sort: str, desc: bool,
    days: DaysOverdue, *, page_no: int, page_size: int,
) -> tuple[int, int, list[Laggard]]:  # fmt: skip
    """How many laggards the filters select, the page shown (``page_no`` kept within the
    pages there are) and its rows in the list's order: counted, sorted and paged by the
    database."""
    if sort not in SORT_KEYS or sort == "overdue":  # the default sort
        return _page_by_days(
            session, user, round_id, filters, desc, days, page_no=page_no, page_size=page_size
        )
    total = int(session.scalar(_laggard_rows(select(func.count()), user, round_id, filters)) or 0)
    pages = max(1, -(-total // page_size))
    page_no = min(max(1, page_no), pages)
    order = laggard_order(session, user, round_id, filters, sort, desc, days)
    stmt = _laggard_rows(select(*_LAGGARD_COLUMNS), user, round_id, filters).order_by(*order)
    stmt = stmt.offset((page_no - 1) * page_size).limit(page_size)
    return total, page_no, [Laggard(*row) for row in session.execute(stmt).all()]


def stream_laggards(
    session: Session, user: User, round_id: str, filters: Filters, sort: str, desc: bool,
    days: DaysOverdue, *, batch: int = 2000,
) -> Iterator[Laggard]:  # fmt: skip
    """Every laggard in the list's order, fetched ``batch`` rows at a time (a server-side
    cursor on PostgreSQL): what the Excel export writes."""
    order = laggard_order(session, user, round_id, filters, sort, desc, days)
    stmt = _laggard_rows(select(*_LAGGARD_COLUMNS), user, round_id, filters).order_by(*order)
    # Core rows, not the ORM's: the same values for a third less CPU at 37,000 rows.
    for row in session.connection().execute(stmt.execution_options(yield_per=batch)):
        yield Laggard(*row)


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
"""The laggard list's sort keys in Python (the forecast's ``risk`` sort and ``warn`` filter
sort the whole list here; every other sort is :func:`laggard_order`, in the database)."""


OVERVIEW_CACHE_SECONDS = 60.0  # the big screen reloads every minute anyway
OVERVIEW_CACHE_ENTRIES = 512
#: How long past its minute the chart is still shown while it is read again in the
#: background; older, a request reads it itself (a page nobody opened for an hour).
CHART_STALE_SECONDS = 600.0


@dataclass(frozen=True)
class Overview:
    """What the overview page shows from the read model: the matrix and the chart series."""

    matrix: Matrix
    completion: dict[str, Any]
    # What the page renders from the above, kept with it (the matrix body of 5,000
    # townships is 40,000 cells): filled by the page, dropped with the entry.
    rendered: dict[str, Any] = field(default_factory=dict)


_V = TypeVar("_V")


class _Cache(Generic[_V]):
    """Values kept for a minute per key (at most ``OVERVIEW_CACHE_ENTRIES``, the least
    recently stored dropped first), in the API process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[Any, ...], tuple[float, _V]] = OrderedDict()

    def get(self, key: tuple[Any, ...]) -> _V | None:
        """The value if it is within its minute."""
        value, fresh = self.lookup(key, grace=0.0)
        return value if fresh else None

    def lookup(self, key: tuple[Any, ...], grace: float) -> tuple[_V | None, bool]:
        """The value and whether it is within its minute; a value past its minute by at
        most ``grace`` seconds comes back stale (False), an older one not at all."""
        with self._lock:
            entry = self._entries.get(key)
        if entry is None:
            return None, False
        now = time.monotonic()
        if entry[0] >= now:
            return entry[1], True
        return (entry[1], False) if now - entry[0] <= grace else (None, False)

    def put(self, key: tuple[Any, ...], value: _V) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic() + OVERVIEW_CACHE_SECONDS, value)
            self._entries.move_to_end(key)
            while len(self._entries) > OVERVIEW_CACHE_ENTRIES:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class _Refresher:
    """Reads cache entries again in one background thread, each key once at a time: a page
    answers with the entry past its minute meanwhile instead of waiting for the read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[tuple[Any, ...], Future[None]] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="overview-refresh")

    def submit(self, key: tuple[Any, ...], read: Callable[[], None]) -> None:
        """Run ``read`` in the background unless ``key`` is being read already."""
        with self._lock:
            if key in self._pending:
                return
            self._pending[key] = future = self._pool.submit(read)
        future.add_done_callback(lambda done: self._done(key, done))

    def _done(self, key: tuple[Any, ...], future: Future[None]) -> None:
        with self._lock:
            self._pending.pop(key, None)
        error = future.exception()
        if error is not None:  # the next request past the minute tries again
            log.warning("overview_chart_refresh_failed", key=str(key), error=str(error))

    def wait(self) -> None:
        """Until every read submitted so far is done (tests)."""
        with self._lock:
            pending = list(self._pending.values())
        for future in pending:
            future.exception()


#: Overviews per round, caller scope and filters; the interactive page's key also holds the
#: round's newest status write, so it is dropped as soon as a status row of the round is
#: written (read through an index that leads with the round).
overview_cache: _Cache[Overview] = _Cache()
#: The overview's completion chart per round, caller scope and filters (see :func:`overview`).
completion_cache: _Cache[dict[str, Any]] = _Cache()
#: Reads the chart again past its minute (see :func:`overview`).
chart_refresher = _Refresher()
#: The township filter's options per round and caller scope (see :func:`township_options`).
township_cache: _Cache[list[str]] = _Cache()


def _scope_key(user: User) -> tuple[Any, ...] | None:
    """What the caller's rows depend on besides the round (None: the whole county)."""
    if user.role in COUNTY_WIDE:
        return None
    return (user.role, user.county, user.scope_key, tuple(sorted(user.contact_orgs)))


def township_options(session: Session, user: User, round_id: str) -> list[str]:
    """The townships of the round's organisations in the caller's scope, sorted: the
    laggard list's township filter. Kept for a minute per round and scope (a county of
    5,000 townships reads 100,000 rows for them): a township whose first organisation joins
    the round shows in the filter within the minute."""
    key = (round_id, _scope_key(user))
    cached = township_cache.get(key)
    if cached is None:
        every = scoped(select(CampaignStatusRow.township).distinct(), user, round_id, Filters())
        cached = sorted(session.scalars(every).all())
        township_cache.put(key, cached)
    return cached


def _read_chart(
    engine: Engine, user: User, round_id: str, filters: Filters, key: tuple[Any, ...]
) -> None:
    """Read the chart in a session of its own (a background thread) and keep it."""
    with Session(engine) as session:
        completion_cache.put(key, completion_series(session, user, round_id, filters))


def overview(
    session: Session, user: User, round_id: str, filters: Filters, *, wall: bool = False,
    page: int = 1, search: str = "",
) -> Overview:  # fmt: skip
    """The overview of ``round_id`` for ``user``, from the cache when the same scope asked
    for it within the minute. The big screen (``wall``) takes what is cached, at most a
    minute old, as its reload does anyway; the interactive page also drops it as soon as a
    status row of the round is written (the round's newest ``updated_at``, read through an
    index that leads with the round), so an action's effect shows at once."""
    s = CampaignStatusRow
    changed = (
        None
        if wall
        else session.scalar(select(func.max(s.updated_at)).where(s.round_id == round_id))
    )
    key = (round_id, _scope_key(user), filters, wall, changed, page, search.strip())
    cached = overview_cache.get(key)
    if cached is not None:
        return cached
    # The chart is kept for the minute whatever is written: its forty points over the round
    # move by a completion or two in a minute, and it is the one part of a miss that reads
    # every completed phase (200,000 at 100,000 organisations: 100-200 ms). Past its minute
    # the page still shows it while it is read again in the background, so only the first
    # request of a round and scope waits for it. The matrix and the figures above it are
    # read again after each write, so an action's effect shows at once.
    chart_key = (round_id, _scope_key(user), filters)
    completion, fresh = completion_cache.lookup(chart_key, CHART_STALE_SECONDS)
    bind = session.get_bind()
    if completion is None or not isinstance(bind, Engine):
        completion = completion_series(session, user, round_id, filters)
        completion_cache.put(chart_key, completion)
    elif not fresh:
        chart_refresher.submit(
            chart_key, lambda: _read_chart(bind, user, round_id, filters, chart_key)
        )
    result = Overview(
        matrix(session, user, round_id, filters, page=page, search=search), completion
    )
    overview_cache.put(key, result)
    return result
