"""The pages' display fixes over the real stack (both databases): deadlines read as the
last day at 24:00, phases show when they actually opened, page links that work with the
page session, unforgeable flash messages, bounded filters, a favicon, post/redirect/get
after voting, and a lapsed session that returns a form's user to a page, not to a
POST-only action."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import delete

from activities.db import make_engine, session_factory
from activities.tables.commitments import CommitmentRow
from chuangzheng.settings import repo_root
from domain.calendar import SHANGHAI
from domain.evaluation_rules import FIVE_GOODS
from tests.api.conftest import Stack, signed_in, start_demo_round, token, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")

BIG = "99999999999999999999"


def working_day_plan() -> str:
    """The demo plan in working days: its deadlines are ends of days, stored as the next
    local midnight, as every real plan's are."""
    text = (repo_root() / "plans" / "demo.yaml").read_text("utf-8")
    # One working day a phase keeps the round inside the years the calendar covers.
    text = re.sub(r"duration: \{minutes: \d+\}", "duration: {working_days: 1}", text)
    return text.replace("{minutes: ", "{working_days: ")


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def wd_round(stack: Stack) -> str:
    """A working-day round, kicked off, every organisation's workflow running."""
    return await start_demo_round(stack, f"wd-{uuid.uuid4().hex[:8]}", working_day_plan())


async def org_state(http: httpx.AsyncClient, rid: str, org: str) -> dict[str, Any]:
    answer = await http.get(
        f"/api/v1/rounds/{rid}/organisations/{org}/status", headers=await token(http, "county")
    )
    assert answer.status_code == 200, answer.text
    state: dict[str, Any] = answer.json()["state"]
    return state


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def last_day(deadline: datetime) -> date:
    """The last day of a deadline stored as the next local midnight."""
    local = deadline.astimezone(SHANGHAI)
    assert (local.hour, local.minute) == (0, 0), local  # a working-day deadline
    return (local - timedelta(days=1)).date()


async def settle_phases(http: httpx.AsyncClient, rid: str, org: str, until: str) -> None:
    """Move ``org`` on to phase ``until`` at once: the county office waives the required
    steps of each phase before it; then wait until the read model shows the phase."""
    county = await token(http, "county")
    base = f"/api/v1/rounds/{rid}/organisations/{org}"
    for _ in range(5):
        state = await org_state(http, rid, org)
        if state["phase"] == until:
            break
        current = next(p for p in state["phases"] if p["phase"] == state["phase"])
        for step in current["steps"]:
            if step["required"] and step["status"] not in ("accepted", "waived"):
                waived = await http.post(
                    f"{base}/waivers",
                    json={"step_id": step["step_id"], "reason": "测试：提前完成本阶段"},
                    headers=county,
                )
                assert waived.status_code == 200, waived.text

    async def in_read_model() -> bool:
        listed = await http.get("/api/v1/organisations", params={"round_id": rid}, headers=county)
        return any(o["org_id"] == org and o.get("phase") == until for o in listed.json())

    await wait_for(in_read_model)


async def test_working_day_deadlines_read_as_their_last_day_at_24_00(
    http: httpx.AsyncClient, stack: Stack, wd_round: str
) -> None:
    state = await org_state(http, wd_round, "org-a")
    first = state["phases"][0]
    deadline = instant(first["deadline"])
    day = last_day(deadline)
    long_form, short_form = f"{day.isoformat()} 24:00", f"{day:%m-%d} 24:00"
    stored = deadline.astimezone(SHANGHAI)
    stored_long, stored_short = f"{stored:%Y-%m-%d %H:%M}", f"{stored:%m-%d %H:%M}"
    async with signed_in(stack, "sec-a") as secretary:
        mine = await secretary.get(f"/ui/my?round={wd_round}")
        assert mine.status_code == 200, mine.text
        assert f"截止 <b>{long_form}</b>" in mine.text
        assert f"<td>{long_form}</td>" in mine.text  # the phase table's 截止 column
        assert f"截止 <b>{stored_long}</b>" not in mine.text
        assert f"<td>{stored_long}</td>" not in mine.text
    async with signed_in(stack, "county") as county:
        org = await county.get(f"/ui/orgs/org-a?round={wd_round}")
        assert org.status_code == 200, org.text
        assert f"截止 {long_form}" in org.text and short_form in org.text
        assert f"截止 {stored_long}" not in org.text and f"— {stored_short}" not in org.text
        overview = await county.get(f"/ui/overview?round={wd_round}")
        assert overview.status_code == 200, overview.text
        assert f"— {short_form}" in overview.text and f"— {stored_short}" not in overview.text
        laggards = await county.get(f"/ui/laggards?round={wd_round}&light=all")
        assert laggards.status_code == 200, laggards.text
        cells = re.findall(r"<td>(\d\d-\d\d \d\d:\d\d)</td>", laggards.text)
        assert cells and set(cells) == {short_form}, cells


