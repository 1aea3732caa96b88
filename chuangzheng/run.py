"""``make run``: the whole service on one machine, as separate supervised processes.

Before the processes: refuse to start over another instance, migrate the database, load the
demo county. Then the Temporal CLI dev server (persisting to a SQLite file under the data
directory, so a restart keeps every round), ``CZ_WORKERS`` worker processes (``chuangzheng
worker``) and the API (``chuangzheng api``), each restarted if it crashes. Once the API answers,
a demo round on the minute-scale plan is kicked off unless one is running (through the round
use cases, not by signing in: a throttled demo sign-in does not stop ``make run``), the banner
says where to look (and whether the demo sign-in is blocked for now), and one status line a
minute follows; everything else goes to JSON log files
under ``<data_dir>/logs`` (``run.log`` for this supervisor, ``temporal.log``, ``worker-N.log``,
``api.log``). Ctrl-C or SIGTERM stops the API and workers (each drains within its graceful
period), then the dev server: all within 10 s with the default settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import httpx
import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from activities.member_store import store_members
from activities.roster_files import read_roster_file
from activities.roster_store import load_roster
from activities.round_contracts import RoundStatus
from activities.tables import (
    OrganisationRow,
    PartyMemberRow,
    UserRow,
)
from activities.tables.access import SignInThrottleRow
from chuangzheng.bootstrap import (
    SchemaNotCurrent,
    connect_temporal,
    migrate_database,
    open_database,
    report_refusal,
)
from chuangzheng.demo_members import demo_members
from chuangzheng.demo_users import DEMO_PASSWORD, seed_demo_users
from chuangzheng.logging import configure_logging
from chuangzheng.services import rounds
from chuangzheng.services.county_figures import county_figures
from chuangzheng.services.roster import import_roster_in
from chuangzheng.services.sign_in import account_key, address_key, wait_text
from chuangzheng.settings import Settings, WorkerRole, get_settings, repo_root
from chuangzheng.supervisor import ProcessSpec, Supervisor
from chuangzheng.temporal_server import dev_server_command, wait_for_dev_server
from domain.lights import Light
from domain.organisation import DEFAULT_COUNTY, Role
from domain.state import Actor
from domain.throttle import retry_after_seconds

log = structlog.get_logger(__name__)


#: How long the API may take to answer its first request (imports are slow on a busy machine).
API_START_TIMEOUT = 180.0
#: After SIGTERM, what the dev server gets once the API and workers are down.
SERVER_STOP_GRACE = 2.0
#: SIGTERM to the API and workers until SIGKILL, beyond their own graceful periods (their
#: shutdown and exit); and the most they get, so that everything stops within 10 s.
PROCESS_EXIT_MARGIN = 1.5
MAX_PROCESS_STOP = 6.5

T = TypeVar("T")

#: Who the audit log names for the demo county's roster import.
DEMO_LOADER = Actor(user="make-run", name="演示县加载", role=Role.COUNTY_OFFICE)


def load_demo_county(sessions: sessionmaker[Session], settings: Settings) -> None:
    """Import the demo roster (``CZ_DEMO_ROSTER``, by default ``deploy/demo/roster.csv``) and
    create the demo users, once."""
    roster_file = settings.demo_roster or repo_root() / "deploy/demo/roster.csv"
    with sessions.begin() as session:
        if session.scalar(select(func.count()).select_from(OrganisationRow)) == 0:
            roster = read_roster_file(roster_file)
            if session.scalar(select(func.count()).select_from(UserRow)) == 0:
                # The demo accounts before the import: the import never changes an account
                # it does not keep, so the demo's township-/instructor-/guidance- accounts
                # keep their password "demo" (the roster adds passwordless secretaries).
                log.info("creating demo users (argon2 hashing takes a little while)")
                users = seed_demo_users(session, roster, settings)
                log.info("demo users created", count=len(users))
            result = import_roster_in(session, DEMO_LOADER, roster)
            log.info("demo county imported", **result.counts)
    with sessions.begin() as session:
        if session.scalar(select(func.count()).select_from(PartyMemberRow)) == 0:
            store_members(session, demo_members(load_roster(session)))
            log.info("demo party members generated")
    with sessions.begin() as session:
        if session.scalar(select(func.count()).select_from(UserRow)) == 0:
            log.info("creating demo users (argon2 hashing takes a little while)")
            users = seed_demo_users(session, load_roster(session), settings)
            log.info("demo users created", count=len(users))


#: Who the audit log names for the demo round ``make run`` creates and kicks off.
DEMO_STARTER = Actor(user="make-run", name="演示轮次启动", role=Role.COUNTY_OFFICE)


async def wait_for_api(base_url: str, timeout: float = API_START_TIMEOUT) -> None:
    """Wait until the API answers ``/healthz`` (imports are slow on a busy machine)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                answer = await http.get("/healthz")
            except httpx.TransportError:
                answer = None
            if answer is not None and answer.status_code == 200:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"API 在 {timeout:g} 秒内没有应答 ({base_url}/healthz)")
            await asyncio.sleep(0.25)


