"""领导点评 over the real stack (issue 15, seed 002 §五(三)): in a round whose plan says the
review is written by the upper level (``submitted_by``) and signed for by the organisation
(``decided_by``), the secretary's own review is refused, the instructor's is accepted, the
instructor cannot sign for it, and the secretary's acknowledgement with an answer completes
the phase. The plan is the shipped demo plan, uploaded as the county office would."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest

from api.plans import parse_plan, shipped_plan_text
from chuangzheng.sample_evidence import sample_evidence
from domain.phases import Phase
from tests.api.conftest import Stack, token, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")

#: Actions answer with the Update's result unless asked for the whole status.
WHOLE_STATUS = {"Prefer": "return=representation"}


def plan_text() -> str:
    """The shipped demo plan: its 领导点评 names the upper level (as seed-002.yaml does)."""
    text = shipped_plan_text("demo")
    assert "submitted_by: [township, instructor, guidance_group]" in text
    assert "decided_by: [secretary]" in text
    return text


def evidence(stack: Stack, status: dict[str, Any], step_id: str) -> dict[str, Any]:
    plan = parse_plan(plan_text())
    state = status["state"]
    phase = Phase(state["phase"])
    step = next(s for s in plan.round("demo").phase(phase).steps if s.id == step_id)
    current = next(p for p in state["phases"] if p["phase"] == phase.value)
    org = next(o for o in stack.roster.organisations if o.id == state["org_id"])
    opens_at = datetime.fromisoformat(current["opens_at"])
    deadline = datetime.fromisoformat(current["deadline"])
    return sample_evidence(step, org, opens_at=opens_at, deadline=deadline, now=opens_at)


async def test_the_instructor_writes_the_review_and_the_secretary_signs_for_it(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    county = await token(http, "county")
    rid = f"review-{uuid.uuid4().hex[:8]}"
    created = await http.post(
        "/api/v1/rounds",
        json={"round_id": rid, "plan_yaml": plan_text(), "round_plan_id": "demo"},
        headers=county,
    )
    assert created.status_code == 201, created.text
    kicked = await http.post(f"/api/v1/rounds/{rid}/kickoff", headers=county)
    assert kicked.status_code == 200, kicked.text
    base = f"/api/v1/rounds/{rid}/organisations/org-a"

    async def started() -> dict[str, Any] | None:
        r = await http.get(f"{base}/status", headers=county)
        return r.json() if r.status_code == 200 else None

    status = await wait_for(started)
    secretary, instructor = await token(http, "sec-a"), await token(http, "ins-zhang")
    # Mobilisation and commitment as before: the secretary submits, the instructor accepts.
    for _ in range(2):
        phase = next(p for p in status["state"]["phases"] if p["phase"] == status["state"]["phase"])
        for step in (s for s in phase["steps"] if s["required"]):
            values = evidence(stack, status, step["step_id"])
            submitted = await http.post(
                f"{base}/submissions",
                json={"step_id": step["step_id"], "values": values},
                headers=secretary,
            )
            assert submitted.status_code == 200, submitted.text
            accepted = await http.post(
                f"{base}/decisions",
                json={"step_id": step["step_id"], "accept": True},
                headers={**instructor, **WHOLE_STATUS},
            )
            assert accepted.status_code == 200, accepted.text
            status = accepted.json()
    assert status["state"]["phase"] == Phase.LEADERSHIP_REVIEW.value
    review = evidence(stack, status, "leader_review")
    # The organisation under review cannot write its own review.
    own = await http.post(
        f"{base}/submissions",
        json={"step_id": "leader_review", "values": review},
        headers=secretary,
    )
    assert own.status_code == 403, own.text
    assert own.json()["code"] == "forbidden"
    # The instructor (the upper level the plan names) writes it.
    written = await http.post(
        f"{base}/submissions",
        json={"step_id": "leader_review", "values": review},
        headers={**instructor, **WHOLE_STATUS},
    )
    assert written.status_code == 200, written.text
    step = next(
        s
        for p in written.json()["state"]["phases"]
        for s in p["steps"]
        if s["step_id"] == "leader_review"
    )
    assert step["status"] == "submitted"
    assert step["submissions"][-1]["submitted_by"]["user"] == "ins-zhang"
    # The instructor cannot sign for their own review; the secretary cannot send it back.
    self_signed = await http.post(
        f"{base}/decisions", json={"step_id": "leader_review", "accept": True}, headers=instructor
    )
    assert self_signed.status_code == 403, self_signed.text
    returned = await http.post(
        f"{base}/decisions",
        json={"step_id": "leader_review", "accept": False, "reason": "不同意点评"},
        headers=secretary,
    )
    assert returned.status_code == 403, returned.text
    assert "不能退回" in returned.json()["message"]
    answer = "感谢点评，已对照指出的问题逐条整改。"
    signed = await http.post(
        f"{base}/decisions",
        json={"step_id": "leader_review", "accept": True, "reason": answer},
        headers={**secretary, **WHOLE_STATUS},
    )
    assert signed.status_code == 200, signed.text
    state = signed.json()["state"]
    assert state["phase"] == Phase.PUBLIC_EVALUATION.value
    done = next(s for p in state["phases"] for s in p["steps"] if s["step_id"] == "leader_review")
    assert done["status"] == "accepted"
    assert done["submissions"][-1]["decided_by"]["user"] == "sec-a"
    assert done["submissions"][-1]["reason"] == answer

    async def on_the_timeline() -> bool:
        timeline = (await http.get(f"{base}/timeline", headers=secretary)).json()
        kinds = [(e["kind"], e.get("step_id")) for e in timeline]
        return ("accepted", "leader_review") in kinds

    await wait_for(on_the_timeline)
