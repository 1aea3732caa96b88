"""Shared pytest fixtures.

Time-skipping Temporal test server: one serves the session outside ``tests/workflows`` (starting
it costs about a second; ``tests/workflows/conftest.py`` gives each workflow module one of its
own with the project's worker on it). Tests isolate themselves with a fresh task queue and
unique workflow IDs, and every test hands the server on as it found it
(:meth:`TimeSkippingServer.settle`): nothing open on it, and its clock still skipping.

Why: the test server skips time only while nothing is in flight. A workflow left open on a task
queue whose worker has gone keeps a workflow task scheduled for ever, so the server never skips
time again and every later ``env.sleep`` or ``result()`` waits in real time: a test hung to the
600 s timeout this way, and the tests after it failed on RPC timeouts. Terminating a workflow
does not release such a task, nor an activity running at that moment (a limitation of the test
server: only a new server does), so leftovers are terminated once nothing of theirs is in
flight, the clock is then probed, and a server that no longer skips is replaced for the next
test (named in the run's summary). A workflow left open on a live worker keeps firing its
timers whenever a later test lets time run, moving the clock on by months or years for every
test after it; every workflow open when a test ends is terminated.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.api.workflowservice.v1 import (
    ListOpenWorkflowExecutionsRequest,
    TerminateWorkflowExecutionRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from chuangzheng.temporal_server import start_time_skipping_env

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

# Cheap argon2 parameters for the suite's few thousand sign-ins and hashed accounts (each a
# quarter of a CPU-second with the standard ones on this machine); set before any project
# module builds its hasher, and inherited by the processes the tests start.
# tests/api/test_password_hashing.py checks the standard parameters themselves.
if "chuangzheng.services.password_hashing" in sys.modules:
    raise RuntimeError("CZ_PASSWORD_HASHING must be set before the hasher is built")
os.environ.setdefault("CZ_PASSWORD_HASHING", "fast")

log = logging.getLogger(__name__)

#: What :meth:`TimeSkippingServer.settle` asks the clock to skip, and how long (real time) it
#: may take: a server that skips does it in milliseconds; one held by a task nobody polls
#: moves in real time, so it would take the whole minute.
PROBE_SKIP = timedelta(minutes=1)
PROBE_PATIENCE_SECONDS = 10.0


async def open_workflows(client: Client) -> list[WorkflowExecution]:
    """Every execution open on the client's namespace. The time-skipping server implements
    ``ListOpenWorkflowExecutions`` (not the query-based ``ListWorkflowExecutions``)."""
    found: list[WorkflowExecution] = []
    token = b""
    while True:
        page = await client.workflow_service.list_open_workflow_executions(
            ListOpenWorkflowExecutionsRequest(
                namespace=client.namespace, maximum_page_size=1000, next_page_token=token
            )
        )
        found.extend(info.execution for info in page.executions)
        token = page.next_page_token
        if not token:
            return found


async def terminate_open_workflows(client: Client, reason: str) -> list[str]:
    """Terminate every execution open on the client's namespace; the workflow ids terminated.
    A run that closed meanwhile is not an error. Repeats until none is open (a workflow may
    start another while we terminate)."""
    terminated: list[str] = []
    for _ in range(10):
        executions = await open_workflows(client)
        if not executions:
            return terminated
        for execution in executions:
            try:
                await client.workflow_service.terminate_workflow_execution(
                    TerminateWorkflowExecutionRequest(
                        namespace=client.namespace,
                        workflow_execution=execution,
                        reason=reason,
                        identity="tests/conftest.py",
                    )
                )
                terminated.append(execution.workflow_id)
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:
                    raise
    left = [e.workflow_id for e in await open_workflows(client)]
    raise RuntimeError(f"workflows still open after terminating them ten times: {left}")


async def skips_time(env: WorkflowEnvironment) -> bool:
    """Whether the server still skips time: :data:`PROBE_SKIP` of its clock within
    :data:`PROBE_PATIENCE_SECONDS` of real time."""
    try:
        await asyncio.wait_for(env.sleep(PROBE_SKIP), PROBE_PATIENCE_SECONDS)
    except TimeoutError:
        return False
    return True


#: What a :class:`TimeSkippingServer` runs on each server it starts (e.g. the project's worker).
Attach = Callable[[WorkflowEnvironment], AbstractAsyncContextManager[Any]]


class TimeSkippingServer:
    """A time-skipping test server shared by a scope's tests, handed from test to test in a
    known state: nothing open and the clock skipping, or else a new server.

    ``attach`` (optional) is entered on every server started, e.g. a worker; its value is
    :attr:`attached`. ``start`` starts the server; another than the time-skipping one (the
    dev server, for tests that must not run on the test server) is not probed for skipping.
    """

    def __init__(
        self,
        attach: Attach | None = None,
        start: Callable[[], Awaitable[WorkflowEnvironment]] = start_time_skipping_env,
    ) -> None:
        self._attach = attach
        self._start = start
        self._env: WorkflowEnvironment | None = None
        self._attached_cm: AbstractAsyncContextManager[Any] | None = None
        self.attached: Any = None
        self.started = 0

    async def ready(self) -> WorkflowEnvironment:
        """The running server, started (with what is attached) if there is none."""
        if self._env is None:
            env = await self._start()
            self.started += 1
            try:
                if self._attach is not None:
                    cm = self._attach(env)
                    self.attached = await cm.__aenter__()
                    self._attached_cm = cm
            except BaseException:
                await env.shutdown()
                raise
            self._env = env
        return self._env

    async def close(self) -> None:
        """Stop what is attached, then the server."""
        env, cm = self._env, self._attached_cm
        self._env, self._attached_cm, self.attached = None, None, None
        try:
            if cm is not None:
                await cm.__aexit__(None, None, None)
        finally:
            if env is not None:
                await env.shutdown()

    async def settle(self, test: str) -> None:
        """After ``test``: let the workflow tasks in flight finish (time stays locked between
        a test's calls, so no new timer fires), terminate what is open, and check the clock
        still skips. If it does not (a workflow task left with no worker to take it, or one
        the test server lost track of at the termination), the server and what is attached
        are replaced: the next test gets a new one. Each replacement is recorded in
        :data:`REPLACED` and listed at the end of the run."""
        env = self._env
        if env is None:
            return
        open_now = await open_workflows(env.client)
        if open_now:
            await quiesce(env.client, open_now)
        left = await terminate_open_workflows(env.client, f"{test} ended")
        if left:
            log.info("terminated %d workflows left open by %s: %s", len(left), test, left)
        began = time.monotonic()
        if not env.supports_time_skipping_v1:
            return
        if await skips_time(env):
            # A test that ran a round to its end skipped through every timer, up to years
            # ahead: the next test would re-base its plan into a year with no calendar data
            # (a test passed after one and failed before it). Start it at today instead.
            clock = await env.get_current_time()
            if clock - datetime.now(UTC) > CLOCK_DRIFT_LIMIT:
                await self.close()
                REPLACED.append(f"{test}: left the clock at {clock:%Y-%m-%d}")
            return
        waited = time.monotonic() - began
        await self.close()
        REPLACED.append(
            f"{test}: {PROBE_SKIP} of the clock took over {waited:.0f} s of real time after "
            f"terminating {len(left)} workflows left open ({', '.join(left[:5]) or 'none'}"
            f"{', …' if len(left) > 5 else ''})"
        )
        log.warning("time-skipping server replaced after %s", test)


#: How far ahead of today a test may leave the server's clock before the next test gets a
#: new server: the shipped calendars cover the next year, not the decades a round's far
#: timers can skip to.
CLOCK_DRIFT_LIMIT = timedelta(days=180)

#: Where :meth:`TimeSkippingServer.settle` replaced a server that no longer skipped time
#: or whose clock a test had moved too far ahead.
REPLACED: list[str] = []

#: History events after which a workflow task is on its way.
_TASK_ON_ITS_WAY = {
    EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
}


async def busy(client: Client, execution: WorkflowExecution) -> bool:
    """Whether a workflow task of ``execution`` is on its way (its history's last event) or
    one of its activities is running on a worker."""
    handle = client.get_workflow_handle(execution.workflow_id, run_id=execution.run_id)
    try:
        description = await handle.describe()
        if any(
            activity.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
            for activity in description.raw_description.pending_activities
        ):
            return True
        last = None
        async for event in handle.fetch_history_events():
            last = event.event_type
    except RPCError:
        return False  # closed and gone meanwhile
    return last in _TASK_ON_ITS_WAY


async def quiesce(
    client: Client, executions: list[WorkflowExecution], *, patience: float = 10.0
) -> None:
    """Wait (real time, at most ``patience`` seconds) until no execution has a workflow task
    on its way or an activity running: the test server loses the lock such a task holds on
    its clock when the workflow is terminated under it. Time stays locked meanwhile (between
    a test's calls it is), so no timer starts new work."""
    deadline = time.monotonic() + patience
    pending = list(executions)
    while pending and time.monotonic() < deadline:
        pending = [e for e in pending if await busy(client, e)]
        if pending:
            await asyncio.sleep(0.1)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--reverse",
        action="store_true",
        help="run the collected tests in reverse order (make test-reverse): a test that "
        "relies on one that used to run before it now runs first and fails",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``--reverse``: every test runs before all the tests it used to follow, the cheap
    check that no test relies on another's leftovers (issue 13: each test passes alone;
    ``make test-random`` and ``tests/each_alone.py`` are the other two)."""
    if config.getoption("--reverse"):
        items.reverse()
    keep_one_database(config, items)


def keep_one_database(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the other database's copy of a test marked ``one_database(name, why)``.

    Every API test runs on SQLite and on PostgreSQL (``database_url``). A few slow ones prove
    nothing on the second that the first does not (the marker says why), and each copy costs
    the whole suite its time on the one worker that holds that database's stack."""
    deselected = []
    for item in items:
        marker = item.get_closest_marker("one_database")
        callspec = getattr(item, "callspec", None)
        if marker is None or callspec is None or "database_url" not in callspec.params:
            continue
        if not marker.kwargs.get("why"):
            raise pytest.UsageError(f"{item.nodeid}: one_database needs why=...")
        if callspec.params["database_url"] != marker.args[0]:
            deselected.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        gone = set(deselected)
        items[:] = [item for item in items if item not in gone]


def xdist_group(item: pytest.Item) -> str | None:
    """The worker group of ``item`` when the suite runs on several workers (pytest-xdist,
    ``-n 2 --dist loadgroup``, as ``make test`` runs it; see docs/reliability.md, "Suite
    time"), or None when it may run on any worker.

    Each worker is a process with its own session fixtures, and everything a test makes is
    already private to it (free ports, ``tmp_path``, uuid task queues, PostgreSQL schemas and
    databases), so no test needs a worker of its own; the groups only keep expensive shared
    fixtures from being built twice or torn down and rebuilt:

    - the API stack (dev server, worker, uvicorn, read model) once per database: every test
      on the SQLite stack (``database_url``) runs on one worker and every test on the
      PostgreSQL stack on one (each a unit of its own, so usually the other), the browser
      tests' stack likewise; spread out, each worker would build both stacks and rebuild
      them whenever its next test is on the other database;
    - a module-scoped fixture (a workflow module's time-skipping server and worker, the
      fault tests' processes, ``make run``'s supervisor, whose tests run in file order):
      the module's tests stay together, in file order, on one worker.
    """
    if not isinstance(item, pytest.Function):
        return None
    defs = item._fixtureinfo.name2fixturedefs
    if "database_url" in item.fixturenames and "database_url" in defs:
        # The stack's database is a parametrized session fixture: pytest rebuilds the stack
        # whenever a worker's next test is on the other database.
        where = defs["database_url"][-1].baseid or "tests"
        callspec = getattr(item, "callspec", None)
        database = callspec.params.get("database_url", "") if callspec is not None else ""
        return f"stack:{where}:{database}"
    module_scoped = any(
        fixturedefs and fixturedefs[-1].scope in ("module", "package", "class")
        for name, fixturedefs in defs.items()
        if name in item.fixturenames
    )
    if module_scoped:
        return item.nodeid.split("::", 1)[0]
    return None


def pytest_itemcollected(item: pytest.Item) -> None:
    """Under pytest-xdist, mark the item with its worker group (:func:`xdist_group`). Done
    at collection so that xdist's own ``pytest_collection_modifyitems`` sees the mark; every
    worker collects the same groups, as xdist requires."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    group = xdist_group(item)
    if group is not None:
        item.add_marker(pytest.mark.xdist_group(group))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Under ``--dist loadgroup``, refuse a run whose groups did not take: pytest-xdist puts
    each item's group in its node id (``…@group``), and a pytest that stores node ids
    elsewhere (9.2) leaves them out without a word. The suite then still passes, but every
    worker builds every shared stack and module fixture for itself (about two minutes more
    on two cores, found in session 14)."""
    if not os.environ.get("PYTEST_XDIST_WORKER") or not session.config.getvalue("loadgroup"):
        return
    grouped = [item for item in session.items if item.get_closest_marker("xdist_group")]
    lost = [item.nodeid for item in grouped if "@" not in item.nodeid]
    if lost:
        # A worker stops through ``shouldstop`` (pytest-xdist reports it and fails the run;
        # an exception or ``pytest.exit`` here only shows as a worker crash).
        session.shouldstop = (
            f"pytest-xdist's --dist loadgroup did not group {len(lost)} tests (e.g. {lost[0]}): "
            f"this pytest ({pytest.__version__}) keeps node ids where pytest-xdist does not "
            "look; install the pytest pyproject.toml allows (make venv)"
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """On an xdist worker, a server replaced after this test (at its fixtures' teardown) is
    carried to the controller in the teardown report, which lists it at the end of the run
    (:func:`pytest_runtest_logreport`); a serial run lists :data:`REPLACED` directly."""
    report = yield
    if call.when == "teardown" and os.environ.get("PYTEST_XDIST_WORKER"):
        seen = item.stash.get(_REPLACED_SEEN, 0)
        for line in REPLACED[seen:]:
            report.user_properties.append((REPLACED_PROPERTY, line))
        item.stash[_REPLACED_SEEN] = len(REPLACED)
    return report


def pytest_runtest_protocol(item: pytest.Item) -> None:
    """Remember how many servers were replaced before ``item`` ran (see
    :func:`pytest_runtest_makereport`)."""
    item.stash[_REPLACED_SEEN] = len(REPLACED)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """On the xdist controller, gather the replacements the workers reported."""
    if hasattr(report, "node"):  # set by xdist on reports that came from a worker
        REPLACED.extend(
            str(value) for key, value in report.user_properties if key == REPLACED_PROPERTY
        )


REPLACED_PROPERTY = "time-skipping server replaced"
_REPLACED_SEEN = pytest.StashKey[int]()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Name the tests after which a time-skipping server had to be replaced."""
    if REPLACED:
        terminalreporter.section("time-skipping servers replaced")
        for line in REPLACED:
            terminalreporter.write_line(line)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def time_skipping_server() -> AsyncIterator[TimeSkippingServer]:
    """The session's time-skipping server (``tests/workflows`` has one per module)."""
    server = TimeSkippingServer()
    try:
        yield server
    finally:
        await server.close()


@pytest_asyncio.fixture(loop_scope="session")
async def time_skipping_env(
    time_skipping_server: TimeSkippingServer, request: pytest.FixtureRequest
) -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping server for one test; its client uses the pydantic data converter
    and the project's search attributes are registered. After the test (and the fixtures
    built on this one) nothing is left open on it and its clock still skips."""
    env = await time_skipping_server.ready()
    yield env
    await time_skipping_server.settle(request.node.nodeid)


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