async def kick_off_demo_round(
    settings: Settings, sessions: sessionmaker[Session], temporal: Client
) -> str:
    """Create and kick off a round of the demo plan in the demo county, unless one is
    running; its id.

    Through the round use cases themselves (what the API calls), as :data:`DEMO_STARTER`,
    not over HTTP with the demo county office's password: the public demo account may be
    locked by anyone's wrong guesses, or 127.0.0.1 blocked by the sign-in throttle, and
    ``make run`` must start all the same (it once exited with a 429). Nothing is
    weakened: the throttle guards passwords sent over the network, and this process reads
    the database directly anyway. The audit log names ``make-run``, as for the roster."""
    with sessions() as session:
        running = [
            record
            for record in rounds.list_rounds(session, {DEFAULT_COUNTY})
            if record.status == RoundStatus.RUNNING.value
        ]
    if running:
        return running[0].round_id
    round_id = "demo-" + datetime.now(UTC).strftime("%Y%m%d-%H%M")
    await rounds.create_round(
        sessions, DEMO_STARTER, round_id=round_id, plan_id="demo", round_plan_id="demo"
    )
    service = rounds.Rounds(sessions=sessions, temporal=temporal, settings=settings)
    await service.kick_off(DEMO_STARTER, round_id)
    return round_id


def demo_sign_in_notes(sessions: sessionmaker[Session], now: datetime) -> list[str]:
    """What the banner says when the demo ``county`` account, or this machine's address,
    is blocked by the sign-in throttle (someone's wrong passwords): that ``make run`` went
    on regardless, and how long until signing in works (the block is not lifted: it guards
    a public password)."""
    with sessions() as session:
        counters = {
            row.key: row
            for row in session.scalars(
                select(SignInThrottleRow).where(
                    SignInThrottleRow.key.in_([account_key("county"), address_key("127.0.0.1")])
                )
            )
        }
    notes = []
    for key, who in (
        (account_key("county"), "演示账号 county"),
        (address_key("127.0.0.1"), "本机地址 127.0.0.1"),
    ):
        row = counters.get(key)
        if row is not None and row.blocked_until is not None and row.blocked_until > now:
            wait = wait_text(retry_after_seconds(row.blocked_until - now))
            notes.append(
                f"  注意: {who} 因登录失败次数过多被暂时锁定，约 {wait}后可再登录"
                "（演示轮次已照常启动，不受影响）"
            )
    return notes


