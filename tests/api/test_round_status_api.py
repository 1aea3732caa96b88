"""The round's API over the bounded round workflow: the status page reads the read model
(kick-off cursor, counts, status), a round-wide extension retried with the same request id
is applied once, and the calendar route refuses a round that does not count working days."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.api.conftest import Stack, start_demo_round, token, wait_for

ROOT = Path(__file__).resolve().parents[2]


async def test_round_status_comes_from_the_read_model(
    http: httpx.AsyncClient, round_id: str
) -> None:
    county = await token(http, "county")

    async def counted() -> dict[str, Any] | None:
        body = (await http.get(f"/api/v1/rounds/{round_id}", headers=county)).json()
        progress = body.get("progress") or {}
        done = progress.get("starting_done") and progress.get("reported", 0) >= 3
        return body if done else None

    body = await wait_for(counted)
    assert body["status"] == "running" and body["status_reason"] is None
    progress = body["progress"]
    assert progress["started"] == progress["total"] == 3
    assert sum(progress["by_phase"].values()) == 3


async def test_extension_retried_with_one_request_id_is_applied_once(
    http: httpx.AsyncClient, round_id: str
) -> None:
    county = await token(http, "county")
    body = {
        # The last phase: an earlier one may not be moved to or past the next one's deadline.
        "phase": "commendation",
        "new_deadline": (datetime.now(UTC) + timedelta(days=2)).isoformat(),
        "reason": "全县统一顺延",
        "request_id": f"{round_id}-ext-1",
    }
    first = await http.post(f"/api/v1/rounds/{round_id}/extensions", json=body, headers=county)
    assert first.status_code == 200, first.text
    second = await http.post(f"/api/v1/rounds/{round_id}/extensions", json=body, headers=county)
    assert second.status_code == 200, second.text
    assert first.json()["action_id"] == second.json()["action_id"]
    assert (first.json()["applied"], second.json()["applied"]) == (True, False)


async def test_calendar_update_of_a_minute_scale_round_is_refused(
    http: httpx.AsyncClient, round_id: str
) -> None:
    county, secretary = await token(http, "county"), await token(http, "sec-a")
    body = {"holidays": ["2027-10-08"], "supplied_years": [2027], "reason": "国务院通知"}
    forbidden = await http.post(f"/api/v1/rounds/{round_id}/calendar", json=body, headers=secretary)
    assert forbidden.status_code == 403
    refused = await http.post(f"/api/v1/rounds/{round_id}/calendar", json=body, headers=county)
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "no_calendar"


async def test_a_county_wide_extension_must_move_later_and_stay_before_the_next_phase(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    """An outside tester extended 动员部署 past 公开承诺's deadline (organisations then opened
    公开承诺 already overdue and climbed the whole ladder at once) and "extended" to an earlier
    time (answered applied, changed nothing): both are refused now, naming the field."""
    # A round of its own: the shared one's first phase (four minutes) may be over by now.
    round_id = await start_demo_round(stack, f"ext-{uuid.uuid4().hex[:8]}")
    county = await token(http, "county")
    secretary = await token(http, "sec-a")
    status = (
        await http.get(f"/api/v1/rounds/{round_id}/organisations/org-a/status", headers=secretary)
    ).json()
    first, second = (datetime.fromisoformat(p["deadline"]) for p in status["state"]["phases"][:2])
    path = f"/api/v1/rounds/{round_id}/extensions"

    async def extend(new_deadline: datetime) -> httpx.Response:
        body = {"phase": "mobilisation", "new_deadline": new_deadline.isoformat(), "reason": "顺延"}
        return await http.post(path, json=body, headers=county)

    for refused in (await extend(second + timedelta(minutes=1)), await extend(first)):
        assert refused.status_code == 422, refused.text
        assert [e["field"] for e in refused.json()["errors"]] == ["new_deadline"], refused.text
    past_next = (await extend(second)).json()["errors"][0]["reason"]
    assert "不早于下一阶段公开承诺" in past_next
    within = await extend(first + (second - first) / 2)
    assert within.status_code == 200, within.text


async def test_a_kick_off_whose_scope_names_an_unknown_township_is_refused(
    http: httpx.AsyncClient,
) -> None:
    """A typo in the scope ran a round over nobody, which then showed as completed (an
    outside tester): refused at kick-off, naming the township, and the round stays created."""
    county = await token(http, "county")
    plan = (ROOT / "plans" / "demo.yaml").read_text("utf-8")
    scoped = plan.replace(
        "    starts_on: 2025-01-06\n",
        "    starts_on: 2025-01-06\n    scope: {townships: [不存在镇]}\n",
        1,
    )
    assert scoped != plan
    rid = f"scope-{uuid.uuid4().hex[:8]}"
    created = await http.post(
        "/api/v1/rounds",
        json={"round_id": rid, "plan_yaml": scoped, "round_plan_id": "demo"},
        headers=county,
    )
    assert created.status_code == 201, created.text
    refused = await http.post(f"/api/v1/rounds/{rid}/kickoff", headers=county)
    assert refused.status_code == 422, refused.text
    [error] = refused.json()["errors"]
    assert error["field"] == "rounds[0].scope.townships[0]" and "不存在镇" in error["reason"]
    assert (await http.get(f"/api/v1/rounds/{rid}", headers=county)).json()["status"] == "created"
