"""``make run`` starts its demo round whatever the sign-in throttle says: after 20 failed
sign-ins from 127.0.0.1, or with the public demo ``county`` account locked by someone's
guesses, a restart printed ``启动失败：HTTPStatusError 429 … /api/v1/auth/login`` and
exited. The round is created and kicked off through the round use cases
(``chuangzheng.run.kick_off_demo_round``), no password involved: here with the demo
account and the local address both blocked, against a real Temporal dev server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from activities.db import create_schema, make_engine, session_factory
from activities.tables import AuditRow, RoundRow
from activities.tables.access import SignInThrottleRow
from chuangzheng.run import (
    DEMO_STARTER,
    banner,
    demo_sign_in_notes,
    kick_off_demo_round,
    load_demo_county,
)
from chuangzheng.services.sign_in import account_key, address_key
from chuangzheng.settings import Settings
from chuangzheng.temporal_server import start_dev_server_env
from workflows.ids import round_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROOT = Path(__file__).resolve().parent.parent


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    env = await start_dev_server_env()
    try:
        yield env
    finally:
        await env.shutdown()


async def test_the_demo_round_starts_while_the_demo_sign_in_is_throttled(
    tmp_path: Path, dev_server: WorkflowEnvironment
) -> None:
    roster = tmp_path / "roster.csv"
    demo = (ROOT / "deploy/demo/roster.csv").read_text("utf-8-sig").splitlines()
    roster.write_text("\n".join(demo[:4]) + "\n", "utf-8")
    settings = Settings(
        environment="development",
        data_dir=tmp_path / "data",
        demo_roster=roster,
        task_queue=f"demo-run-{tmp_path.name}",
    )
    engine = make_engine(f"sqlite:///{tmp_path / 'run.db'}")
    create_schema(engine)
    sessions = session_factory(engine)
    try:
        load_demo_county(sessions, settings)
        # The demo county office locked, and make run's own address blocked, for an hour.
        now = datetime.now(UTC)
        with sessions.begin() as session:
            for key in (account_key("county"), address_key("127.0.0.1")):
                session.add(
                    SignInThrottleRow(
                        key=key,
                        failures=25,
                        first_failure_at=now - timedelta(minutes=5),
                        last_failure_at=now,
                        blocked_until=now + timedelta(hours=1),
                    )
                )

        round_id = await kick_off_demo_round(settings, sessions, dev_server.client)

        with sessions() as session:
            row = session.get(RoundRow, round_id)
            assert row is not None and row.status == "running"
            assert row.kicked_off_by == DEMO_STARTER.user == "make-run"
            kicked = session.get(AuditRow, f"round_kicked_off/{round_id}")
            assert kicked is not None and kicked.user == "make-run"
            # No sign-in was tried: the throttle is as it was, and no login was audited.
            blocked = session.get(SignInThrottleRow, account_key("county"))
            assert blocked is not None and blocked.failures == 25
            assert not session.scalars(
                select(AuditRow).where(AuditRow.action.in_(["login", "login_failed"]))
            ).all()
        handle = dev_server.client.get_workflow_handle(round_workflow_id(round_id))
        assert (await handle.describe()).status is not None

        # A restart finds the round running and starts no other.
        assert await kick_off_demo_round(settings, sessions, dev_server.client) == round_id
        with sessions() as session:
            assert session.scalars(select(RoundRow.round_id)).all() == [round_id]
        await handle.terminate("test over")

        # The console says what is going on, in Chinese, before the status lines.
        notes = demo_sign_in_notes(sessions, datetime.now(UTC))
        assert len(notes) == 2
        assert "演示账号 county 因登录失败次数过多被暂时锁定" in notes[0]
        assert "本机地址 127.0.0.1" in notes[1] and "约 1 小时后可再登录" in notes[1]
        lines = banner(settings, round_id, notes).splitlines()
        assert lines.index(notes[1]) == len(lines) - 2  # then the last: 此后…显示一行状态
        with sessions.begin() as session:
            session.query(SignInThrottleRow).delete()
        assert demo_sign_in_notes(sessions, datetime.now(UTC)) == []
    finally:
        engine.dispose()