def banner(settings: Settings, round_id: str, notes: Sequence[str] = ()) -> str:
    """Where to look, and how to log in (``notes``: what else the operator should know,
    e.g. :func:`demo_sign_in_notes`)."""
    api = f"http://{settings.api_host}:{settings.api_port}"
    seconds = settings.run_status_interval_seconds
    every = "每分钟" if seconds == 60 else f"每 {seconds:g} 秒"
    roles = settings.worker_process_roles
    workers = f"{len(roles)} 个工作进程"
    if any(role is not WorkerRole.ALL for role in roles):
        names = {
            WorkerRole.ALL: "通用",
            WorkerRole.WORKFLOWS: "工作流",
            WorkerRole.ACTIVITIES: "活动",
        }
        workers += "：" + "、".join(
            f"{names[role]} {roles.count(role)}" for role in dict.fromkeys(roles)
        )
    return "\n".join(
        [
            "",
            f"创争 chuangzheng 已启动 (Ctrl-C 停止；{workers})",
            f"  督查看板:            {api}/ui/  (大屏: {api}/ui/overview?screen=big)",
            f"  公开栏 (无需登录):    {api}/public/commitments  {api}/public/honours",
            f"  API 文档 (OpenAPI):  {api}/docs",
            f"  Temporal UI:        http://127.0.0.1:{settings.temporal_ui_port}",
            f"  数据目录:            {settings.data_dir}",
            f"  日志 (JSON):         {log_dir(settings)}/{{api,worker-N,temporal,run}}.log",
            f"  演示轮次:            {round_id}（分钟级，几分钟内可见提醒、督办与整改通知）",
            f"  演示账号 (密码 {DEMO_PASSWORD}):",
            "    county                     县委活动办",
            "    assessment, assessment-2/3 县委考核组（评选表彰评分）",
            "    guidance-rural             农村基层组织指导小组",
            "    instructor-<姓名>          指导员（见 deploy/demo/roster.csv 的 指导员 列）",
            "    secretary-org-0001         书记（org-0001 … org-0300）",
            *notes,
            f"  此后{every}显示一行状态（组织灯色、通知、错误）。",
            "",
        ]
    )


def ports_free(settings: Settings) -> None:
    """Refuse to start over another instance: fail early with the port and the setting."""
    temporal_port = urlsplit(f"//{settings.temporal_address}").port or 7233
    for port, setting in (
        (temporal_port, "CZ_TEMPORAL_ADDRESS"),
        (settings.temporal_ui_port, "CZ_TEMPORAL_UI_PORT"),
        (settings.api_port, "CZ_API_PORT"),
    ):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                raise SystemExit(
                    f"端口 {port} 已被占用：是否已有一个 make run 在运行？"
                    f"(port {port} is in use; stop the other instance or set {setting})"
                )


def log_dir(settings: Settings) -> Path:
    """Where every process of ``make run`` writes its JSON log."""
    return settings.data_dir / "logs"


def _temporal_host_port(settings: Settings) -> tuple[str, int]:
    address = urlsplit(f"//{settings.temporal_address}")
    return address.hostname or "127.0.0.1", address.port or 7233


def _entry_point(command: str, *options: str) -> list[str]:
    """``chuangzheng <command> [options]``, the console script production runs (same
    interpreter)."""
    script = Path(sys.executable).parent / "chuangzheng"
    if script.is_file():
        return [str(script), command, *options]
    return [sys.executable, "-m", "chuangzheng.cli", command, *options]


def process_specs(settings: Settings) -> tuple[ProcessSpec, list[ProcessSpec]]:
    """The dev server, then the workers and the API: what ``make run`` supervises."""
    logs = log_dir(settings)
    host, port = _temporal_host_port(settings)
    server = ProcessSpec(
        name="temporal",
        argv=dev_server_command(
            host=host,
            port=port,
            db_file=settings.data_dir / "temporal.db",
            ui_port=settings.temporal_ui_port,
            namespace=settings.temporal_namespace,
        ),
        log_file=logs / "temporal.log",
    )
    # Children log JSON to stderr, which the supervisor appends to their files.
    env = {**os.environ, "CZ_LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1"}
    # One process per role of CZ_WORKER_ROLES (or CZ_WORKERS that run both); the role is on
    # the command line, so a CZ_WORKER_ROLE in the environment cannot turn them all into one.
    services = [
        ProcessSpec(
            name=f"worker-{index}",
            argv=_entry_point("worker", "--role", role.value),
            log_file=logs / f"worker-{index}.log",
            env=env,
        )
        for index, role in enumerate(settings.worker_process_roles, start=1)
    ]
    services.append(
        ProcessSpec(name="api", argv=_entry_point("api"), log_file=logs / "api.log", env=env)
    )
    return server, services


def status_line(sessions: sessionmaker[Session], restarts: int, now: datetime) -> str:
    """One line from the read model: organisations of running rounds by light, notices sent
    (in-app, and on external channels), delivery errors; process restarts, if any."""
    with sessions() as session:
        figures = county_figures(session)
    by_light = " ".join(f"{light.label} {figures.lights[light.value]}" for light in Light)
    line = (
        f"[{now.astimezone():%H:%M:%S}] 组织 {figures.organisations}（{by_light}）"
        f"  通知 {figures.notices}（外发 {figures.sent}）  错误 {figures.delivery_errors}"
    )
    if restarts:
        line += f"  进程重启 {restarts}"
    return line


