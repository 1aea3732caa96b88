"""Many counties on one deployment (issue 14): two counties, each with its roster, accounts
and a running round, on the real stack (Temporal dev server, the project's worker, uvicorn;
SQLite and PostgreSQL, as every API test).

The shared stack's county is the embedded default county (org-a, org-b, org-c; 城关镇 and
青石镇). This module adds county ``乙县`` (code ``yixian-<random>``) whose roster names the
same township 城关镇 and the same instructor 张指导, imported over HTTP by its own county
office, and a round of each county kicked off over HTTP. Then:

* every list, page, export and action of one county's people is blind to the other (404);
* the same township name in both counties stays two townships with two accounts;
* a province office supervising both sees both side by side and can act in neither (403);
* a roster naming an organisation id of the other county is refused whole (422).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from activities.db import make_engine, session_factory
from activities.tables import NoticeRow, OrganisationRow, RoundRow, TownshipRow, UserRow
from activities.tables.access import AccountCountyRow
from api.auth import upsert_user
from chuangzheng.services.counties import create_county
from domain.accounts import AccountSource
from domain.organisation import DEFAULT_COUNTY, Role
from tests.api.conftest import PASSWORD, Stack, start_demo_round, token, wait_for
from workflows import search_attributes as sa
from workflows.ids import organisation_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")

#: County B's roster: the same township name and instructor as the default county's.
ROSTER_B = """组织编号,组织名称,组织类型,所属乡镇,所属系统,党员人数,书记,指导员
{p}-1,城关镇南街村党支部,农村,城关镇,县农委,30,孙红,张指导
{p}-2,城关镇北街社区党支部,社区,城关镇,县农委,21,周亮,张指导
{p}-3,白水乡河口村党支部,农村,白水乡,县农委,15,吴刚,陈指导
"""


@dataclass(frozen=True)
class Counties:
    """The two counties' objects and the tokens of the people in them."""

    b: str  # county B's code
    round_a: str
    round_b: str
    orgs_b: tuple[str, ...]
    tokens: dict[str, dict[str, str]]
    notices: dict[str, str]

    def cookie(self, user: str) -> dict[str, str]:
        """The pages' cookie for ``user`` (the same token as the API's header)."""
        bearer = self.tokens[user]["Authorization"].removeprefix("Bearer ")
        return {"Cookie": f"cz_token={bearer}"}


