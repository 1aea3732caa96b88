"""The what-if page through the real app (SQLite and PostgreSQL): the county office drafts a
change on ``/ui/what-if`` (linked from its dashboard), the rehearsal runs as a background
job in its own process on its own time-skipping server, the page and the API show both
arms, and the Excel export carries them with people's text as text; other roles get 403;
starting a what-if is audited."""

from __future__ import annotations

import asyncio
import io
import uuid

import httpx
import pytest
from openpyxl import load_workbook  # type: ignore[import-untyped]
from typer.testing import CliRunner

from chuangzheng.cli import app
from chuangzheng.settings import get_settings
from tests.api.conftest import Stack, signed_in, start_demo_round, token, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_only_the_county_office_gets_the_what_if(stack: Stack) -> None:
    rid = await start_demo_round(stack, f"wi-{uuid.uuid4().hex[:8]}")
    async with signed_in(stack, "county") as county:
        page = await county.get(f"/ui/what-if?round={rid}")
        assert page.status_code == 200, page.text
        assert "拟调整方案" in page.text and 'id="what-if-form"' in page.text
        # The demo plan has no 预警 rung: said so, no threshold form.
        assert "本轮计划没有预警层级" in page.text and "threshold-form" not in page.text
        overview = await county.get(f"/ui/overview?round={rid}")
        assert f'href="/ui/what-if?round={rid}"' in overview.text
    for username in ("gg-rural", "tw-chengguan", "ins-zhang", "sec-a", "assess"):
        async with signed_in(stack, username) as other:
            refused = await other.get(f"/ui/what-if?round={rid}")
            assert refused.status_code == 403, (username, refused.status_code)
            if username == "tw-chengguan":  # a supervisor's dashboard links no what-if
                overview = await other.get(f"/ui/overview?round={rid}")
                assert overview.status_code == 200 and "/ui/what-if" not in overview.text
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        for username in ("ins-zhang", "sec-a"):
            answer = await http.get(
                f"/api/v1/rounds/{rid}/what-if", headers=await token(http, username)
            )
            assert answer.status_code == 403


async def test_the_county_office_rehearses_a_draft_in_the_background(stack: Stack) -> None:
    rid = await start_demo_round(stack, f"wi-{uuid.uuid4().hex[:8]}")
    async with (
        signed_in(stack, "county") as county,
        httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http,
    ):
        headers = await token(http, "county")
        # A bad draft is refused on the page, naming the field, and starts nothing.
        bad = await county.post(
            "/ui/what-if",
            data={"round": rid, "unit": "minutes", "kind": "extend_phase", "phase": "mobilisation",
                  "amount": "0"},
        )  # fmt: skip
        assert bad.status_code == 303
        shown = await county.get(bad.headers["location"])
        assert "by" in shown.text and "延长的时长须在 1 到 60 之间" in shown.text
        # Extend 动员部署 by two minutes for everyone; the reason looks like a formula.
        started = await county.post(
            "/ui/what-if",
            data={"round": rid, "unit": "minutes", "kind": "extend_phase", "phase": "mobilisation",
                  "township": "", "amount": "2", "reason": "=HYPERLINK(\"x\")", "seed": "4"},
        )  # fmt: skip
        assert started.status_code == 303
        assert "推演已开始" in (await county.get(started.headers["location"])).text
        # One at a time per round.
        again = await http.post(
            f"/api/v1/rounds/{rid}/what-if",
            json={"change": {"kind": "rectification_period", "period": {"minutes": 2}}},
            headers=headers,
        )
        assert again.status_code in (202, 409), again.text
        if again.status_code == 409:
            assert again.json()["code"] == "what_if_running"

        async def finished() -> dict[str, object] | None:
            answer = await http.get(f"/api/v1/rounds/{rid}/what-if", headers=headers)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            job = body["job"]
            assert job is not None and job["state"] != "failed", job
            return body if job["state"] == "done" and body["result"] else None

        body = await wait_for(finished, timeout=240)
        result = body["result"]
        assert result["organisations"] == 3
        assert len(result["unchanged"]["phases"]) == 5
        for arm in ("unchanged", "changed"):
            for phase in result[arm]["phases"]:
                done = phase["on_time"] + phase["late"] + phase["after_rectification"]
                assert done + phase["unfinished"] == 3
        page = await county.get(f"/ui/what-if?round={rid}")
        assert 'id="outcomes"' in page.text and "导出 Excel" in page.text
        exported = await county.get(f"/ui/what-if.xlsx?round={rid}")
        assert exported.status_code == 200
        book = load_workbook(io.BytesIO(exported.content))
        sheet = book["推演结果"]
        assert (
            sheet["A2"].value == "推演方案" and "动员部署阶段截止时间延后2分钟" in sheet["B2"].value
        )
        reason = sheet["B3"]
        assert reason.value == '=HYPERLINK("x")' and reason.data_type == "s"
        # The API's export is the same workbook: no cell of either is a formula.
        api_export = await http.get(f"/api/v1/rounds/{rid}/what-if.xlsx", headers=headers)
        assert api_export.status_code == 200, api_export.text
        for data in (exported.content, api_export.content):
            cells = [
                c for s in load_workbook(io.BytesIO(data)).worksheets for r in s.iter_rows()
                for c in r
            ]  # fmt: skip
            assert cells and not [c for c in cells if c.data_type == "f"]
        assert {"推演结果", "通知", "结果变化的组织"} <= set(book.sheetnames)
        audit = await http.get(
            "/api/v1/audit", params={"action": "what_if_started", "round_id": rid}, headers=headers
        )
        assert audit.status_code == 200, audit.text
        entries = audit.json()["items"]
        assert len(entries) >= 1 and entries[-1]["user"] == "county"


async def test_the_command_line_rehearses_a_draft(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``chuangzheng what-if`` on the server: the same rehearsal, printed; a bad draft is
    refused naming the field (exit 2)."""
    rid = await start_demo_round(stack, f"wi-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("CZ_DATABASE_URL", stack.settings.database_url)
    monkeypatch.setenv("CZ_DATA_DIR", str(stack.settings.data_dir))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        done = await asyncio.to_thread(
            runner.invoke,
            app,
            ["what-if", rid, "--extend", "mobilisation", "--by", "2", "--minutes", "--seed", "2"],
        )
        bad = await asyncio.to_thread(
            runner.invoke, app, ["what-if", rid, "--move-rung", "不存在", "--by", "1", "--minutes"]
        )
    finally:
        get_settings.cache_clear()
    assert done.exit_code == 0, done.output
    assert "推演：全县组织动员部署阶段截止时间延后2分钟（3 个组织，种子 2" in done.output
    assert "结果变化的组织" in done.output
    assert bad.exit_code == 2, bad.output
    assert "rung_name" in bad.output and "没有名为“不存在”的督办层级" in bad.output
