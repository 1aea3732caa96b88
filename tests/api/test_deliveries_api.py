"""Failed notice deliveries are visible to the county office with their last error."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx

from activities.channels.deliveries import claim_delivery, finish_delivery
from activities.db import make_engine, session_factory
from tests.api.conftest import Stack, token


async def test_failed_deliveries_are_listed_for_the_county_office_only(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    engine = make_engine(stack.settings.database_url)
    sessions = session_factory(engine)
    notice_id = f"r/org-a/mobilisation/escalation/0/instructor:张指导/{uuid.uuid4().hex[:6]}"
    now = datetime.now(UTC)
    claim_delivery(
        sessions, notice_id=notice_id, channel="email", address="zhang@example.cn", now=now
    )
    finish_delivery(
        sessions, notice_id=notice_id, channel="email", now=now, error="550 mailbox unavailable"
    )
    engine.dispose()

    county = await token(http, "county")
    listed = await http.get("/api/v1/deliveries/failed", headers=county)
    assert listed.status_code == 200, listed.text
    mine = [d for d in listed.json() if d["notice_id"] == notice_id]
    assert len(mine) == 1
    assert mine[0]["status"] == "failed" and mine[0]["last_error"] == "550 mailbox unavailable"
    assert mine[0]["status_label"] == "失败"

    instructor = await token(http, "ins-zhang")
    assert (await http.get("/api/v1/deliveries/failed", headers=instructor)).status_code == 403
    # With no channels configured (the stack's default: inbox only) a retry has nothing to send.
    retried = await http.post("/api/v1/deliveries/retry", headers=county)
    assert retried.json() == {"sent": 0, "still_failing": 0}
