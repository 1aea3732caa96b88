"""/healthz and /readyz over HTTP: ready while the database and Temporal answer, 503 naming
Temporal once its server is gone (while /healthz, the process itself, stays 200), and an API
started before Temporal that serves what it can and reaches Temporal once it is up."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from activities.tables import OrganisationRow
from api.auth import upsert_user
from api.main import create_app
from chuangzheng.settings import Settings
from chuangzheng.temporal_server import start_dev_server_env
from domain.organisation import Role
from tests.api.conftest import Stack, free_port

pytestmark = pytest.mark.asyncio(loop_scope="session")


def api_settings(tmp_path: Path, **overrides: str) -> Settings:
    """Settings of an API of its own over a SQLite file under ``tmp_path``."""
    values = {
        "environment": "test",
        "data_dir": str(tmp_path),
        "database_url": f"sqlite:///{tmp_path / 'api.db'}",
        "task_queue": f"health-{uuid.uuid4()}",
        "secret_key": f"test-{uuid.uuid4()}",
    }
    return Settings(**(values | overrides))


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """``app`` under uvicorn in a thread of its own, and a client for it, until the block ends."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            await asyncio.sleep(0.05)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            yield http
    finally:
        server.should_exit = True
        thread.join(timeout=10)


async def add_county_office(app: FastAPI, password: str) -> dict[str, str]:
    """The county office's account ``office`` (in a thread: the API's loop guard refuses SQL
    on the loop); returns its sign-in body."""

    def add() -> None:
        with app.state.sessions.begin() as session:
            upsert_user(
                session, username="office", display_name="县委活动办", password=password,
                role=Role.COUNTY_OFFICE,
            )  # fmt: skip

    await asyncio.to_thread(add)
    return {"username": "office", "password": password}


async def test_the_running_stack_is_alive_and_ready(http: httpx.AsyncClient, stack: Stack) -> None:
    alive = await http.get("/healthz")
    assert alive.status_code == 200 and alive.json() == {"status": "ok"}
    ready = await http.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "temporal": "ok"}
    assert ready.headers["cache-control"] == "no-store"


async def test_readiness_fails_with_temporal_gone_and_liveness_does_not(tmp_path: Path) -> None:
    env = await start_dev_server_env()
    settings = api_settings(tmp_path, temporal_address=env.client.service_client.config.target_host)
    async with serving(create_app(settings)) as http:
        assert (await http.get("/readyz")).status_code == 200
        await env.shutdown()  # the Temporal server goes away
        started = time.monotonic()
        not_ready = await http.get("/readyz")
        assert time.monotonic() - started < 10  # bounded, not a hung probe
        assert not_ready.status_code == 503
        assert not_ready.json()["checks"] == {"database": "ok", "temporal": "unavailable"}
        assert not_ready.headers["retry-after"] == "5"
        assert (await http.get("/healthz")).status_code == 200


async def test_the_api_starts_and_serves_before_temporal_and_connects_once_it_is_up(
    tmp_path: Path,
) -> None:
    """Temporal down when the API starts (a cluster restarting, the API scheduled first): the
    API starts anyway; sign-in, which the read model answers, works; readiness names
    Temporal; a call into a workflow answers 503 with Retry-After, not 500; once a server
    listens on the address the same client reaches it without a restart."""
    temporal_port = free_port()
    app = create_app(api_settings(tmp_path, temporal_address=f"127.0.0.1:{temporal_port}"))
    env = None
    try:
        async with serving(app) as http:
            credentials = await add_county_office(app, "pw-late-start")

            def add_organisation() -> None:
                with app.state.sessions.begin() as session:
                    session.add(
                        OrganisationRow(
                            org_id="org-late", name="迟到村党支部", org_type="rural",
                            township="城关镇", system="rural", member_count=20, secretary="书记",
                            instructor="指导员", active=True, row_number=1,
                            updated_at=datetime.now(UTC),
                        )
                    )  # fmt: skip

            await asyncio.to_thread(add_organisation)
            assert (await http.get("/healthz")).status_code == 200
            not_ready = await http.get("/readyz")
            assert not_ready.status_code == 503
            assert not_ready.json()["checks"] == {"database": "ok", "temporal": "unavailable"}
            login = await http.post("/api/v1/auth/login", json=credentials)
            assert login.status_code == 200, login.text
            auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
            # A submission is an Update on the organisation's workflow: Temporal is needed.
            submission = "/api/v1/rounds/r-late/organisations/org-late/submissions"
            evidence = {"step_id": "study", "values": {"note": "已学习"}}
            down = await http.post(submission, json=evidence, headers=auth)
            assert down.status_code == 503, down.text
            assert down.headers["retry-after"]
            assert down.json()["code"] == "temporal_unavailable"

            env = await start_dev_server_env(port=temporal_port)
            deadline = time.monotonic() + 60
            while (await http.get("/readyz")).status_code != 200:
                assert time.monotonic() < deadline, "the API never reached the late server"
                await asyncio.sleep(0.5)
            # The same call now reaches Temporal: the round was never kicked off, so there is
            # no such workflow (404), not a 503.
            up = await http.post(submission, json=evidence, headers=auth)
            assert up.status_code == 404, up.text
    finally:
        if env is not None:
            await env.shutdown()


async def test_a_database_locked_past_its_busy_timeout_is_503_and_nothing_is_half_written(
    tmp_path: Path,
) -> None:
    """Another writer holds SQLite's write lock longer than the API's busy timeout (a
    deadline storm's recording, a long migration): a sign-in, which writes its session row,
    answers 503 ``database_unavailable`` with ``Retry-After`` instead of 500, writes nothing,
    and succeeds once the lock is released."""
    env = await start_dev_server_env()
    app = create_app(api_settings(tmp_path), temporal=env.client)
    try:
        async with serving(app) as http:
            credentials = await add_county_office(app, "pw-locked")
            holder = sqlite3.connect(tmp_path / "api.db", isolation_level=None, timeout=30)
            try:
                holder.execute("BEGIN EXCLUSIVE")  # the write lock, held past the busy timeout
                locked = await http.post("/api/v1/auth/login", json=credentials)
                holder.execute("ROLLBACK")
                assert locked.status_code == 503, locked.text
                assert locked.json()["code"] == "database_unavailable"
                assert locked.headers["retry-after"] == "5"
                count = "SELECT count(*) FROM sign_in_sessions"
                assert holder.execute(count).fetchone()[0] == 0
                # The same request once the lock is gone: signed in, one session row.
                assert (await http.post("/api/v1/auth/login", json=credentials)).status_code == 200
                assert holder.execute(count).fetchone()[0] == 1
            finally:
                holder.close()
    finally:
        await env.shutdown()
