"""公开承诺 over the real stack (dev server + worker + uvicorn; SQLite and PostgreSQL): the
member roster import, the coverage guard of the workflow's ``member_commitments`` step,
审诺, 公示 and its public page, 践诺 with an uploaded file, 评诺, idempotency and scope.

The tests of this module tell one story on one round of a small uploaded plan (org-c: 18
members, secretary sec-c, instructor ins-liu; ins-zhang supervises other organisations).
"""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from openpyxl import Workbook  # type: ignore[import-untyped]

from domain.calendar import local_date
from tests.api.conftest import Stack, token, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")

ORG = "org-c"
MEMBERS = [(f"M{n:03d}", f"党员{n:02d}号") for n in range(1, 19)]  # org-c has 18 members
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
HELD_BACK = "M017"  # approved last: stays unpublished
ABSENT = "M018"  # makes no commitment: covered by a reason

# Long minute spans: nothing escalates while the tests run.
PLAN_YAML = """
id: commitments-test
name: 公开承诺测试计划
ladder:
  reminder_lead: {minutes: 1}
  blue_within: {minutes: 2}
  rungs:
    - {name: 指导员督促, recipient: instructor, delay: {minutes: 0}}
    - {name: 县委通报, recipient: county_office, delay: {minutes: 5},
       actions: [notify, circular, rectification_order]}
  rectification_period: {minutes: 30}
rounds:
  - id: r1
    name: 公开承诺测试轮次
    starts_on: 2025-01-06
    phases:
      - phase: mobilisation
        duration: {minutes: 600}
        steps:
          - id: hold_meeting
            name: 召开动员大会
            evidence: [{name: note, label: 会议情况, kind: text}]
      - phase: public_commitment
        duration: {minutes: 600}
        steps:
          - id: member_commitments
            name: 党员承诺
            evidence:
              - {name: commitments, label: 党员承诺事项, kind: member_commitments,
                 coverage_of_members: 1.0}
      - phase: leadership_review
        duration: {minutes: 600}
        steps: [{id: review, name: 点评, evidence: [{name: note, label: 点评, kind: text}]}]
      - phase: public_evaluation
        duration: {minutes: 600}
        steps: [{id: evaluate, name: 评议, evidence: [{name: note, label: 评议, kind: text}]}]
      - phase: commendation
        duration: {minutes: 600}
        steps: [{id: declare, name: 申报, evidence: [{name: note, label: 申报, kind: text}]}]
"""


def due(days: int = 30) -> str:
    return (local_date(datetime.now(UTC)) + timedelta(days=days)).isoformat()


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def rid(stack: Stack) -> str:
    """A round of the test plan, kicked off; org-c has moved on to 公开承诺."""
    round_id = f"cm-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        county = await token(http, "county")
        created = await http.post(
            "/api/v1/rounds",
            json={"round_id": round_id, "plan_yaml": PLAN_YAML, "round_plan_id": "r1"},
            headers=county,
        )
        assert created.status_code == 201, created.text
        kicked = await http.post(f"/api/v1/rounds/{round_id}/kickoff", headers=county)
        assert kicked.status_code == 200, kicked.text
        base = f"/api/v1/rounds/{round_id}/organisations/{ORG}"

        async def started() -> bool:
            return (await http.get(f"{base}/status", headers=county)).status_code == 200

        await wait_for(started)
        submitted = await http.post(
            f"{base}/submissions",
            json={"step_id": "hold_meeting", "values": {"note": "全体党员参加动员大会"}},
            headers=await token(http, "sec-c"),
        )
        assert submitted.status_code == 200, submitted.text
        accepted = await http.post(
            f"{base}/decisions",
            json={"step_id": "hold_meeting", "accept": True},
            headers=await token(http, "ins-liu"),
        )
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["result"]["phase"] == "public_commitment"
    return round_id


def base(rid: str) -> str:
    return f"/api/v1/rounds/{rid}/organisations/{ORG}/commitments"


def xlsx(rows: list[tuple[str, str, str]]) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.append(["组织编号", "党员姓名", "党员编号"])
    for row in rows:
        sheet.append(list(row))
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


async def ledger(http: httpx.AsyncClient, rid: str, user: str = "sec-c") -> dict[str, Any]:
    response = await http.get(base(rid), headers=await token(http, user))
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def by_member(view: dict[str, Any]) -> dict[str | None, dict[str, Any]]:
    return {c["member_id"]: c for c in view["commitments"]}


