"""The access matrix (issue 13, "what to keep in ``make test``"): every role × every endpoint
family × an object in its scope and one out of it, against the real stack, each answer
checked against the one the scope rule (``api.scope``) and the routers call for.

How to read :data:`PROBES`: each probe is one request; ``expect`` gives, per role, the
status for the object in scope and the one out of it, ``"200/404"``. ``-`` marks a probe
with no second object (a list, a page without an object; its scoping is checked by
:func:`test_lists_hold_exactly_what_each_role_covers`). Out of scope is 404 (the object
does not exist for the caller), a role that may never do the thing is 403, no login is 401
on the API and a redirect to the login page (303) on the pages.

The roles and their objects (tests/api/conftest.py: org-a, org-b in 城关镇 under 张指导,
org-c in 青石镇 under 刘指导; all three of the rural system): a county-wide role's object
out of scope is one that does not exist; a guidance group's is an organisation of another
system (the health group's view of org-a).

Writes are probed so that nothing of the shared stack changes: on a round of the module's
own, with a request the role may make but the state refuses (409/422 past the gate), or one
that is harmless when allowed (kick-off twice, uploading a file, marking a notice read).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select

from activities.db import make_engine, session_factory
from activities.tables import NoticeRow
from activities.tables.access import AccountCountyRow
from api.auth import upsert_user
from domain.organisation import DEFAULT_COUNTY, Role
from tests.api.conftest import PASSWORD, Stack, start_demo_round, token
from tests.api.test_evaluation_guards import reach_public_evaluation

pytestmark = pytest.mark.asyncio(loop_scope="session")
BALLOT_IN_URL = re.compile(r"/ballot/([A-Za-z0-9_\-]{22})\b")


#: The province office's account (created by the module's fixture).
PROVINCE = "province-matrix"


@dataclass(frozen=True)
class RoleCase:
    """One role: the account and organisation in scope, the account and one out of it."""

    user: str | None
    org: str
    out_user: str | None
    out_org: str
    # The account the role administers (the accounts family), and one it does not.
    account: str
    out_account: str


ROLES: dict[str, RoleCase] = {
    "county": RoleCase("county", "org-a", "county", "no-such-org", "sec-a", "no-such-user"),
    "assessment": RoleCase("assess", "org-a", "assess", "no-such-org", "sec-a", "sec-c"),
    "guidance": RoleCase("gg-rural", "org-a", "gg-health", "org-a", "sec-a", "sec-c"),
    "township": RoleCase("tw-chengguan", "org-a", "tw-chengguan", "org-c", "sec-a", "sec-c"),
    "instructor": RoleCase("ins-zhang", "org-a", "ins-zhang", "org-c", "sec-a", "sec-c"),
    "secretary": RoleCase("sec-a", "org-a", "sec-a", "org-c", "sec-a", "sec-c"),
    # 省委组织部 supervising the stack's county (many counties, issue 14): it reads what the
    # county-wide assessment group reads and every write is 403 (api.tenancy).
    "province": RoleCase(PROVINCE, "org-a", PROVINCE, "no-such-org", "sec-a", "no-such-user"),
    "anonymous": RoleCase(None, "org-a", None, "org-c", "sec-a", "sec-c"),
}
ROLE_ORDER = tuple(ROLES)


def expect(default: str, **by_role: str) -> dict[str, str]:
    """Expected ``in/out`` statuses: ``default`` for the signed-in roles, overrides by role
    (anonymous is 401 on the API unless said otherwise)."""
    # The province office's cells follow from the others' (see ``_with_province``).
    roles = (r for r in ROLE_ORDER if r != "province")
    table = dict.fromkeys(roles, default) | {"anonymous": "401/401"}
    return table | by_role


@dataclass(frozen=True)
class Probe:
    """One request of one endpoint family. Path placeholders: ``{round}``, ``{org}``,
    ``{account}``, ``{notice}``, ``{circular}``, ``{sha256}``, ``{evaluation}``,
    ``{ballot}``; ``out``: whether the probe is sent again with the objects out of scope."""

    family: str
    method: str
    path: str
    expect: dict[str, str]
    json: Any = None
    upload: tuple[str, bytes] | None = None
    page: bool = False  # a page: signed in by the cookie, no login is a redirect
    out: bool = True


_PAGE_ANON = "303/303"
_ROUND = "/api/v1/rounds/{round}"
_ORG = "/api/v1/rounds/{round}/organisations/{org}"

PROBES: tuple[Probe, ...] = (
    # --- rounds: county-wide objects, so the object out of scope is one that does not exist
    Probe("rounds", "GET", _ROUND, expect("200/404")),
    Probe("rounds", "POST", _ROUND + "/kickoff",
          expect("403/403", county="200/404")),
    Probe("rounds", "POST", "/api/v1/rounds", out=False,
          json={"round_id": "{round}", "plan_id": "demo", "round_plan_id": "demo"},
          expect=expect("403/-", county="409/-", anonymous="401/-")),
    # --- organisations
    Probe("organisations", "GET", "/api/v1/organisations/{org}", expect("200/404")),
    Probe("organisations", "GET", _ORG + "/status", expect("200/404")),
    Probe("organisations", "GET", _ORG + "/timeline", expect("200/404")),
    # --- organisation actions (workflow Updates): past the gate the workflow refuses them
    Probe("organisation actions", "POST", _ORG + "/submissions",
          json={"step_id": "no-such-step", "values": {}},
          expect=expect("403/404", county="422/404", secretary="422/404",
                        assessment="403/404")),
    Probe("organisation actions", "POST", _ORG + "/decisions",
          json={"step_id": "no-such-step", "accept": True},
          expect=expect("422/404", assessment="403/404", secretary="403/404")),
    Probe("organisation actions", "POST", _ORG + "/waivers",
          json={"step_id": "no-such-step", "reason": "试验"},
          expect=expect("422/404", assessment="403/404", secretary="403/404")),
    # --- files
    Probe("files", "POST", _ORG + "/files", upload=("说明.txt", b"matrix"),
          expect=expect("201/404", assessment="403/403")),
    # --- supervision, reports, exports
    Probe("supervision", "GET", _ROUND + "/supervision/counts", expect("200/-"), out=False),
    Probe("supervision", "GET", _ROUND + "/supervision/overdue", expect("200/-"), out=False),
    Probe("supervision", "GET", _ROUND + "/supervision/escalations", expect("200/-"),
          out=False),
    Probe("reports", "GET", _ROUND + "/circulars", out=False,
          expect=expect("200/-", instructor="404/-", secretary="404/-", anonymous="401/-")),
    Probe("reports", "GET", "/api/v1/digests", expect("200/-", anonymous="401/-"), out=False),
    Probe("exports", "GET", "/ui/export/orgs/{org}/timeline.xlsx?round={round}", page=True,
          expect=expect("200/404", anonymous=_PAGE_ANON)),
    Probe("reports", "GET", "/api/v1/circulars/{circular}/file",
          expect=expect("200/404", instructor="404/404", secretary="404/404")),
    Probe("exports", "GET", "/ui/files/{round}/{org}/{sha256}", page=True,
          expect=expect("200/404", anonymous=_PAGE_ANON)),
    Probe("exports", "GET", "/ui/audit.xlsx", page=True, out=False,
          expect=expect("403/-", county="200/-", anonymous="303/-")),
    # --- notices: each role's own notice, and one addressed to someone else
    Probe("notices", "GET", "/api/v1/notices", expect("200/-", anonymous="401/-"), out=False),
    Probe("notices", "POST", "/api/v1/notices/{notice}/read", expect("200/404")),
    Probe("notices", "GET", "/api/v1/deliveries/failed", out=False,
          expect=expect("403/-", county="200/-")),
    # --- members: importing is the county's and a secretary's (a file without the columns)
    Probe("members", "GET", "/api/v1/organisations/{org}/members", expect("200/404")),
    Probe("members", "POST", "/api/v1/members/import", out=False,
          upload=("名册.csv", "姓名\n张三\n".encode()),
          expect=expect("403/-", county="422/-", secretary="422/-")),
    # --- commitments
    Probe("commitments", "GET", _ORG + "/commitments", expect("200/404")),
    Probe("commitments", "POST", _ORG + "/commitments/submit",
          json={"commitment_ids": ["no-such-commitment"]},
          expect=expect("403/404", county="404/404", secretary="404/404")),
    # --- evaluations (群众评议): one open ballot on org-a and one on org-c
    Probe("evaluations", "GET", _ORG + "/evaluations", expect("200/404")),
    Probe("evaluations", "GET", "/api/v1/evaluations/{evaluation}", expect("200/404")),
    Probe("evaluations", "GET", "/api/v1/evaluations/{evaluation}/tokens",
          expect=expect("200/404", assessment="403/404", secretary="403/404")),
    # --- commendation
    Probe("commendation", "GET", _ROUND + "/commendation/rules", expect("200/404")),
    Probe("commendation", "GET", _ROUND + "/commendation/declarations", expect("200/404")),
    Probe("commendation", "GET", _ROUND + "/commendation/ranking",
          expect("403/404", county="200/404")),
    # --- accounts
    Probe("accounts", "GET", "/api/v1/accounts", out=False,
          expect=expect("403/-", county="200/-", township="200/-", anonymous="401/-")),
    Probe("accounts", "GET", "/api/v1/accounts/{account}",
          expect=expect("403/403", county="200/404", township="200/404")),
    # An empty change: allowed, it changes nothing.
    Probe("accounts", "PATCH", "/api/v1/accounts/{account}", json={},
          expect=expect("403/403", county="200/404", township="200/404")),
    # --- audit
    Probe("audit", "GET", "/api/v1/audit", out=False,
          expect=expect("403/-", county="200/-", anonymous="401/-")),
    Probe("audit", "GET", "/api/v1/audit.xlsx", out=False,
          expect=expect("403/-", county="200/-", anonymous="401/-")),
    # --- roster
    Probe("roster", "GET", "/api/v1/roster/departures", out=False,
          expect=expect("403/-", county="200/-", anonymous="401/-")),
    Probe("roster", "POST", "/api/v1/roster/departures/{round}/{org}", json={"decision": "keep"},
          expect=expect("403/403", county="404/404")),
    # --- ballots and public pages: no login, the same answer for everyone
    Probe("public", "GET", "/public/commitments", expect("200/-", anonymous="200/-"),
          out=False),
    Probe("public", "GET", "/public/commitments/{round}/{org}",
          expect("404/404", anonymous="404/404")),
    # A ballot's token is the only key to it: the same page for anyone who holds it.
    Probe("public", "GET", "/ballot/{ballot}", expect("200/404", anonymous="200/404")),
    Probe("public", "GET", "/ballot/results/no-such-evaluation",
          expect("404/-", anonymous="404/-"), out=False),
    # --- pages
    Probe("pages", "GET", "/ui/orgs/{org}?round={round}", page=True,
          expect=expect("200/404", anonymous=_PAGE_ANON)),
    Probe("pages", "GET", "/ui/overview?round={round}", page=True, out=False,
          expect=expect("200/-", anonymous="303/-")),
    Probe("pages", "GET", "/ui/laggards?round={round}", page=True, out=False,
          expect=expect("200/-", anonymous="303/-")),
    Probe("pages", "GET", "/ui/my?round={round}", page=True, out=False,
          expect=expect("303/-", secretary="200/-", anonymous="303/-")),
    Probe("pages", "GET", "/ui/accounts", page=True, out=False,
          expect=expect("403/-", county="200/-", township="200/-", anonymous="303/-")),
    Probe("pages", "GET", "/ui/audit", page=True, out=False,
          expect=expect("403/-", county="200/-", anonymous="303/-")),
)  # fmt: skip


def _with_province(probe: Probe) -> Probe:
    """``probe`` with the province office's expectation: every write 403 (before anything
    else), every read as the assessment group's (county-wide, acts in nothing of this)."""
    if "province" in probe.expect:
        return probe
    cell = "403/403" if probe.method != "GET" else probe.expect["assessment"]
    return replace(probe, expect=probe.expect | {"province": cell})


