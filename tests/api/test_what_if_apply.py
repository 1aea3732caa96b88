"""采用此方案 through the real app (SQLite and PostgreSQL, the dev server, the worker, the
what-if job in its own process): a reviewed what-if becomes the round's next plan version
in one action. A township-only extension is refused saying why; a round-wide extension is
applied once (the plan versions list shows version 2 with the what-if's change, a second
post with the same form key applies nothing more); a result whose base version is no longer
in force is refused; other roles get 403. ``chuangzheng what-if ROUND --apply`` does the same
from the command line, with the same refusals, as the signed-in account."""

from __future__ import annotations

import asyncio
import re
import uuid
from html import unescape
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from chuangzheng.cli import app
from tests.api.conftest import PASSWORD, Stack, signed_in, start_demo_round, token, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _hidden(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found is not None, name
    return unescape(found.group(1))


async def _rehearse(
    county: httpx.AsyncClient, http: httpx.AsyncClient, rid: str, data: dict[str, str]
) -> dict[str, Any]:
    """Start a what-if on the page and wait for its result (the API's view of it)."""
    started = await county.post("/ui/what-if", data={"round": rid, "unit": "minutes", **data})
    assert started.status_code == 303
    shown = await county.get(started.headers["location"])
    assert "推演已开始" in shown.text, shown.text
    headers = await token(http, "county")

    async def finished() -> dict[str, Any] | None:
        answer = await http.get(f"/api/v1/rounds/{rid}/what-if", headers=headers)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        job = body["job"]
        assert job is not None and job["state"] != "failed", job
        done = job["state"] == "done" and body["result"]
        return body if done and body["result"]["job_id"] == job["job_id"] else None

    result: dict[str, Any] = await wait_for(finished, timeout=240)
    return result


async def test_the_county_office_applies_a_reviewed_what_if_once(stack: Stack) -> None:
    rid = await start_demo_round(stack, f"wia-{uuid.uuid4().hex[:8]}")
    async with (
        signed_in(stack, "county") as county,
        httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http,
    ):
        headers = await token(http, "county")
        form = await county.get(f"/ui/what-if?round={rid}")
        township = re.findall(r'<option value="([^"]+)">\1</option>', form.text.split(
            'name="township"')[1].split("</select>")[0])[0]  # fmt: skip

        # A township-only extension: rehearsed, but no plan version can say it.
        await _rehearse(
            county, http, rid,
            {"kind": "extend_phase", "phase": "public_evaluation", "township": township,
             "amount": "2", "seed": "3"},
        )  # fmt: skip
        page = await county.get(f"/ui/what-if?round={rid}")
        assert 'id="apply-not-possible"' in page.text and 'id="apply-form"' not in page.text
        refused = await county.post(
            "/ui/what-if/apply",
            data={"round": rid, "job_id": "", "form_key": "k0", "reason": "试一试"},
        )
        assert refused.status_code == 303
        shown = await county.get(refused.headers["location"])
        assert "该推演方案不能直接采用为新版计划" in shown.text
        assert "township" in shown.text and "全县延长" in shown.text
        assert "逐个批准延期" in shown.text

        # The round-wide extension: reviewed, then applied with the page's form.
        body = await _rehearse(
            county, http, rid,
            {"kind": "extend_phase", "phase": "public_evaluation", "township": "",
             "amount": "2", "reason": "群众评议需要更多时间", "seed": "3"},
        )  # fmt: skip
        assert body["result"]["plan_version"] == 1
        page = await county.get(f"/ui/what-if?round={rid}")
        assert 'id="apply-form"' in page.text and "采用此方案" in page.text
        job_id, key = _hidden(page.text, "job_id"), _hidden(page.text, "form_key")
        assert job_id == body["job"]["job_id"]
        post = {"round": rid, "job_id": job_id, "form_key": key}
        no_reason = await county.post("/ui/what-if/apply", data={**post, "reason": " "})
        assert "请填写采用理由" in (await county.get(no_reason.headers["location"])).text
        # Nothing was applied without a reason.
        versions = await http.get(f"/api/v1/rounds/{rid}/plan-versions", headers=headers)
        assert [v["version"] for v in versions.json()] == [1]

        applied = await county.post(
            "/ui/what-if/apply", data={**post, "reason": "推演后决定延长群众评议"}
        )
        assert applied.status_code == 303
        assert (
            "已采用推演方案，启用计划第2版" in (await county.get(applied.headers["location"])).text
        )
        # A double click: the same form key applies nothing more.
        again = await county.post(
            "/ui/what-if/apply", data={**post, "reason": "推演后决定延长群众评议"}
        )
        assert (
            "此前已采用，无新调整：计划第2版" in (await county.get(again.headers["location"])).text
        )
        versions = await http.get(f"/api/v1/rounds/{rid}/plan-versions", headers=headers)
        assert versions.status_code == 200, versions.text
        listed = versions.json()
        assert [v["version"] for v in listed] == [1, 2]
        second = listed[1]
        assert second["reason"] == "推演后决定延长群众评议"
        assert second["applied_by"] and second["changes"], second
        assert any("群众评议" in line for line in second["changes"]), second["changes"]
        # Only the extended phase moved (the next phase keeps its deadline).
        assert not any("评选表彰" in line for line in second["changes"]), second["changes"]
        plan_page = await county.get(f"/ui/rounds/{rid}/plan")
        assert "推演后决定延长群众评议" in plan_page.text

        # The result was made on version 1; version 2 is in force now: a new key is refused.
        stale = await http.post(
            f"/api/v1/rounds/{rid}/what-if/apply",
            json={"job_id": job_id, "reason": "再采用一次", "idempotency_key": "other"},
            headers=headers,
        )
        assert stale.status_code == 409, stale.text
        assert stale.json()["code"] == "stale_version"
        assert "推演时本轮计划为第1版，现已调整为第2版" in stale.json()["message"]
        versions = await http.get(f"/api/v1/rounds/{rid}/plan-versions", headers=headers)
        assert len(versions.json()) == 2

        # A what-if now runs on version 2 and records it.
        later = await _rehearse(
            county, http, rid,
            {"kind": "rectification_period", "amount": "2", "seed": "3"},
        )  # fmt: skip
        assert later["result"]["plan_version"] == 2
        api_applied = await http.post(
            f"/api/v1/rounds/{rid}/what-if/apply",
            json={
                "job_id": later["job"]["job_id"],
                "reason": "整改期限缩短",
                "idempotency_key": "api-1",
            },
            headers=headers,
        )
        assert api_applied.status_code == 200, api_applied.text
        assert api_applied.json()["version"] == 3 and api_applied.json()["applied"] is True
        assert any("整改" in line for line in api_applied.json()["changes"])
        # The second version's extension is still in force (built on version 2, not 1).
        versions = await http.get(f"/api/v1/rounds/{rid}/plan-versions", headers=headers)
        assert [v["version"] for v in versions.json()] == [1, 2, 3]
        assert not any("群众评议" in line for line in versions.json()[2]["changes"])

    for username in ("gg-rural", "tw-chengguan", "ins-zhang"):
        async with signed_in(stack, username) as other:
            forbidden = await other.post(
                "/ui/what-if/apply",
                data={"round": rid, "job_id": job_id, "form_key": "x", "reason": "越权"},
            )
            assert forbidden.status_code == 403, (username, forbidden.status_code)
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        answer = await http.post(
            f"/api/v1/rounds/{rid}/what-if/apply",
            json={"job_id": job_id, "reason": "越权", "idempotency_key": "y"},
            headers=await token(http, "ins-zhang"),
        )
        assert answer.status_code == 403
        versions = await http.get(
            f"/api/v1/rounds/{rid}/plan-versions", headers=await token(http, "county")
        )
        assert len(versions.json()) == 3


async def _rehearse_by_api(
    http: httpx.AsyncClient, headers: dict[str, str], rid: str, change: dict[str, Any]
) -> dict[str, Any]:
    """Start a what-if through the API (a background job, as the page's) and wait for it."""
    started = await http.post(
        f"/api/v1/rounds/{rid}/what-if", json={"change": change, "seed": 3}, headers=headers
    )
    assert started.status_code == 202, started.text
    job_id = started.json()["job_id"]

    async def finished() -> dict[str, Any] | None:
        answer = await http.get(f"/api/v1/rounds/{rid}/what-if", headers=headers)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        assert body["job"] is not None and body["job"]["state"] != "failed", body["job"]
        result = body["result"]
        return body if result and result["job_id"] == job_id else None

    body: dict[str, Any] = await wait_for(finished, timeout=240)
    return body


async def _cli(stack: Stack, *args: str) -> Result:
    """``chuangzheng what-if … --apply`` in a thread (the worker on this loop keeps serving),
    signed in as the county office like ``chuangzheng plan apply``."""
    options = ["--api", stack.base_url, "--user", "county", "--password", PASSWORD]
    return await asyncio.to_thread(CliRunner().invoke, app, ["what-if", *args, *options])


@pytest.mark.one_database(
    "sqlite",
    why="the command line calls the API's routes, whose test above applies a what-if on both "
    "databases; this one is about the command's refusals and exit codes",
)
async def test_the_command_line_applies_a_reviewed_what_if(stack: Stack) -> None:
    """``chuangzheng what-if ROUND --apply``: the API's 采用此方案 from the command line —
    the same refusals (township-only, superseded result, stale plan version: Chinese message,
    exit 2), applied once per key, audited as the signed-in account."""
    rid = await start_demo_round(stack, f"wic-{uuid.uuid4().hex[:8]}")
    # A draft option with --apply is refused before anything is asked of the API.
    mixed = await _cli(stack, rid, "--apply", "--extend", "public_evaluation", "--reason", "x")
    assert mixed.exit_code == 2, mixed.output
    assert "不能同时给出调整选项" in mixed.output
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        headers = await token(http, "county")
        nothing = await _cli(stack, rid, "--apply", "--reason", "尚未推演")
        assert nothing.exit_code == 2 and "本轮尚无推演结果" in nothing.output, nothing.output

        # A township-only extension: rehearsed, but refused with the reason.
        extension = {"kind": "extend_phase", "phase": "public_evaluation", "by": {"minutes": 2}}
        await _rehearse_by_api(http, headers, rid, {**extension, "township": "青石镇"})
        refused = await _cli(stack, rid, "--apply", "--reason", "试一试")
        assert refused.exit_code == 2, refused.output
        assert "该推演方案不能直接采用为新版计划" in refused.output
        assert "township" in refused.output and "全县延长" in refused.output

        # The round-wide extension, reviewed (its job id), applied once per key.
        body = await _rehearse_by_api(
            http, headers, rid, {**extension, "reason": "群众评议需要更多时间"}
        )
        job_id = body["job"]["job_id"]
        superseded = await _cli(stack, rid, "--apply", "--job", "older", "--reason", "旧结果")
        assert superseded.exit_code == 2 and "已被更新的推演取代" in superseded.output
        no_reason = await _cli(stack, rid, "--apply", "--job", job_id, "--reason", " ")
        assert no_reason.exit_code == 2 and "请填写采用理由" in no_reason.output
        applied = await _cli(
            stack, rid, "--apply", "--job", job_id, "--reason", "命令行采用推演", "--key", "k1"
        )
        assert applied.exit_code == 0, applied.output
        assert "已采用推演方案，启用计划第2版（幂等键 k1）" in applied.output
        assert "群众评议" in applied.output
        again = await _cli(
            stack, rid, "--apply", "--job", job_id, "--reason", "命令行采用推演", "--key", "k1"
        )
        assert again.exit_code == 0, again.output
        assert "此前已采用（同一幂等键），无新调整：计划第2版" in again.output

        versions = await http.get(f"/api/v1/rounds/{rid}/plan-versions", headers=headers)
        assert versions.status_code == 200, versions.text
        assert [v["version"] for v in versions.json()] == [1, 2]
        assert versions.json()[1]["reason"] == "命令行采用推演"
        audit = await http.get(
            "/api/v1/audit",
            params={"action": "round_plan_version_applied", "round_id": rid},
            headers=headers,
        )
        assert audit.status_code == 200, audit.text
        entries = audit.json()["items"]
        assert [e["user"] for e in entries] == ["county"], entries

        # Made on version 1, version 2 in force now: a new key is refused, nothing applied.
        stale = await _cli(stack, rid, "--apply", "--reason", "再采用一次", "--key", "k2")
        assert stale.exit_code == 2, stale.output
        assert "推演时本轮计划为第1版，现已调整为第2版" in stale.output
        versions = await http.get(f"/api/v1/rounds/{rid}/plan-versions", headers=headers)
        assert len(versions.json()) == 2
