"""Tenancy gaps (issue 14), on the real stack (Temporal dev server, the project's worker,
uvicorn; SQLite and PostgreSQL, as every API test), with two counties: the stack's default
county and county ``丙县`` (code ``bingxian-<random>``), whose roster repeats the default
county's township 城关镇 and instructor 张指导.

* The legacy round workflow's kick-off (``CampaignRoundWorkflow`` → the
  ``start_organisation_workflows`` activity) tags each organisation workflow with its
  round's county (``CzCounty``), as the bounded round's kick-off does.
* An "already taken" answer (a round id, a username, an organisation id held by the other
  county) names neither the other county nor anything of its data, and is the same answer
  the county gets for an id of its own.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.db import make_engine, session_factory
from activities.roster_store import write_roster_snapshot
from activities.tables import RoundDefinitionRow, RoundRow
from api.auth import upsert_user
from api.plans import parse_plan
from chuangzheng.services.counties import create_county
from domain.organisation import DEFAULT_COUNTY, DEFAULT_COUNTY_NAME, Role
from domain.state import Actor
from tests.api.conftest import PASSWORD, Stack, token, wait_for
from workflows import search_attributes as sa
from workflows.contracts import RoundInput, RoundKickoff
from workflows.ids import organisation_workflow_id, round_workflow_id
from workflows.round import CampaignRoundWorkflow

pytestmark = pytest.mark.asyncio(loop_scope="session")

#: County C's roster: the default county's township 城关镇 and instructor 张指导 again.
ROSTER_C = """组织编号,组织名称,组织类型,所属乡镇,所属系统,党员人数,书记,指导员
{p}-1,城关镇西街村党支部,农村,城关镇,县农委,26,钱多,张指导
{p}-2,城关镇东街社区党支部,社区,城关镇,县农委,19,郑和,张指导
"""


@dataclass(frozen=True)
class CountyC:
    """County C: its code, name, organisations and its county office's headers."""

    code: str
    name: str
    orgs: tuple[str, ...]
    office: dict[str, str]
    office_user: str


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def county_c(stack: Stack) -> AsyncIterator[CountyC]:
    code = f"bingxian-{uuid.uuid4().hex[:6]}"
    office_user = f"{code}.county"
    engine = make_engine(stack.settings.database_url)
    with session_factory(engine).begin() as session:
        create_county(session, code=code, name="丙县", now=datetime.now(UTC))
        upsert_user(session, username=office_user, display_name="丙县县委活动办",
                    password=PASSWORD, role=Role.COUNTY_OFFICE, county=code)  # fmt: skip
    engine.dispose()
    prefix = f"{code}-org"
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        office = await token(http, office_user)
        imported = await http.post(
            "/api/v1/roster",
            files={"file": ("丙县名册.csv", ROSTER_C.format(p=prefix).encode())},
            headers=office,
        )
        assert imported.status_code == 200, imported.text
    yield CountyC(code, "丙县", (f"{prefix}-1", f"{prefix}-2"), office, office_user)


async def _create_round(http: httpx.AsyncClient, headers: dict[str, str], rid: str) -> None:
    created = await http.post(
        "/api/v1/rounds",
        json={"round_id": rid, "plan_id": "demo", "round_plan_id": "demo"},
        headers=headers,
    )
    assert created.status_code == 201, created.text