def _notice(stack: Stack, rid: str, org: str, role: str, key: str) -> str:
    """A notice as the workflow writes it, addressed to ``role``/``key`` about ``org``."""
    engine = make_engine(stack.settings.database_url)
    notice_id = f"counties/{rid}/{uuid.uuid4().hex[:10]}"
    now = datetime.now(UTC)
    with session_factory(engine).begin() as session:
        session.add(
            NoticeRow(
                notice_id=notice_id, round_id=rid, org_id=org, org_name=org,
                phase="mobilisation", kind="reminder", rung=None, recipient_role=role,
                recipient_key=key, recipient_label=key, title="多县测试", body="多县测试",
                link_path="/", created_at=now, delivered_at=now, read_at=None,
            )
        )  # fmt: skip
    engine.dispose()
    return notice_id


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def counties(stack: Stack) -> AsyncIterator[Counties]:
    b = f"yixian-{uuid.uuid4().hex[:6]}"
    prefix = f"{b}-org"
    office_b, province = f"{b}.county", f"province-{b}"
    engine = make_engine(stack.settings.database_url)
    with session_factory(engine).begin() as session:
        create_county(session, code=b, name="乙县", now=datetime.now(UTC))
        upsert_user(session, username=office_b, display_name="乙县县委活动办",
                    password=PASSWORD, role=Role.COUNTY_OFFICE, county=b)  # fmt: skip
        upsert_user(session, username=province, display_name="省委组织部",
                    password=PASSWORD, role=Role.PROVINCE_OFFICE, county="")  # fmt: skip
        session.add_all(AccountCountyRow(username=province, county=c) for c in (DEFAULT_COUNTY, b))
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        tokens = {u: await token(http, u) for u in ("county", "tw-chengguan", "ins-zhang",
                                                     "sec-a", office_b, province)}  # fmt: skip
        imported = await http.post(
            "/api/v1/roster",
            files={"file": ("乙县名册.csv", ROSTER_B.format(p=prefix).encode())},
            headers=tokens[office_b],
        )
        assert imported.status_code == 200, imported.text
        assert imported.json()["added"] == 3
    # The roster made county B's accounts (prefixed with its code); give two a password,
    # as activating them with their codes would.
    with session_factory(engine).begin() as session:
        made = {r.username: r for r in session.scalars(select(UserRow).where(UserRow.county == b))}
        assert f"{b}.township-城关镇" in made and f"{b}.instructor-张指导" in made, sorted(made)
        for username in (f"{b}.township-城关镇", f"{b}.instructor-张指导"):
            row = made[username]
            upsert_user(session, username=username, display_name=row.display_name,
                        password=PASSWORD, role=Role(row.role), scope_key=row.scope_key,
                        source=AccountSource.ROSTER, county=b)  # fmt: skip
    engine.dispose()
    round_a = await start_demo_round(stack, f"ca-{uuid.uuid4().hex[:8]}")
    round_b = f"cb-{uuid.uuid4().hex[:8]}"
    orgs_b = tuple(f"{prefix}-{n}" for n in (1, 2, 3))
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        office = await token(http, office_b)
        created = await http.post(
            "/api/v1/rounds",
            json={"round_id": round_b, "plan_id": "demo", "round_plan_id": "demo"},
            headers=office,
        )
        assert created.status_code == 201, created.text
        kicked = await http.post(f"/api/v1/rounds/{round_b}/kickoff", headers=office)
        assert kicked.status_code == 200, kicked.text

        async def started() -> bool:
            for org in orgs_b:
                r = await http.get(
                    f"/api/v1/rounds/{round_b}/organisations/{org}/status", headers=office
                )
                if r.status_code != 200:
                    return False
            return True

        await wait_for(started)
        for username in (f"{b}.township-城关镇", f"{b}.instructor-张指导"):
            tokens[username] = await token(http, username)
    notices = {
        "county": _notice(stack, round_a, "org-a", "county_office", "county"),
        "tw-chengguan": _notice(stack, round_a, "org-a", "township", "城关镇"),
        "ins-zhang": _notice(stack, round_a, "org-a", "instructor", "张指导"),
        office_b: _notice(stack, round_b, orgs_b[0], "county_office", "county"),
        f"{b}.township-城关镇": _notice(stack, round_b, orgs_b[0], "township", "城关镇"),
        f"{b}.instructor-张指导": _notice(stack, round_b, orgs_b[0], "instructor", "张指导"),
    }
    yield Counties(b, round_a, round_b, orgs_b, tokens, notices)


async def _org_ids(http: httpx.AsyncClient, headers: dict[str, str], rid: str) -> set[str]:
    listed = await http.get("/api/v1/organisations", params={"round_id": rid}, headers=headers)
    assert listed.status_code == 200, listed.text
    return {o["org_id"] for o in listed.json()}


async def _at_least(read: Callable[[], Awaitable[set[str]]], count: int) -> set[str] | None:
    """``read()``'s answer once it holds ``count`` ids (visibility lags the start a little)."""
    found = await read()
    return found if len(found) >= count else None


