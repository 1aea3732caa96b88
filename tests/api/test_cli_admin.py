"""The administrator's CLI over the running stack: import a roster, start a round with a
progress bar, show its status (in Chinese, before and after kick-off); bad input exits 2
with every row's reason, each once."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
from typer.testing import CliRunner, Result

from chuangzheng.cli import app
from tests.api.conftest import PASSWORD, ROSTER_CSV, Stack, token


async def cli(stack: Stack, *args: str) -> Result:
    """Run the CLI in a thread: the worker on this event loop must keep serving meanwhile."""
    options = ["--api", stack.base_url, "--user", "county", "--password", PASSWORD]
    return await asyncio.to_thread(CliRunner().invoke, app, [*args, *options])


async def test_admin_imports_starts_and_reports(stack: Stack, tmp_path: Path) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_text(ROSTER_CSV, encoding="utf-8")
    imported = await cli(stack, "import-roster", str(roster))
    assert imported.exit_code == 0, imported.output
    assert "名册已导入" in imported.output

    round_id = f"cli-{uuid.uuid4().hex[:6]}"
    started = await cli(stack, "start-round", round_id, "--plan", "demo", "--round-plan", "demo")
    assert started.exit_code == 0, started.output
    assert f"轮次 {round_id} 已启动：3 个组织" in started.output

    shown = await cli(stack, "status", round_id)
    assert shown.exit_code == 0, shown.output
    assert "状态：进行中" in shown.output
    assert "已启动 3 / 3 个组织" in shown.output
    assert "动员部署" in shown.output

    # Starting the same round id again is refused with the API's reason.
    again = await cli(stack, "start-round", round_id)
    assert again.exit_code == 2 and "轮次编号已存在" in again.output


async def test_admin_roster_errors_name_each_row(stack: Stack, tmp_path: Path) -> None:
    roster = tmp_path / "bad.csv"
    roster.write_text(
        ROSTER_CSV + "org-x,坏行党支部,不存在的类型,城关镇,县农委,0,某,某\n", encoding="utf-8"
    )
    result = await cli(stack, "import-roster", str(roster))
    assert result.exit_code == 2
    # Each of the row's errors once (not also joined into the first line).
    assert result.output.count("第5行·组织类型") == 1, result.output
    assert result.output.count("第5行·党员人数") == 1, result.output


async def test_status_before_kick_off_says_so(stack: Stack) -> None:
    """A round created but not kicked off: its state in Chinese and "尚未启动", not
    "created" and "已启动 0 / None"."""
    round_id = f"cli-{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        created = await http.post(
            "/api/v1/rounds",
            json={"round_id": round_id, "plan_id": "demo", "round_plan_id": "demo"},
            headers=await token(http, "county"),
        )
        assert created.status_code in (200, 201), created.text
    shown = await cli(stack, "status", round_id)
    assert shown.exit_code == 0, shown.output
    assert f"（{round_id}）状态：尚未启动" in shown.output
    assert "尚未启动，还没有组织进度" in shown.output
    assert "None" not in shown.output and "created" not in shown.output
