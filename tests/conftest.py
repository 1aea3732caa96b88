"""Shared pytest fixtures.

One time-skipping Temporal test server serves the whole session (starting it costs about a
second); tests isolate themselves with a fresh task queue and unique workflow IDs.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from chuangzheng.temporal_server import start_time_skipping_env

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """The session's time-skipping server; its client uses the pydantic data converter and
    the project's search attributes are registered."""
    env = await start_time_skipping_env()
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def task_queue() -> str:
    """A task queue name no other test uses, so workers of different tests never mix."""
    return f"test-{uuid.uuid4()}"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """SQLAlchemy URL of the local PostgreSQL test database; skips the test if unreachable."""
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            pass
    except OSError:
        pytest.skip("PostgreSQL not reachable")
    return POSTGRES_URL


@pytest.fixture
def tmp_sqlite_url(tmp_path: Path) -> str:
    """SQLAlchemy URL of a fresh SQLite file private to the test."""
    return f"sqlite:///{tmp_path / 'test.db'}"