async def test_the_round_of_each_county_runs_over_its_own_organisations(
    stack: Stack, counties: Counties, dev_server: WorkflowEnvironment
) -> None:
    engine = make_engine(stack.settings.database_url)
    with session_factory(engine)() as session:
        assert session.get(RoundRow, counties.round_b).county == counties.b  # type: ignore[union-attr]
        assert session.get(RoundRow, counties.round_a).county == DEFAULT_COUNTY  # type: ignore[union-attr]
        in_b = set(
            session.scalars(
                select(OrganisationRow.org_id).where(OrganisationRow.county == counties.b)
            )
        )
    engine.dispose()
    assert in_b == set(counties.orgs_b)
    office_b = counties.tokens[f"{counties.b}.county"]
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        assert await _org_ids(http, office_b, counties.round_b) == set(counties.orgs_b)
        county_a = counties.tokens["county"]
        assert await _org_ids(http, county_a, counties.round_a) == {"org-a", "org-b", "org-c"}
        # The round's status rows: only the county's own organisations were started.
        counts = await http.get(
            f"/api/v1/rounds/{counties.round_b}/supervision/counts", headers=office_b
        )
        assert counts.status_code == 200, counts.text
        assert sum(g["total"] for g in counts.json()) == 3
    # Each organisation workflow carries its county as a search attribute, set at start.
    for rid, org, county in ((counties.round_b, counties.orgs_b[0], counties.b),
                             (counties.round_a, "org-a", DEFAULT_COUNTY)):  # fmt: skip
        described = await dev_server.client.get_workflow_handle(
            organisation_workflow_id(rid, org)
        ).describe()
        assert described.typed_search_attributes.get(sa.COUNTY) == county

    async def listed_by_county() -> set[str]:
        query = f"CzCounty = '{counties.b}' AND CzRound = '{counties.round_b}'"
        return {w.id async for w in dev_server.client.list_workflows(query)}

    found = await wait_for(lambda: _at_least(listed_by_county, len(counties.orgs_b)), timeout=30)
    assert found == {organisation_workflow_id(counties.round_b, o) for o in counties.orgs_b}


