"""/healthz and /readyz over HTTP: ready while the database and Temporal answer, 503 naming
Temporal once its server is gone (while /healthz, the process itself, stays 200)."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
import uvicorn

from api.main import create_app
from chuangzheng.settings import Settings
from chuangzheng.temporal_server import start_dev_server_env
from tests.api.conftest import Stack, free_port

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_the_running_stack_is_alive_and_ready(http: httpx.AsyncClient, stack: Stack) -> None:
    alive = await http.get("/healthz")
    assert alive.status_code == 200 and alive.json() == {"status": "ok"}
    ready = await http.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "temporal": "ok"}
    assert ready.headers["cache-control"] == "no-store"


async def test_readiness_fails_with_temporal_gone_and_liveness_does_not(tmp_path: Path) -> None:
    env = await start_dev_server_env()
    settings = Settings(
        environment="test",
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'api.db'}",
        temporal_address=env.client.service_client.config.target_host,
        task_queue=f"health-{uuid.uuid4()}",
        secret_key=f"test-{uuid.uuid4()}",
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.05)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            assert (await http.get("/readyz")).status_code == 200
            await env.shutdown()  # the Temporal server goes away
            started = time.monotonic()
            not_ready = await http.get("/readyz")
            assert time.monotonic() - started < 10  # bounded, not a hung probe
            assert not_ready.status_code == 503
            assert not_ready.json()["checks"] == {"database": "ok", "temporal": "unavailable"}
            assert not_ready.headers["retry-after"] == "5"
            assert (await http.get("/healthz")).status_code == 200
    finally:
        server.should_exit = True
        thread.join(timeout=10)
