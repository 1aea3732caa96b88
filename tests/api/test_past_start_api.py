"""A round may not start in the past (``chuangzheng.services.rounds.retroactive_start``),
over the real stack (uvicorn, the project's worker, the dev server; SQLite and PostgreSQL):
a start before today in Asia/Shanghai is refused at creation with 422 naming ``starts_at``
and nothing is written (no round row, no definition, no workflow); a minute-scale round whose
deadlines have passed likewise; a round created with a start that has passed by its first
kick-off is refused there, before any workflow starts or the roster is snapshotted; any hour
of today is a start, and a repeated kick-off of a running round is never refused for it. The
operator's explicit escape (``allow_past_start``, service only) is audited."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from activities.db import make_engine, session_factory
from activities.tables import AuditRow, RoundDefinitionRow, RoundRow
from chuangzheng.services import rounds
from chuangzheng.services.errors import InvalidInput
from domain.calendar import SHANGHAI
from domain.organisation import Role
from domain.state import Actor
from tests.api.conftest import Stack, token
from workflows.ids import round_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")

ROOT = Path(__file__).resolve().parents[2]
# Round two of seed-002 counts working days; from December 2026 on it needs the provisional
# 2027 file and 2028 vouched for (weekends only) to resolve at all.
SEED = (ROOT / "plans" / "seed-002.yaml").read_text("utf-8") + (
    "\ncalendar:\n  include: [2027-provisional]\n  supplied_years: [2028]\n"
)
COUNTY = Actor(user="county", name="county", role=Role.COUNTY_OFFICE, ip="127.0.0.1")


def today() -> datetime:
    """The start of today in Asia/Shanghai."""
    return datetime.combine(datetime.now(SHANGHAI).date(), time(0), SHANGHAI)


@pytest.fixture
def db(stack: Stack) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(stack.settings.database_url)
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()


async def no_workflow(dev_server: WorkflowEnvironment, round_id: str) -> bool:
    try:
        await dev_server.client.get_workflow_handle(round_workflow_id(round_id)).describe()
    except RPCError as exc:
        return exc.status is RPCStatusCode.NOT_FOUND
    return False


def nothing_written(db: sessionmaker[Session], round_id: str) -> bool:
    with db() as session:
        return (
            session.get(RoundRow, round_id) is None
            and session.get(RoundDefinitionRow, round_id) is None
            and not session.scalars(select(AuditRow).where(AuditRow.round_id == round_id)).all()
        )


async def test_a_start_before_today_is_refused_naming_starts_at_and_nothing_is_written(
    stack: Stack,
    http: httpx.AsyncClient,
    db: sessionmaker[Session],
    dev_server: WorkflowEnvironment,
) -> None:
    county = await token(http, "county")
    day = datetime.now(SHANGHAI).date().isoformat()
    # Yesterday evening: the first deadline is weeks ahead, but every window would be a day
    # short and the pro-rata schedule behind from the start.
    for starts_at in (today() - timedelta(minutes=1), today() - timedelta(days=30)):
        rid = f"past-{uuid.uuid4().hex[:8]}"
        refused = await http.post(
            "/api/v1/rounds",
            json={
                "round_id": rid,
                "plan_yaml": SEED,
                "round_plan_id": "round-2",
                "starts_at": starts_at.isoformat(),
            },
            headers=county,
        )
        assert refused.status_code == 422, refused.text
        body = refused.json()
        assert body["code"] == "past_start"
        assert body["errors"] == [
            {"field": "starts_at", "reason": f"开始时间不能早于今天（{day}）"}
        ]
        assert (await http.get(f"/api/v1/rounds/{rid}", headers=county)).status_code == 404
        assert nothing_written(db, rid)
        # Nothing to kick off either, and no workflow.
        kicked = await http.post(f"/api/v1/rounds/{rid}/kickoff", headers=county)
        assert kicked.status_code == 404, kicked.text
        assert await no_workflow(dev_server, rid)


async def test_a_minute_round_whose_deadlines_have_passed_is_refused(
    stack: Stack, http: httpx.AsyncClient, db: sessionmaker[Session]
) -> None:
    """The demo plan counts minutes (no days): a start an hour ago has every deadline behind
    it; a start a minute ago (its four-minute first phase still open) is a start."""
    county = await token(http, "county")
    rid = f"past-{uuid.uuid4().hex[:8]}"
    refused = await http.post(
        "/api/v1/rounds",
        json={
            "round_id": rid,
            "plan_id": "demo",
            "round_plan_id": "demo",
            "starts_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        },
        headers=county,
    )
    assert refused.status_code == 422, refused.text
    [error] = refused.json()["errors"]
    assert error["field"] == "starts_at"
    assert error["reason"].startswith("开始时间过早：动员部署阶段的截止时间")
    assert nothing_written(db, rid)

    recent = f"past-{uuid.uuid4().hex[:8]}"
    created = await http.post(
        "/api/v1/rounds",
        json={
            "round_id": recent,
            "plan_id": "demo",
            "round_plan_id": "demo",
            "starts_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
        },
        headers=county,
    )
    assert created.status_code == 201, created.text


async def test_a_start_that_passed_before_the_first_kickoff_is_refused_there(
    stack: Stack,
    http: httpx.AsyncClient,
    db: sessionmaker[Session],
    dev_server: WorkflowEnvironment,
) -> None:
    """Created for today, kicked off only the next day (simulated: the stored start moved
    back a day): 422 on ``starts_at``, no workflow, nothing of the kick-off written."""
    county = await token(http, "county")
    rid = f"past-{uuid.uuid4().hex[:8]}"
    created = await http.post(
        "/api/v1/rounds",
        json={
            "round_id": rid,
            "plan_yaml": SEED,
            "round_plan_id": "round-2",
            "starts_at": (today() + timedelta(hours=9)).isoformat(),
        },
        headers=county,
    )
    assert created.status_code == 201, created.text
    yesterday = today() - timedelta(hours=15)
    with db.begin() as session:
        session.execute(
            update(RoundDefinitionRow)
            .where(RoundDefinitionRow.round_id == rid)
            .values(starts_at=yesterday)
        )
        session.execute(
            update(RoundRow).where(RoundRow.round_id == rid).values(starts_at=yesterday)
        )
    kicked = await http.post(f"/api/v1/rounds/{rid}/kickoff", headers=county)
    assert kicked.status_code == 422, kicked.text
    assert kicked.json()["code"] == "past_start"
    [error] = kicked.json()["errors"]
    assert error["field"] == "starts_at" and error["reason"].startswith("开始时间不能早于今天")
    assert await no_workflow(dev_server, rid)
    view = (await http.get(f"/api/v1/rounds/{rid}", headers=county)).json()
    assert (view["status"], view["kicked_off_at"]) == ("created", None)
    with db() as session:
        definition = session.get(RoundDefinitionRow, rid)
        assert definition is not None and definition.roster_snapshot is None
        actions = session.scalars(select(AuditRow.action).where(AuditRow.round_id == rid)).all()
        assert actions == ["round_created"]
    assert not (stack.settings.data_dir / "rosters" / f"{rid}.csv").exists()
    # The refusal says what to do, and the round can be closed rather than left "created"
    # for ever (found by an outside operator).
    assert "请关闭本轮，另建一轮" in error["reason"]
    closed = await http.post(
        f"/api/v1/rounds/{rid}/close", json={"reason": "开始时间已过"}, headers=county
    )
    assert closed.status_code == 200, closed.text
    view = (await http.get(f"/api/v1/rounds/{rid}", headers=county)).json()
    assert view["status"] == "closed" and "开始时间已过" in (view["status_reason"] or "")
    again = await http.post(f"/api/v1/rounds/{rid}/kickoff", headers=county)
    assert again.status_code == 409, again.text
    assert await no_workflow(dev_server, rid)
    with db() as session:
        actions = session.scalars(select(AuditRow.action).where(AuditRow.round_id == rid)).all()
        assert sorted(actions) == ["round_created", "round_withdrawn"]


async def test_today_is_a_start_and_a_repeated_kickoff_is_not_refused_for_it(
    stack: Stack, http: httpx.AsyncClient, db: sessionmaker[Session]
) -> None:
    """Midnight today is a start (periods counted in days begin tomorrow either way). Once
    the round runs, kicking it off again the next day answers as the first time did."""
    county = await token(http, "county")
    rid = f"past-{uuid.uuid4().hex[:8]}"
    created = await http.post(
        "/api/v1/rounds",
        json={
            "round_id": rid,
            "plan_yaml": SEED,
            "round_plan_id": "round-2",
            "starts_at": today().isoformat(),
        },
        headers=county,
    )
    assert created.status_code == 201, created.text
    first = await http.post(f"/api/v1/rounds/{rid}/kickoff", headers=county)
    assert first.status_code == 200, first.text
    try:
        yesterday = today() - timedelta(hours=15)
        with db.begin() as session:
            session.execute(
                update(RoundDefinitionRow)
                .where(RoundDefinitionRow.round_id == rid)
                .values(starts_at=yesterday)
            )
        again = await http.post(f"/api/v1/rounds/{rid}/kickoff", headers=county)
        assert again.status_code == 200, again.text
        assert again.json()["kicked_off_at"] == first.json()["kicked_off_at"]
    finally:
        closed = await http.post(
            f"/api/v1/rounds/{rid}/close", json={"reason": "测试结束"}, headers=county
        )
        assert closed.status_code == 200, closed.text


async def test_the_operators_escape_is_explicit_and_audited(
    stack: Stack, db: sessionmaker[Session]
) -> None:
    """A historic round re-entered through the service with ``allow_past_start``: written,
    and its creation's audit says the start was in the past and why. Without the flag the
    same call is refused."""
    historic = datetime.combine(datetime(2010, 5, 4).date(), time(9), SHANGHAI)
    rid = f"past-{uuid.uuid4().hex[:8]}"
    with pytest.raises(InvalidInput) as refused:
        await rounds.create_round(
            db, COUNTY, round_id=rid, plan_id="seed-002", round_plan_id="round-1",
            starts_at=historic,
        )  # fmt: skip
    assert refused.value.code == "past_start"
    assert nothing_written(db, rid)
    record = await rounds.create_round(
        db, COUNTY, round_id=rid, plan_id="seed-002", round_plan_id="round-1",
        starts_at=historic, allow_past_start=True,
    )  # fmt: skip
    assert record.status == "created"
    with db() as session:
        audit = session.get(AuditRow, f"round_created/{rid}")
        assert audit is not None and audit.user == "county"
        allowed = audit.detail["past_start_allowed"]
        assert allowed["reason"].startswith("开始时间不能早于今天")
        assert datetime.fromisoformat(allowed["starts_at"]) == historic
