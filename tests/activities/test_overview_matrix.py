"""The overview's township × phase matrix at province scale (issue 14), on SQLite and
PostgreSQL: a county of more townships than a page shows a page of them, the townships with
the most laggards first, with every count and the totals row still complete; a search finds
townships by name; and a county's page (10–30 townships) is as it always was: every
township by name, no pager."""

from __future__ import annotations

import json
import re
import types
from collections import Counter, defaultdict
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request

from activities.tables import CampaignStatusRow, campaign_status
from api.ui import queries
from api.ui.queries import MATRIX_PAGE_SIZE, NOT_GREEN, Filters, matrix
from api.ui.routers.overview import overview
from benchmarks.bench_dashboard import ROUND, populate
from chuangzheng.services.sign_in import User
from domain.organisation import Role

COUNTY = User("county", "县委活动办", Role.COUNTY_OFFICE, "county")
NOW = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)
# Names that sort differently by code point and by pinyin, ties in red and in laggards,
# and "%" / "_" that a LIKE would take as wildcards.
TOWNSHIPS = ("青石镇", "白河乡", "城关街道", "大石桥镇", "A_镇", "a%乡", "东风镇", "西山乡",
             "南湖街道", "北岭镇", "桃园乡", "柳树镇", "白河镇")  # fmt: skip
LIGHTS = ("red", "yellow", "blue", "green")
PHASES = ("mobilisation", "public_commitment", "leadership_review", "public_evaluation")


def _seed(session: Session) -> None:
    """Status rows only (the matrix reads nothing else): township i has a mix of lights
    that gives some townships the same red count and the same laggard count."""
    rows = []
    n = 0
    for i, township in enumerate(TOWNSHIPS):
        for j in range(3 + (i * 7) % 11):
            light = LIGHTS[(i + j * (1 + i % 3)) % 4] if i % 4 else LIGHTS[(j + 1) % 4]
            rows.append(
                {
                    "round_id": ROUND, "org_id": f"org-{n:04d}", "org_name": f"单位{n}",
                    "township": township, "system": ("rural", "education")[j % 2],
                    "org_type": "rural", "phase": PHASES[(i + j) % len(PHASES)],
                    "phase_status": "open", "light": light, "overdue": light == "red",
                    "deadline": NOW, "top_rung": None, "closed": False, "event_seq": 1,
                    "updated_at": NOW,
                }
            )  # fmt: skip
            n += 1
    session.execute(campaign_status.insert(), rows)


