"""A county with a seventh guidance group defined as data (issue 15, seed 002 §六(二)) over
the real stack (Temporal dev server, the project's worker, uvicorn; SQLite and PostgreSQL,
as every API test).

County ``七县`` (code ``qixian-<random>``) is created with seed 002's six groups. Its office
defines 街道社区指导小组 (key ``community``, led by 县委组织部), which the seed does not name,
and imports a roster putting two 社区 branches in it and a village in 农村基层组织; before the
group exists the same roster is refused naming the row and column. The import creates the
``guidance-community`` account; signed in, it lists the two branches and nothing else (404
on the village), and the county's label shows in the API, on the organisation page, the
overview's filter and the export of a round kicked off over the real Temporal stack. (That
the ladder's guidance-group rung reaches this account's inbox is
``tests/workflows/test_guidance_group_rung.py``.)
"""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
import pytest_asyncio
from openpyxl import load_workbook  # type: ignore[import-untyped]
from sqlalchemy import select

from activities.db import make_engine, session_factory
from activities.tables import AuditRow, SystemRow, UserRow
from api.auth import upsert_user
from chuangzheng.services.counties import create_county
from domain.accounts import AccountSource
from domain.organisation import Role
from tests.api.conftest import PASSWORD, Stack, token, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")

ROSTER = """组织编号,组织名称,组织类型,所属乡镇,所属系统,党员人数,书记,指导员
{p}-1,城关镇东街社区党支部,社区,城关镇,街道社区指导小组,26,赵东,钱指导
{p}-2,城关镇西街社区党支部,社区,城关镇,县委组织部,19,赵西,钱指导
{p}-3,城关镇南村党支部,农村,城关镇,县农委,31,孙南,钱指导
"""
LABEL = "街道社区指导小组（县委组织部）"


@dataclass(frozen=True)
class Seventh:
    """The county, its organisations, round and the tokens of its people."""

    code: str
    orgs: tuple[str, str, str]
    round_id: str
    tokens: dict[str, dict[str, str]]

    def cookie(self, user: str) -> dict[str, str]:
        """The pages' cookie for ``user``."""
        bearer = self.tokens[user]["Authorization"].removeprefix("Bearer ")
        return {"Cookie": f"cz_token={bearer}"}


def _roster(prefix: str) -> dict[str, tuple[str, bytes, str]]:
    return {"file": ("七县名册.csv", ROSTER.format(p=prefix).encode(), "text/csv")}


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def seventh(stack: Stack) -> AsyncIterator[Seventh]:
    code = f"qixian-{uuid.uuid4().hex[:6]}"
    office, group_user = f"{code}.county", f"{code}.guidance-community"
    prefix = f"{code}-org"
    engine = make_engine(stack.settings.database_url)
    with session_factory(engine).begin() as session:
        create_county(session, code=code, name="七县", now=datetime.now(UTC))
        upsert_user(session, username=office, display_name="七县县委活动办",
                    password=PASSWORD, role=Role.COUNTY_OFFICE, county=code)  # fmt: skip
    round_id = f"g7-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        tokens = {office: await token(http, office)}
        # Before the county defines the group, its roster is refused, naming row and column.
        refused = await http.post("/api/v1/roster", files=_roster(prefix), headers=tokens[office])
        assert refused.status_code == 422, refused.text
        problems = {e["field"]: e["reason"] for e in refused.json()["errors"]}
        assert list(problems) == ["第2行·所属系统", "第3行·所属系统"], problems
        assert problems["第2行·所属系统"].startswith("“街道社区指导小组”不是本县已设立的指导小组")
        defined = await http.put(
            "/api/v1/guidance-groups/community",
            json={"name": "街道社区指导小组", "department": "县委组织部"},
            headers=tokens[office],
        )
        assert defined.status_code == 200, defined.text
        assert defined.json()["label"] == LABEL
        imported = await http.post("/api/v1/roster", files=_roster(prefix), headers=tokens[office])
        assert imported.status_code == 200, imported.text
        assert imported.json()["added"] == 3
        # The import made the group's account (no password yet): give it one, as activation would.
        with session_factory(engine).begin() as session:
            made = session.get(UserRow, group_user)
            assert made is not None, "no guidance-community account"
            assert (made.role, made.scope_key, made.display_name) == (
                "guidance_group", "community", LABEL,
            )  # fmt: skip
            upsert_user(session, username=group_user, display_name=made.display_name,
                        password=PASSWORD, role=Role.GUIDANCE_GROUP, scope_key="community",
                        source=AccountSource.ROSTER, county=code)  # fmt: skip
            rural = session.get(UserRow, f"{code}.guidance-rural")
            assert rural is not None and rural.scope_key == "rural"
        tokens[group_user] = await token(http, group_user)
        created = await http.post(
            "/api/v1/rounds",
            json={"round_id": round_id, "plan_id": "demo", "round_plan_id": "demo"},
            headers=tokens[office],
        )
        assert created.status_code == 201, created.text
        kicked = await http.post(f"/api/v1/rounds/{round_id}/kickoff", headers=tokens[office])
        assert kicked.status_code == 200, kicked.text
        orgs = (f"{prefix}-1", f"{prefix}-2", f"{prefix}-3")

        async def started() -> bool:
            for org in orgs:
                r = await http.get(
                    f"/api/v1/rounds/{round_id}/organisations/{org}/status",
                    headers=tokens[office],
                )
                if r.status_code != 200:
                    return False
            return True

        await wait_for(started)
    engine.dispose()
    yield Seventh(code, orgs, round_id, tokens)