async def test_one_countys_people_are_blind_to_the_other(stack: Stack, counties: Counties) -> None:
    """Every list, page, export and action of one county's people answers 404 on the other
    county's rounds and organisations, in both directions."""
    b = counties.b
    sides = {
        # user: (own round, own org, other round, other org)
        "county": (counties.round_a, "org-a", counties.round_b, counties.orgs_b[0]),
        "tw-chengguan": (counties.round_a, "org-a", counties.round_b, counties.orgs_b[0]),
        "ins-zhang": (counties.round_a, "org-a", counties.round_b, counties.orgs_b[0]),
        "sec-a": (counties.round_a, "org-a", counties.round_b, counties.orgs_b[0]),
        f"{b}.county": (counties.round_b, counties.orgs_b[0], counties.round_a, "org-a"),
        f"{b}.township-城关镇": (counties.round_b, counties.orgs_b[0], counties.round_a, "org-a"),
        f"{b}.instructor-张指导": (
            counties.round_b, counties.orgs_b[0], counties.round_a, "org-a",
        ),
    }  # fmt: skip
    probes = (
        ("GET", "/api/v1/rounds/{round}", None, False),
        ("GET", "/api/v1/organisations/{org}", None, False),
        ("GET", "/api/v1/rounds/{round}/organisations/{org}/status", None, False),
        ("GET", "/api/v1/rounds/{round}/organisations/{org}/timeline", None, False),
        ("GET", "/api/v1/rounds/{round}/supervision/counts", None, False),
        ("GET", "/api/v1/rounds/{round}/supervision/overdue", None, False),
        ("GET", "/api/v1/rounds/{round}/supervision/escalations", None, False),
        ("GET", "/api/v1/rounds/{round}/commendation/declarations", None, False),
        ("GET", "/api/v1/organisations/{org}/members", None, False),
        ("GET", "/api/v1/rounds/{round}/organisations/{org}/commitments", None, False),
        ("GET", "/api/v1/rounds/{round}/organisations/{org}/evaluations", None, False),
        ("POST", "/api/v1/rounds/{round}/organisations/{org}/decisions",
         {"step_id": "no-such-step", "accept": True}, False),
        ("POST", "/api/v1/rounds/{round}/organisations/{org}/submissions",
         {"step_id": "no-such-step", "values": {}}, False),
        ("POST", "/api/v1/rounds/{round}/kickoff", None, False),
        ("POST", "/api/v1/rounds/{round}/close", {"reason": "多县测试"}, False),
        ("GET", "/ui/orgs/{org}?round={round}", None, True),
        ("GET", "/ui/overview?round={round}", None, True),
        ("GET", "/ui/laggards?round={round}", None, True),
        ("GET", "/ui/export/laggards.xlsx?round={round}", None, True),
        ("GET", "/ui/export/organisations.xlsx?round={round}", None, True),
        ("GET", "/ui/export/orgs/{org}/timeline.xlsx?round={round}", None, True),
        ("GET", "/ui/supervision?round={round}", None, True),
    )  # fmt: skip
    wrong: list[str] = []
    async with httpx.AsyncClient(
        base_url=stack.base_url, timeout=60, follow_redirects=False
    ) as http:
        for user, (own_round, own_org, other_round, other_org) in sides.items():
            for method, path, body, is_page in probes:
                headers = counties.cookie(user) if is_page else counties.tokens[user]
                kwargs = {"headers": headers, "json": body} if body else {"headers": headers}
                # The other county's round with its organisation, the own round with the
                # other's organisation, and the other round with the own organisation.
                for rid, org in ((other_round, other_org), (own_round, other_org),
                                 (other_round, own_org)):  # fmt: skip
                    if "{org}" not in path and rid == own_round:
                        continue
                    if "{round}" not in path and org == own_org:
                        continue
                    url = path.format(round=rid, org=org)
                    got = (await http.request(method, url, **kwargs)).status_code
                    if got != 404:
                        wrong.append(f"{user}: {method} {url} -> {got}")
        assert not wrong, "\n".join(wrong)

        # Lists: rounds, organisations, accounts, inboxes hold only the own county's.
        for user, (own_round, _, other_round, _) in sides.items():
            headers = counties.tokens[user]
            rounds = {
                r["round_id"] for r in (await http.get("/api/v1/rounds", headers=headers)).json()
            }
            assert own_round in rounds and other_round not in rounds, user
            listed = await http.get("/api/v1/organisations", headers=headers)
            in_b = {o["org_id"] for o in listed.json()} & set(counties.orgs_b)
            if user.startswith(b):
                assert in_b and not {o["org_id"] for o in listed.json()} & {"org-a", "org-b"}
            else:
                assert not in_b, user
        # Inboxes: the same recipient key (county, 城关镇, 张指导) in both counties, and
        # each inbox holds its own county's notice only, whatever round it asks for.
        for user, notice_id in counties.notices.items():
            own_round, _, other_round, _ = sides[user]
            headers = counties.tokens[user]
            mine = await http.get("/api/v1/notices", params={"round_id": own_round, "limit": 500},
                                  headers=headers)  # fmt: skip
            assert mine.status_code == 200, mine.text
            assert notice_id in {n["notice_id"] for n in mine.json()}, user
            every = await http.get("/api/v1/notices", params={"limit": 500}, headers=headers)
            assert every.status_code == 200, every.text
            assert other_round not in {n["round_id"] for n in every.json()}, user
            assert not {n["notice_id"] for n in every.json()} & (
                set(counties.notices.values()) - {notice_id}
            ), user
            theirs = await http.get("/api/v1/notices", params={"round_id": other_round},
                                    headers=headers)  # fmt: skip
            assert theirs.status_code == 404, user
            others = set(counties.notices.values()) - {notice_id}
            for other in others:
                read = await http.post(f"/api/v1/notices/{other}/read",
                                       headers=counties.tokens[user])  # fmt: skip
                assert read.status_code == 404, (user, other)

        async def account_names(user: str, q: str) -> set[str]:
            found = await http.get("/api/v1/accounts", params={"q": q, "limit": 200},
                                   headers=counties.tokens[user])  # fmt: skip
            assert found.status_code == 200, found.text
            return {a["username"] for a in found.json()["items"]}

        assert "sec-a" in await account_names("county", "sec-a")
        assert not await account_names("county", b)  # none of county B's accounts
        assert f"{b}.township-城关镇" in await account_names(f"{b}.county", "township")
        assert not await account_names(f"{b}.county", "sec-a")
        other_account = await http.get("/api/v1/accounts/sec-a",
                                       headers=counties.tokens[f"{b}.county"])  # fmt: skip
        assert other_account.status_code == 404
        # With no round named, a county's pages open on its own newest round.
        overview = await http.get("/ui/overview", headers=counties.cookie(f"{b}.county"))
        assert overview.status_code == 200 and counties.round_a not in overview.text


