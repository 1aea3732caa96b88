"""领导点评 on the pages (issue 15): the instructor writes the review from the organisation's
page (the secretary's page has no form for it), and the secretary signs for it with an
answer from their own page; over the real stack, signed in with the pages' cookie."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.api.conftest import PASSWORD, Stack, token, wait_for
from tests.api.test_step_actors_api import evidence, plan_text

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def signed_in(stack: Stack, username: str) -> httpx.AsyncClient:
    """A page client with the session cookie of ``username``."""
    # A form posted from this site's own page (the cross-site check wants the Origin).
    client = httpx.AsyncClient(
        base_url=stack.base_url, timeout=60, headers={"Origin": stack.base_url}
    )
    response = await client.post(
        "/ui/login", data={"username": username, "password": PASSWORD, "next": "/ui/"}
    )
    assert response.status_code == 303, response.text
    return client


def review_step(status: dict[str, Any]) -> dict[str, Any]:
    return next(
        s for p in status["state"]["phases"] for s in p["steps"] if s["step_id"] == "leader_review"
    )


async def test_the_instructor_writes_the_review_on_the_page_and_the_secretary_signs(
    stack: Stack,
) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as api:
        county = await token(api, "county")
        rid = f"ui-review-{uuid.uuid4().hex[:8]}"
        created = await api.post(
            "/api/v1/rounds",
            json={"round_id": rid, "plan_yaml": plan_text(), "round_plan_id": "demo"},
            headers=county,
        )
        assert created.status_code == 201, created.text
        assert (await api.post(f"/api/v1/rounds/{rid}/kickoff", headers=county)).is_success
        base = f"/api/v1/rounds/{rid}/organisations/org-a"

        async def started() -> dict[str, Any] | None:
            r = await api.get(f"{base}/status", headers=county)
            return r.json() if r.status_code == 200 else None

        status = await wait_for(started)
        sec, ins = await token(api, "sec-a"), await token(api, "ins-zhang")
        for _ in range(2):  # mobilisation and commitment, as before
            phase = next(
                p for p in status["state"]["phases"] if p["phase"] == status["state"]["phase"]
            )
            for step in (s for s in phase["steps"] if s["required"]):
                values = evidence(stack, status, step["step_id"])
                sent = await api.post(
                    f"{base}/submissions",
                    json={"step_id": step["step_id"], "values": values},
                    headers=sec,
                )
                assert sent.status_code == 200, sent.text
                decided = await api.post(
                    f"{base}/decisions",
                    json={"step_id": step["step_id"], "accept": True},
                    # The whole status after the decision (the default is the result only).
                    headers={**ins, "Prefer": "return=representation"},
                )
                assert decided.status_code == 200, decided.text
                status = decided.json()
        assert status["state"]["phase"] == "leadership_review"

        secretary = await signed_in(stack, "sec-a")
        instructor = await signed_in(stack, "ins-zhang")
        try:
            mine = await secretary.get("/ui/my", params={"round": rid})
            assert mine.status_code == 200
            assert "本步骤由上级填写" in mine.text and 'class="evidence-form"' not in mine.text
            page = await instructor.get("/ui/orgs/org-a", params={"round": rid})
            assert page.status_code == 200 and 'class="write-form"' in page.text
            written = await instructor.post(
                "/ui/my/submit",
                data={
                    "round": rid,
                    "org": "org-a",
                    "step_id": "leader_review",
                    "form_key": f"write-{rid}",
                    "ev.reviewer": "张指导（镇党委组织委员）",
                    "ev.review_text": "承诺具体、公示到位；党员作用发挥不够均衡，要抓好结对帮扶。",
                },
            )
            assert written.status_code == 303, written.text
            assert written.headers["location"].startswith("/ui/orgs/org-a")
            assert "error" not in written.headers["location"]
            after = (await api.get(f"{base}/status", headers=sec)).json()
            assert review_step(after)["status"] == "submitted"
            assert review_step(after)["submissions"][-1]["submitted_by"]["user"] == "ins-zhang"
            # The secretary's page now offers to sign, with an answer.
            mine = await secretary.get("/ui/my", params={"round": rid})
            assert 'class="sign-form"' in mine.text
            answer = "感谢点评，下一步抓好结对帮扶。"
            signed = await secretary.post(
                "/ui/orgs/org-a/act",
                data={
                    "round": rid,
                    "action": "decide_submission",
                    "form_key": f"sign-{rid}",
                    "back": f"/ui/my?round={rid}",
                    "step_id": "leader_review",
                    "accept": "true",
                    "reason": answer,
                },
            )
            assert signed.status_code == 303, signed.text
            assert "error" not in signed.headers["location"]
            done = (await api.get(f"{base}/status", headers=sec)).json()
            assert review_step(done)["status"] == "accepted"
            assert review_step(done)["submissions"][-1]["reason"] == answer
            assert done["state"]["phase"] == "public_evaluation"
        finally:
            await secretary.aclose()
            await instructor.aclose()