async def test_phases_show_when_they_opened_and_only_pending_ones_a_planned_start(
    http: httpx.AsyncClient, stack: Stack, wd_round: str
) -> None:
    state = await org_state(http, wd_round, "org-a")
    opened = [p for p in state["phases"] if p.get("opened_at")]
    pending = [p for p in state["phases"] if p["status"] == "pending"]
    assert opened and pending
    async with signed_in(stack, "sec-a") as secretary:
        mine = (await secretary.get(f"/ui/my?round={wd_round}")).text
    table = mine[mine.index('id="deadlines"') :]
    rows = re.findall(r"<tr[^>]*><td>([^<]+)</td><td>[^<]+</td><td>([^<]*)</td>", table)
    starts = dict(rows)
    for phase in opened:
        at = instant(phase["opened_at"]).astimezone(SHANGHAI)
        assert starts[label(phase["phase"])] == f"{at:%Y-%m-%d %H:%M}"
    for phase in pending:
        at = instant(phase["opens_at"]).astimezone(SHANGHAI)
        assert starts[label(phase["phase"])] == f"计划开始 {at:%Y-%m-%d %H:%M}"
    async with signed_in(stack, "county") as county:
        org = (await county.get(f"/ui/orgs/org-a?round={wd_round}")).text
    for phase in pending:
        at = instant(phase["opens_at"]).astimezone(SHANGHAI)
        assert f"计划开始 {at:%m-%d %H:%M} —" in org

    # org-b finishes 动员部署 early: 公开承诺 opens now, days before its planned start, and
    # its page says when it opened, not the planned start of a phase already under way.
    await settle_phases(http, wd_round, "org-b", "public_commitment")
    state = await org_state(http, wd_round, "org-b")
    first, second = state["phases"][0], state["phases"][1]
    assert first["status"] == "done" and second["status"] == "open"
    opened_at = instant(second["opened_at"]).astimezone(SHANGHAI)
    planned = instant(second["opens_at"]).astimezone(SHANGHAI)
    assert opened_at < planned
    async with signed_in(stack, "county") as county:
        org_b = (await county.get(f"/ui/orgs/org-b?round={wd_round}")).text
    summary = org_b[org_b.index('data-phase="public_commitment"') :]
    summary = summary[: summary.index("</summary>")]
    assert f"{opened_at:%m-%d %H:%M} —" in summary and f"{planned:%m-%d %H:%M}" not in summary


def label(phase: str) -> str:
    from domain.phases import PHASE_LABELS, Phase

    return PHASE_LABELS[Phase(phase)]