Stage = Callable[[httpx.AsyncClient, str], Awaitable[None]]


class Story:
    """The module's round told once, in order: each test reaches the stages before its own
    (running any not yet run, with their assertions), so it passes alone and in any order;
    a stage already run as another test's setup is not repeated."""

    def __init__(self, rid: str) -> None:
        self.rid = rid
        self.done: set[str] = set()

    async def reach(self, http: httpx.AsyncClient, stage: Stage) -> None:
        for step in STAGES[: STAGES.index(stage) + 1]:
            if step.__name__ not in self.done:
                await step(http, self.rid)
                self.done.add(step.__name__)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def story(rid: str) -> Story:
    return Story(rid)


async def _roster_import(http: httpx.AsyncClient, rid: str) -> None:
    secretary = await token(http, "sec-c")
    before = (await http.get(f"/api/v1/organisations/{ORG}/members", headers=secretary)).json()
    bad_csv = "组织编号,党员姓名,党员编号\norg-c,党员01号,M001\norg-a,外单位,X1\norg-c,,M002\n"
    refused = await http.post(
        "/api/v1/members/import",
        files={"file": ("members.csv", bad_csv.encode(), "text/csv")},
        headers=secretary,
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "invalid_roster"
    assert refused.json()["errors"] == [
        {"field": "第3行·组织编号", "reason": "“org-a”不在组织名册中或无权导入"},
        {"field": "第4行·党员姓名", "reason": "不能为空"},
    ]
    members_url = f"/api/v1/organisations/{ORG}/members"
    # Nothing written (the list is empty unless the ``members`` fixture ran first).
    assert (await http.get(members_url, headers=secretary)).json() == before

    good = xlsx([(ORG, name, member_id) for member_id, name in MEMBERS])
    imported = await http.post(
        "/api/v1/members/import",
        files={"file": ("members.xlsx", good, XLSX)},
        headers=secretary,
    )
    assert imported.status_code == 200, imported.text
    assert imported.json()["organisations"] == [
        {
            "org_id": ORG,
            "imported": 18,
            "deactivated": 0,
            "roster_member_count": 18,
            "matches_roster": True,
        }
    ]
    listed = await http.get(members_url, headers=await token(http, "ins-liu"))
    assert [m["member_id"] for m in listed.json()] == [m for m, _ in MEMBERS]
    other = await http.get(members_url, headers=await token(http, "ins-zhang"))
    assert other.status_code == 404


async def _coverage(http: httpx.AsyncClient, rid: str) -> None:
    secretary = await token(http, "sec-c")
    org = await http.post(
        base(rid),
        json={
            "content": "围绕五个好争创先进基层党组织",
            "items": [{"content": "建成党员活动室", "due": due(40)}],
        },
        headers=secretary,
    )
    assert org.status_code == 200, org.text
    for member_id, name in MEMBERS:
        if member_id == ABSENT:
            continue
        words = "未公示的承诺内容" if member_id == HELD_BACK else f"{name}带头服务群众"
        recorded = await http.post(
            base(rid),
            json={
                "member_id": member_id,
                "content": words,
                "items": [{"content": "每月走访困难户", "due": due()}],
            },
            headers=secretary,
        )
        assert recorded.status_code == 200, recorded.text
    bad = await http.post(
        base(rid),
        json={"member_id": "M999", "content": "x", "items": [{"content": "", "due": "2000-01-01"}]},
        headers=secretary,
    )
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"items[0].content", "items[0].due"}

    submitted = await http.post(f"{base(rid)}/submit", json={}, headers=secretary)
    assert submitted.status_code == 200, submitted.text
    assert len(submitted.json()) == 18  # the organisation's and 17 members'
    assert (await ledger(http, rid))["coverage"]["uncovered"] == [
        {"member_id": ABSENT, "name": "党员18号"}
    ]

    refused = await http.post(f"{base(rid)}/step", json={}, headers=secretary)
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "invalid_evidence"
    assert refused.json()["errors"] == [
        {
            "field": "evidence.commitments",
            "reason": f"党员承诺事项中党员“{ABSENT}”既未作出承诺也未登记缺席理由",
        }
    ]

    no_reason = await http.post(
        f"{base(rid)}/absences", json={"member_id": ABSENT, "reason": " "}, headers=secretary
    )
    assert no_reason.status_code == 422 and no_reason.json()["code"] == "reason_required"
    excused = await http.post(
        f"{base(rid)}/absences",
        json={"member_id": ABSENT, "reason": "外出务工，已电话联系"},
        headers=secretary,
    )
    assert excused.status_code == 200, excused.text
    assert excused.json()["uncovered"] == [] and excused.json()["covered"] == 18

    accepted = await http.post(f"{base(rid)}/step", json={}, headers=secretary)
    assert accepted.status_code == 200, accepted.text
    steps = accepted.json()["state"]["phases"][1]["steps"]
    assert [s["status"] for s in steps if s["step_id"] == "member_commitments"] == ["submitted"]


