"""Newly published calendar data applied to a running round through the API
(``POST /api/v1/rounds/{id}/calendar``), end to end on the real stack: the seed-002 round
(round two) re-based to start tomorrow (a round may not start in the past; it runs into
2027 and its ladder into 2028, so its plan names the provisional 2027 file and vouches for
2028 itself), a holiday published on a working day
inside the first phase, and every organisation's open
deadline moves one working day later; the same update id again changes nothing; the county
office's action is in the audit log; a secretary may not do it."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from activities.db import make_engine, session_factory
from activities.tables import AuditRow
from chuangzheng.plans import check_kickoff, parse_plan
from domain.calendar import SHANGHAI
from tests.api.conftest import Stack, token, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")

SEED = (Path(__file__).resolve().parents[2] / "plans" / "seed-002.yaml").read_text("utf-8")
STARTS_AT = datetime.combine(datetime.now(SHANGHAI).date() + timedelta(days=1), time(9), SHANGHAI)


def _plan_yaml(plan_id: str) -> str:
    """seed-002 under its own id, naming the provisional 2027 calendar it needs and
    vouching for 2028 (weekends only), which its ladder reaches."""
    text = SEED.replace("\nid: seed-002\n", f"\nid: {plan_id}\n", 1)
    assert f"id: {plan_id}" in text
    return text + "\ncalendar:\n  include: [2027-provisional]\n  supplied_years: [2028]\n"


def new_holiday(plan_yaml: str) -> date:
    """A working Tuesday inside round two's first phase (20 working days) from
    :data:`STARTS_AT`, as the round's pinned calendar counts it: a holiday published there
    moves the phase's deadline."""
    schedule = check_kickoff(parse_plan(plan_yaml), "round-2", STARTS_AT)
    assert schedule.calendar is not None
    first = schedule.windows[0]
    day = STARTS_AT.date() + timedelta(days=7)
    while day.weekday() != 1 or not schedule.calendar.is_workday(day):
        day += timedelta(days=1)
    assert day < first.deadline.astimezone(SHANGHAI).date()
    return day


def _first_deadline(status: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(status["state"]["phases"][0]["deadline"])


async def test_a_published_holiday_moves_every_open_deadline_once_and_is_audited(
    stack: Stack,
) -> None:
    rid = f"cal-{uuid.uuid4().hex[:8]}"
    plan_yaml = _plan_yaml(f"seed-002-{rid}")
    holiday = new_holiday(plan_yaml)
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        county = await token(http, "county")
        created = await http.post(
            "/api/v1/rounds",
            json={
                "round_id": rid,
                "plan_yaml": plan_yaml,
                "round_plan_id": "round-2",
                "starts_at": STARTS_AT.isoformat(),
            },
            headers=county,
        )
        assert created.status_code == 201, created.text
        kicked = await http.post(f"/api/v1/rounds/{rid}/kickoff", headers=county)
        assert kicked.status_code == 200, kicked.text

        async def status_of(org: str) -> dict[str, Any] | None:
            r = await http.get(f"/api/v1/rounds/{rid}/organisations/{org}/status", headers=county)
            return r.json() if r.status_code == 200 else None

        orgs = ("org-a", "org-b", "org-c")
        before = {org: _first_deadline(await wait_for(lambda o=org: status_of(o))) for org in orgs}
        assert len(set(before.values())) == 1
        old_deadline = before["org-a"]
        assert old_deadline.astimezone(SHANGHAI).date() > holiday

        body = {
            "holidays": [holiday.isoformat()],
            "reason": "国务院办公厅公布调整后的节假日安排",
            "update_id": f"notice-{rid}",
        }
        secretary = await token(http, "sec-a")
        refused = await http.post(f"/api/v1/rounds/{rid}/calendar", json=body, headers=secretary)
        assert refused.status_code == 403, refused.text

        applied = await http.post(f"/api/v1/rounds/{rid}/calendar", json=body, headers=county)
        assert applied.status_code == 200, applied.text
        answer = applied.json()
        assert answer["applied"] is True
        new_deadline = datetime.fromisoformat(answer["windows"][0]["deadline"])
        # One more rest day inside the window: the deadline moves by at least one day (to the
        # next working day, so across a weekend when it fell on a Friday).
        assert new_deadline.astimezone(SHANGHAI).date() > old_deadline.astimezone(SHANGHAI).date()
        assert new_deadline - old_deadline <= timedelta(days=3)

        again = await http.post(f"/api/v1/rounds/{rid}/calendar", json=body, headers=county)
        assert again.status_code == 200, again.text
        assert again.json()["applied"] is False
        assert again.json()["action_id"] == answer["action_id"]

        async def moved(org: str) -> bool:
            status = await status_of(org)
            return status is not None and _first_deadline(status) == new_deadline

        for org in orgs:
            await wait_for(lambda o=org: moved(o))
            status = await status_of(org)
            assert status is not None
            assert status["state"]["applied_calendar_updates"] == [f"notice-{rid}"]

        closed = await http.post(
            f"/api/v1/rounds/{rid}/close", json={"reason": "测试结束"}, headers=county
        )
        assert closed.status_code == 200, closed.text

    engine = make_engine(stack.settings.database_url)
    try:
        with session_factory(engine)() as session:
            audits = session.scalars(
                select(AuditRow).where(
                    AuditRow.round_id == rid, AuditRow.action == "round_calendar_updated"
                )
            ).all()
    finally:
        engine.dispose()
    assert [a.user for a in audits] == ["county"]
    assert audits[0].detail["holidays"] == [holiday.isoformat()]
    assert audits[0].detail["applied"] is True


async def test_a_county_wide_extension_past_the_pinned_calendar_is_refused_naming_the_date(
    stack: Stack,
) -> None:
    # Found by an outside operator: the round answered "applied" while every organisation
    # refused the extension on its own (past its pinned calendar), so nothing moved.
    rid = f"calx-{uuid.uuid4().hex[:8]}"
    plan_yaml = _plan_yaml(f"seed-002-{rid}")
    schedule = check_kickoff(parse_plan(plan_yaml), "round-2", STARTS_AT)
    assert schedule.calendar is not None
    last = schedule.windows[-1]
    beyond = datetime.combine(schedule.calendar.last_day + timedelta(days=10), time(0), SHANGHAI)
    assert beyond - last.deadline < timedelta(days=366)  # within a year: only the calendar
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        county = await token(http, "county")
        created = await http.post(
            "/api/v1/rounds",
            json={
                "round_id": rid,
                "plan_yaml": plan_yaml,
                "round_plan_id": "round-2",
                "starts_at": STARTS_AT.isoformat(),
            },
            headers=county,
        )
        assert created.status_code == 201, created.text
        kicked = await http.post(f"/api/v1/rounds/{rid}/kickoff", headers=county)
        assert kicked.status_code == 200, kicked.text
        body = {
            "phase": last.phase.value,
            "new_deadline": beyond.isoformat(),
            "reason": "表彰推迟到明年年底",
        }
        refused = await http.post(f"/api/v1/rounds/{rid}/extensions", json=body, headers=county)
        assert refused.status_code == 422, refused.text
        reasons = {e["field"]: e["reason"] for e in refused.json()["errors"]}
        assert "超出本轮日历范围" in reasons["new_deadline"], reasons
        assert schedule.calendar.last_day.isoformat() in reasons["new_deadline"]
