"""The processes a benchmark runs against, all on one Temporal dev server with a file database:

- the project's worker (``python -m chuangzheng.cli worker``, what ``chuangzheng worker``
  runs; or one process per role, e.g. ``--role workflows`` and ``--role activities``, with
  ``worker_roles``) and the API (uvicorn ``api.main:app``), each in its own process,
  configured through the environment like production (``DATABASE_URL``, ``CZ_*``);
- the baseline worker (``python -m benchmarks.baselines``) in its own process;
- a fresh SQLite read model, the county's roster and a county-office account.

Only public entry points are used: the CLI, the API's routes, the workflow type names and the
read-model tables, so the benchmarks keep working while the project's internals change.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, text
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.db import create_schema, make_engine, session_factory
from chuangzheng.api_client import SignedInAuth
from chuangzheng.ports import free_port
from chuangzheng.settings import WorkerRole
from chuangzheng.temporal_server import start_dev_server_env
from domain.organisation import Organisation, Role, Roster
from domain.roster_import import ROSTER_HEADERS, organisation_row

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "bench-password-1"
COUNTY = "county"


def guidance_username(system: str) -> str:
    """The benchmark account of the guidance group of ``system``."""
    return f"guidance-{system}"


# How many ports the API tries before its start counts as failed (see ``Stack.start_api``).
PORT_ATTEMPTS = 3


def generate_roster(n: int, township: str | None = None, prefix: str = "t") -> list[Organisation]:
    """``deploy/demo/make_roster.py``'s county of ``n`` (imported by path: not a package);
    with ``township``, every organisation is moved there (ids prefixed with ``prefix``)."""
    spec = importlib.util.spec_from_file_location(
        "make_roster", ROOT / "deploy" / "demo" / "make_roster.py"
    )
    assert spec is not None and spec.loader is not None
    module = sys.modules.get(spec.name)
    if module is None:
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up while it loads
        spec.loader.exec_module(module)
    organisations: list[Organisation] = module.generate_roster(max(n, 8))[:n]
    if township is None:
        return organisations
    return [
        o.model_copy(update={"township": township, "id": f"{prefix}-{o.id}"}) for o in organisations
    ]


def write_roster_csv(organisations: Sequence[Organisation], path: Path) -> Path:
    """A roster CSV of exactly these organisations (what a round workflow reads)."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(ROSTER_HEADERS))
        writer.writeheader()
        for org in organisations:
            writer.writerow(organisation_row(org))
    return path


@contextlib.contextmanager
def redirected_output(path: Path) -> Iterator[None]:
    """File descriptors 1 and 2 go to ``path`` meanwhile (children started now keep it)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with path.open("ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def rss_kib(pid: int) -> int:
    """Resident set size of process ``pid`` in KiB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