async def _signoff(http: httpx.AsyncClient, rid: str) -> None:
    secretary, instructor = await token(http, "sec-c"), await token(http, "ins-liu")
    view = by_member(await ledger(http, rid))
    org_id = view[None]["commitment_id"]

    outsider = await http.post(
        f"{base(rid)}/signoff",
        json={"commitment_ids": [org_id], "approve": True},
        headers=await token(http, "ins-zhang"),
    )
    assert outsider.status_code == 404
    self_signed = await http.post(
        f"{base(rid)}/signoff",
        json={"commitment_ids": [org_id], "approve": True},
        headers=secretary,
    )
    assert self_signed.status_code == 403
    no_reason = await http.post(
        f"{base(rid)}/signoff",
        json={"commitment_ids": [org_id], "approve": False},
        headers=instructor,
    )
    assert no_reason.status_code == 422 and no_reason.json()["errors"][0]["field"] == "reason"

    returned = await http.post(
        f"{base(rid)}/signoff",
        json={"commitment_ids": [org_id], "approve": False, "reason": "承诺事项不够具体"},
        headers=instructor,
    )
    assert returned.status_code == 200, returned.text
    assert returned.json()[0]["status"] == "returned"
    assert returned.json()[0]["return_reason"] == "承诺事项不够具体"

    revised = await http.post(
        base(rid),
        json={
            "content": "围绕五个好争创先进基层党组织，年内建成党员活动室",
            "items": [
                {"content": "建成党员活动室", "due": due(40)},
                {"content": "每季度开展一次党员志愿服务", "due": due(60)},
            ],
        },
        headers=secretary,
    )
    assert revised.status_code == 200 and revised.json()["status"] == "drafted"
    resubmitted = await http.post(
        f"{base(rid)}/submit", json={"commitment_ids": [org_id]}, headers=secretary
    )
    assert resubmitted.status_code == 200 and resubmitted.json()[0]["status"] == "submitted"

    to_approve = [c["commitment_id"] for m, c in view.items() if m != HELD_BACK]
    approved = await http.post(
        f"{base(rid)}/signoff",
        json={"commitment_ids": to_approve, "approve": True},
        headers=instructor,
    )
    assert approved.status_code == 200, approved.text
    assert {c["status"] for c in approved.json()} == {"approved"}
    assert by_member(await ledger(http, rid))[HELD_BACK]["status"] == "submitted"


async def _publication(http: httpx.AsyncClient, rid: str) -> None:
    page = f"/public/commitments/{rid}/{ORG}"
    before = await http.get(page)
    assert before.status_code == 404 and "带头服务群众" not in before.text

    published = await http.post(
        f"{base(rid)}/publish", json={"notice_working_days": 5}, headers=await token(http, "sec-c")
    )
    assert published.status_code == 200, published.text
    assert len(published.json()) == 17  # the organisation's and 16 members'
    ends = datetime.fromisoformat(published.json()[0]["notice_ends_at"])
    assert ends - datetime.now(UTC) >= timedelta(days=5)  # 5 working days, at least a week
    again = await http.post(f"{base(rid)}/publish", json={}, headers=await token(http, "sec-c"))
    assert again.status_code == 409

    shown = await http.get(page)  # no Authorization header: public
    assert shown.status_code == 200 and shown.headers["content-type"].startswith("text/html")
    assert (
        "围绕五个好争创先进基层党组织" in shown.text and "每季度开展一次党员志愿服务" in shown.text
    )
    assert "党员01号带头服务群众" in shown.text and "公示中" in shown.text
    assert "未公示的承诺内容" not in shown.text  # still awaiting 审诺
    assert "党员17号" not in shown.text
    index = await http.get("/public/commitments")
    assert index.status_code == 200 and f"/public/commitments/{rid}/{ORG}" in index.text