PROBES = tuple(_with_province(p) for p in PROBES)

#: The organisations each role's account sees (for the lists).
SEES: dict[str, set[str]] = {
    "county": {"org-a", "org-b", "org-c"},
    "assess": {"org-a", "org-b", "org-c"},
    "gg-rural": {"org-a", "org-b", "org-c"},
    "gg-health": set(),
    "tw-chengguan": {"org-a", "org-b"},
    "ins-zhang": {"org-a", "org-b"},
    "ins-liu": {"org-c"},
    "sec-a": {"org-a"},
    "sec-c": {"org-c"},
    PROVINCE: {"org-a", "org-b", "org-c"},
}


@dataclass
class World:
    """The module's round, the tokens, and each account's own notice and another's."""

    round_id: str
    tokens: dict[str, dict[str, str]]
    notices: dict[str, str] = field(default_factory=dict)
    circular: str = ""
    sha256: str = ""
    evaluations: dict[str, str] = field(default_factory=dict)
    ballot: str = ""


def _add_notice(stack: Stack, rid: str, role: str, key: str, org: str) -> str:
    """A notice addressed to ``role``/``key`` about ``org`` (as the workflow writes them)."""
    engine = make_engine(stack.settings.database_url)
    notice_id = f"matrix/{rid}/{uuid.uuid4().hex[:10]}"
    now = datetime.now(UTC)
    with session_factory(engine).begin() as session:
        session.add(
            NoticeRow(
                notice_id=notice_id,
                round_id=rid,
                org_id=org,
                org_name=org,
                phase="mobilisation",
                kind="reminder",
                rung=None,
                recipient_role=role,
                recipient_key=key,
                recipient_label=key,
                title="矩阵测试",
                body="矩阵测试",
                link_path="/",
                created_at=now,
                delivered_at=now,
                read_at=None,
            )
        )
    engine.dispose()
    return notice_id


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def world(stack: Stack) -> AsyncIterator[World]:
    rid = await start_demo_round(stack, f"matrix-{uuid.uuid4().hex[:8]}")
    engine = make_engine(stack.settings.database_url)
    with session_factory(engine).begin() as session:
        upsert_user(session, username=PROVINCE, display_name="省委组织部", password=PASSWORD,
                    role=Role.PROVINCE_OFFICE, county="")  # fmt: skip
        session.merge(AccountCountyRow(username=PROVINCE, county=DEFAULT_COUNTY))
    engine.dispose()
    usernames = {c.user for c in ROLES.values()} | {c.out_user for c in ROLES.values()} | set(SEES)
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        tokens = {u: await token(http, u) for u in usernames if u is not None}
    world = World(rid, tokens)
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        # Evaluations are opened only in 群众评议: move the two organisations there.
        await reach_public_evaluation(http, rid, ("org-a", "org-c"))
        county = tokens["county"]
        published = await http.post(f"/api/v1/rounds/{rid}/circulars", headers=county)
        assert published.status_code == 201, published.text
        world.circular = published.json()["circular_id"]
        for org in ("org-a", "org-c"):  # the same file under both organisations
            uploaded = await http.post(
                f"/api/v1/rounds/{rid}/organisations/{org}/files",
                files={"file": ("证明.txt", b"access matrix")},
                headers=county,
            )
            assert uploaded.status_code == 201, uploaded.text
            world.sha256 = uploaded.json()["sha256"]
            opened = await http.post(
                f"/api/v1/rounds/{rid}/organisations/{org}/evaluations",
                json={"raters": {"member": 8, "non_member": 4}},
                headers=county,
            )
            assert opened.status_code == 201, opened.text
            world.evaluations[org] = opened.json()["evaluation_id"]
        slips = await http.get(
            f"/api/v1/evaluations/{world.evaluations['org-a']}/tokens", headers=county
        )
        world.ballot = BALLOT_IN_URL.findall(slips.text)[0]
    recipients = {
        "county": ("county_office", "county", "org-a"),
        "assess": ("assessment_group", "", "org-a"),
        "gg-rural": ("guidance_group", "rural", "org-a"),
        "tw-chengguan": ("township", "城关镇", "org-a"),
        "ins-zhang": ("instructor", "张指导", "org-a"),
        "sec-a": ("secretary", "李明", "org-a"),
    }
    for user, (role, key, org) in recipients.items():
        world.notices[user] = _add_notice(stack, rid, role, key, org)
    # Out of scope for everyone above: a notice to org-c's secretary.
    world.notices["other"] = _add_notice(stack, rid, "secretary", "赵强", "org-c")
    yield world