async def test_the_seventh_groups_account_sees_only_its_organisations(
    stack: Stack, seventh: Seventh
) -> None:
    group = seventh.tokens[f"{seventh.code}.guidance-community"]
    comm_1, comm_2, village = seventh.orgs
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        listed = await http.get(
            "/api/v1/organisations", params={"round_id": seventh.round_id}, headers=group
        )
        assert listed.status_code == 200, listed.text
        assert {o["org_id"] for o in listed.json()} == {comm_1, comm_2}
        assert {(o["system"], o["system_label"]) for o in listed.json()} == {("community", LABEL)}
        for path in (
            f"/api/v1/organisations/{village}",
            f"/api/v1/rounds/{seventh.round_id}/organisations/{village}/status",
            "/api/v1/organisations/org-a",  # the default county's, of another group too
        ):
            assert (await http.get(path, headers=group)).status_code == 404, path
        own = await http.get(f"/api/v1/organisations/{comm_1}", headers=group)
        assert own.status_code == 200 and own.json()["system_label"] == LABEL
        page = await http.get(
            f"/ui/orgs/{village}?round={seventh.round_id}",
            headers=seventh.cookie(f"{seventh.code}.guidance-community"),
        )
        assert page.status_code == 404
        # The office filters by the group and sees the three; by it, the two.
        office = seventh.tokens[f"{seventh.code}.county"]
        by_group = await http.get(
            "/api/v1/organisations", params={"system": "community"}, headers=office
        )
        assert {o["org_id"] for o in by_group.json()} == {comm_1, comm_2}
        bad = await http.get("/api/v1/organisations", params={"system": "社区"}, headers=office)
        assert bad.status_code == 422


async def test_the_countys_label_shows_on_the_pages_and_exports(
    stack: Stack, seventh: Seventh
) -> None:
    office = f"{seventh.code}.county"
    comm_1 = seventh.orgs[0]
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        page = await http.get(
            f"/ui/orgs/{comm_1}?round={seventh.round_id}", headers=seventh.cookie(office)
        )
        assert page.status_code == 200, page.text
        assert "城关镇 · 街道社区指导小组 · " in page.text
        overview = await http.get(
            f"/ui/overview?round={seventh.round_id}", headers=seventh.cookie(office)
        )
        assert overview.status_code == 200
        assert '<option value="community" >街道社区指导小组</option>' in overview.text
        systems = await http.get("/ui/systems", headers=seventh.cookie(office))
        assert systems.status_code == 200
        assert 'data-key="community"' in systems.text and "县委组织部" in systems.text
        export = await http.get(
            f"/ui/export/organisations.xlsx?round={seventh.round_id}",
            headers=seventh.cookie(office),
        )
        assert export.status_code == 200
        sheet = load_workbook(io.BytesIO(export.content)).active
        by_org = {row[0]: row[3] for row in sheet.iter_rows(min_row=2, values_only=True)}
        assert by_org[comm_1] == "街道社区指导小组"
        assert by_org[seventh.orgs[2]] == "农村基层组织指导小组"


async def test_only_the_county_office_defines_groups_and_each_change_is_audited(
    stack: Stack, seventh: Seventh
) -> None:
    office = seventh.tokens[f"{seventh.code}.county"]
    group = seventh.tokens[f"{seventh.code}.guidance-community"]
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        body = {"name": "街道社区指导小组", "department": "县委组织部"}
        refused = await http.put("/api/v1/guidance-groups/community", json=body, headers=group)
        assert refused.status_code == 403
        bad = await http.put("/api/v1/guidance-groups/Bad%20Key", json={"name": ""}, headers=office)
        assert bad.status_code == 422
        assert {e["field"] for e in bad.json()["errors"]} == {"key", "name"}
        renamed = await http.put(
            "/api/v1/guidance-groups/community",
            json={"name": "城市社区指导小组", "department": "县委组织部"},
            headers=office,
        )
        assert renamed.status_code == 200, renamed.text
        listed = await http.get("/api/v1/guidance-groups", headers=group)
        assert listed.status_code == 200
        groups = {g["key"]: g for g in listed.json()}
        assert len(groups) == 7 and groups["community"]["organisations"] == 2
        assert groups["community"]["label"] == "城市社区指导小组（县委组织部）"
        # The default county keeps its six (other tests may add groups of their own there).
        default = await http.get("/api/v1/guidance-groups", headers=await token(http, "county"))
        keys = [g["key"] for g in default.json()]
        assert keys[:6] == ["rural", "organs", "education", "non_public", "social", "health"]
        assert "community" not in keys or "城市社区指导小组" not in default.text
        # Put it back for the other tests of the module.
        await http.put("/api/v1/guidance-groups/community", json=body, headers=office)
    engine = make_engine(stack.settings.database_url)
    with session_factory(engine)() as session:
        audited = session.scalars(
            select(AuditRow)
            .where(
                AuditRow.action == "guidance_group.saved",
                AuditRow.user == f"{seventh.code}.county",
            )
            .order_by(AuditRow.at)
        ).all()
        assert [a.detail["created"] for a in audited] == [True, False, False]
        assert audited[1].detail["before"] == LABEL
        keys = session.scalars(select(SystemRow.key).where(SystemRow.county == seventh.code)).all()
        assert sorted(keys) == sorted(
            ["rural", "organs", "education", "non_public", "social", "health", "community"]
        )
    engine.dispose()
