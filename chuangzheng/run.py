"""``make run``: the whole service on one machine, embedded.

Migrates the database, starts the Temporal CLI dev server (persisting to a SQLite file under
the data directory, so a restart keeps every round), the worker and the API, loads the demo
county and its users, kicks off a demo round on the minute-scale plan unless one is running,
prints where to look, and stops everything cleanly on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
import structlog
import uvicorn
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from activities.channels import build_notifier
from activities.db import make_engine, session_factory
from activities.member_store import store_members
from activities.roster_files import read_roster_file
from activities.roster_store import load_roster, store_roster
from activities.tables import OrganisationRow, PartyMemberRow, UserRow
from api.main import create_app
from chuangzheng.demo_members import demo_members
from chuangzheng.demo_users import DEMO_PASSWORD, seed_demo_users
from chuangzheng.logging import configure_logging
from chuangzheng.migrate import upgrade
from chuangzheng.settings import Settings, get_settings, repo_root
from chuangzheng.temporal_server import start_dev_server_env
from worker import build_worker

log = structlog.get_logger(__name__)


def load_demo_county(sessions: sessionmaker[Session], settings: Settings) -> None:
    """Import the demo roster and create the demo users, once."""
    with sessions.begin() as session:
        if session.scalar(select(func.count()).select_from(OrganisationRow)) == 0:
            report = store_roster(session, read_roster_file(repo_root() / "deploy/demo/roster.csv"))
            log.info("demo county imported", added=report.added, updated=report.updated)
    with sessions.begin() as session:
        if session.scalar(select(func.count()).select_from(PartyMemberRow)) == 0:
            store_members(session, demo_members(load_roster(session)))
            log.info("demo party members generated")
    with sessions.begin() as session:
        if session.scalar(select(func.count()).select_from(UserRow)) == 0:
            log.info("creating demo users (argon2 hashing takes a little while)")
            users = seed_demo_users(session, load_roster(session), settings)
            log.info("demo users created", count=len(users))


async def kick_off_demo_round(base_url: str) -> str:
    """Create and kick off a round of the demo plan through the API, unless one is running."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        for _ in range(100):  # the API may still be starting
            with contextlib.suppress(httpx.TransportError):
                login = await http.post(
                    "/api/v1/auth/login", json={"username": "county", "password": DEMO_PASSWORD}
                )
                break
            await asyncio.sleep(0.2)
        login.raise_for_status()
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        rounds = (await http.get("/api/v1/rounds", headers=headers)).json()
        running = [r for r in rounds if r["status"] == "running"]
        if running:
            return str(running[0]["round_id"])
        round_id = "demo-" + datetime.now(UTC).strftime("%Y%m%d-%H%M")
        created = await http.post(
            "/api/v1/rounds",
            json={"round_id": round_id, "plan_id": "demo", "round_plan_id": "demo"},
            headers=headers,
        )
        created.raise_for_status()
        (await http.post(f"/api/v1/rounds/{round_id}/kickoff", headers=headers)).raise_for_status()
        return round_id


def banner(settings: Settings, round_id: str) -> str:
    """Where to look, and how to log in."""
    api = f"http://{settings.api_host}:{settings.api_port}"
    return "\n".join(
        [
            "",
            "创争 chuangzheng 已启动 (Ctrl-C 停止)",
            f"  督查看板:            {api}/ui/  (大屏: {api}/ui/overview?screen=big)",
            f"  公开栏 (无需登录):    {api}/public/commitments  {api}/public/honours",
            f"  API 文档 (OpenAPI):  {api}/docs",
            f"  Temporal UI:        http://127.0.0.1:{settings.temporal_ui_port}",
            f"  数据目录:            {settings.data_dir}",
            f"  演示轮次:            {round_id}（分钟级，几分钟内可见提醒、督办与整改通知）",
            f"  演示账号 (密码 {DEMO_PASSWORD}):",
            "    county                     县委活动办",
            "    assessment, assessment-2/3 县委考核组（评选表彰评分）",
            "    guidance-rural             农村基层组织指导小组",
            "    instructor-<姓名>          指导员（见 deploy/demo/roster.csv 的 指导员 列）",
            "    secretary-org-0001         书记（org-0001 … org-0300）",
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


async def main() -> None:
    """Start everything, then wait for Ctrl-C."""
    settings = get_settings()
    configure_logging(settings)
    ports_free(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    sessions = session_factory(engine)
    load_demo_county(sessions, settings)

    port = urlsplit(f"//{settings.temporal_address}").port
    env = await start_dev_server_env(
        db_file=settings.data_dir / "temporal.db", ui_port=settings.temporal_ui_port, port=port
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, temporal=env.client),
            host=settings.api_host,
            port=settings.api_port,
            log_config=None,
        )
    )
    try:
        async with build_worker(
            env.client,
            task_queue=settings.task_queue,
            sessions=sessions,
            notifier=build_notifier(sessions, settings),
        ):
            serving = asyncio.create_task(server.serve())
            round_id = await kick_off_demo_round(f"http://{settings.api_host}:{settings.api_port}")
            print(banner(settings, round_id), flush=True)
            await stop.wait()
            server.should_exit = True
            await serving
    finally:
        await env.shutdown()
        engine.dispose()
        log.info("stopped")


if __name__ == "__main__":
    asyncio.run(main())
