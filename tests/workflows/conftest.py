"""Fixtures for workflow tests: one read model and one worker for the whole session.

The worker is shared on purpose: the time-skipping server does not skip time while a due
timer's workflow task has no worker to take it, so a workflow left running by one test
(waiting for its next rung) must still have a worker when a later test skips time. Tests
keep apart by using their own round ids.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.db import create_schema, make_engine, session_factory
from tests.workflows.support import max_cached_workflows
from worker import build_worker


@pytest.fixture(scope="session")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> sessionmaker[Session]:
    """The SQLite read model the shared worker writes to."""
    path: Path = tmp_path_factory.mktemp("readmodel") / "chuangzheng.db"
    engine = make_engine(f"sqlite:///{path}")
    create_schema(engine)
    return session_factory(engine)


@pytest.fixture(scope="session")
def shared_task_queue() -> str:
    """The task queue of the shared worker."""
    return f"workflows-{uuid.uuid4()}"


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def worker(
    time_skipping_env: WorkflowEnvironment,
    shared_task_queue: str,
    sessions: sessionmaker[Session],
) -> AsyncIterator[Worker]:
    """The project's real worker (all workflows and activities)."""
    async with build_worker(
        time_skipping_env.client,
        task_queue=shared_task_queue,
        sessions=sessions,
        max_cached_workflows=max_cached_workflows(),
    ) as running:
        yield running


@pytest.fixture
def task_queue(worker: Worker, shared_task_queue: str) -> str:
    """Workflow tests start their workflows on the shared worker's queue."""
    return shared_task_queue