async def test_the_same_township_name_stays_two_townships(stack: Stack, counties: Counties) -> None:
    b = counties.b
    engine = make_engine(stack.settings.database_url)
    with session_factory(engine)() as session:
        both = set(
            session.execute(
                select(TownshipRow.county, TownshipRow.name).where(TownshipRow.name == "城关镇")
            ).all()
        )
    engine.dispose()
    assert {(DEFAULT_COUNTY, "城关镇"), (b, "城关镇")} <= both
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        a_sees = await _org_ids(http, counties.tokens["tw-chengguan"], counties.round_a)
        b_sees = await _org_ids(http, counties.tokens[f"{b}.township-城关镇"], counties.round_b)
        assert a_sees == {"org-a", "org-b"}
        assert b_sees == set(counties.orgs_b[:2])
        # The same instructor's name in both counties: two people, two scopes.
        assert await _org_ids(http, counties.tokens["ins-zhang"], counties.round_a) == {
            "org-a", "org-b",
        }  # fmt: skip
        assert await _org_ids(
            http, counties.tokens[f"{b}.instructor-张指导"], counties.round_b
        ) == set(counties.orgs_b[:2])
        # Filtering by the township name within a county's round stays in that county.
        listed = await http.get(
            "/api/v1/organisations",
            params={"township": "城关镇"},
            headers=counties.tokens[f"{b}.county"],
        )
        assert {o["org_id"] for o in listed.json()} == set(counties.orgs_b[:2])