async def _fulfilment(http: httpx.AsyncClient, rid: str) -> None:
    secretary = await token(http, "sec-c")
    commitment = by_member(await ledger(http, rid))["M001"]
    url = f"{base(rid)}/{commitment['commitment_id']}/ledger"
    uploaded = await http.post(
        f"/api/v1/rounds/{rid}/organisations/{ORG}/files",
        files={"file": ("走访记录.txt", "走访困难户3户".encode(), "text/plain")},
        headers=secretary,
    )
    assert uploaded.status_code == 201, uploaded.text
    evidence = {"name": uploaded.json()["name"], "sha256": uploaded.json()["sha256"]}
    entry = {
        "item_id": commitment["items"][0]["item_id"],
        "fulfilled_on": local_date(datetime.now(UTC)).isoformat(),
        "description": "走访困难户3户，解决实际困难2件",
        "evidence": evidence,
    }
    missing = await http.post(
        url, json=entry | {"evidence": {"name": "x.pdf", "sha256": "0" * 64}}, headers=secretary
    )
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "evidence.sha256"

    keyed = secretary | {"Idempotency-Key": f"ledger-{uuid.uuid4()}"}
    first, second = await asyncio.gather(
        http.post(url, json=entry, headers=keyed), http.post(url, json=entry, headers=keyed)
    )
    third = await http.post(url, json=entry, headers=keyed)
    assert {first.status_code, second.status_code, third.status_code} == {201}
    assert third.headers.get("Idempotent-Replayed") == "true"
    entries = by_member(await ledger(http, rid))["M001"]["ledger"]
    assert len(entries) == 1 and entries[0]["evidence"] == evidence

    unpublished = by_member(await ledger(http, rid))[HELD_BACK]
    early = await http.post(
        f"{base(rid)}/{unpublished['commitment_id']}/ledger", json=entry, headers=secretary
    )
    assert early.status_code == 409 and "公示后才能登记践诺" in early.json()["message"]
    page = await http.get(f"/public/commitments/{rid}/{ORG}")
    assert "走访困难户3户" in page.text


async def _review(http: httpx.AsyncClient, rid: str) -> None:
    commitment = by_member(await ledger(http, rid))["M001"]
    url = f"{base(rid)}/{commitment['commitment_id']}/reviews"
    instructor = await token(http, "ins-liu")
    bare = await http.post(
        url, json={"occasion": "leadership_review", "verdict": "partly"}, headers=instructor
    )
    assert bare.status_code == 422 and bare.json()["errors"][0]["field"] == "comment"
    reviewed = await http.post(
        url,
        json={"occasion": "leadership_review", "verdict": "partly", "comment": "走访记录不全"},
        headers=instructor,
    )
    assert reviewed.status_code == 200, reviewed.text
    assert reviewed.json()["status"] == "reviewed"
    assert reviewed.json()["reviews"][0]["verdict_label"] == "部分兑现"
    assert (await http.post(url, json={"occasion": "public_evaluation", "verdict": "fulfilled"},
                            headers=await token(http, "ins-zhang"))).status_code == 404  # fmt: skip
    assert (await http.get(base(rid), headers=await token(http, "ins-zhang"))).status_code == 404
    assert (await http.get(base(rid), headers=await token(http, "sec-a"))).status_code == 404


STAGES: list[Stage] = [_roster_import, _coverage, _signoff, _publication, _fulfilment, _review]


async def test_member_roster_import_is_all_or_nothing_and_scoped(
    http: httpx.AsyncClient, story: Story
) -> None:
    await story.reach(http, _roster_import)


async def test_workflow_refuses_the_step_until_every_member_is_covered(
    http: httpx.AsyncClient, story: Story
) -> None:
    await story.reach(http, _coverage)


async def test_signoff_returns_with_a_reason_and_approves(
    http: httpx.AsyncClient, story: Story
) -> None:
    await story.reach(http, _signoff)


async def test_public_page_shows_only_published_commitments(
    http: httpx.AsyncClient, story: Story
) -> None:
    await story.reach(http, _publication)


async def test_fulfilment_ledger_with_an_uploaded_file_once_per_key(
    http: httpx.AsyncClient, story: Story
) -> None:
    await story.reach(http, _fulfilment)


async def test_review_verdicts_and_scope(http: httpx.AsyncClient, story: Story) -> None:
    await story.reach(http, _review)
