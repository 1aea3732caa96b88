"""Bad input fails fast and says what is wrong (issue 13, items 4, 5, 10 and 13), over the
real stack: circulars of unknown or malformed rounds, unbounded paging, dates without
bounds, closing a round that is not running."""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.db import create_schema, make_engine, session_factory
from activities.digests import DigestActivities
from activities.tables import CampaignStatusRow, CircularRow, digests
from api.main import create_app
from chuangzheng.temporal_server import data_converter, start_dev_server_env
from tests.api.conftest import Stack, free_port, start_demo_round, token
from workflows.digest_contracts import CircularRun, DigestRun

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _fields(response: httpx.Response) -> set[str]:
    return {e["field"].rsplit(".", 1)[-1] for e in response.json().get("errors", [])}


# ── item 4: circulars ───────────────────────────────────────────────────────────────────


async def test_a_circular_of_an_unknown_round_is_404_and_sends_nothing(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    county = await token(http, "county")
    response = await http.post("/api/v1/rounds/no-such-round/circulars", headers=county)
    assert response.status_code == 404, response.text
    assert "轮次不存在" in response.json()["message"]
    engine = make_engine(stack.settings.database_url)
    with engine.connect() as connection:
        circulars = connection.scalar(
            select(func.count())
            .select_from(CircularRow)
            .where(CircularRow.round_id == "no-such-round")
        )
        notices = connection.scalar(
            select(func.count()).select_from(digests).where(digests.c.round_id == "no-such-round")
        )
    engine.dispose()
    assert circulars == 0 and notices == 0


@pytest.mark.one_database(
    "sqlite",
    why="the id is refused by the path's pattern before any query",
)
async def test_a_malformed_round_id_is_422_at_once(http: httpx.AsyncClient) -> None:
    county = await token(http, "county")
    for path in ("/api/v1/rounds/%0B/circulars", "/api/v1/rounds/a%00b/kickoff"):
        response = await http.post(path, headers=county, timeout=10)
        assert response.status_code == 422, response.text
        assert _fields(response) == {"path"}
    listed = await http.get("/api/v1/rounds/%7F/circulars", headers=county, timeout=10)
    assert listed.status_code == 422


@pytest.mark.parametrize("round_id", ["no-such-round", "\x0b"])
async def test_circular_and_digest_activities_refuse_an_unknown_round_for_good(
    tmp_path: Path, round_id: str
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'read.db'}")
    create_schema(engine)
    acts = DigestActivities(session_factory(engine), data_dir=tmp_path)
    now = datetime.now(UTC)
    for run in (
        ActivityEnvironment().run(acts.publish_circular, CircularRun(round_id=round_id, now=now)),
        ActivityEnvironment().run(acts.send_digests, DigestRun(round_id=round_id, now=now)),
    ):
        with pytest.raises(ApplicationError) as refused:
            await run
        assert refused.value.non_retryable and refused.value.type == "UnknownRound"
    engine.dispose()


async def test_a_circular_with_text_a_spreadsheet_cannot_hold_fails_for_good(
    tmp_path: Path,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'read.db'}")
    create_schema(engine)
    sessions = session_factory(engine)
    now = datetime.now(UTC)
    with sessions.begin() as session:
        session.add(
            CampaignStatusRow(
                round_id="r-ctrl", org_id="org-x", org_name="东关村\x0b党支部", township="城关镇",
                system="rural", org_type="rural", phase="mobilisation", phase_status="open",
                light="red", overdue=True, deadline=now - timedelta(days=3), top_rung=0,
                closed=False, event_seq=1, updated_at=now,
            )
        )  # fmt: skip
    acts = DigestActivities(sessions, data_dir=tmp_path)
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(
            acts.publish_circular, CircularRun(round_id="r-ctrl", now=now)
        )
    assert refused.value.non_retryable and refused.value.type == "InvalidInput"
    engine.dispose()


# ── item 5: paging bounds ───────────────────────────────────────────────────────────────


async def test_paging_beyond_any_database_integer_is_422(http: httpx.AsyncClient) -> None:
    secretary = await token(http, "sec-a")
    for query in ("offset=9223372036854775808", "offset=10000001", "limit=9223372036854775808"):
        response = await http.get(f"/api/v1/organisations?{query}", headers=secretary)
        assert response.status_code == 422, (query, response.text)
        assert _fields(response) == {query.split("=")[0]}
    assert (await http.get("/api/v1/organisations?offset=0", headers=secretary)).status_code == 200


@pytest.mark.one_database(
    "sqlite",
    why=(
        "the page number is refused before any query (paging beyond a database integer, the "
        "next test, runs on both)"
    ),
)
async def test_paging_written_with_digits_int_refuses_is_422_not_500(
    http: httpx.AsyncClient,
) -> None:
    """ "²" and "①" are digits to ``str.isdigit`` that ``int()`` refuses: the paging guard
    answered a plain 500 to anyone, signed in or not (an outside tester)."""
    secretary = await token(http, "sec-a")
    for query in ("limit=%C2%B2", "offset=%E2%91%A0"):
        response = await http.get(f"/api/v1/organisations?{query}", headers=secretary)
        assert response.status_code == 422, (query, response.text)
        anonymous = await http.get(f"/public/commitments?{query}")
        assert anonymous.status_code < 500, (query, anonymous.text)


# ── item 10: dates with bounds ──────────────────────────────────────────────────────────


@pytest.mark.one_database(
    "sqlite",
    why="the start is refused before anything is written",
)
@pytest.mark.parametrize("starts_at", ["9999-01-06T09:00:00+08:00", "0001-01-06T09:00:00+08:00"])
async def test_a_round_starting_outside_2000_to_2100_is_refused(
    http: httpx.AsyncClient, starts_at: str
) -> None:
    county = await token(http, "county")
    rid = f"far-{uuid.uuid4().hex[:8]}"
    response = await http.post(
        "/api/v1/rounds",
        json={"round_id": rid, "plan_id": "demo", "round_plan_id": "demo", "starts_at": starts_at},
        headers=county,
    )
    assert response.status_code == 422, response.text
    assert _fields(response) == {"starts_at"}
    assert (await http.get(f"/api/v1/rounds/{rid}", headers=county)).status_code == 404


@pytest.mark.one_database(
    "sqlite",
    why="the extension is refused by the round's validation before any write",
)
async def test_a_round_wide_extension_to_9999_is_refused(
    http: httpx.AsyncClient, round_id: str
) -> None:
    county = await token(http, "county")
    response = await http.post(
        f"/api/v1/rounds/{round_id}/extensions",
        json={
            "phase": "mobilisation",
            "new_deadline": "9999-12-31T23:59:00+08:00",
            "reason": "测试",
        },
        headers=county,
    )
    assert response.status_code == 422, response.text
    assert _fields(response) == {"new_deadline"}


# ── item 13: closing a round that does not run ──────────────────────────────────────────


@pytest.mark.one_database(
    "sqlite",
    why="the 409 is the round workflow's answer",
)
async def test_closing_a_round_twice_is_a_round_level_409(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    county = await token(http, "county")
    created = f"close-{uuid.uuid4().hex[:8]}"
    made = await http.post(
        "/api/v1/rounds",
        json={"round_id": created, "plan_id": "demo", "round_plan_id": "demo"},
        headers=county,
    )
    assert made.status_code == 201, made.text
    # A round never kicked off is closed without a workflow (withdrawn: a round whose start
    # passed before its kick-off would otherwise stay "created" for ever); a second close is
    # the round-level 409.
    withdrawn = await http.post(f"/api/v1/rounds/{created}/close", json={}, headers=county)
    assert withdrawn.status_code == 200, withdrawn.text
    twice = await http.post(f"/api/v1/rounds/{created}/close", json={}, headers=county)
    assert twice.status_code == 409, twice.text
    assert "本轮活动已经结束" in twice.json()["message"]

    running = await start_demo_round(stack, f"close-{uuid.uuid4().hex[:8]}")
    first = await http.post(f"/api/v1/rounds/{running}/close", json={}, headers=county)
    assert first.status_code == 200, first.text
    again = await http.post(f"/api/v1/rounds/{running}/close", json={}, headers=county)
    assert again.status_code == 409, again.text
    assert "本轮" in again.json()["message"] and "组织" not in again.json()["message"]

    unknown = await http.post("/api/v1/rounds/no-such-round/close", json={}, headers=county)
    assert unknown.status_code == 404 and unknown.json()["message"] == "轮次不存在"


# ── item 5: Temporal out of reach is never a 500 ────────────────────────────────────────


async def test_with_temporal_out_of_reach_rounds_are_read_and_queries_are_503(
    stack: Stack, round_id: str
) -> None:
    # A client connected to a Temporal server that has since stopped.
    elsewhere = await start_dev_server_env()
    gone = await Client.connect(
        elsewhere.client.service_client.config.target_host, data_converter=data_converter()
    )
    await elsewhere.shutdown()
    app = create_app(stack.settings, temporal=gone)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "uvicorn did not start"
        await asyncio.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            county = await token(http, "county")
            read = await http.get(f"/api/v1/rounds/{round_id}", headers=county)
            assert read.status_code == 200, read.text  # the read model, no Temporal call
            queried = await http.get(
                f"/api/v1/rounds/{round_id}/organisations/org-a/status", headers=county
            )
            assert queried.status_code == 503, queried.text
            assert int(queried.headers["Retry-After"]) > 0
    finally:
        server.should_exit = True
        thread.join(timeout=10)