async def _send(http: httpx.AsyncClient, world: World, probe: Probe, user: str | None,
                values: dict[str, str]) -> int:  # fmt: skip
    path = probe.path.format(**values)
    headers: dict[str, str] = {}
    if user is not None:
        bearer = world.tokens[user]
        if probe.page:  # the pages' cookie carries the same token as the API's header
            headers["Cookie"] = "cz_token=" + bearer["Authorization"].removeprefix("Bearer ")
        else:
            headers |= bearer
    kwargs: dict[str, Any] = {"headers": headers}
    if probe.json is not None:
        kwargs["json"] = {
            k: v.format(**values) if isinstance(v, str) else v for k, v in probe.json.items()
        }
    if probe.upload is not None:
        kwargs["files"] = {"file": probe.upload}
    response = await http.request(probe.method, path, **kwargs)
    return response.status_code


async def test_every_role_on_every_family_in_and_out_of_scope(stack: Stack, world: World) -> None:
    observed: dict[tuple[int, str], str] = {}
    mismatches: list[str] = []
    checks = 0
    async with httpx.AsyncClient(
        base_url=stack.base_url, timeout=60, follow_redirects=False
    ) as http:
        for number, probe in enumerate(PROBES):
            for role, case in ROLES.items():
                in_values = {
                    "round": world.round_id, "org": case.org, "account": case.account,
                    "notice": world.notices.get(case.user or "", world.notices["other"]),
                    "circular": world.circular, "sha256": world.sha256,
                    "evaluation": world.evaluations[case.org], "ballot": world.ballot,
                }  # fmt: skip
                got_in = await _send(http, world, probe, case.user, in_values)
                got_out: int | None = None
                if probe.out:
                    # An organisation's probe varies the organisation; a round's, the round.
                    out_values = in_values | {
                        "round": world.round_id if "{org}" in probe.path else "no-such-round",
                        "org": case.out_org,
                        "account": case.out_account,
                        "notice": world.notices["other"],
                        "circular": "circular/no-such-circular",
                        "evaluation": world.evaluations.get(case.out_org, "no-such-evaluation"),
                        "ballot": "no-such-token",
                    }
                    got_out = await _send(http, world, probe, case.out_user, out_values)
                cell = f"{got_in}/{got_out if got_out is not None else '-'}"
                observed[(number, role)] = cell
                checks += 1 + (got_out is not None)
                wanted = probe.expect[role]
                if not probe.out:
                    wanted = wanted.split("/")[0] + "/-"
                if cell != wanted:
                    mismatches.append(
                        f"{probe.family}: {probe.method} {probe.path} as {role}: "
                        f"expected {wanted}, got {cell}"
                    )
    width = max(len(f"{p.method} {p.path}") for p in PROBES)
    lines = [f"{'':{width}}  " + " ".join(f"{r[:10]:>10}" for r in ROLE_ORDER)]
    for number, probe in enumerate(PROBES):
        row = " ".join(f"{observed[(number, r)]:>10}" for r in ROLE_ORDER)
        lines.append(f"{probe.method + ' ' + probe.path:{width}}  {row}")
    families = len({p.family for p in PROBES})
    print(
        f"\naccess matrix: {len(ROLES)} roles × {families} families, {len(PROBES)} probes, "
        f"{checks} checks\n" + "\n".join(lines)
    )
    assert not mismatches, "\n".join(mismatches)