async def test_the_notice_period_ends_on_its_last_day(stack: Stack, wd_round: str) -> None:
    """公示期 ends at 24:00 of its last day, stored as the next midnight (12-10 16:00 UTC
    ends 12-10): the page named the day after."""
    engine = make_engine(stack.settings.database_url)
    commitment_id = f"cm-{uuid.uuid4().hex[:8]}"
    published = datetime(2025, 12, 3, 2, 0, tzinfo=UTC)
    ends = datetime(2025, 12, 10, 16, 0, tzinfo=UTC)  # 2025-12-11 00:00 in Shanghai
    try:
        with session_factory(engine).begin() as session:
            session.add(
                CommitmentRow(
                    commitment_id=commitment_id, round_id=wd_round, org_id="org-a",
                    kind="organisation", member_key="", member_name="", content="承诺内容",
                    status="published", published_by="sec-a", published_at=published,
                    notice_ends_at=ends, recorded_by="sec-a", updated_at=published,
                )
            )  # fmt: skip
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as public:
            shown = await public.get(f"/public/commitments/{wd_round}/org-a")
        assert shown.status_code == 200, shown.text
        assert "公示期：2025-12-03 至 2025-12-10" in shown.text, shown.text
    finally:
        with session_factory(engine).begin() as session:
            session.execute(
                delete(CommitmentRow).where(CommitmentRow.commitment_id == commitment_id)
            )
        engine.dispose()


async def test_a_briefings_attachment_downloads_with_the_page_session(
    http: httpx.AsyncClient, stack: Stack, wd_round: str
) -> None:
    submitted = await http.post(
        f"/api/v1/rounds/{wd_round}/briefings",
        data={
            "title": "党员设岗定责 网格联系群众",
            "text": "我村党支部推行党员设岗定责，把全村划为十二个网格，每名党员联系十户群众，"
            "每月上门走访一次，收集意见建议三十余条，办结群众身边实事二十件。",
            "org_id": "org-a",
        },
        files={"file": ("做法.pdf", b"%PDF-1.4 briefing", "application/pdf")},
        headers=await token(http, "sec-a"),
    )
    assert submitted.status_code == 201, submitted.text
    async with signed_in(stack, "sec-a") as secretary:
        listed = await secretary.get(f"/ui/briefings?round={wd_round}")
        links = re.findall(r'附件：<a href="([^"]+)"', listed.text)
        assert links and all(link.startswith("/ui/") for link in links), links
        download = await secretary.get(links[0].replace("&amp;", "&"))
        assert download.status_code == 200, download.text
        assert download.content == b"%PDF-1.4 briefing"
    async with signed_in(stack, "sec-c") as other:  # not a briefing sec-c sees (uncirculated)
        assert (await other.get(links[0].replace("&amp;", "&"))).status_code == 404


async def test_flash_messages_in_a_link_are_not_shown_unless_the_system_signed_them(
    stack: Stack, wd_round: str
) -> None:
    forged = "您的账号存在安全风险，请拨打400-000-0000"
    async with signed_in(stack, "sec-a") as secretary:
        for key in ("error", "msg"):
            page = await secretary.get("/ui/my", params={"round": wd_round, key: forged})
            assert page.status_code == 200 and forged not in page.text
            signed = await secretary.get(
                "/ui/my", params={"round": wd_round, key: forged, "sig": "A" * 24}
            )
            assert forged not in signed.text
        # A message the system sent (a refused submission) still shows after its redirect.
        refused = await secretary.post(
            "/ui/my/submit", data={"round": wd_round, "step_id": "no-such-step"}
        )
        assert refused.status_code == 303
        target = refused.headers["location"]
        assert "sig=" in target
        shown = await secretary.get(target)
        assert "没有该步骤" in shown.text and 'class="flash err"' in shown.text
        # The signature covers the words: the same signature with other words shows nothing.
        query = parse_qs(urlsplit(target).query)
        tampered = await secretary.get(
            "/ui/my", params={"round": wd_round, "error": forged, "sig": query["sig"][0]}
        )
        assert forged not in tampered.text and "没有该步骤" not in tampered.text


async def test_a_huge_rung_filter_lists_nothing_instead_of_failing(
    stack: Stack, wd_round: str
) -> None:
    async with signed_in(stack, "county") as county:
        listed = await county.get(f"/ui/laggards?round={wd_round}&light=all&rung={BIG}")
        assert listed.status_code == 200, listed.text
        assert "text/html" in listed.headers["content-type"]
        exported = await county.get(
            f"/ui/export/laggards.xlsx?round={wd_round}&light=all&rung={BIG}"
        )
        assert exported.status_code == 200, exported.text
        # Unicode digits are digits to str.isdigit but not to int(): ignored, as other junk.
        odd = await county.get(f"/ui/laggards?round={wd_round}&light=all&rung=%C2%B2")
        assert odd.status_code == 200, odd.text


