"""Fixtures for workflow tests: per test module, a time-skipping server of its own with a read
model and the project's worker on it.

A module's tests share its server and worker; nothing of one module reaches another, and each
module's clock starts at today. Within a module every test hands the server on as it found it
(``tests/conftest.py: TimeSkippingServer.settle``): what the test left open is terminated, so a
leftover's timers never fire in a later test's time skipping (they moved the clock decades
ahead), and if the server no longer skips time afterwards (a workflow task nobody polls, or
one the server lost track of at the termination: a later test would hang to the timeout) the
next test gets a new server and worker. Tests still use round ids and task queues of their
own, and re-base their plans to the server's clock, which the module's earlier tests have
moved on.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.db import create_schema, make_engine, session_factory
from chuangzheng.temporal_server import start_time_skipping_env
from tests.conftest import TimeSkippingServer
from tests.workflows.support import max_cached_workflows
from worker import build_worker


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> sessionmaker[Session]:
    """The SQLite read model the module's worker writes to."""
    path: Path = tmp_path_factory.mktemp("readmodel") / "chuangzheng.db"
    engine = make_engine(f"sqlite:///{path}")
    create_schema(engine)
    return session_factory(engine)


@pytest.fixture(scope="module")
def shared_task_queue() -> str:
    """The task queue of the module's worker."""
    return f"workflows-{uuid.uuid4()}"


def module_server(
    shared_task_queue: str,
    sessions: sessionmaker[Session],
    start: Callable[[], Awaitable[WorkflowEnvironment]] = start_time_skipping_env,
) -> TimeSkippingServer:
    """A server for a module's tests with the project's real worker (all workflows and
    activities) on ``shared_task_queue``, writing to ``sessions``."""

    def attach(env: WorkflowEnvironment) -> AbstractAsyncContextManager[Worker]:
        return build_worker(
            env.client,
            task_queue=shared_task_queue,
            sessions=sessions,
            max_cached_workflows=max_cached_workflows(),
        )

    return TimeSkippingServer(attach, start)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def time_skipping_server(
    shared_task_queue: str, sessions: sessionmaker[Session]
) -> AsyncIterator[TimeSkippingServer]:
    """The module's time-skipping server with the project's worker, started when a test
    first needs it."""
    server = module_server(shared_task_queue, sessions)
    try:
        yield server
    finally:
        await server.close()


@pytest_asyncio.fixture(loop_scope="session")
async def worker(
    time_skipping_server: TimeSkippingServer, time_skipping_env: WorkflowEnvironment
) -> Worker:
    """The module's worker on the test's server."""
    running: Worker = time_skipping_server.attached
    assert running is not None and running.client is time_skipping_env.client
    return running


@pytest.fixture
def task_queue(worker: Worker, shared_task_queue: str) -> str:
    """Workflow tests start their workflows on the module worker's queue."""
    return shared_task_queue