class Process:
    """A child process with its output in a log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        self._handle = log.open("wb")
        self.popen = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=self._handle, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text("utf-8", "replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 15) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        self._handle.close()


class Stack:
    """One dev server (file database) and the processes a benchmark asks for.

    Use ``async with Stack() as stack``; everything started is stopped on exit.
    """

    def __init__(
        self,
        label: str = "bench",
        keep: bool = False,
        worker_roles: Sequence[WorkerRole] = (WorkerRole.ALL,),
    ) -> None:
        self.label = label
        self.keep = keep
        #: One worker process per role (``make run``'s ``CZ_WORKER_ROLES``).
        self.worker_roles = tuple(worker_roles)
        self.dir = Path(tempfile.mkdtemp(prefix=f"cz-{label}-"))
        self.db_url = f"sqlite:///{self.dir / 'readmodel.db'}"
        self.task_queue = f"{label}-{uuid.uuid4().hex[:8]}"
        self.baseline_queue = f"{label}-baseline-{uuid.uuid4().hex[:8]}"
        self.env: WorkflowEnvironment | None = None
        self.engine: Engine | None = None
        self.processes: list[Process] = []
        #: The worker process that runs workflows (the only one, by default).
        self.worker: Process | None = None
        self.workers: list[Process] = []
        self.baseline: Process | None = None
        self.api: Process | None = None
        self.api_url = ""
        #: The worker's channels file (``CZ_CHANNELS_FILE``; None: the inbox only). Set it
        #: before :meth:`start_worker`.
        self.channels_file: Path | None = None

    # ----- lifecycle -------------------------------------------------------------------------
    async def __aenter__(self) -> Stack:
        # The dev server inherits stdout/stderr and logs every retry at WARN: into a file.
        with redirected_output(self.dir / "temporal.log"):
            self.env = await start_dev_server_env(db_file=self.dir / "temporal.db")
        self.engine = make_engine(self.db_url)
        create_schema(self.engine)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for process in reversed(self.processes):
            process.stop()
        if self.engine is not None:
            self.engine.dispose()
        if self.env is not None:
            await self.env.shutdown()
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            print(f"-- kept {self.label}'s stack: {self.dir}", flush=True)

    @property
    def client(self) -> Client:
        assert self.env is not None
        return self.env.client

    @property
    def address(self) -> str:
        return str(self.client.service_client.config.target_host)

    def _env(self) -> dict[str, str]:
        return (
            os.environ
            | {
                "DATABASE_URL": self.db_url,
                "CZ_DATABASE_URL": self.db_url,
                "CZ_DATA_DIR": str(self.dir / "data"),
                "CZ_ENVIRONMENT": "test",
                "CZ_SECRET_KEY": f"bench-{uuid.uuid4()}",
                "CZ_LOG_LEVEL": "WARNING",
                "CZ_LOG_FORMAT": "json",
                "CZ_TEMPORAL_ADDRESS": self.address,
                "CZ_TASK_QUEUE": self.task_queue,
            }
            | ({"CZ_CHANNELS_FILE": str(self.channels_file)} if self.channels_file else {})
        )

    # ----- processes -------------------------------------------------------------------------
    async def start_worker(self) -> Process:
        """The project's worker processes, one per role of ``worker_roles``, as
        ``chuangzheng worker --role …`` runs them (once per stack; a dead one is started
        again). Returns the one that runs workflows."""
        if self.workers and all(w.alive() for w in self.workers):
            assert self.worker is not None
            return self.worker
        started: list[tuple[Process, WorkerRole]] = []
        previous = self.workers
        self.workers = []
        # A dead worker is replaced, not watched: ``check_alive`` would report it for ever
        # (a fault test that killed the worker broke every test after it).
        dead = [w for w in previous if not w.alive()]
        for process in dead:
            process.stop()  # closes its log file
        self.processes = [p for p in self.processes if all(p is not d for d in dead)]
        for index, role in enumerate(self.worker_roles):
            if index < len(previous) and previous[index].alive():
                self.workers.append(previous[index])
                continue
            name = "worker" if len(self.worker_roles) == 1 else f"worker-{role.value}"
            command = [sys.executable, "-m", "chuangzheng.cli", "worker", "--role", role.value]
            process = Process(name, command, self._env(), self.dir / f"{name}.log")
            self.processes.append(process)
            self.workers.append(process)
            started.append((process, role))
        self.worker = next(
            w for w, r in zip(self.workers, self.worker_roles, strict=True) if r.runs_workflows
        )
        for process, role in started:
            if role.runs_workflows:
                await self._wait_for_poller(self.task_queue, process)
            if role.runs_activities:
                await self._wait_for_poller(self.task_queue, process, activities=True)
        return self.worker

    async def start_baseline_worker(self) -> Process:
        """The baseline workflows' worker, in a process of its own (once per stack)."""
        if self.baseline is not None and self.baseline.alive():
            return self.baseline
        command = [
            sys.executable,
            "-m",
            "benchmarks.baselines",
            "--address",
            self.address,
            "--task-queue",
            self.baseline_queue,
            "--status",
            str(self.status_file),
        ]
        self.baseline = Process("baseline", command, self._env(), self.dir / "baseline.log")
        self.processes.append(self.baseline)
        await self._wait_for_poller(self.baseline_queue, self.baseline)
        return self.baseline

    async def start_api(self) -> str:
        """uvicorn serving ``api.main:app`` in its own process; returns the base URL.

        ``free_port`` only says a port was free a moment ago: with tests running in
        parallel another process may bind it before uvicorn does (CI saw exactly that), so
        a start refused with "address already in use" is tried again on another port."""
        if self.api is not None and self.api.alive():
            return self.api_url
        refused = ""
        for _ in range(PORT_ATTEMPTS):
            port = free_port()
            command = [
                sys.executable,
                "-m",
                "uvicorn",
                "api.main:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--no-access-log",
            ]
            api = Process("api", command, self._env(), self.dir / "api.log")
            self.api = api
            self.processes.append(api)
            self.api_url = f"http://127.0.0.1:{port}"
            if await self._api_answers(api):
                return self.api_url
            refused = api.tail()
            self.processes.remove(api)
            api.stop()
        raise RuntimeError(f"the API exited ({PORT_ATTEMPTS} ports taken):\n{refused}")

    async def _api_answers(self, api: Process) -> bool:
        """True once ``api`` serves ``/openapi.json``; False if it exited because its port
        was taken; raises if it exited for any other reason or never answered."""
        deadline = time.monotonic() + 120
        async with httpx.AsyncClient(base_url=self.api_url, timeout=2) as http:
            while True:
                if not api.alive():
                    tail = api.tail()
                    if "address already in use" in tail:
                        return False
                    raise RuntimeError(f"the API exited:\n{tail}")
                try:
                    if (await http.get("/openapi.json")).status_code == 200:
                        return True
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the API did not start:\n{api.tail()}")
                await asyncio.sleep(0.25)

    async def _wait_for_poller(
        self, task_queue: str, process: Process, *, activities: bool = False
    ) -> None:
        """Until ``process`` polls ``task_queue`` for workflow tasks (or activities), so
        timing starts with a ready worker. A poller is known by the SDK's default identity,
        ``<pid>@<host>``."""
        from temporalio.api.enums.v1 import TaskQueueType
        from temporalio.api.taskqueue.v1 import TaskQueue
        from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

        deadline = time.monotonic() + 120
        while True:
            if not process.alive():
                raise RuntimeError(f"{process.name} exited:\n{process.tail()}")
            described = await self.client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=self.client.namespace,
                    task_queue=TaskQueue(name=task_queue),
                    task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY
                    if activities
                    else TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
                )
            )
            if any(p.identity.startswith(f"{process.pid}@") for p in described.pollers):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{process.name} never polled {task_queue}:\n{process.tail()}")
            await asyncio.sleep(0.25)

    # ----- baseline status -------------------------------------------------------------------
    @property
    def status_file(self) -> Path:
        return self.dir / "baseline-status.json"

    def baseline_tally(self) -> tuple[int, float]:
        """(activities run, epoch of the last) by the baseline worker so far."""
        try:
            data = json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return 0, 0.0
        return int(data["count"]), float(data["last"])

    async def wait_baseline_tally(self, count: int, timeout: float) -> float:
        """Until the baseline worker has run ``count`` activities; the epoch of the last."""
        deadline = time.monotonic() + timeout
        while True:
            have, last = self.baseline_tally()
            if have >= count:
                return last
            self.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"baseline: {have}/{count} activities after {timeout:.0f} s")
            await asyncio.sleep(0.1)

    def check_alive(self) -> None:
        for process in self.processes:
            if not process.alive():
                raise RuntimeError(f"{process.name} exited:\n{process.tail()}")

    # ----- the read model --------------------------------------------------------------------
    def seed_county(self, organisations: Sequence[Organisation]) -> None:
        """The roster in the read model and the county office's account."""
        from activities.roster_store import store_roster
        from api.auth import upsert_user

        assert self.engine is not None
        with session_factory(self.engine).begin() as session:
            store_roster(session, Roster(organisations=tuple(organisations)))
            upsert_user(
                session,
                username=COUNTY,
                display_name="县委活动办",
                password=PASSWORD,
                role=Role.COUNTY_OFFICE,
            )
            # The guidance groups, who return what the county office submitted (nobody
            # decides on what their own role entered).
            for system in sorted({str(o.system) for o in organisations}):
                upsert_user(
                    session,
                    username=guidance_username(system),
                    display_name=f"{system}指导小组",
                    password=PASSWORD,
                    role=Role.GUIDANCE_GROUP,
                    scope_key=system,
                )

    def seed_counties(self, rosters: Mapping[str, Sequence[Organisation]]) -> dict[str, str]:
        """Counties of their own (``rosters``: by county code), each created with its roster
        and a county-office account; the accounts' usernames by county code."""
        from activities.roster_store import store_roster
        from api.auth import upsert_user
        from chuangzheng.services.counties import create_county

        assert self.engine is not None
        usernames: dict[str, str] = {}
        with session_factory(self.engine).begin() as session:
            for index, (code, organisations) in enumerate(rosters.items(), start=1):
                create_county(session, code=code, name=f"基准{index}县", now=datetime.now(UTC))
                store_roster(session, Roster(organisations=tuple(organisations)), county=code)
                usernames[code] = f"{COUNTY}-{code}"
                upsert_user(
                    session,
                    username=usernames[code],
                    display_name=f"基准{index}县委活动办",
                    password=PASSWORD,
                    role=Role.COUNTY_OFFICE,
                    county=code,
                )
        return usernames

    def scalar(self, sql: str, **params: Any) -> Any:
        assert self.engine is not None
        with self.engine.connect() as connection:
            return connection.execute(text(sql), params).scalar()

    def rows(self, sql: str, **params: Any) -> list[Any]:
        assert self.engine is not None
        with self.engine.connect() as connection:
            return list(connection.execute(text(sql), params).all())

    def started_count(self, round_id: str) -> int:
        """Organisations of the round whose workflow has run its first activity (the
        ``campaign_status`` row it writes)."""
        return int(
            self.scalar("SELECT count(*) FROM campaign_status WHERE round_id = :r", r=round_id)
        )

    async def wait_started(
        self, round_id: str, count: int, timeout: float, poll: float = 0.25
    ) -> float:
        """Until ``count`` organisations of the round have a status row; the epoch then."""
        deadline = time.monotonic() + timeout
        while True:
            have = self.started_count(round_id)
            if have >= count:
                return time.time()
            self.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{round_id}: {have}/{count} organisations started after {timeout:.0f} s"
                )
            await asyncio.sleep(poll)


