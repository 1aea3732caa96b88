"""Free text outside the workflow is counted as a reader sees it, over the real stack (dev
server, the project's worker, uvicorn; SQLite and PostgreSQL, as every API test): a
commitment, a declaration's deeds, a supervision record's findings or an extension's reason
made of zero-width characters is a 422 naming the field, and so is one carrying a
direction override (``domain.text``: one rule for domain checks and request bodies).

Every request here is refused before anything is written, so the shared demo round is
left as the other tests expect it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from domain.calendar import local_date
from domain.text import BIDI_REASON
from tests.api.conftest import Stack, token

pytestmark = pytest.mark.asyncio(loop_scope="session")

ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff" * 4


def _due() -> str:
    return (local_date(datetime.now(UTC)) + timedelta(days=30)).isoformat()


async def test_a_commitment_of_zero_width_characters_is_refused_naming_the_field(
    http: httpx.AsyncClient, stack: Stack, round_id: str
) -> None:
    sec = await token(http, "sec-a")
    url = f"/api/v1/rounds/{round_id}/organisations/org-a/commitments"
    blank = await http.post(
        url,
        json={"content": ZERO_WIDTH, "items": [{"content": " \u3000\u200b", "due": _due()}]},
        headers=sec,
    )
    assert blank.status_code == 422, blank.text
    assert blank.json()["errors"] == [
        {"field": "content", "reason": "承诺内容不能为空"},
        {"field": "items[0].content", "reason": "承诺事项不能为空"},
    ]
    disguised = await http.post(
        url,
        json={"content": "带头\u202e服务群众", "items": [{"content": "每月走访", "due": _due()}]},
        headers=sec,
    )
    assert disguised.status_code == 422, disguised.text
    assert disguised.json()["errors"] == [{"field": "content", "reason": BIDI_REASON}]
    ledger = await http.get(url, headers=sec)
    assert ledger.status_code == 200, ledger.text
    assert ledger.json()["commitments"] == []  # nothing was recorded


async def test_deeds_padded_with_zero_width_characters_are_too_short(
    http: httpx.AsyncClient, stack: Stack, round_id: str
) -> None:
    sec = await token(http, "sec-a")
    declared = await http.post(
        f"/api/v1/rounds/{round_id}/commendation/declarations",
        json={
            "category": "outstanding_member",
            "org_id": "org-a",
            "nominee": "王\u200b",
            "deeds": "带头" + ZERO_WIDTH + "   服务",
        },
        headers=sec,
    )
    assert declared.status_code == 422, declared.text
    assert declared.json()["errors"] == [
        {"field": "nominee", "reason": "申报优秀共产党员须填写被推荐人姓名（2–30字）"},
        {"field": "deeds", "reason": "主要事迹不少于10字"},
    ]


async def test_request_bodies_count_visible_characters(
    http: httpx.AsyncClient, stack: Stack, round_id: str
) -> None:
    township = await token(http, "tw-chengguan")
    record = {
        "kind": "symposium",
        "held_on": local_date(datetime.now(UTC)).isoformat(),
        "title": "\u200b\u200b",
        "supervisors": ["赵书记", "\u2060"],
        "org_ids": ["org-a"],
        "findings": "问题" + ZERO_WIDTH,
        "follow_ups": "跟进\u202d",
    }
    refused = await http.post(
        f"/api/v1/rounds/{round_id}/supervision-records", json=record, headers=township
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"] == [
        {"field": "title", "reason": "不能为空"},
        {"field": "findings", "reason": "内容过短，至少 4 个字（空格和不可见字符不计）"},
        {"field": "follow_ups", "reason": BIDI_REASON},
    ]
    fixed = record | {"title": "座谈会", "findings": "问题和建议", "follow_ups": ""}
    names = await http.post(
        f"/api/v1/rounds/{round_id}/supervision-records", json=fixed, headers=township
    )
    assert names.status_code == 422, names.text
    assert names.json()["errors"] == [{"field": "supervisors.1", "reason": "姓名不能为空"}]

    county = await token(http, "county")
    extended = await http.post(
        f"/api/v1/rounds/{round_id}/extensions",
        json={
            "phase": "mobilisation",
            "new_deadline": (datetime.now(UTC) + timedelta(days=3)).isoformat(),
            "reason": ZERO_WIDTH,
        },
        headers=county,
    )
    assert extended.status_code == 422, extended.text
    assert extended.json()["errors"] == [{"field": "reason", "reason": "不能为空"}]


def _halfway_to_the_next_deadline(state: dict[str, Any]) -> str:
    """A later deadline for the open phase that an extension may reach: before the next
    phase's deadline."""
    phases = state["phases"]
    at = next(i for i, p in enumerate(phases) if p["phase"] == state["phase"])
    now, after = (datetime.fromisoformat(p["deadline"]) for p in phases[at : at + 2])
    return (now + (after - now) / 2).astimezone(UTC).isoformat()


