"""Over the real stack (dev server, worker, API, SQLite and PostgreSQL): a supervision record
(座谈会) shows inside the covered organisation's timeline on its page, and not on another's;
总结交流经验 end to end — a secretary submits a briefing with a file, the county office
circulates it, the townships find it in their inbox and everyone in the round on the
briefing page; the 评选表彰 pages show the campaign record beside the assessor's sheets and
explain the score."""

from __future__ import annotations

import asyncio
import re
import uuid

import httpx
import pytest

from chuangzheng.settings import repo_root
from tests.api.conftest import Stack, signed_in, start_demo_round, token

ROOT = repo_root()

pytestmark = pytest.mark.asyncio(loop_scope="session")

TEXT = (
    "我村党支部推行党员设岗定责，把全村划为十二个网格，每名党员联系十户群众，"
    "每月上门走访一次，收集意见建议三十余条，办结群众身边实事二十件。"
)


async def test_a_supervision_record_shows_in_the_organisations_timeline(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    rid = await start_demo_round(stack, f"tl-{uuid.uuid4().hex[:8]}")
    record = {
        "kind": "visit",
        "held_on": "2026-11-20",
        "title": "东关村承诺兑现督查",
        "supervisors": ["县委活动办孙某"],
        "org_ids": ["org-a"],
        "findings": "承诺事项台账不全",
        "follow_ups": "两周内补齐台账",
    }
    made = await http.post(
        f"/api/v1/rounds/{rid}/supervision-records",
        json=record,
        headers=await token(http, "county"),
    )
    assert made.status_code == 201, made.text
    async with signed_in(stack, "county") as browser:
        own = await browser.get("/ui/orgs/org-a", params={"round": rid})
        assert own.status_code == 200
        timeline = own.text[own.text.index('id="events"') :]
        assert 'class="supervision-record"' in timeline
        assert "东关村承诺兑现督查" in timeline and "承诺事项台账不全" in timeline
        assert "后续跟进：两周内补齐台账" in timeline
        other = await browser.get("/ui/orgs/org-c", params={"round": rid})
        assert other.status_code == 200 and "东关村承诺兑现督查" not in other.text


async def test_a_briefing_is_submitted_circulated_and_listed(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    rid = await start_demo_round(stack, f"br-{uuid.uuid4().hex[:8]}")
    secretary = await token(http, "sec-a")
    path = f"/api/v1/rounds/{rid}/briefings"
    # Sent twice at once with one key (a client retrying too soon): one briefing.
    keyed = {**secretary, "Idempotency-Key": f"briefing-{rid}"}
    submitted, copy = await asyncio.gather(
        *(
            http.post(
                path,
                data={"title": "党员设岗定责 网格联系群众", "text": TEXT, "org_id": "org-a"},
                files={"file": ("做法.pdf", b"%PDF-1.4 briefing", "application/pdf")},
                headers=keyed,
            )
            for _ in range(2)
        )
    )
    assert submitted.status_code == copy.status_code == 201, submitted.text
    briefing = submitted.json()
    assert copy.json()["briefing_id"] == briefing["briefing_id"]
    assert len((await http.get(path, headers=secretary)).json()) == 1
    assert briefing["source"] == "城关镇东关村党支部" and briefing["file"]["name"] == "做法.pdf"
    short = await http.post(
        path, data={"title": "短", "text": "太短", "org_id": "org-a"}, headers=secretary
    )
    assert short.status_code == 422
    assert sorted(e["field"] for e in short.json()["errors"]) == ["text", "title"]
    other_secretary = await token(http, "sec-c")
    assert (await http.get(path, headers=other_secretary)).json() == []
    refused = await http.post(
        f"{path}/{briefing['briefing_id']}/circulate", json={}, headers=secretary
    )
    assert refused.status_code == 403

    county = await token(http, "county")
    circulated = await http.post(
        f"{path}/{briefing['briefing_id']}/circulate",
        json={"note": "网格化联系群众的做法值得推广"},
        headers=county,
    )
    assert circulated.status_code == 200, circulated.text
    assert circulated.json()["status"] == "circulated"
    assert circulated.json()["recipients"] >= 3  # county office, rural group, two townships
    again = await http.post(f"{path}/{briefing['briefing_id']}/circulate", json={}, headers=county)
    assert again.status_code == 409

    inbox = await http.get("/api/v1/digests", headers=await token(http, "tw-chengguan"))
    assert any(
        m["kind"] == "briefing" and "党员设岗定责" in m["title"] and m["round_id"] == rid
        for m in inbox.json()
    )
    listed = await http.get(path, headers=other_secretary)
    assert [b["briefing_id"] for b in listed.json()] == [briefing["briefing_id"]]
    download = await http.get(briefing["file"]["download"], headers=other_secretary)
    assert download.status_code == 200 and download.content == b"%PDF-1.4 briefing"

    async with signed_in(stack, "sec-c") as browser:
        page = await browser.get("/ui/briefings", params={"round": rid})
        assert page.status_code == 200
        assert "党员设岗定责 网格联系群众" in page.text and "编者按" in page.text
        assert "选编交流</button>" not in page.text  # the county office's button only
        # The page's form posted twice (a double click, or back and resubmit): one briefing.
        key = re.search(r'name="form_key" value="([0-9a-f]+)"', page.text)
        assert key is not None
        form = {"round": rid, "title": "页面报送的一篇简报", "text": TEXT, "form_key": key[1]}
        for _ in range(2):
            sent = await browser.post("/ui/briefings", data=form)
            assert "msg=" in sent.headers["location"], sent.headers["location"]
    titles = [b["title"] for b in (await http.get(path, headers=other_secretary)).json()]
    assert titles.count("页面报送的一篇简报") == 1, titles


async def test_a_briefing_sent_as_a_plain_form_with_a_key_is_filed_once(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    """No file: the body is urlencoded, not multipart. The key's fingerprint read the
    consumed body and answered 500 ("Stream consumed"), found by an outside tester."""
    rid = await start_demo_round(stack, f"bru-{uuid.uuid4().hex[:8]}")
    secretary = await token(http, "sec-a")
    path = f"/api/v1/rounds/{rid}/briefings"
    keyed = {**secretary, "Idempotency-Key": f"briefing-form-{rid}"}
    form = {"title": "党员设岗定责 网格联系群众", "text": TEXT, "org_id": "org-a"}
    first = await http.post(path, data=form, headers=keyed)
    again = await http.post(path, data=form, headers=keyed)
    assert first.status_code == again.status_code == 201, first.text
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json()["briefing_id"] == first.json()["briefing_id"]
    assert len((await http.get(path, headers=secretary)).json()) == 1
    other = await http.post(path, data={**form, "title": "另一篇简报的标题"}, headers=keyed)
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"


async def test_the_commendation_pages_show_the_record_beside_the_sheets_and_explain_it(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    # The demo plan with the campaign record weighed (seed-002's weights).
    plan = (ROOT / "plans/demo.yaml").read_text("utf-8")
    weighed = plan.replace(
        "commendation:\n  min_sheets: 3\n",
        "commendation:\n  min_sheets: 3\n  record: {phase_on_time: 1, phase_late: -2,"
        " rectification_ordered: -3, satisfaction: 10}\n",
        1,
    )
    assert weighed != plan
    rid = f"cr-{uuid.uuid4().hex[:8]}"
    county = await token(http, "county")
    created = await http.post(
        "/api/v1/rounds",
        json={"round_id": rid, "plan_yaml": weighed, "round_plan_id": "demo"},
        headers=county,
    )
    assert created.status_code == 201, created.text
    declared = await http.post(
        f"/api/v1/rounds/{rid}/commendation/declarations",
        json={"category": "advanced_organisation", "org_id": "org-a", "deeds": TEXT},
        headers=await token(http, "sec-a"),
    )
    assert declared.status_code == 201, declared.text
    # The assessor's list (API) carries the record; the secretary's does not.
    listed = await http.get(
        f"/api/v1/rounds/{rid}/commendation/declarations", headers=await token(http, "assess")
    )
    [entry] = listed.json()
    assert entry["record"]["points"] == "0.00"
    assert {line["key"] for line in entry["record"]["lines"]} >= {"phase_late", "satisfaction"}

    for username in ("assess", "county"):
        async with signed_in(stack, username) as browser:
            shown = await browser.get("/ui/commendation", params={"round": rid})
        assert shown.status_code == 200, shown.text
        assert "得分说明" in shown.text and "每个逾期的阶段减2分" in shown.text
        assert "活动记录分 0.00" in shown.text and "群众评议满意率" in shown.text
        if username == "county":
            assert 'id="ranking"' in shown.text and "综合得分" in shown.text
    async with signed_in(stack, "sec-a") as browser:
        assert (await browser.get("/ui/commendation", params={"round": rid})).status_code == 404