async def test_lists_hold_exactly_what_each_role_covers(stack: Stack, world: World) -> None:
    """Every list of organisations, per account: exactly the organisations it covers."""
    rid = world.round_id
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        for user, sees in SEES.items():
            headers = world.tokens[user]
            listed = await http.get("/api/v1/organisations", params={"round_id": rid},
                                    headers=headers)  # fmt: skip
            assert listed.status_code == 200, listed.text
            assert {o["org_id"] for o in listed.json()} == sees, user
            counts = await http.get(f"/api/v1/rounds/{rid}/supervision/counts", headers=headers)
            assert sum(g["total"] for g in counts.json()) == len(sees), user
            declarations = await http.get(
                f"/api/v1/rounds/{rid}/commendation/declarations", headers=headers
            )
            assert declarations.status_code == 200, declarations.text
            assert {d["org_id"] for d in declarations.json()} <= sees, user
    engine = make_engine(stack.settings.database_url)
    with session_factory(engine)() as session:
        unread = session.scalars(select(NoticeRow.notice_id).where(NoticeRow.round_id == rid))
        assert set(unread) >= set(world.notices.values())
    engine.dispose()


async def test_a_township_cannot_raise_an_account_above_a_secretary(
    stack: Stack, world: World
) -> None:
    """A township committee administers its organisations' secretaries only: it can neither
    make one of them, nor a new account, a county office account."""
    township = world.tokens["tw-chengguan"]
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        raised = await http.patch(
            "/api/v1/accounts/sec-a", json={"role": "county_office"}, headers=township
        )
        created = await http.post(
            "/api/v1/accounts",
            json={"username": f"x-{uuid.uuid4().hex[:6]}", "display_name": "越权",
                  "role": "county_office", "scope_key": ""},
            headers=township,
        )  # fmt: skip
        mine = await http.get("/api/v1/accounts/sec-a", headers=world.tokens["county"])
    assert raised.status_code in (403, 422), raised.text
    assert created.status_code in (403, 422), created.text
    assert mine.json()["role"] == "secretary"