async def test_a_province_office_sees_both_and_acts_in_neither(
    stack: Stack, counties: Counties
) -> None:
    b = counties.b
    province = counties.tokens[f"province-{b}"]
    page = counties.cookie(f"province-{b}")
    async with httpx.AsyncClient(
        base_url=stack.base_url, timeout=60, follow_redirects=False
    ) as http:
        side_by_side = await http.get("/api/v1/counties", headers=province)
        assert side_by_side.status_code == 200, side_by_side.text
        by_code = {c["code"]: c for c in side_by_side.json()}
        assert set(by_code) == {DEFAULT_COUNTY, b}
        assert by_code[b]["name"] == "乙县" and by_code[b]["organisations"] == 3
        assert by_code[b]["round_id"] == counties.round_b and by_code[b]["in_round"] == 3
        assert sum(by_code[b]["lights"].values()) == 3
        assert sum(sum(cells.values()) for cells in by_code[b]["phases"].values()) == 3
        assert by_code[DEFAULT_COUNTY]["organisations"] >= 3
        assert by_code[b]["laggards"] <= 3
        shown = await http.get("/ui/counties", headers=page)
        assert shown.status_code == 200, shown.text
        assert "乙县" in shown.text and f'data-county="{b}"' in shown.text
        # A county office sees its own county's row only; a township is refused.
        own = await http.get("/api/v1/counties", headers=counties.tokens[f"{b}.county"])
        assert [c["code"] for c in own.json()] == [b]
        refused = await http.get("/api/v1/counties", headers=counties.tokens["tw-chengguan"])
        assert refused.status_code == 403

        # Drill down into both counties' read-only pages, lists and exports.
        for rid, org in ((counties.round_a, "org-a"), (counties.round_b, counties.orgs_b[0])):
            for url in (
                f"/api/v1/rounds/{rid}",
                f"/api/v1/rounds/{rid}/organisations/{org}/status",
                f"/api/v1/rounds/{rid}/supervision/counts",
                f"/api/v1/organisations/{org}",
            ):
                got = await http.get(url, headers=province)
                assert got.status_code == 200, (url, got.text)
            for url in (
                f"/ui/overview?round={rid}",
                f"/ui/laggards?round={rid}",
                f"/ui/orgs/{org}?round={rid}",
                f"/ui/export/laggards.xlsx?round={rid}",
                f"/ui/export/organisations.xlsx?round={rid}",
            ):
                got = await http.get(url, headers=page)
                assert got.status_code == 200, (url, got.status_code)
        listed = await http.get("/api/v1/organisations", headers=province)
        assert {"org-a", *counties.orgs_b} <= {o["org_id"] for o in listed.json()}
        rounds = {
            r["round_id"] for r in (await http.get("/api/v1/rounds", headers=province)).json()
        }
        assert {counties.round_a, counties.round_b} <= rounds

        # Every action in either county: 403.
        for rid, org in ((counties.round_a, "org-a"), (counties.round_b, counties.orgs_b[0])):
            for method, url, body in (
                ("POST", f"/api/v1/rounds/{rid}/kickoff", None),
                ("POST", f"/api/v1/rounds/{rid}/close", {"reason": "越权"}),
                ("POST", f"/api/v1/rounds/{rid}/organisations/{org}/decisions",
                 {"step_id": "no-such-step", "accept": True}),
                ("POST", f"/api/v1/rounds/{rid}/organisations/{org}/waivers",
                 {"step_id": "no-such-step", "reason": "越权"}),
                ("POST", f"/api/v1/rounds/{rid}/organisations/{org}/acknowledgements",
                 {"phase": "mobilisation", "rung": 0}),
                ("POST", f"/api/v1/rounds/{rid}/circulars", None),
                ("POST", "/api/v1/rounds",
                 {"round_id": f"p-{uuid.uuid4().hex[:6]}", "plan_id": "demo",
                  "round_plan_id": "demo"}),
                ("POST", "/api/v1/accounts",
                 {"username": f"x-{uuid.uuid4().hex[:6]}", "display_name": "越权",
                  "role": "secretary", "scope_key": org}),
            ):  # fmt: skip
                kwargs = {"headers": province, "json": body} if body else {"headers": province}
                got = await http.request(method, url, **kwargs)
                assert got.status_code == 403, (method, url, got.status_code, got.text)
            roster = await http.post(
                "/api/v1/roster",
                files={"file": ("名册.csv", ROSTER_B.format(p="x").encode())},
                headers=province,
            )
            assert roster.status_code == 403
            bulk = await http.post(
                "/ui/laggards/bulk",
                data={"round": rid, "org_id": org, "bulk_action": "remind"},
                headers=page,
            )
            assert bulk.status_code == 403, bulk.text


async def test_a_roster_naming_another_countys_organisation_is_refused(
    stack: Stack, counties: Counties
) -> None:
    b = counties.b
    stolen = (
        ROSTER_B.format(p=f"{b}-org")
        + "org-a,城关镇东关村党支部,农村,城关镇,县农委,42,李明,张指导\n"
    )
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        refused = await http.post(
            "/api/v1/roster",
            files={"file": ("乙县名册.csv", stolen.encode())},
            headers=counties.tokens[f"{b}.county"],
        )
        assert refused.status_code == 422, refused.text
        body = refused.json()
        assert "其他县" in body["message"]
        assert any("org-a" in e["reason"] for e in body["errors"])
        # Nothing moved: org-a is still the default county's and seen by its county office.
        still = await http.get("/api/v1/organisations/org-a", headers=counties.tokens["county"])
        assert still.status_code == 200