async def test_the_legacy_kickoff_tags_each_organisation_with_its_county(
    stack: Stack, county_c: CountyC, dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    """A round of county C run by the legacy round workflow: every organisation workflow it
    starts carries ``CzCounty`` = county C (it carried none before), and a search by county
    finds them."""
    rid = f"legacy-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        await _create_round(http, county_c.office, rid)
    engine = make_engine(stack.settings.database_url)
    with session_factory(engine)() as session:
        row = session.get(RoundRow, rid)
        assert row is not None and row.county == county_c.code
        definition = session.get(RoundDefinitionRow, rid)
        assert definition is not None
        plan = parse_plan(definition.plan_yaml)
        roster = write_roster_snapshot(session, tmp_path / f"{rid}.csv", county=county_c.code)
    engine.dispose()
    kickoff = RoundKickoff(
        round_id=rid,
        plan=plan,
        round_plan_id=definition.round_plan_id,
        roster_source=str(roster),
        actor=Actor(user=county_c.office_user, name="丙县县委活动办", role=Role.COUNTY_OFFICE),
        starts_at=datetime.now(UTC),
        batch_size=1,  # one organisation a batch: every batch goes through the activity
    )
    client = dev_server.client
    round_handle: WorkflowHandle[CampaignRoundWorkflow, object] = await client.start_workflow(
        CampaignRoundWorkflow.run,
        RoundInput(kickoff=kickoff),
        id=round_workflow_id(rid),
        task_queue=stack.settings.task_queue,
    )
    handles = [client.get_workflow_handle(organisation_workflow_id(rid, o)) for o in county_c.orgs]
    try:

        async def tagged() -> dict[str, str | None] | None:
            found: dict[str, str | None] = {}
            for handle in handles:
                try:
                    described = await handle.describe()
                except Exception:  # not started yet
                    return None
                found[handle.id] = described.typed_search_attributes.get(sa.COUNTY)
            return found

        counties = await wait_for(tagged, timeout=60)
        assert counties == {h.id: county_c.code for h in handles}

        async def listed() -> set[str] | None:
            query = f"CzCounty = '{county_c.code}' AND CzRound = '{rid}'"
            ids = {w.id async for w in client.list_workflows(query)}
            return ids if len(ids) >= len(handles) else None

        assert await wait_for(listed, timeout=30) == {h.id for h in handles}
        # The default county's tag never lands on county C's workflows.
        query = f"CzCounty = '{DEFAULT_COUNTY}' AND CzRound = '{rid}'"
        assert not [w.id async for w in client.list_workflows(query)]
    finally:
        for handle in (round_handle, *handles):
            with contextlib.suppress(Exception):  # already finished
                await handle.terminate(reason="测试结束")


def _names_other_county(body: str, *names: str) -> list[str]:
    return [n for n in names if n and n in body]


async def test_an_id_taken_in_the_other_county_is_answered_as_an_own_one(
    stack: Stack, county_c: CountyC
) -> None:
    """A round id, a username and an organisation id of the default county, tried by county
    C (and the other way round): refused with the answer an own duplicate gets, naming no
    county and nothing of the other county's."""
    own_round = f"own-{uuid.uuid4().hex[:8]}"
    theirs = f"theirs-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        county_a = await token(http, "county")
        await _create_round(http, county_c.office, own_round)
        await _create_round(http, county_a, theirs)
        rows: dict[str, tuple[str, str, str]] = {}
        for label, headers, rid in (
            ("own round", county_c.office, own_round),
            ("other county's round", county_c.office, theirs),
            ("county A, C's round", county_a, own_round),
        ):
            again = await http.post(
                "/api/v1/rounds",
                json={"round_id": rid, "plan_id": "demo", "round_plan_id": "demo"},
                headers=headers,
            )
            assert again.status_code == 409, (label, again.text)
            named = _names_other_county(
                again.text, county_c.code, county_c.name, DEFAULT_COUNTY_NAME, "default"
            )
            assert not named, (label, again.text)
            body = again.json()
            rows[label] = (body["code"], body["message"], repr(body.get("errors")))
        assert len(set(rows.values())) == 1, rows

        # A username of the default county, created by county C's office: the answer of
        # a username taken in its own county.
        answers = []
        for username in ("sec-a", county_c.office_user):
            made = await http.post(
                "/api/v1/accounts",
                json={"username": username, "display_name": "重名", "role": "assessment_group"},
                headers=county_c.office,
            )
            assert made.status_code == 409, made.text
            assert not _names_other_county(made.text, DEFAULT_COUNTY_NAME, "default"), made.text
            answers.append((made.json()["code"], made.json()["message"], made.json()["errors"]))
        assert answers[0] == answers[1]

        # An organisation id of the default county in county C's roster: refused whole,
        # naming the caller's own row, not the county that holds the id.
        stolen = ROSTER_C.format(p=f"{county_c.code}-org") + (
            "org-a,丙县试验村党支部,农村,城关镇,县农委,12,钱多,张指导\n"
        )
        refused = await http.post(
            "/api/v1/roster",
            files={"file": ("丙县名册.csv", stolen.encode())},
            headers=county_c.office,
        )
        assert refused.status_code == 422, refused.text
        # org-a's name and secretary as the default county has them are not told.
        assert not _names_other_county(
            refused.text, DEFAULT_COUNTY_NAME, "default", "东关村", "李明"
        ), refused.text
        # The default county still holds it.
        still = await http.get("/api/v1/organisations/org-a", headers=county_a)
        assert still.status_code == 200
        gone = await http.get("/api/v1/organisations/org-a", headers=county_c.office)
        assert gone.status_code == 404
    engine = make_engine(stack.settings.database_url)
    with session_factory(engine)() as session:
        counties = dict(
            session.execute(
                select(RoundRow.round_id, RoundRow.county).where(
                    RoundRow.round_id.in_((own_round, theirs))
                )
            ).all()
        )
    engine.dispose()
    assert counties == {own_round: county_c.code, theirs: DEFAULT_COUNTY}
