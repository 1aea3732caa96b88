"""The API over HTTP against the real dev server and worker: a round of the demo plan over a
three-organisation county; scopes, validation and idempotency."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from activities.db import make_engine
from activities.tables import audit_log, step_status, submissions
from api.plans import parse_plan, shipped_plan_text
from chuangzheng.sample_evidence import sample_evidence
from domain.calendar import local_date
from domain.phases import Phase
from tests.api.conftest import Stack, start_demo_round, token, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")

#: Actions answer with the Update's result unless asked for the whole status.
WHOLE_STATUS = {"Prefer": "return=representation"}


def evidence(stack: Stack, status: dict[str, Any], step_id: str) -> dict[str, Any]:
    """Valid evidence for a step of the current phase, as a diligent secretary gives it."""
    plan = parse_plan(shipped_plan_text("demo"))
    state = status["state"]
    phase = Phase(state["phase"])
    step = next(s for s in plan.round("demo").phase(phase).steps if s.id == step_id)
    current = next(p for p in state["phases"] if p["phase"] == phase.value)
    org = next(o for o in stack.roster.organisations if o.id == state["org_id"])
    return sample_evidence(
        step,
        org,
        opens_at=datetime.fromisoformat(current["opens_at"]),
        deadline=datetime.fromisoformat(current["deadline"]),
        now=datetime.fromisoformat(current["opens_at"]),
    )


async def test_login_refuses_bad_password_and_missing_token(http: httpx.AsyncClient) -> None:
    bad = await http.post("/api/v1/auth/login", json={"username": "county", "password": "x"})
    assert bad.status_code == 401 and bad.json()["code"] == "unauthorized"
    anonymous = await http.get("/api/v1/organisations")
    assert anonymous.status_code == 401
    forged = await http.get("/api/v1/organisations", headers={"Authorization": "Bearer x.y.z"})
    assert forged.status_code == 401


async def test_secretary_submits_evidence_and_sees_the_phase_advance(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    # A round of its own: the shared one has had other tests' submissions (returns too).
    round_id = await start_demo_round(stack, f"r-advance-{uuid.uuid4().hex[:8]}")
    secretary, instructor = await token(http, "sec-a"), await token(http, "ins-zhang")
    base = f"/api/v1/rounds/{round_id}/organisations/org-a"
    status = (await http.get(f"{base}/status", headers=secretary)).json()
    assert status["state"]["phase"] == Phase.MOBILISATION.value
    phase = status["state"]["phases"][0]
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
    assert status["state"]["phase"] == Phase.PUBLIC_COMMITMENT.value

    async def advanced_in_read_model() -> bool:
        listed = await http.get(
            "/api/v1/organisations", params={"round_id": round_id}, headers=secretary
        )
        return bool(listed.json()[0].get("phase") == Phase.PUBLIC_COMMITMENT.value)

    await wait_for(advanced_in_read_model)
    with make_engine(stack.settings.database_url).connect() as db:
        steps = db.execute(
            select(step_status.c.status).where(
                step_status.c.round_id == round_id, step_status.c.org_id == "org-a"
            )
        ).scalars()
        decisions = db.execute(
            select(submissions.c.decision).where(
                submissions.c.round_id == round_id, submissions.c.org_id == "org-a"
            )
        ).scalars()
        audited = db.execute(
            select(audit_log.c.action, audit_log.c.ip).where(audit_log.c.org_id == "org-a")
        ).all()
        assert set(steps) == {"accepted"} and set(decisions) == {"accepted"}
        assert ("submitted", "127.0.0.1") in audited
    timeline = (await http.get(f"{base}/timeline", headers=secretary)).json()
    assert [e["kind"] for e in timeline].count("accepted") == len(
        [s for s in phase["steps"] if s["required"]]
    )


async def test_instructor_sees_only_their_organisations(
    http: httpx.AsyncClient, round_id: str
) -> None:
    listed = await http.get(
        "/api/v1/organisations",
        params={"round_id": round_id},
        headers=await token(http, "ins-zhang"),
    )
    assert listed.status_code == 200
    assert [o["org_id"] for o in listed.json()] == ["org-a", "org-b"]
    township = await http.get("/api/v1/organisations", headers=await token(http, "tw-chengguan"))
    assert [o["org_id"] for o in township.json()] == ["org-a", "org-b"]
    health = await http.get("/api/v1/organisations", headers=await token(http, "gg-health"))
    assert health.json() == []
    county = await http.get("/api/v1/organisations", headers=await token(http, "county"))
    assert len(county.json()) == 3


@pytest.mark.parametrize(
    ("user", "method", "path", "body"),
    [
        ("sec-a", "GET", "/api/v1/organisations/org-c", None),
        ("sec-a", "GET", "/api/v1/rounds/{r}/organisations/org-c/status", None),
        ("sec-a", "GET", "/api/v1/rounds/{r}/organisations/org-c/timeline", None),
        ("ins-liu", "GET", "/api/v1/rounds/{r}/organisations/org-a/status", None),
        ("tw-chengguan", "GET", "/api/v1/organisations/org-c", None),
        ("gg-health", "GET", "/api/v1/organisations/org-a", None),
        (
            "sec-a",
            "POST",
            "/api/v1/rounds/{r}/organisations/org-c/submissions",
            {"step_id": "hold_mobilisation_meeting", "values": {}},
        ),
        (
            "ins-liu",
            "POST",
            "/api/v1/rounds/{r}/organisations/org-a/decisions",
            {"step_id": "hold_mobilisation_meeting", "accept": True},
        ),
        (
            "ins-zhang",
            "POST",
            "/api/v1/rounds/{r}/organisations/org-c/waivers",
            {"step_id": "hold_mobilisation_meeting", "reason": "越权"},
        ),
    ],
)
async def test_cross_scope_reads_and_writes_are_refused(
    http: httpx.AsyncClient, round_id: str, user: str, method: str, path: str, body: Any
) -> None:
    response = await http.request(
        method, path.format(r=round_id), json=body, headers=await token(http, user)
    )
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "not_found"


async def test_county_only_actions_are_forbidden_to_others(
    http: httpx.AsyncClient, round_id: str
) -> None:
    secretary = await token(http, "sec-a")
    created = await http.post(
        "/api/v1/rounds",
        json={"round_id": "x1", "plan_id": "demo", "round_plan_id": "demo"},
        headers=secretary,
    )
    assert created.status_code == 403
    closed = await http.post(f"/api/v1/rounds/{round_id}/close", json={}, headers=secretary)
    assert closed.status_code == 403


async def test_invalid_inputs_get_422_with_the_field(http: httpx.AsyncClient, stack: Stack) -> None:
    # A round of its own: in the shared one another test may have submitted the step already
    # (a second submission is a 409 before the evidence is looked at).
    round_id = await start_demo_round(stack, f"invalid-{uuid.uuid4().hex[:8]}")
    county, secretary = await token(http, "county"), await token(http, "sec-c")
    base = f"/api/v1/rounds/{round_id}/organisations/org-c"
    missing = await http.post(f"{base}/submissions", json={"values": {}}, headers=secretary)
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "step_id"
    assert missing.json()["errors"][0]["reason"] == "缺少必填项"
    bad_evidence = await http.post(
        f"{base}/submissions",
        json={"step_id": "hold_mobilisation_meeting", "values": {"attendance": 0}},
        headers=secretary,
    )
    assert bad_evidence.status_code == 422, bad_evidence.text
    assert bad_evidence.json()["code"] == "invalid_evidence"
    fields = {e["field"] for e in bad_evidence.json()["errors"]}
    assert any(f.startswith("evidence.") for f in fields)
    # Dated after today (Asia/Shanghai, the workflow's clock): refused, naming the field.
    ahead = local_date(datetime.now(UTC)) + timedelta(days=2)
    future = await http.post(
        f"{base}/submissions",
        json={
            "step_id": "hold_mobilisation_meeting",
            "values": {"meeting_date": ahead.isoformat(), "attendance": 1},
        },
        headers=secretary,
    )
    assert future.status_code == 422, future.text
    assert future.json()["code"] == "invalid_evidence"
    reasons = {e["field"]: e["reason"] for e in future.json()["errors"]}
    assert reasons["evidence.meeting_date"].startswith("会议日期不能晚于今天（"), reasons
    unknown_step = await http.post(
        f"{base}/submissions", json={"step_id": "nope", "values": {}}, headers=secretary
    )
    assert unknown_step.status_code == 422
    assert unknown_step.json()["errors"][0]["field"] == "step_id"
    bad_plan = await http.post(
        "/api/v1/rounds",
        json={"round_id": "bad-plan", "plan_id": "no-such-plan", "round_plan_id": "demo"},
        headers=county,
    )
    assert bad_plan.status_code == 422
    assert bad_plan.json()["errors"][0]["field"] == "plan_id"
    bad_filter = await http.get("/api/v1/organisations", params={"light": "purple"}, headers=county)
    assert bad_filter.status_code == 422 and bad_filter.json()["errors"][0]["field"] == "light"


async def test_retried_write_with_the_same_idempotency_key_has_one_effect(
    http: httpx.AsyncClient, stack: Stack, round_id: str
) -> None:
    secretary = await token(http, "sec-c")
    base = f"/api/v1/rounds/{round_id}/organisations/org-c"
    status = (await http.get(f"{base}/status", headers=secretary)).json()
    step_id = "hold_mobilisation_meeting"
    body = {"step_id": step_id, "values": evidence(stack, status, step_id)}
    headers = {**secretary, "Idempotency-Key": f"k-{uuid.uuid4()}"}
    first = await http.post(f"{base}/submissions", json=body, headers=headers)
    again = await http.post(f"{base}/submissions", json=body, headers=headers)
    assert first.status_code == again.status_code == 200, again.text
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == first.json()
    other = await http.post(f"{base}/submissions", json={**body, "values": {}}, headers=headers)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"

    async def recorded() -> list[dict[str, Any]]:
        timeline = (await http.get(f"{base}/timeline", headers=secretary)).json()
        return [e for e in timeline if e["kind"] == "submitted" and e["step_id"] == step_id]

    submitted = await wait_for(recorded)
    await asyncio.sleep(1)
    assert len(await recorded()) == len(submitted) == 1
