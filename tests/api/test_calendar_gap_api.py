"""A round that reaches a year with no holiday data is refused through the API with 422,
naming the year (field and reason in Chinese), at creation and at kick-off, before any
workflow starts; a plan that names its supplementary calendars explicitly is accepted."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import httpx
import pytest

from activities.db import make_engine, session_factory
from activities.tables import RoundDefinitionRow, RoundRow
from domain.calendar import SHANGHAI
from tests.api.conftest import Stack, token

pytestmark = pytest.mark.asyncio(loop_scope="session")

SEED = (Path(__file__).resolve().parents[2] / "plans" / "seed-002.yaml").read_text("utf-8")
# Re-based to start tomorrow (a round may not start in the past), in late 2026 or after:
# round one runs well into 2027 (and round two's ladder too); the chinese-calendar package
# has data up to 2026 only.
REBASED = datetime.combine(datetime.now(SHANGHAI).date() + timedelta(days=1), time(9), SHANGHAI)


async def test_a_rebased_round_into_a_year_without_data_is_refused_at_creation(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    county = await token(http, "county")
    round_id = f"gap-{uuid.uuid4().hex[:8]}"
    refused = await http.post(
        "/api/v1/rounds",
        json={
            "round_id": round_id,
            "plan_id": "seed-002",
            "round_plan_id": "round-2",
            "starts_at": REBASED.isoformat(),
        },
        headers=county,
    )
    assert refused.status_code == 422, refused.text
    body = refused.json()
    assert body["code"] == "invalid_plan"
    [error] = body["errors"]
    assert error["field"] == "starts_at"
    assert error["reason"].startswith("2027年没有法定节假日与调休数据")
    # Nothing was written.
    assert (await http.get(f"/api/v1/rounds/{round_id}", headers=county)).status_code == 404


async def test_a_stored_round_reaching_a_year_without_data_is_refused_at_kickoff(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    """A round stored before the check existed (or data changed since): the kick-off
    answers 422 naming the year, starts no workflow, and the round stays "created"."""
    county = await token(http, "county")
    round_id = f"gap-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    engine = make_engine(stack.settings.database_url)
    with session_factory(engine).begin() as session:
        session.add_all(
            [
                RoundDefinitionRow(
                    round_id=round_id,
                    plan_source="seed-002",
                    plan_yaml=SEED,
                    round_plan_id="round-2",
                    starts_at=REBASED,
                    roster_snapshot=None,
                    created_by="county",
                    created_at=now,
                    kicked_off_at=None,
                ),
                RoundRow(
                    round_id=round_id,
                    name="第二轮：迎接党的十八大",
                    campaign_id="seed-002",
                    round_plan_id="round-2",
                    starts_at=REBASED,
                    status="created",
                    kicked_off_by="county",
                    updated_at=now,
                ),
            ]
        )
    engine.dispose()
    kicked = await http.post(f"/api/v1/rounds/{round_id}/kickoff", headers=county)
    assert kicked.status_code == 422, kicked.text
    [error] = kicked.json()["errors"]
    assert error["field"] == "starts_at"
    assert "2027年" in error["reason"]
    view = (await http.get(f"/api/v1/rounds/{round_id}", headers=county)).json()
    assert view["status"] == "created"
    assert view["kicked_off_at"] is None


async def test_a_plan_that_names_its_calendars_is_accepted_and_a_year_still_missing_named(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    county = await token(http, "county")
    round_id = f"gap-{uuid.uuid4().hex[:8]}"
    provisional = SEED + "\ncalendar:\n  include: [2027-provisional]\n"
    # Round two started from December 2026 on ends in 2027 but its ladder reaches 2028: the
    # plan names the provisional 2027 file and vouches for 2028 itself (weekends only).
    created = await http.post(
        "/api/v1/rounds",
        json={
            "round_id": round_id,
            "plan_yaml": provisional + "  supplied_years: [2028]\n",
            "round_plan_id": "round-2",
            "starts_at": REBASED.isoformat(),
        },
        headers=county,
    )
    assert created.status_code == 201, created.text
    # With the 2027 file alone, 2028 is supplied by nothing: refused, the year named.
    refused = await http.post(
        "/api/v1/rounds",
        json={
            "round_id": f"gap-{uuid.uuid4().hex[:8]}",
            "plan_yaml": provisional,
            "round_plan_id": "round-2",
            "starts_at": REBASED.isoformat(),
        },
        headers=county,
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["reason"].startswith("2028年")