@pytest.fixture
def county(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    with sessions.begin() as session:
        _seed(session)
    queries.overview_cache.clear()
    queries.completion_cache.clear()
    return sessions


def _expected(session: Session, filters: Filters) -> dict[str, Counter[tuple[str, str]]]:
    """Counts by township of (phase, light), from every row, in Python."""
    s = CampaignStatusRow
    stmt = queries.scoped(select(s.township, s.phase, s.light), COUNTY, ROUND, filters)
    counts: dict[str, Counter[tuple[str, str]]] = defaultdict(Counter)
    for township, phase, light in session.execute(stmt).all():
        counts[township][(phase, light)] += 1
    return counts


def _ranked(counts: dict[str, Counter[tuple[str, str]]]) -> list[str]:
    """Most red first, then most laggards, then by name (code point)."""

    def key(township: str) -> tuple[int, int, str]:
        c = counts[township]
        red = sum(n for (_, light), n in c.items() if light == "red")
        late = sum(n for (_, light), n in c.items() if light in NOT_GREEN)
        return (-red, -late, township)

    return sorted(counts, key=key)


def _check_cells(result: queries.Matrix, counts: dict[str, Counter[tuple[str, str]]]) -> None:
    """Every township shown has exactly its counts, cell by cell and in its row total."""
    for township, cells in result.rows.items():
        shown = Counter(
            {(p, light): n for p, cell in cells.items() for light, n in cell.lights.items()}
        )
        assert shown == counts[township], township
        assert result.row_totals[township].total == sum(counts[township].values())


def _check_totals(result: queries.Matrix, counts: dict[str, Counter[tuple[str, str]]]) -> None:
    """The totals row and the figures above the matrix count every township."""
    everything: Counter[tuple[str, str]] = sum(counts.values(), Counter())
    assert result.total.total == sum(everything.values())
    for light in LIGHTS:
        assert result.total.lights.get(light, 0) == sum(
            n for (_, lt), n in everything.items() if lt == light
        )
    for phase in PHASES:
        column = result.column_totals.get(phase)
        assert (column.total if column else 0) == sum(
            n for (p, _), n in everything.items() if p == phase
        )
    assert result.overdue == sum(n for (_, light), n in everything.items() if light == "red")


def test_a_county_within_a_page_shows_every_township_by_name(
    county: sessionmaker[Session],
) -> None:
    with county() as session:
        counts = _expected(session, Filters())
        result = matrix(session, COUNTY, ROUND, Filters())
        assert len(counts) == len(TOWNSHIPS) <= MATRIX_PAGE_SIZE
        assert list(result.rows) == sorted(TOWNSHIPS) and not result.paged
        assert (result.townships, result.page, result.pages) == (len(TOWNSHIPS), 1, 1)
        _check_cells(result, counts)
        _check_totals(result, counts)


@pytest.mark.parametrize("filters", [Filters(), Filters(system="education")])
def test_pages_show_every_township_once_most_laggards_first_with_complete_totals(
    county: sessionmaker[Session], filters: Filters
) -> None:
    with county() as session:
        counts = _expected(session, filters)
        order = _ranked(counts)
        seen: list[str] = []
        pages = -(-len(order) // 5)
        assert pages == 3
        for page in range(1, pages + 1):
            result = matrix(session, COUNTY, ROUND, filters, page=page, page_size=5)
            assert result.paged and (result.page, result.pages) == (page, pages)
            assert result.townships == len(order)
            assert list(result.row_totals) == list(result.rows)
            _check_cells(result, counts)
            _check_totals(result, counts)
            seen += list(result.rows)
        assert seen == order
        past = matrix(session, COUNTY, ROUND, filters, page=99, page_size=5)
        assert past.page == pages and list(past.rows) == order[(pages - 1) * 5 :]


def test_a_search_finds_townships_by_name_and_keeps_the_totals(
    county: sessionmaker[Session],
) -> None:
    with county() as session:
        counts = _expected(session, Filters())
        found = matrix(session, COUNTY, ROUND, Filters(), search=" 白河 ")
        assert found.paged and found.search == "白河" and found.townships == 2
        assert list(found.rows) == [t for t in _ranked(counts) if "白河" in t]
        _check_cells(found, counts)
        _check_totals(found, counts)
        # "%" and "_" are the characters themselves, not wildcards.
        assert list(matrix(session, COUNTY, ROUND, Filters(), search="%").rows) == ["a%乡"]
        assert list(matrix(session, COUNTY, ROUND, Filters(), search="_").rows) == ["A_镇"]
        none = matrix(session, COUNTY, ROUND, Filters(), search="没有这个乡")
        assert (none.rows, none.townships, none.pages) == ({}, 0, 1)
        _check_totals(none, counts)


def _request(query: str) -> Request:
    app = types.SimpleNamespace(state=types.SimpleNamespace())
    return Request(
        {
            "type": "http", "method": "GET", "scheme": "http", "server": ("test", 80),
            "path": "/ui/overview", "root_path": "", "query_string": query.encode(),
            "headers": [], "app": app,
        }
    )  # fmt: skip


def _page(session: Session, **query: str) -> str:
    text = "&".join(f"{k}={v}" for k, v in {"round": ROUND, **query}.items())
    response = overview(_request(text), session, COUNTY, round=ROUND, **query)
    return bytes(response.body).decode()


def _table(html: str) -> tuple[list[str], dict[str, dict[str, int]], dict[str, int]]:
    """The townships of the matrix's body in order, their cells' counts, and the totals
    row's counts (by phase, and ``sum``)."""
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    townships = re.findall(r'<tr data-township="([^"]*)">', body)
    cells: dict[str, dict[str, int]] = {}
    for township, row in re.findall(r'<tr data-township="([^"]*)">(.*?)</tr>', body, re.S):
        cells[township] = {
            p: int(n) for p, n in re.findall(r'data-phase="(\w+)" data-count="(\d+)"', row)
        }
    foot = html.split("<tfoot>", 1)[1].split("</tfoot>", 1)[0]
    totals = {p: int(n) for p, n in re.findall(r'data-phase="(\w+)" data-count="(\d+)"', foot)}
    totals["sum"] = int(re.findall(r'class="sum" data-count="(\d+)"', foot)[0])
    return townships, cells, totals


@pytest.mark.parametrize("organisations", [300, 1200])
def test_the_page_of_a_county_and_of_a_county_of_many_townships(
    sessions: sessionmaker[Session], organisations: int
) -> None:
    """A generated county (the benchmark's): 300 organisations are 15 townships, every one
    shown by name with no pager, as before; 1,200 are 60, shown 50 and 10 with a pager
    and complete totals."""
    with sessions.begin() as session:
        populate(session, organisations, seed=14)
    queries.overview_cache.clear()
    queries.completion_cache.clear()
    with sessions() as session:
        counts = _expected(session, Filters())
        by_phase: Counter[str] = Counter()
        for township_counts in counts.values():
            for (phase, _), n in township_counts.items():
                by_phase[phase] += n
        first = _page(session)
        townships, cells, totals = _table(first)
        assert totals["sum"] == organisations
        assert {p: n for p, n in totals.items() if p != "sum" and n} == dict(by_phase)
        for township in townships:
            assert sum(cells[township].values()) == sum(counts[township].values())
        if len(counts) <= MATRIX_PAGE_SIZE:
            assert townships == sorted(counts)
            assert 'id="matrix-pager"' not in first and 'id="matrix-search"' not in first
            return
        assert townships == _ranked(counts)[:MATRIX_PAGE_SIZE]
        assert 'id="matrix-pager"' in first and f"共 {len(counts)} 个乡镇" in first
        second = _page(session, tpage="2")
        rest, _, second_totals = _table(second)
        assert rest == _ranked(counts)[MATRIX_PAGE_SIZE:] and second_totals == totals
        assert _table(_page(session, tpage="junk"))[0] == townships  # a mangled link
        chart = re.search(r'id="chart-data">(.*?)</script>', second, re.S)
        assert chart is not None and json.loads(chart.group(1))["lights"]["townships"] == rest
