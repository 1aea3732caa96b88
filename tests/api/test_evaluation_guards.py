"""群众评议's guards over the real stack (dev server, worker, uvicorn; SQLite and PostgreSQL):
an evaluation is opened only in the 群众评议 phase (and its rectification lands there), the
raters are bounded by the organisation's 党员人数 and ``MAX_RATERS``, a member evaluation
names someone on the 党员名册, and the slips print a page at a time, off the event loop.

:func:`reach_public_evaluation` is shared by the other evaluation tests: it waives the first
three phases' steps as the county office, so a demo round's organisation is in 群众评议.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Iterable
from typing import Any

import httpx
import pytest
import pytest_asyncio

from activities.db import make_engine, session_factory
from activities.member_store import store_members
from domain.evaluation import MAX_RATERS
from domain.evaluation_rules import FIVE_GOODS, FIVE_LEADS
from domain.members import MemberRoster, PartyMember
from tests.api.conftest import Stack, reach_phase, start_demo_round, token, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")
TOKEN_IN_URL = re.compile(r"/ballot/([A-Za-z0-9_\-]{22})\b")
ORGS = ("org-a", "org-b", "org-c")
# org-c's 党员名册, as tests/api/test_commitments_api.py imports it (the same list, so
# whichever module runs first, the other finds what it expects).
ORG_C_MEMBERS = [(f"M{n:03d}", f"党员{n:02d}号") for n in range(1, 19)]


async def reach_public_evaluation(
    http: httpx.AsyncClient, round_id: str, orgs: Iterable[str] = ORGS
) -> None:
    """Move each organisation of ``round_id`` into 群众评议 (:func:`reach_phase`)."""
    await reach_phase(http, round_id, "public_evaluation", orgs)


async def open_ballot(
    http: httpx.AsyncClient, round_id: str, org: str, user: str, body: dict[str, Any]
) -> httpx.Response:
    return await http.post(
        f"/api/v1/rounds/{round_id}/organisations/{org}/evaluations",
        json=body,
        headers=await token(http, user),
    )


async def close_and_wait(http: httpx.AsyncClient, evaluation_id: str, user: str) -> dict[str, Any]:
    headers = await token(http, user)
    closed = await http.post(f"/api/v1/evaluations/{evaluation_id}/close", headers=headers)
    assert closed.status_code == 202, closed.text

    async def settled() -> dict[str, Any] | None:
        view = (await http.get(f"/api/v1/evaluations/{evaluation_id}", headers=headers)).json()
        return view if view["status"] in ("published", "invalid") else None

    result: dict[str, Any] = await wait_for(settled)
    return result


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def guard_round(stack: Stack) -> str:
    """A demo round in which org-a and org-b are in 群众评议 and org-c still in 动员部署."""
    rid = await start_demo_round(stack, f"evg-{uuid.uuid4().hex[:8]}")
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        await reach_public_evaluation(http, rid, ("org-a", "org-b"))
    return rid


async def test_an_evaluation_outside_the_evaluation_phase_is_refused(
    http: httpx.AsyncClient, guard_round: str
) -> None:
    # The tester's case: the upper level opens one while the organisation is in 动员部署.
    refused = await open_ballot(
        http, guard_round, "org-c", "ins-liu", {"raters": {"member": 10, "non_member": 5}}
    )
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert body["code"] == "wrong_phase"
    assert "动员部署" in body["message"] and "群众评议" in body["message"]
    # 党员评议 too: seed 002 §五(四) holds it in the same phase.
    member = await open_ballot(
        http, guard_round, "org-c", "sec-c",
        {"target": "member", "member": "党员01号", "raters": {"member": 4, "non_member": 1}},
    )  # fmt: skip
    assert member.status_code == 409 and member.json()["code"] == "wrong_phase", member.text
    listed = await http.get(
        f"/api/v1/rounds/{guard_round}/organisations/org-c/evaluations",
        headers=await token(http, "county"),
    )
    assert listed.json() == []  # nothing stored, no workflow started


async def test_a_result_below_the_threshold_orders_rectification_on_the_evaluation_phase(
    http: httpx.AsyncClient, guard_round: str
) -> None:
    opened = await open_ballot(
        http, guard_round, "org-a", "tw-chengguan", {"raters": {"member": 10, "non_member": 5}}
    )
    assert opened.status_code == 201, opened.text
    evaluation_id = opened.json()["evaluation_id"]
    page = await http.get(
        f"/api/v1/evaluations/{evaluation_id}/tokens", headers=await token(http, "tw-chengguan")
    )
    tokens = list(dict.fromkeys(TOKEN_IN_URL.findall(page.text)))
    assert len(tokens) == 15
    for ballot_token in tokens:
        form = {"token": ballot_token} | {item.id: "unsatisfied" for item in FIVE_GOODS}
        cast = await http.post("/ballot", data=form)
        assert cast.status_code in (200, 303), cast.text  # 303: to the thanks page
    final = await close_and_wait(http, evaluation_id, "tw-chengguan")
    assert final["verdict"] == "below_threshold" and final["rectification"] == "ordered"
    status = await http.get(
        f"/api/v1/rounds/{guard_round}/organisations/org-a/status",
        headers=await token(http, "county"),
    )
    phases = {p["phase"]: p for p in status.json()["state"]["phases"]}
    assert phases["public_evaluation"]["rectification"]["status"] == "issued"
    assert phases["mobilisation"]["rectification"] is None


async def test_raters_are_bounded_by_the_members_and_the_cap(
    http: httpx.AsyncClient, guard_round: str
) -> None:
    # The tester's case: 5000 + 5000 ballots for an organisation of 25 members (org-b).
    huge = await open_ballot(
        http, guard_round, "org-b", "tw-chengguan", {"raters": {"member": 5000, "non_member": 5000}}
    )
    assert huge.status_code == 422, huge.text
    errors = {e["field"]: e["reason"] for e in huge.json()["errors"]}
    assert "超过本组织党员人数 25 人" in errors["raters.member"]
    assert f"最多发放 {MAX_RATERS} 张" in errors["raters"]
    one_too_many = await open_ballot(
        http, guard_round, "org-b", "tw-chengguan", {"raters": {"member": 26, "non_member": 13}}
    )
    assert one_too_many.status_code == 422
    assert [e["field"] for e in one_too_many.json()["errors"]] == ["raters.member"]
    public = {"raters": {"member": 25, "non_member": MAX_RATERS - 24}}
    over_cap = await open_ballot(http, guard_round, "org-b", "tw-chengguan", public)
    assert [e["field"] for e in over_cap.json()["errors"]] == ["raters"], over_cap.text
    names = [{"name": f"党员{i}", "kind": "member"} for i in range(26)]
    names += [{"name": f"群众{i}", "kind": "non_member"} for i in range(13)]
    by_names = await open_ballot(http, guard_round, "org-b", "tw-chengguan", {"rater_names": names})
    assert [e["field"] for e in by_names.json()["errors"]] == ["rater_names.member"]


async def test_slips_print_a_page_at_a_time_off_the_event_loop(
    http: httpx.AsyncClient, guard_round: str
) -> None:
    # org-b: 25 members; 250 ballots make three pages of 100.
    opened = await open_ballot(
        http, guard_round, "org-b", "tw-chengguan", {"raters": {"member": 25, "non_member": 225}}
    )
    assert opened.status_code == 201, opened.text
    evaluation_id = opened.json()["evaluation_id"]
    headers = await token(http, "tw-chengguan")
    url = f"/api/v1/evaluations/{evaluation_id}/tokens"
    seen: list[str] = []
    page = await http.get(url, headers=headers)
    while True:
        assert page.status_code == 200, page.text
        assert page.headers["x-total-count"] == "250" and page.headers["x-page-count"] == "3"
        seen += dict.fromkeys(TOKEN_IN_URL.findall(page.text))
        following = page.headers.get("link")
        if following is None:
            break
        page = await http.get(following[1 : following.index(">")], headers=headers)
    assert len(seen) == len(set(seen)) == 250
    assert "第 250 号" in page.text and "第 1 号" not in page.text
    beyond = await http.get(url, params={"page": 4}, headers=headers)
    assert beyond.status_code == 422 and beyond.json()["errors"][0]["field"] == "page"
    pdf = await http.get(url, params={"format": "pdf", "page": 3}, headers=headers)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert f'{evaluation_id}-3.pdf"' in pdf.headers["content-disposition"]

    # While two full PDF pages are drawn, other requests are answered at once: the drawing
    # runs in a parse process, not on the API's loop or in a thread holding its GIL.
    async def quick() -> float:
        started = time.monotonic()
        answer = await http.get(f"/api/v1/evaluations/{evaluation_id}", headers=headers)
        assert answer.status_code == 200
        return time.monotonic() - started

    baseline = min([await quick() for _ in range(3)])
    drawing = [
        asyncio.create_task(http.get(url, params={"format": "pdf", "page": n}, headers=headers))
        for n in (1, 2)
    ]
    await asyncio.sleep(0.3)
    during = [await quick() for _ in range(5)]
    drawn = await asyncio.gather(*drawing)
    assert all(d.status_code == 200 for d in drawn)
    assert max(during) < max(1.0, 10 * baseline), (baseline, during)


async def test_a_member_evaluation_names_a_member_on_the_roster(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    rid = await start_demo_round(stack, f"evm-{uuid.uuid4().hex[:8]}")
    await reach_public_evaluation(http, rid, ("org-c",))
    engine = make_engine(stack.settings.database_url)
    try:
        with session_factory(engine).begin() as session:
            store_members(
                session,
                MemberRoster(
                    members=tuple(
                        PartyMember(org_id="org-c", member_id=member_id, name=name)
                        for member_id, name in ORG_C_MEMBERS
                    )
                ),
            )
    finally:
        engine.dispose()
    raters = {"member": 4, "non_member": 1}
    stranger = await open_ballot(
        http, rid, "org-c", "sec-c", {"target": "member", "member": "不存在的人", "raters": raters}
    )
    assert stranger.status_code == 422, stranger.text
    error = stranger.json()["errors"][0]
    assert error["field"] == "member" and "党员名册" in error["reason"]
    too_many = await open_ballot(
        http, rid, "org-c", "sec-c",
        {"target": "member", "member": "党员01号", "raters": {"member": 19, "non_member": 5}},
    )  # fmt: skip
    assert [e["field"] for e in too_many.json()["errors"]] == ["raters.member"], too_many.text
    opened = await open_ballot(
        http, rid, "org-c", "sec-c", {"target": "member", "member": "党员01号", "raters": raters}
    )
    assert opened.status_code == 201, opened.text
    view = opened.json()
    assert view["subject"] == "党员01号"
    page = await http.get(
        f"/api/v1/evaluations/{view['evaluation_id']}/tokens", headers=await token(http, "sec-c")
    )
    assert page.status_code == 200 and "党员01号 · 党员评议" in page.text
    ballot_page = await http.get(f"/ballot/{TOKEN_IN_URL.findall(page.text)[0]}")
    assert all(item.label in ballot_page.text for item in FIVE_LEADS)