class _Stopped(Exception):
    """Ctrl-C or SIGTERM arrived while starting."""


async def _unless_stopped(work: Awaitable[T], stop: asyncio.Event) -> T:
    """Await ``work``, or raise :class:`_Stopped` as soon as ``stop`` is set."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        raise _Stopped
    stopping.cancel()
    return task.result()


async def _print_status(
    settings: Settings, sessions: sessionmaker[Session], supervisor: Supervisor, stop: asyncio.Event
) -> None:
    """One status line every ``run_status_interval_seconds`` until ``stop``."""
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=settings.run_status_interval_seconds)
            return
        try:
            line = await asyncio.to_thread(
                status_line, sessions, supervisor.restarts, datetime.now(UTC)
            )
        except Exception:  # a locked or migrating database must not end make run
            log.exception("status line failed")
            continue
        print(line, flush=True)


def _stop_requested(stop: asyncio.Event, sig: signal.Signals) -> None:
    log.info("stop requested", signal=sig.name)
    stop.set()


async def supervise(settings: Settings) -> int:
    """Everything ``make run`` does between the checks and the exit; the exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, _stop_requested, stop, sig)
    server, services = process_specs(settings)
    supervisor = Supervisor()
    code = 0
    with open_database(settings) as database:
        try:
            supervisor.start(server)
            await _unless_stopped(
                wait_for_dev_server(settings.temporal_address, settings.temporal_namespace), stop
            )
            log.info("temporal dev server ready", address=settings.temporal_address)
            for spec in services:
                supervisor.start(spec)
            temporal = await _unless_stopped(connect_temporal(settings), stop)
            api = f"http://{settings.api_host}:{settings.api_port}"
            await _unless_stopped(wait_for_api(api), stop)
            round_id = await _unless_stopped(
                kick_off_demo_round(settings, database.sessions, temporal), stop
            )
            log.info("demo round running", round_id=round_id)
            try:
                notes = demo_sign_in_notes(database.sessions, datetime.now(UTC))
            except Exception:  # a locked database must not end make run over a note
                log.exception("demo sign-in notes failed")
                notes = []
            print(banner(settings, round_id, notes), flush=True)
            await _print_status(settings, database.sessions, supervisor, stop)
        except _Stopped:
            log.info("stopped while starting")
        except Exception as exc:
            log.exception("make run failed")
            print(
                f"启动失败：{exc!r}；详见 {log_dir(settings)} 下的日志 (make run failed)",
                file=sys.stderr,
                flush=True,
            )
            code = 1
        finally:
            log.info("stopping")
            graceful = max(
                settings.api_graceful_shutdown_seconds, settings.worker_graceful_shutdown_seconds
            )
            grace = min(graceful + PROCESS_EXIT_MARGIN, MAX_PROCESS_STOP)
            await supervisor.stop([spec.name for spec in services], grace=grace)
            await supervisor.stop([server.name], grace=SERVER_STOP_GRACE)
            log.info("stopped")
    return code


def main() -> None:
    """``make run``: check, migrate, load the demo, supervise; exit without teardown (the
    Temporal SDK's threads can abort a finalising interpreter, temporalio/sdk-python#300)."""
    settings = get_settings()
    configure_logging(settings, log_file=log_dir(settings) / "run.log")
    ports_free(settings)
    print(f"创争 chuangzheng 正在启动… (日志: {log_dir(settings)})", flush=True)
    try:
        # The bootstrap's migration: a database built without the migrations (by an older
        # release's processes) is refused with what to do, not alembic's DuplicateTable.
        migrate_database(settings)
        with open_database(settings) as database:
            load_demo_county(database.sessions, settings)
    except KeyboardInterrupt:  # Ctrl-C before any process was started
        raise SystemExit(130) from None
    except SchemaNotCurrent as refused:
        report_refusal(refused)
        raise SystemExit(refused.exit_code) from None
    code = asyncio.run(supervise(settings))
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    main()
