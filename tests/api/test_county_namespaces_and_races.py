"""Many counties on one deployment, and the county office's commands run at the same time,
over the real stack (Temporal dev server, the project's worker, uvicorn; SQLite and
PostgreSQL, as every API test):

* a county office may not create an account named into another county's namespace
  (``<county code>.``, what the roster names that county's accounts), 422 on ``username``;
  a name squatted before that rule is reported by the county's roster import, in Chinese,
  instead of skipped in silence;
* a roster naming another county's organisation id says the id cannot be used, without
  confirming that another county uses it;
* identical roster imports at once: one adds, the others find it unchanged, none fails;
* two county office accounts kicking off one round at once: both succeed with the same
  round, and one set of workflows runs.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import func, select
from temporalio.testing import WorkflowEnvironment

from activities.db import make_engine, session_factory
from activities.tables import AuditRow, OrganisationRow, RoundRow, UserRow
from api.auth import upsert_user
from chuangzheng.services.counties import create_county
from domain.organisation import DEFAULT_COUNTY, Role
from tests.api.conftest import PASSWORD, Stack, token, wait_for
from workflows.ids import organisation_workflow_id, round_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")

HEADER = "组织编号,组织名称,组织类型,所属乡镇,所属系统,党员人数,书记,指导员"


def _csv(*rows: str) -> dict[str, tuple[str, bytes]]:
    return {"file": ("名册.csv", ("\n".join((HEADER, *rows)) + "\n").encode())}


def _new_county(stack: Stack) -> str:
    """A county with a 6-digit code (as deployments name them) and its office
    ``<code>.county``; returns the code."""
    code = f"9{secrets.randbelow(10**5):05d}"
    engine = make_engine(stack.settings.database_url)
    with session_factory(engine).begin() as session:
        create_county(session, code=code, name=f"测试县{code}", now=datetime.now(UTC))
        upsert_user(session, username=f"{code}.county", display_name="县委活动办",
                    password=PASSWORD, role=Role.COUNTY_OFFICE, county=code)  # fmt: skip
    engine.dispose()
    return code


def _account(stack: Stack, username: str) -> UserRow | None:
    engine = make_engine(stack.settings.database_url)
    with session_factory(engine)() as session:
        row = session.get(UserRow, username)
    engine.dispose()
    return row


async def test_another_countys_namespace_is_refused_and_a_squatted_name_is_reported(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    b = _new_county(stack)
    county_a, office_b = await token(http, "county"), await token(http, f"{b}.county")
    squatted = f"{b}.township-新村镇"

    # County A's office may not name an account into county B's namespace, in any role.
    for body in (
        {"username": squatted, "display_name": "占位", "role": "county_office", "scope_key": ""},
        {"username": f"{b}.secretary-x", "display_name": "占位", "role": "assessment_group"},
        # A county that does not exist yet: its 6-digit code is kept for it all the same.
        {"username": "999999.township-新村镇", "display_name": "占位", "role": "county_office"},
    ):
        refused = await http.post("/api/v1/accounts", json=body, headers=county_a)
        assert refused.status_code == 422, refused.text
        [error] = refused.json()["errors"]
        assert error["field"] == "username" and "其他县（区）的代码" in error["reason"], error
        assert _account(stack, body["username"]) is None
    # County B's office may not take the default county's roster names either.
    refused = await http.post(
        "/api/v1/accounts",
        json={"username": "township-新村镇", "display_name": "占位", "role": "county_office"},
        headers=office_b,
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "username"
    # Its own namespace is its own.
    own = await http.post(
        "/api/v1/accounts",
        json={"username": f"{b}.assess", "display_name": "考核组", "role": "assessment_group"},
        headers=office_b,
    )
    assert own.status_code == 201, own.text

    # A name squatted before the rule (county A's account with county B's prefix): B's
    # roster import reports the account it could not make instead of skipping it.
    engine = make_engine(stack.settings.database_url)
    with session_factory(engine).begin() as session:
        upsert_user(session, username=squatted, display_name="占位", password=PASSWORD,
                    role=Role.COUNTY_OFFICE, county=DEFAULT_COUNTY)  # fmt: skip
    engine.dispose()
    row = f"{b}-org-1,新村镇东村党支部,农村,新村镇,县农委,20,钱一,孙二"
    imported = await http.post("/api/v1/roster", files=_csv(row), headers=office_b)
    assert imported.status_code == 200, imported.text
    report = imported.json()
    # The secretary and the instructor got theirs; the township's is taken.
    assert (report["added"], report["accounts_created"], report["accounts_taken"]) == (1, 3, 1)
    [taken] = report["taken_accounts"]
    assert (taken["username"], taken["role"], taken["scope_key"]) == (
        squatted, "township", "新村镇",
    )  # fmt: skip
    assert squatted in taken["reason"] and "新村镇党委" in taken["reason"]
    assert "其他账号" in taken["reason"] and DEFAULT_COUNTY not in taken["reason"]
    squatter = _account(stack, squatted)
    assert squatter is not None and squatter.county == DEFAULT_COUNTY  # left as it was
    # Said again at every import until someone deals with it (here: the squatter goes);
    # then the township gets its account, and a report with nothing taken carries no such
    # fields (the answer as it always was).
    again = await http.post("/api/v1/roster", files=_csv(row), headers=office_b)
    assert again.status_code == 200, again.text
    assert (again.json()["accounts_taken"], again.json()["accounts_created"]) == (1, 0)
    engine = make_engine(stack.settings.database_url)
    with session_factory(engine).begin() as session:
        session.delete(session.get(UserRow, squatted))
    engine.dispose()
    freed = await http.post("/api/v1/roster", files=_csv(row), headers=office_b)
    assert freed.status_code == 200, freed.text
    assert freed.json()["accounts_created"] == 1
    assert "accounts_taken" not in freed.json() and "taken_accounts" not in freed.json()
    township = _account(stack, squatted)
    assert township is not None and (township.county, township.role) == (b, "township")


async def test_another_countys_id_is_not_confirmed(http: httpx.AsyncClient, stack: Stack) -> None:
    b = _new_county(stack)
    office_b = await token(http, f"{b}.county")
    stolen = "org-a,城关镇东关村党支部,农村,城关镇,县农委,42,李明,张指导"
    own = f"{b}-org-1,东关村党支部,农村,东关镇,县农委,30,刘三,王二"
    refused = await http.post("/api/v1/roster", files=_csv(own, stolen), headers=office_b)
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"] == [
        {"field": "第3行·组织编号", "reason": "组织编号“org-a”不可用，请核对或联系上级组织部"}
    ]


async def test_identical_roster_imports_at_once_never_fail(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    b = _new_county(stack)
    office_b = await token(http, f"{b}.county")
    first = f"{b}-org-1,东关村党支部,农村,东关镇,县农委,30,刘三,王二"
    settled = await http.post("/api/v1/roster", files=_csv(first), headers=office_b)
    assert settled.status_code == 200, settled.text
    # The same file adding one organisation, eight times at once.
    added = f"{b}-org-2,西关村党支部,农村,东关镇,县农委,12,李四,王二"
    answers = await asyncio.gather(
        *(http.post("/api/v1/roster", files=_csv(first, added), headers=office_b)
          for _ in range(8))
    )  # fmt: skip
    statuses = [a.status_code for a in answers]
    assert statuses == [200] * 8, [a.text for a in answers]
    reports = sorted((a.json()["added"], a.json()["unchanged"]) for a in answers)
    assert reports == [(0, 2)] * 7 + [(1, 1)], reports
    assert sum(a.json()["accounts_created"] for a in answers) == 1  # the new secretary, once
    engine = make_engine(stack.settings.database_url)
    with session_factory(engine)() as session:
        count = session.scalar(
            select(func.count()).select_from(OrganisationRow).where(OrganisationRow.county == b)
        )
        imports = session.scalar(
            select(func.count()).select_from(AuditRow).where(
                AuditRow.action == "roster.import", AuditRow.user == f"{b}.county"
            )
        )  # fmt: skip
    engine.dispose()
    assert (count, imports) == (2, 9)


async def test_two_offices_kicking_off_one_round_at_once_both_succeed(
    http: httpx.AsyncClient, stack: Stack, dev_server: WorkflowEnvironment
) -> None:
    # A second account of the default county's office: the kick-off that is not the
    # creator's also changes who kicked off (once the first is in: nothing).
    second = f"county-2-{uuid.uuid4().hex[:6]}"
    engine = make_engine(stack.settings.database_url)
    with session_factory(engine).begin() as session:
        upsert_user(session, username=second, display_name="县委活动办（二）",
                    password=PASSWORD, role=Role.COUNTY_OFFICE)  # fmt: skip
    engine.dispose()
    county, county_2 = await token(http, "county"), await token(http, second)
    rid = f"race-{uuid.uuid4().hex[:8]}"
    created = await http.post(
        "/api/v1/rounds",
        json={"round_id": rid, "plan_id": "demo", "round_plan_id": "demo"},
        headers=county,
    )
    assert created.status_code == 201, created.text

    answers = await asyncio.gather(
        http.post(f"/api/v1/rounds/{rid}/kickoff", headers=county),
        http.post(f"/api/v1/rounds/{rid}/kickoff", headers=county_2),
    )
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    one, two = (a.json() for a in answers)
    assert one["round_id"] == two["round_id"] == rid
    assert one["status"] == two["status"] == "running"
    assert one["kicked_off_at"] == two["kicked_off_at"] is not None
    assert one["starts_at"] == two["starts_at"]

    engine = make_engine(stack.settings.database_url)
    with session_factory(engine)() as session:
        row = session.get(RoundRow, rid)
        kicked = session.scalars(
            select(AuditRow.user).where(
                AuditRow.round_id == rid, AuditRow.action == "round_kicked_off"
            )
        ).all()
    engine.dispose()
    assert row is not None and row.status == "running"
    assert len(kicked) == 1 and row.kicked_off_by == kicked[0]
    snapshots = stack.settings.data_dir / "rosters"
    assert (snapshots / f"{rid}.csv").is_file()
    assert not [p.name for p in snapshots.iterdir() if rid in p.name and p.suffix == ".tmp"]

    # One set of workflows: one run of the round's, one of each organisation's.
    client = dev_server.client
    orgs = ("org-a", "org-b", "org-c")
    ids = [round_workflow_id(rid), *(organisation_workflow_id(rid, o) for o in orgs)]

    async def one_run_each() -> bool:
        runs = [len([w async for w in client.list_workflows(f'WorkflowId = "{w}"')]) for w in ids]
        return runs == [1] * len(ids)

    await wait_for(one_run_each)
