"""评选表彰 settles the organisations' steps over the real stack (issue 15, seed 002 §五(五)):
in a round whose plan says the declaration settles the 申报 step and the county's 审定
settles a 审定 step, the secretary cannot type either in; declaring the organisation settles
its 申报 step (once, retries included); the 审定 settles the 审定 step of every organisation
that declared, 入选 with its honour for the one approved (whose phase, and round, complete)
and 未入选 with the reason for the other. The plan is the demo plan with those keys."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest

from api.plans import parse_plan, shipped_plan_text
from chuangzheng.sample_evidence import sample_evidence
from domain.organisation import Role
from domain.phases import Phase
from tests.api.conftest import Stack, token, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")

#: Actions answer with the Update's result unless asked for the whole status.
WHOLE_STATUS = {"Prefer": "return=representation"}

DEEDS = "带领党员群众发展特色产业，为民办实事二十余件。"
DECLARATION = """          - id: declaration
            name: 申报先进基层党组织
            settled_by: declaration
            evidence:
              - {name: declaration_id, label: 申报编号, kind: text}
              - {name: deeds, label: 申报事迹, kind: text}
          - id: county_approval
            name: 县委常委会审定
            settled_by: approval
            evidence:
              - {name: meeting, label: 审定会议, kind: text}
              - {name: outcome, label: 评选结果, kind: choice, choices: [入选, 未入选]}
              - {name: honours, label: 获得表彰, kind: people, required: false}
              - {name: note, label: 说明, kind: text, required: false}
"""


def plan_text() -> str:
    text = shipped_plan_text("demo")
    old = """          - id: declaration
            name: 申报先进基层党组织
            evidence:
              - {name: self_scores, label: 自评得分, kind: scores}