async def test_a_reason_of_zero_width_characters_or_with_an_override_is_refused_by_the_workflow(
    http: httpx.AsyncClient, stack: Stack, round_id: str
) -> None:
    # The organisation workflow's admission rule (CampaignRules.check_visible_reason), which
    # every path reaches: the API's body, the pages and the CLI all send the command there.
    county, sec = await token(http, "county"), await token(http, "sec-a")
    base = f"/api/v1/rounds/{round_id}/organisations/org-a"
    status = (await http.get(f"{base}/status", headers=county)).json()["state"]
    phase = next(p for p in status["phases"] if p["phase"] == status["phase"])
    step = next(s["step_id"] for s in phase["steps"] if s["status"] not in ("accepted", "waived"))
    waived = await http.post(
        f"{base}/waivers", json={"step_id": step, "reason": ZERO_WIDTH}, headers=county
    )
    assert waived.status_code == 422, waived.text
    assert waived.json()["errors"] == [{"field": "reason", "reason": "理由不能为空"}]
    asked = await http.post(
        f"{base}/extensions",
        json={
            "new_deadline": _halfway_to_the_next_deadline(status),
            "reason": "材料未齐\u202e请批准",
        },
        headers=sec,
    )
    assert asked.status_code == 422, asked.text
    assert asked.json()["errors"] == [{"field": "reason", "reason": f"理由{BIDI_REASON}"}]
    after = (await http.get(f"{base}/status", headers=county)).json()["state"]
    steps = {s["step_id"]: s["status"] for p in after["phases"] for s in p["steps"]}
    assert steps[step] not in ("waived",)  # nothing applied
    assert not [
        e
        for p in after["phases"]
        for e in p.get("extensions", [])
        if "请批准" in e.get("reason", "")
    ]


async def test_an_account_named_with_invisible_characters_is_refused_or_stored_as_seen(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    county = await token(http, "county")
    suffix = datetime.now(UTC).strftime("%H%M%S%f")

    async def create(name: str, username: str) -> httpx.Response:
        body = {"username": username, "display_name": name, "role": "assessment_group"}
        return await http.post("/api/v1/accounts", json=body, headers=county)

    blank = await create(ZERO_WIDTH, f"ft-blank-{suffix}")
    assert blank.status_code == 422, blank.text
    assert blank.json()["errors"][0]["field"] == "display_name"
    disguised = await create("王\u202e五", f"ft-bidi-{suffix}")
    assert disguised.status_code == 422, disguised.text
    assert disguised.json()["errors"] == [{"field": "display_name", "reason": f"姓名{BIDI_REASON}"}]
    padded = await create("王\u200b五", f"ft-padded-{suffix}")
    assert padded.status_code == 201, padded.text
    shown = await http.get(f"/api/v1/accounts/ft-padded-{suffix}", headers=county)
    assert shown.json()["display_name"] == "王五"
    for username in (f"ft-blank-{suffix}", f"ft-bidi-{suffix}"):
        assert (await http.get(f"/api/v1/accounts/{username}", headers=county)).status_code == 404