async def start_many(starts: Sequence[Any], concurrency: int = 50) -> None:
    """Await the coroutines ``starts``, at most ``concurrency`` at a time."""
    limiter = asyncio.Semaphore(concurrency)

    async def one(coro: Any) -> None:
        async with limiter:
            await coro

    await asyncio.gather(*(one(c) for c in starts))


async def start_baselines(
    stack: Stack, n: int, *, prefix: str, concurrency: int = 50, first: int = 0
) -> float:
    """``start_workflow`` of ``n`` BaselineWorkflows; returns the seconds until every one has
    run its activity (counted by the baseline worker)."""
    before, _ = stack.baseline_tally()
    started = time.time()
    await start_many(
        [
            stack.client.start_workflow(
                "BenchBaselineWorkflow",
                i,
                id=f"{prefix}-{i}",
                task_queue=stack.baseline_queue,
            )
            for i in range(first, first + n)
        ],
        concurrency,
    )
    last = await stack.wait_baseline_tally(before + n, timeout=max(120, n))
    return max(last, started) - started


class Api:
    """An HTTP client of the API logged in as the county office (``username``: another
    county's office, see :meth:`Stack.seed_counties`)."""

    def __init__(self, base_url: str, timeout: float = 60, username: str = COUNTY) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=timeout)
        self.headers: dict[str, str] = {}
        self.username = username

    async def __aenter__(self) -> Api:
        response = await self.http.post(
            "/api/v1/auth/login", json={"username": self.username, "password": PASSWORD}
        )
        response.raise_for_status()
        # Tokens last half an hour and a benchmark runs longer: sign in again on a 401.
        token = response.json()["access_token"]
        self.http.auth = SignedInAuth(self.username, PASSWORD, token=token)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    async def post(self, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        headers = self.headers | {"Idempotency-Key": uuid.uuid4().hex}
        return await self.http.post(path, json=body, headers=headers, **kwargs)

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.get(path, headers=self.headers, **kwargs)

    async def create_and_kick_off(
        self,
        round_id: str,
        *,
        plan_yaml: str | None = None,
        plan_id: str = "demo",
        round_plan_id: str = "demo",
        starts_at: datetime | None = None,
    ) -> None:
        """``POST /rounds`` then ``POST /rounds/{id}/kickoff`` (raises on a refusal)."""
        body: dict[str, Any] = {"round_id": round_id, "round_plan_id": round_plan_id}
        if starts_at is not None:
            body["starts_at"] = starts_at.isoformat()
        body |= {"plan_yaml": plan_yaml} if plan_yaml is not None else {"plan_id": plan_id}
        created = await self.post("/api/v1/rounds", body)
        if created.status_code not in (200, 201):
            raise RuntimeError(f"create round: {created.status_code} {created.text[:300]}")
        kicked = await self.post(f"/api/v1/rounds/{round_id}/kickoff")
        if kicked.status_code not in (200, 201, 202):
            raise RuntimeError(f"kick-off: {kicked.status_code} {kicked.text[:300]}")