"""
    assert old in text
    return text.replace(old, DECLARATION)


def step_of(status: dict[str, Any], step_id: str) -> dict[str, Any]:
    return next(s for p in status["state"]["phases"] for s in p["steps"] if s["step_id"] == step_id)


async def to_commendation(
    http: httpx.AsyncClient, stack: Stack, rid: str, org_id: str, secretary: dict[str, str]
) -> dict[str, Any]:
    """Do the first four phases as the secretary and the instructor."""
    instructor = await token(http, {"org-a": "ins-zhang", "org-c": "ins-liu"}[org_id])
    plan = parse_plan(plan_text()).round("demo")
    org = next(o for o in stack.roster.organisations if o.id == org_id)
    base = f"/api/v1/rounds/{rid}/organisations/{org_id}"
    status: dict[str, Any] = (await http.get(f"{base}/status", headers=secretary)).json()
    while status["state"]["phase"] != Phase.COMMENDATION.value:
        phase = Phase(status["state"]["phase"])
        current = next(p for p in status["state"]["phases"] if p["phase"] == phase.value)
        opens_at = datetime.fromisoformat(current["opens_at"])
        deadline = datetime.fromisoformat(current["deadline"])
        for step in (s for s in plan.phase(phase).steps if s.required):
            values = sample_evidence(step, org, opens_at=opens_at, deadline=deadline, now=opens_at)
            # 领导点评 is the instructor's, signed for by the secretary.
            writer, decider = (
                (secretary, instructor)
                if Role.SECRETARY in step.submitters
                else (instructor, secretary)
            )
            submitted = await http.post(
                f"{base}/submissions",
                json={"step_id": step.id, "values": values},
                headers=writer,
            )
            assert submitted.status_code == 200, submitted.text
            accepted = await http.post(
                f"{base}/decisions",
                json={"step_id": step.id, "accept": True},
                headers={**decider, **WHOLE_STATUS},
            )
            assert accepted.status_code == 200, accepted.text
            status = accepted.json()
    return status


async def test_declaration_and_approval_settle_the_organisations_steps(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    county = await token(http, "county")
    sec_a, sec_c = await token(http, "sec-a"), await token(http, "sec-c")
    rid = f"cs-{uuid.uuid4().hex[:8]}"
    created = await http.post(
        "/api/v1/rounds",
        json={"round_id": rid, "plan_yaml": plan_text(), "round_plan_id": "demo"},
        headers=county,
    )
    assert created.status_code == 201, created.text
    assert (await http.post(f"/api/v1/rounds/{rid}/kickoff", headers=county)).status_code == 200

    async def started() -> bool:
        for org in ("org-a", "org-c"):
            r = await http.get(f"/api/v1/rounds/{rid}/organisations/{org}/status", headers=county)
            if r.status_code != 200:
                return False
        return True

    await wait_for(started)
    status = await to_commendation(http, stack, rid, "org-a", sec_a)
    await to_commendation(http, stack, rid, "org-c", sec_c)
    base_a = f"/api/v1/rounds/{rid}/organisations/org-a"
    # Neither step can be typed in.
    for step_id, values in (
        ("declaration", {"declaration_id": "x", "deeds": DEEDS}),
        ("county_approval", {"meeting": "x", "outcome": "入选"}),
    ):
        typed = await http.post(
            f"{base_a}/submissions", json={"step_id": step_id, "values": values}, headers=sec_a
        )
        assert typed.status_code in (403, 409), typed.text
        assert "不能手工填报" in typed.json()["message"]
    assert step_of(status, "declaration")["status"] == "open"

    # 申报 settles the 申报 step, once (the retry is answered from the stored answer).
    declarations = f"/api/v1/rounds/{rid}/commendation/declarations"
    body = {"category": "advanced_organisation", "org_id": "org-a", "deeds": DEEDS}
    key = {"Idempotency-Key": f"declare-{rid}"}
    first = await http.post(declarations, json=body, headers=sec_a | key)
    again = await http.post(declarations, json=body, headers=sec_a | key)
    assert first.status_code == 201, first.text
    assert first.json()["step"] == "settled" and again.json() == first.json()
    declared_c = await http.post(declarations, json=body | {"org_id": "org-c"}, headers=sec_c)
    assert declared_c.status_code == 201 and declared_c.json()["step"] == "settled"
    # A member's nomination settles nothing.
    member = body | {"category": "outstanding_member", "nominee": "李明"}
    nominated = await http.post(declarations, json=member, headers=sec_a)
    assert nominated.status_code == 201 and "step" not in nominated.json()
    # Declared before its commendation phase opened (org-b is still mobilising): the
    # declaration stands, the step is not settled and the answer says why; settling again
    # says the same until the phase opens. Only the declarer's side or the county may ask.
    township = await token(http, "tw-chengguan")
    early = await http.post(declarations, json=body | {"org_id": "org-b"}, headers=township)
    assert early.status_code == 201, early.text
    assert "没有步骤" in early.json()["step"]
    again_b = f"{declarations}/{early.json()['declaration_id']}/step"
    retried = await http.post(again_b, headers=township)
    assert retried.status_code == 200 and "没有步骤" in retried.json()["step"]
    outsider = await http.post(again_b, headers=await token(http, "ins-zhang"))
    assert outsider.status_code == 403
    # Settling org-a's again changes nothing (its idempotency key).
    again_a = await http.post(
        f"{declarations}/{first.json()['declaration_id']}/step", headers=sec_a
    )
    assert again_a.status_code == 200 and again_a.json()["step"] == "settled"
    status = (await http.get(f"{base_a}/status", headers=sec_a)).json()
    declared = step_of(status, "declaration")
    assert declared["status"] == "accepted" and len(declared["submissions"]) == 1
    submission = declared["submissions"][0]
    assert submission["values"]["declaration_id"] == first.json()["declaration_id"]
    assert submission["submitted_by"]["user"] == f"declaration/{first.json()['declaration_id']}"
    assert submission["submitted_by"]["role"] == "secretary"
    assert status["state"]["phase"] == Phase.COMMENDATION.value  # the 审定 is still to come

    # 审定: org-a added by the standing committee, org-c not; both steps record it.
    approval = await http.post(
        f"/api/v1/rounds/{rid}/commendation/approval",
        json={
            "meeting": "县委常委会第12次会议",
            "added": [
                {"declaration_id": first.json()["declaration_id"], "reason": "群众公认，事迹突出"}
            ],
        },
        headers=county,
    )
    assert approval.status_code == 201, approval.text
    steps = approval.json()["steps"]
    assert (steps["org-a"], steps["org-c"]) == ("settled", "settled")
    assert "没有步骤" in steps["org-b"]  # org-b has not reached its commendation phase
    a = (await http.get(f"{base_a}/status", headers=sec_a)).json()
    approved = step_of(a, "county_approval")["submissions"][-1]["values"]
    assert approved["outcome"] == "入选" and approved["meeting"] == "县委常委会第12次会议"
    assert approved["honours"] == ["先进基层党组织：城关镇东关村党支部"]
    assert a["state"]["phase"] == Phase.COMPLETED.value
    c = (await http.get(f"/api/v1/rounds/{rid}/organisations/org-c/status", headers=sec_c)).json()
    other = step_of(c, "county_approval")["submissions"][-1]["values"]
    assert other["outcome"] == "未入选" and other["note"] == "综合考评未进入名额"
    # Settling again (after a failure part-way) changes nothing: each step once.
    again_steps = await http.post(
        f"/api/v1/rounds/{rid}/commendation/approval/steps", headers=county
    )
    assert again_steps.status_code == 200, again_steps.text
    a_again = (await http.get(f"{base_a}/status", headers=sec_a)).json()
    assert len(step_of(a_again, "county_approval")["submissions"]) == 1
    refused = await http.post(f"/api/v1/rounds/{rid}/commendation/approval/steps", headers=sec_a)
    assert refused.status_code == 403