async def test_the_favicon_is_served_and_linked(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as browser:
        icon = await browser.get("/favicon.ico")
        assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg")
        assert "<svg" in icon.text
        linked = await browser.get("/ui/static/favicon.svg")
        assert linked.status_code == 200 and linked.content == icon.content
        login = await browser.get("/ui/login")
        assert '<link rel="icon" href="/ui/static/favicon.svg"' in login.text
        public = await browser.get("/public/commitments")
        assert '<link rel="icon" href="/ui/static/favicon.svg"' in public.text


async def test_a_cast_ballot_redirects_so_a_refresh_does_not_vote_again(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    rid = await start_demo_round(stack, f"bp-{uuid.uuid4().hex[:8]}")
    await settle_phases(http, rid, "org-b", "public_evaluation")
    opened = await http.post(
        f"/api/v1/rounds/{rid}/organisations/org-b/evaluations",
        json={"raters": {"member": 8, "non_member": 4}},
        headers=await token(http, "ins-zhang"),
    )
    assert opened.status_code == 201, opened.text
    evaluation_id = opened.json()["evaluation_id"]
    slips = await http.get(
        f"/api/v1/evaluations/{evaluation_id}/tokens", headers=await token(http, "ins-zhang")
    )
    tokens = list(dict.fromkeys(re.findall(r"/ballot/([A-Za-z0-9_\-]{22})\b", slips.text)))
    assert len(tokens) >= 2, slips.text
    form = {"token": tokens[0]} | {item.id: "satisfied" for item in FIVE_GOODS}
    cast = await http.post("/ballot", data=form)
    assert cast.status_code == 303, cast.text
    thanks = cast.headers["location"]
    assert tokens[0] not in thanks
    for _ in range(2):  # the thank-you page, refreshed: the same thanks, no second post
        page = await http.get(thanks)
        assert page.status_code == 200 and "投票成功" in page.text
    again = await http.post("/ballot", data=form)  # the burnt token posted again: refused
    assert again.status_code == 409 and "已经投过票" in again.text
    # An incomplete ballot is answered with its form again, the ticked answers kept.
    first = FIVE_GOODS[0].id
    partial = await http.post("/ballot", data={"token": tokens[1], first: "unsatisfied"})
    assert partial.status_code == 422
    assert re.search(rf'name="{first}" value="unsatisfied"\s*checked', partial.text)


@pytest.mark.parametrize(
    ("referer", "expected"),
    [
        ("{base}/ui/my?round={rid}", "/ui/my?round={rid}"),  # the page the form was on
        ("https://evil.example/ui/my", "/ui/my"),  # another site's: the action's page
        ("", "/ui/my"),
    ],
)
async def test_a_form_posted_after_the_session_lapsed_returns_to_a_page(
    stack: Stack, wd_round: str, referer: str, expected: str
) -> None:
    headers = {"Origin": stack.base_url}
    if referer:
        headers["Referer"] = referer.format(base=stack.base_url, rid=wd_round)
    async with httpx.AsyncClient(
        base_url=stack.base_url, timeout=60, headers=headers, cookies={"cz_token": "lapsed"}
    ) as lapsed:
        posted = await lapsed.post("/ui/my/submit", data={"round": wd_round, "step_id": "x"})
        assert posted.status_code == 303
        location = posted.headers["location"]
        assert location.startswith("/ui/login?next=")
        target = unquote(location.removeprefix("/ui/login?next="))
        assert target == expected.format(rid=wd_round)
        async with signed_in(stack, "sec-a") as secretary:  # signing in lands on a page
            landed = await secretary.get(target)
            assert landed.status_code == 200, landed.text
