"""A county's own roster over the real stack: import it, accounts follow (no passwords), a
replaced secretary gets 404 on the organisation, a re-import reports no change; an
organisation that leaves a running round waits for the county office's decision, and a
closed one's workflow ends; the audit log shows it all and exports it; the inbox pages.

Every test here changes the roster, so each gets a county of its own: a fresh read model,
task queue, worker and API over the session's Temporal dev server (the shared stack's
roster stays as the other tests expect it). Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
import uvicorn
from openpyxl import load_workbook  # type: ignore[import-untyped]
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from activities.db import create_schema, make_engine, session_factory
from activities.tables import AuditRow, CampaignStatusRow, NoticeRow, UserRow
from api.auth import hash_password, upsert_user
from api.main import create_app
from chuangzheng.settings import Settings
from domain.organisation import Role
from tests.api.conftest import PASSWORD, free_port, wait_for
from worker import build_worker
from workflows.ids import organisation_workflow_id
from workflows.organisation import OrganisationCampaignWorkflow

pytestmark = pytest.mark.asyncio(loop_scope="session")

HEADER = "组织编号,组织名称,组织类型,所属乡镇,所属系统,党员人数,书记,指导员\n"
ROWS = [
    "p-1,东关村党支部,农村,东关镇,县农委,30,甲一,指导甲",
    "p-2,西关村党支部,农村,东关镇,县农委,22,甲二,指导甲",
    "p-3,东关卫生院党支部,事业单位,东关镇,县卫生局,15,甲三,指导乙",
    "p-4,南岭村党支部,农村,南岭乡,县农委,41,乙一,指导丙",
    "p-5,北岭社区党支部,社区,南岭乡,县农委,19,乙二,指导丙",
    "p-6,南岭中学党支部,事业单位,南岭乡,县教育局,12,乙三,指导丁",
]


def roster_file(rows: list[str]) -> dict[str, tuple[str, bytes, str]]:
    return {"file": ("roster.csv", (HEADER + "\n".join(rows) + "\n").encode(), "text/csv")}


@dataclass(frozen=True)
class County:
    """A county of its own: the API's URL, its read model and the Temporal client."""

    base_url: str
    sessions: sessionmaker[Session]
    env: WorkflowEnvironment


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def county_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The county's own read model: a fresh SQLite file, or a fresh PostgreSQL database
    when the server answers."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'county.db'}"
        return
    base_url: str = request.getfixturevalue("postgres_url")
    name = f"cz_county_{uuid.uuid4().hex[:10]}"
    admin = make_engine(base_url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield base_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def county(
    dev_server: WorkflowEnvironment, tmp_path: Path, county_database: str
) -> AsyncIterator[County]:
    """An empty county (only the county office's account) with its worker and API."""
    settings = Settings(
        environment="test",
        data_dir=tmp_path / "data",
        database_url=county_database,
        temporal_address=dev_server.client.service_client.config.target_host,
        task_queue=f"county-{uuid.uuid4()}",
        secret_key=f"test-{uuid.uuid4()}",
    )
    engine = make_engine(settings.database_url)
    create_schema(engine)
    sessions = session_factory(engine)
    with sessions.begin() as session:
        for username, role in (("county", Role.COUNTY_OFFICE), ("assess", Role.ASSESSMENT_GROUP)):
            upsert_user(
                session, username=username, display_name=username, password=PASSWORD, role=role
            )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=free_port(), log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    worker = build_worker(dev_server.client, task_queue=settings.task_queue, sessions=sessions)
    async with worker:
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            await asyncio.sleep(0.05)
        try:
            yield County(f"http://127.0.0.1:{server.config.port}", sessions, dev_server)
        finally:
            server.should_exit = True
            await asyncio.to_thread(thread.join, 10)
    engine.dispose()


async def login(http: httpx.AsyncClient, username: str) -> dict[str, str]:
    response = await http.post(
        "/api/v1/auth/login", json={"username": username, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def set_password(county: County, username: str) -> None:
    """What activation will do, done directly: the account gets a password."""
    with county.sessions.begin() as session:
        row = session.get(UserRow, username)
        assert row is not None, username
        row.password_hash = hash_password(PASSWORD)


async def visible(http: httpx.AsyncClient, headers: dict[str, str]) -> list[str]:
    response = await http.get("/api/v1/organisations", headers=headers)
    assert response.status_code == 200, response.text
    return [o["org_id"] for o in response.json()]


# ----- accounts follow the roster -------------------------------------------------------------
async def test_a_new_countys_people_get_accounts_scoped_to_exactly_their_part(
    county: County,
) -> None:
    async with httpx.AsyncClient(base_url=county.base_url, timeout=60) as http:
        office = await login(http, "county")
        imported = await http.post("/api/v1/roster", files=roster_file(ROWS), headers=office)
        assert imported.status_code == 200, imported.text
        report = imported.json()
        assert (report["added"], report["updated"], report["deactivated"]) == (6, 0, 0)
        # 6 secretaries, 4 instructors, 2 townships, 3 guidance groups.
        assert report["accounts_created"] == 15

        with county.sessions() as session:
            roster_accounts = session.scalars(
                select(UserRow).where(UserRow.source == "roster")
            ).all()
        assert len(roster_accounts) == 15
        assert all(a.password_hash is None for a in roster_accounts)  # nobody's default
        refused = await http.post(
            "/api/v1/auth/login",
            json={"username": "township-南岭乡", "password": PASSWORD},
        )
        assert refused.status_code == 401  # no password until activated

        for username in ("secretary-p-3-甲三", "instructor-指导丙", "township-南岭乡"):
            set_password(county, username)
        assert await visible(http, await login(http, "secretary-p-3-甲三")) == ["p-3"]
        assert await visible(http, await login(http, "instructor-指导丙")) == ["p-4", "p-5"]
        assert await visible(http, await login(http, "township-南岭乡")) == ["p-4", "p-5", "p-6"]
        set_password(county, "guidance-health")
        assert await visible(http, await login(http, "guidance-health")) == ["p-3"]

        forbidden = await http.post(
            "/api/v1/roster", files=roster_file(ROWS), headers=await login(http, "township-南岭乡")
        )
        assert forbidden.status_code == 403


async def test_a_replaced_secretary_gets_404_and_the_new_one_the_organisation(
    county: County,
) -> None:
    async with httpx.AsyncClient(base_url=county.base_url, timeout=60) as http:
        office = await login(http, "county")
        first = await http.post("/api/v1/roster", files=roster_file(ROWS), headers=office)
        assert first.status_code == 200, first.text
        set_password(county, "secretary-p-1-甲一")
        old = await login(http, "secretary-p-1-甲一")
        assert (await http.get("/api/v1/organisations/p-1", headers=old)).status_code == 200

        replaced = [ROWS[0].replace("甲一", "甲新"), *ROWS[1:]]
        second = await http.post("/api/v1/roster", files=roster_file(replaced), headers=office)
        assert second.status_code == 200, second.text
        report = second.json()
        assert (report["updated"], report["unchanged"]) == (1, 5)
        assert (report["accounts_created"], report["accounts_unscoped"]) == (1, 1)

        # The old secretary: a token issued before may end at once (session version); a new
        # sign-in still works, but the organisation is gone for them.
        again = await login(http, "secretary-p-1-甲一")
        assert (await http.get("/api/v1/organisations/p-1", headers=again)).status_code == 404
        assert await visible(http, again) == []
        status = await http.get("/api/v1/organisations/p-1", headers=old)
        assert status.status_code in (401, 404)
        with county.sessions() as session:
            new = session.get(UserRow, "secretary-p-1-甲新")
            assert new is not None and (new.scope_key, new.password_hash) == ("p-1", None)
        set_password(county, "secretary-p-1-甲新")
        new_token = await login(http, "secretary-p-1-甲新")
        detail = await http.get("/api/v1/organisations/p-1", headers=new_token)
        assert detail.status_code == 200 and detail.json()["secretary"] == "甲新"

        same = await http.post("/api/v1/roster", files=roster_file(replaced), headers=office)
        assert same.status_code == 200
        counts = same.json()
        assert {k: v for k, v in counts.items() if k not in ("total", "unchanged")} == {
            "added": 0,
            "updated": 0,
            "deactivated": 0,
            "reactivated": 0,
            "accounts_created": 0,
            "accounts_rescoped": 0,
            "accounts_unscoped": 0,
            "accounts_renamed": 0,
            "departures_pending": 0,
            "departures_withdrawn": 0,
        }
        assert (counts["total"], counts["unchanged"]) == (6, 6)

        audit = await http.get(
            "/api/v1/audit", params={"org_id": "p-1", "action": "account.roster_sync"},
            headers=office,
        )  # fmt: skip
        assert audit.status_code == 200, audit.text
        changes = [(e["detail"]["username"], e["detail"]["change"]) for e in audit.json()["items"]]
        # Newest first; the second import's rows share its instant and order by id.
        assert changes == [
            ("secretary-p-1-甲新", "created"),
            ("secretary-p-1-甲一", "unscoped"),
            ("secretary-p-1-甲一", "created"),
        ]


# ----- organisations leaving a running round ------------------------------------------------
async def start_round(http: httpx.AsyncClient, office: dict[str, str], orgs: list[str]) -> str:
    round_id = f"dep-{uuid.uuid4().hex[:8]}"
    created = await http.post(
        "/api/v1/rounds",
        json={"round_id": round_id, "plan_id": "demo", "round_plan_id": "demo"},
        headers=office,
    )
    assert created.status_code == 201, created.text
    kicked = await http.post(f"/api/v1/rounds/{round_id}/kickoff", headers=office)
    assert kicked.status_code == 200, kicked.text

    async def all_started() -> bool:
        for org in orgs:
            r = await http.get(
                f"/api/v1/rounds/{round_id}/organisations/{org}/status", headers=office
            )
            if r.status_code != 200:
                return False
        return True

    await wait_for(all_started)
    return round_id


def status_row(county: County, round_id: str, org_id: str) -> CampaignStatusRow | None:
    with county.sessions() as session:
        row = session.get(CampaignStatusRow, (round_id, org_id))
        if row is not None:
            session.expunge(row)
        return row


async def test_leaving_a_running_round_waits_for_the_county_office_and_close_ends_it(
    county: County,
) -> None:
    async with httpx.AsyncClient(base_url=county.base_url, timeout=60) as http:
        office = await login(http, "county")
        assert (
            await http.post("/api/v1/roster", files=roster_file(ROWS), headers=office)
        ).status_code == 200
        orgs = [f"p-{i}" for i in range(1, 7)]
        round_id = await start_round(http, office, orgs)
        await wait_for(lambda: _all_rows(county, round_id, orgs))

        left = await http.post("/api/v1/roster", files=roster_file(ROWS[:4]), headers=office)
        assert left.status_code == 200, left.text
        assert (left.json()["deactivated"], left.json()["departures_pending"]) == (2, 2)
        again = await http.post("/api/v1/roster", files=roster_file(ROWS[:4]), headers=office)
        assert (again.json()["deactivated"], again.json()["departures_pending"]) == (0, 0)

        pending = await http.get(
            "/api/v1/roster/departures", params={"decision": "pending"}, headers=office
        )
        assert pending.status_code == 200, pending.text
        assert [(d["round_id"], d["org_id"]) for d in pending.json()] == [
            (round_id, "p-5"),
            (round_id, "p-6"),
        ]
        assert pending.json()[0]["decision_label"] == "待定"

        # Who is in the round: every list agrees, the ones that left are marked.
        in_round = await http.get(
            "/api/v1/organisations", params={"round_id": round_id}, headers=office
        )
        marked = {o["org_id"]: (o.get("left_roster"), o.get("departure")) for o in in_round.json()}
        assert marked == {
            "p-1": (False, None),
            "p-2": (False, None),
            "p-3": (False, None),
            "p-4": (False, None),
            "p-5": (True, "pending"),
            "p-6": (True, "pending"),
        }
        assert await visible(http, office) == ["p-1", "p-2", "p-3", "p-4"]  # the roster now
        counts = await http.get(f"/api/v1/rounds/{round_id}/supervision/counts", headers=office)
        assert sum(c["total"] for c in counts.json()) == 6

        # Only the county office lists and decides; close needs a reason.
        assessor = await login(http, "assess")
        assert (await http.get("/api/v1/roster/departures", headers=assessor)).status_code == 403
        not_theirs = await http.post(
            f"/api/v1/roster/departures/{round_id}/p-5", json={"decision": "keep"}, headers=assessor
        )
        assert not_theirs.status_code == 403
        no_reason = await http.post(
            f"/api/v1/roster/departures/{round_id}/p-5", json={"decision": "close"}, headers=office
        )
        assert no_reason.status_code == 422
        assert no_reason.json()["errors"][0]["field"] == "reason"
        closed = await http.post(
            f"/api/v1/roster/departures/{round_id}/p-5",
            json={"decision": "close", "reason": "并入东关村党支部"},
            headers=office,
        )
        assert closed.status_code == 200, closed.text
        assert (closed.json()["decision"], closed.json()["decided_by"]) == ("close", "county")
        same = await http.post(
            f"/api/v1/roster/departures/{round_id}/p-5",
            json={"decision": "close", "reason": "并入东关村党支部"},
            headers=office,
        )
        assert same.status_code == 200 and same.json()["decided_at"] == closed.json()["decided_at"]
        other = await http.post(
            f"/api/v1/roster/departures/{round_id}/p-5", json={"decision": "keep"}, headers=office
        )
        assert other.status_code == 409
        kept = await http.post(
            f"/api/v1/roster/departures/{round_id}/p-6", json={"decision": "keep"}, headers=office
        )
        assert kept.status_code == 200 and kept.json()["decision"] == "keep"
        unknown = await http.post(
            f"/api/v1/roster/departures/{round_id}/p-1", json={"decision": "keep"}, headers=office
        )
        assert unknown.status_code == 404

        # The closed organisation's workflow ends (no timer left to escalate from); the
        # kept one runs on.
        closed_handle = county.env.client.get_workflow_handle_for(
            OrganisationCampaignWorkflow.run, organisation_workflow_id(round_id, "p-5")
        )
        result = await asyncio.wait_for(closed_handle.result(), timeout=60)
        assert result.closed is True
        described = await closed_handle.describe()
        assert described.status is WorkflowExecutionStatus.COMPLETED
        kept_handle = county.env.client.get_workflow_handle(
            organisation_workflow_id(round_id, "p-6")
        )
        assert (await kept_handle.describe()).status is WorkflowExecutionStatus.RUNNING

        async def row_closed() -> bool:
            row = status_row(county, round_id, "p-5")
            return row is not None and row.closed

        await wait_for(row_closed)
        notices_then = _notices_for(county, round_id, "p-5")
        await asyncio.sleep(1)
        assert _notices_for(county, round_id, "p-5") == notices_then

        after = await http.get(
            "/api/v1/organisations", params={"round_id": round_id}, headers=office
        )
        by_id = {o["org_id"]: o for o in after.json()}
        assert (by_id["p-5"]["closed"], by_id["p-5"]["departure"]) == (True, "close")
        assert by_id["p-6"]["departure"] == "keep"
        assert (
            await http.get("/api/v1/roster/departures", params={"decision": "pending"},
                           headers=office)
        ).json() == []  # fmt: skip

        decisions = await http.get(
            "/api/v1/audit", params={"action": "roster.departure", "round_id": round_id},
            headers=office,
        )  # fmt: skip
        items = decisions.json()["items"]
        assert sorted((e["org_id"], e["detail"]["decision"]) for e in items) == [
            ("p-5", "close"),
            ("p-6", "keep"),
        ]
        assert {e["detail"]["reason"] for e in items if e["org_id"] == "p-5"} == {
            "并入东关村党支部"
        }


async def _all_rows(county: County, round_id: str, orgs: list[str]) -> bool:
    return all(status_row(county, round_id, org) is not None for org in orgs)


def _notices_for(county: County, round_id: str, org_id: str) -> list[str]:
    with county.sessions() as session:
        return sorted(
            session.scalars(
                select(NoticeRow.notice_id).where(
                    NoticeRow.round_id == round_id, NoticeRow.org_id == org_id
                )
            )
        )


# ----- the audit log --------------------------------------------------------------------------
def add_audit(county: County, rows: list[AuditRow]) -> None:
    with county.sessions.begin() as session:
        session.add_all(rows)


def audit_row(n: int, at: datetime, **fields: object) -> AuditRow:
    values: dict[str, object] = {
        "audit_id": f"t/{n:04d}",
        "user": "county",
        "role": "county_office",
        "action": "round_created",
        "round_id": None,
        "org_id": None,
        "ip": "10.1.1.1",
        "at": at,
        "detail": {},
    }
    values.update(fields)
    return AuditRow(**values)


async def test_the_audit_log_filters_pages_and_exports_text_as_text(county: County) -> None:
    base = datetime(2026, 3, 1, 1, 0, tzinfo=UTC)
    rows = [audit_row(n, base + timedelta(minutes=n)) for n in range(250)]
    rows += [
        audit_row(900, base + timedelta(days=1), user="township-东关镇", role="township",
                  action="login", ip="=1+1"),
        audit_row(901, base + timedelta(days=2), org_id="p-2", round_id="r-9",
                  action="roster.departure",
                  detail={"decision": "close", "reason": '=HYPERLINK("http://evil","点我")'}),
        audit_row(902, base + timedelta(days=3), user="-2+3", role="secretary",
                  action="@SUM(A1)", org_id="p-1", round_id="=cmd|' /C calc'!A0"),
    ]  # fmt: skip
    add_audit(county, rows)
    async with httpx.AsyncClient(base_url=county.base_url, timeout=60) as http:
        office = await login(http, "county")

        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, str | int] = {"limit": 100, "action": "round_created"}
            if cursor:
                params["cursor"] = cursor
            page = (await http.get("/api/v1/audit", params=params, headers=office)).json()
            seen += [e["audit_id"] for e in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert seen == [f"t/{n:04d}" for n in reversed(range(250))]  # newest first, once each

        by_person = await http.get(
            "/api/v1/audit", params={"person": "township-东关镇"}, headers=office
        )
        [login_row] = by_person.json()["items"]
        assert (login_row["action_label"], login_row["role_label"]) == ("登录", "乡镇党委")
        assert login_row["at_local"] == "2026-03-02 09:00:00"  # Asia/Shanghai
        by_org = await http.get("/api/v1/audit", params={"org_id": "p-2"}, headers=office)
        assert [e["audit_id"] for e in by_org.json()["items"]] == ["t/0901"]
        by_round = await http.get("/api/v1/audit", params={"round_id": "r-9"}, headers=office)
        assert [e["audit_id"] for e in by_round.json()["items"]] == ["t/0901"]
        window = await http.get(
            "/api/v1/audit",
            params={"from": "2026-03-02T09:00:00+08:00", "to": "2026-03-03T09:00:00+08:00"},
            headers=office,
        )
        assert [e["audit_id"] for e in window.json()["items"]] == ["t/0900"]
        backwards = await http.get(
            "/api/v1/audit",
            params={"from": "2026-03-03T00:00:00+08:00", "to": "2026-03-02T00:00:00+08:00"},
            headers=office,
        )
        assert backwards.status_code == 422 and backwards.json()["errors"][0]["field"] == "to"
        bad_cursor = await http.get("/api/v1/audit", params={"cursor": "不是游标"}, headers=office)
        assert bad_cursor.status_code == 422
        assessor = await login(http, "assess")
        assert (await http.get("/api/v1/audit", headers=assessor)).status_code == 403
        assert (await http.get("/api/v1/audit.xlsx", headers=assessor)).status_code == 403

        export = await http.get(
            "/api/v1/audit.xlsx",
            params={"from": "2026-03-02T00:00:00+08:00", "to": "2026-03-05T00:00:00+08:00"},
            headers=office,
        )
        assert export.status_code == 200
        assert export.headers["content-type"].startswith("application/vnd.openxmlformats")
        sheet = load_workbook(io.BytesIO(export.content)).active
        table = [[c.value for c in row] for row in sheet.iter_rows()]
        assert table[0][:4] == ["时间（北京时间）", "账号", "角色", "操作"]
        assert [r[1] for r in table[1:]] == ["-2+3", "county", "township-东关镇"]
        formula_like = [c for row in sheet.iter_rows(min_row=2) for c in row if c.value]
        assert all(c.data_type == "s" for c in formula_like)  # never a formula
        assert table[1][3] == "@SUM(A1)" and table[3][6] == "=1+1"
        assert json.loads(table[2][7])["reason"] == '=HYPERLINK("http://evil","点我")'
        assert table[1][4] == "=cmd|' /C calc'!A0"

        # The page: county office only, Chinese labels, the export link keeps the filter.
        async with page_client(county, office) as pages:
            html = await pages.get("/ui/audit", params={"person": "township-东关镇"})
            assert html.status_code == 200, html.text
            assert "审计日志" in html.text and "登录" in html.text
            assert "2026-03-02 09:00:00" in html.text
            assert 'href="/ui/audit.xlsx?person=township-%E4%B8%9C%E5%85%B3%E9%95%87&' in html.text
            assert "t/0001" not in html.text
            assert '<a href="/ui/audit">审计日志</a>' in html.text  # in the navigation
            day = await pages.get(
                "/ui/audit.xlsx", params={"from": "2026-03-04", "to": "2026-03-04"}
            )
            book = load_workbook(io.BytesIO(day.content))
            assert [r[1] for r in list(book.active.iter_rows(values_only=True))[1:]] == ["-2+3"]
        async with page_client(county, assessor) as pages:
            refused = await pages.get("/ui/audit")
            assert refused.status_code == 403
            assert '<a href="/ui/audit">' not in refused.text


def page_client(county: County, headers: dict[str, str]) -> httpx.AsyncClient:
    """A browser-like client: the same token as the pages' login cookie."""
    token_value = headers["Authorization"].removeprefix("Bearer ")
    return httpx.AsyncClient(
        base_url=county.base_url, timeout=60, cookies={"cz_token": token_value}
    )


# ----- the inbox at volume --------------------------------------------------------------------
def notice(n: int, at: datetime, **fields: object) -> NoticeRow:
    values: dict[str, object] = {
        "notice_id": f"r-1/x-{n:05d}/mobilisation/escalation/2/guidance_group:health",
        "round_id": "r-1",
        "org_id": f"x-{n % 7}",
        "org_name": "某党支部",
        "phase": "mobilisation",
        "kind": "escalation",
        "rung": 2,
        "recipient_role": "guidance_group",
        "recipient_key": "health",
        "recipient_label": "医疗卫生指导小组",
        "title": f"督办 {n}",
        "body": "……",
        "link_path": "/orgs/x",
        "created_at": at,
        "delivered_at": at,
        "read_at": None,
    }
    values.update(fields)
    return NoticeRow(**values)


async def test_paging_through_1200_notices_returns_each_exactly_once(county: County) -> None:
    base = datetime(2026, 5, 1, tzinfo=UTC)
    # Ten notices share each instant, so the order needs the id to break ties.
    originals = [notice(n, base + timedelta(seconds=n // 10)) for n in range(1200)]
    with county.sessions.begin() as session:
        session.add_all(originals)
        upsert_user(
            session, username="gg-health", display_name="医疗卫生指导小组", password=PASSWORD,
            role=Role.GUIDANCE_GROUP, scope_key="health",
        )  # fmt: skip
    wanted = {n.notice_id for n in originals}
    async with httpx.AsyncClient(base_url=county.base_url, timeout=60) as http:
        health = await login(http, "gg-health")
        old_style = await http.get("/api/v1/notices", params={"limit": 500}, headers=health)
        assert len(old_style.json()) == 500  # the old behaviour: the newest 500

        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            params: dict[str, str | int] = {"limit": 97}
            if cursor:
                params["cursor"] = cursor
            response = await http.get("/api/v1/notices", params=params, headers=health)
            assert response.status_code == 200, response.text
            seen += [n["notice_id"] for n in response.json()]
            cursor = response.headers.get("x-next-cursor")
            pages += 1
            # Meanwhile new notices keep arriving, at the same instant as the page's last
            # one and later.
            with county.sessions.begin() as session:
                last = (
                    datetime.fromisoformat(response.json()[-1]["created_at"])
                    if (response.json())
                    else base
                )
                session.add_all(
                    [
                        notice(5000 + pages * 10 + i, at, title="新督办")
                        for i, at in enumerate((datetime.now(UTC), last + timedelta(hours=1)))
                    ]
                )
            if not cursor:
                break
        originals_seen = [n for n in seen if n in wanted]
        assert len(originals_seen) == 1200 and set(originals_seen) == wanted
        assert pages >= 13

        kind = await http.get("/api/v1/notices", params={"kind": "reminder"}, headers=health)
        assert kind.json() == []
        with county.sessions.begin() as session:
            first = session.get(NoticeRow, originals[0].notice_id)
            assert first is not None
            first.read_at = datetime.now(UTC)
            session.add(notice(9999, base, round_id="r-2"))
        read = await http.get("/api/v1/notices", params={"read": "true"}, headers=health)
        assert [n["notice_id"] for n in read.json()] == [originals[0].notice_id]
        by_round = await http.get("/api/v1/notices", params={"round_id": "r-2"}, headers=health)
        assert [n["round_id"] for n in by_round.json()] == ["r-2"]
        unread = await http.get(
            "/api/v1/notices", params={"unread": "true", "limit": 500}, headers=health
        )
        assert originals[0].notice_id not in {n["notice_id"] for n in unread.json()}
        bad = await http.get("/api/v1/notices", params={"cursor": "%%%"}, headers=health)
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "cursor"
