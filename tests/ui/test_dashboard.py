"""The dashboard end to end in headless Chromium against the real stack: a secretary submits
evidence with a file, the instructor (seeing only their organisations) returns it with a
reason, the secretary sees the reason and resubmits; the county overview's counts equal the
read model's; exports open; pages outside the caller's scope are 404."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from docx import Document
from openpyxl import load_workbook  # type: ignore[import-untyped]
from playwright.async_api import Browser, BrowserContext, Page
from pypdf import PdfReader
from sqlalchemy import func, select

from activities.db import make_engine
from activities.tables import campaign_status, notices, phase_status, submissions
from domain.calendar import SHANGHAI, local_date
from tests.api.conftest import Stack, extended_first_deadline, token, wait_for
from tests.ui.conftest import log_in

pytestmark = pytest.mark.asyncio(loop_scope="session")
MINUTES = "会议记录：全体党员参加动员大会。".encode()
REASON = "会议记录缺少签到表，请补充后重新提交"


def db_rows(stack: Stack, stmt: object) -> list[tuple[object, ...]]:
    engine = make_engine(stack.settings.database_url)
    try:
        with engine.connect() as connection:
            return [tuple(r) for r in connection.execute(stmt).all()]  # type: ignore[call-overload]
    finally:
        engine.dispose()


async def log_out(page: Page) -> None:
    await page.goto("/ui/")  # error pages carry no navigation
    await page.click("header form button")
    await page.wait_for_url("**/ui/login")


async def secretary_submits(page: Page, round_id: str, *, first: bool) -> None:
    """Fill the first step's generated form (prefilled when correcting) and submit."""
    await page.goto(f"/ui/my?round={round_id}")
    task = page.locator('article[data-step="hold_mobilisation_meeting"]')
    form = task.locator("form.evidence-form")
    if first:
        await form.locator('input[name="ev.meeting_date"]').fill(
            local_date(datetime.now(UTC)).isoformat()
        )
        await form.locator('input[name="ev.attendance"]').fill("30")
        await form.locator('input[name="ev.minutes"]').set_input_files(
            {"name": "会议记录.txt", "mimeType": "text/plain", "buffer": MINUTES}
        )
    await form.locator("button[type=submit]").click()
    await page.wait_for_load_state("networkidle")
    assert "已提交" in await page.locator(".flash.ok").inner_text()
    status = page.locator('article[data-step="hold_mobilisation_meeting"]')
    assert await status.get_attribute("data-status") == "submitted"


async def test_return_and_resubmit_through_the_browser(
    browser: Browser, context: BrowserContext, stack: Stack, ui_round: str, artifacts: Path
) -> None:
    # The secretary submits evidence with an uploaded file through the generated form.
    page = await log_in(context, "sec-a")
    assert page.url.endswith("/ui/my")
    await secretary_submits(page, ui_round, first=True)
    await page.screenshot(path=artifacts / "secretary-submitted.png", full_page=True)
    await log_out(page)

    # The instructor sees only their organisations (城关镇: org-a, org-b) ...
    page = await log_in(context, "ins-zhang")
    await page.goto(f"/ui/overview?round={ui_round}")
    townships = await page.locator("#matrix tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.township)"
    )
    assert townships == ["城关镇"]
    assert await page.locator("#matrix tfoot td.sum").get_attribute("data-count") == "2"
    await page.goto(f"/ui/laggards?round={ui_round}&light=green")
    listed = await page.locator("#laggard-table tbody tr[data-org]").evaluate_all(
        "rows => rows.map(r => r.dataset.org)"
    )
    assert sorted(listed) <= ["org-a", "org-b"]
    outside = await page.goto(f"/ui/orgs/org-c?round={ui_round}")
    assert outside is not None and outside.status == 404

    # ... opens org-a, fetches the uploaded file, and returns the submission with a reason.
    await page.goto(f"/ui/orgs/org-a?round={ui_round}")
    row = page.locator('table.steps tr[data-step="hold_mobilisation_meeting"]')
    assert await row.get_attribute("data-status") == "submitted"
    link = row.locator("a.file").first
    assert await link.inner_text() == "会议记录.txt"
    download = await page.request.get(str(await link.get_attribute("href")))
    assert download.status == 200 and await download.body() == MINUTES
    await row.locator('.return-form input[name="reason"]').fill(REASON)
    await row.locator(".return-form button").click()
    await page.wait_for_load_state("networkidle")
    assert "操作成功" in await page.locator(".flash.ok").inner_text()
    row = page.locator('table.steps tr[data-step="hold_mobilisation_meeting"]')
    assert await row.get_attribute("data-status") == "returned"
    await page.screenshot(path=artifacts / "organisation-returned.png", full_page=True)
    await log_out(page)

    # The secretary sees what was returned and why, and resubmits the corrected form.
    page = await log_in(context, "sec-a")
    await page.goto(f"/ui/my?round={ui_round}")
    returned = page.locator('article[data-step="hold_mobilisation_meeting"] .returned')
    assert REASON in await returned.inner_text()
    await page.screenshot(path=artifacts / "secretary-returned.png", full_page=True)
    await secretary_submits(page, ui_round, first=False)

    def verdicts() -> list[tuple[object, ...]]:
        return db_rows(
            stack,
            select(
                submissions.c.seq,
                submissions.c.decision,
                submissions.c.reason,
                submissions.c.evidence,
            )
            .where(submissions.c.round_id == ui_round, submissions.c.org_id == "org-a")
            .where(submissions.c.step_id == "hold_mobilisation_meeting")
            .order_by(submissions.c.seq),
        )

    async def resubmitted() -> list[tuple[object, ...]] | None:
        rows = verdicts()
        return rows if len(rows) == 2 else None

    rows = await wait_for(resubmitted)
    assert rows[0][1:3] == ("returned", REASON) and rows[1][1] is None
    assert rows[1][3]["minutes"]["name"] == "会议记录.txt"


async def test_county_overview_counts_match_the_read_model(
    context: BrowserContext, stack: Stack, ui_round: str, artifacts: Path
) -> None:
    page = await log_in(context, "county")
    s = campaign_status.c
    query = (
        select(s.township, s.phase, func.count())
        .where(s.round_id == ui_round)
        .group_by(s.township, s.phase)
    )
    # Lights change on timers but phases only on decisions: compare township × phase counts,
    # read from the page between two identical database reads.
    for _ in range(5):
        before = sorted(db_rows(stack, query))
        await page.goto(f"/ui/overview?round={ui_round}")
        cells = await page.locator("#matrix tbody td[data-phase]").evaluate_all(
            "tds => tds.map(td => [td.parentElement.dataset.township, td.dataset.phase,"
            " Number(td.dataset.count)])"
        )
        if sorted(db_rows(stack, query)) == before:
            break
    shown = sorted(tuple(c) for c in cells if c[2])
    assert shown == before and sum(n for *_, n in before) == 3  # type: ignore[misc]
    lights = db_rows(
        stack, select(s.light, func.count()).where(s.round_id == ui_round).group_by(s.light)
    )
    assert int(await page.locator("#kpi-total").inner_text()) == 3
    assert {"red", "yellow", "blue"} >= {k for k, _ in lights} - {"green"}
    await page.wait_for_selector("body[data-charts-ready='1']")
    await page.screenshot(path=artifacts / "overview.png", full_page=True)
    await page.goto(f"/ui/overview?round={ui_round}&screen=big")
    await page.wait_for_selector("body.big[data-charts-ready='1']")
    await page.screenshot(path=artifacts / "overview-big-screen.png", full_page=True)
    await page.goto(f"/ui/laggards?round={ui_round}&light=all")
    assert await page.locator("#laggard-total").inner_text() == "3"
    await page.screenshot(path=artifacts / "laggards.png", full_page=True)


async def test_exports_open_and_contain_the_rows(
    context: BrowserContext, stack: Stack, ui_round: str
) -> None:
    page = await log_in(context, "county")
    response = await page.request.get(f"/ui/export/organisations.xlsx?round={ui_round}")
    assert response.status == 200
    sheet = load_workbook(io.BytesIO(await response.body())).active
    assert sheet is not None
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:2] == ("组织编号", "单位")
    assert sorted(r[0] for r in rows[1:]) == ["org-a", "org-b", "org-c"]
    laggards = await page.request.get(f"/ui/export/laggards.xlsx?round={ui_round}&light=green")
    green = db_rows(
        stack,
        select(campaign_status.c.org_id).where(
            campaign_status.c.round_id == ui_round, campaign_status.c.light == "green"
        ),
    )
    listed = list(
        load_workbook(io.BytesIO(await laggards.body())).active.iter_rows(values_only=True)
    )
    assert len(listed) - 1 == len(green)
    word = await page.request.get(f"/ui/export/circular.docx?round={ui_round}")
    text = "\n".join(p.text for p in Document(io.BytesIO(await word.body())).paragraphs)
    assert "通报" in text and "参加本轮活动的基层党组织共3个" in text
    pdf = await page.request.get(f"/ui/export/circular.pdf?round={ui_round}")
    assert pdf.headers["content-type"] == "application/pdf"
    assert "城关镇" in PdfReader(io.BytesIO(await pdf.body())).pages[0].extract_text()


async def test_pages_outside_scope_are_404_and_login_is_required(
    context: BrowserContext, ui_round: str
) -> None:
    anonymous = await context.new_page()
    await anonymous.goto(f"/ui/orgs/org-a?round={ui_round}")
    assert "/ui/login" in anonymous.url
    page = await log_in(context, "sec-a")
    for path in (
        f"/ui/orgs/org-c?round={ui_round}",
        f"/ui/export/orgs/org-c/timeline.xlsx?round={ui_round}",
    ):
        response = (
            await page.goto(path) if path.endswith(ui_round) and "export" not in path else None
        )
        if response is None:
            fetched = await page.request.get(path)
            assert fetched.status == 404
        else:
            assert response.status == 404
            assert "页面不存在或无权查看" in await page.content()
    await log_out(page)
    health = await log_in(context, "gg-health")
    response = await health.goto(f"/ui/orgs/org-a?round={ui_round}")
    assert response is not None and response.status == 404


def _aware(moment: datetime) -> datetime:
    """SQLite hands datetimes back naive (UTC)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def test_bulk_remind_has_one_effect_per_day_and_county_extends(
    context: BrowserContext, stack: Stack, ui_round: str
) -> None:
    page = await log_in(context, "ins-zhang")
    for expected in ("催办成功 1 个单位", "今日已催办过 1 个"):
        # Every light listed, so org-b is there whatever its light is now.
        await page.goto(f"/ui/laggards?round={ui_round}&light=all")
        await page.check('input[name="org_id"][value="org-b"]')
        await page.click('button[value="remind"]')
        await page.wait_for_load_state("networkidle")
        assert expected in await page.locator(".flash.ok").inner_text()
    reminders = db_rows(
        stack,
        select(notices.c.notice_id, notices.c.recipient_role).where(
            notices.c.round_id == ui_round,
            notices.c.org_id == "org-b",
            notices.c.notice_id.contains("supervisor_reminder"),
        ),
    )
    assert len(reminders) == 1 and reminders[0][1] == "secretary"
    await log_out(page)

    # Halfway to the next phase's deadline: an extension may not reach it (the next phase
    # would open overdue), nor move a deadline by more than a year.
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        office = await token(http, "county")
        base = f"/api/v1/rounds/{ui_round}/organisations/org-b"
        status = (await http.get(f"{base}/status", headers=office)).json()
    target = extended_first_deadline(status).astimezone(SHANGHAI).replace(second=0, microsecond=0)
    county = await log_in(context, "county")
    await county.goto(f"/ui/orgs/org-b?round={ui_round}")
    await county.fill('#extend-form input[name="new_deadline"]', f"{target:%Y-%m-%dT%H:%M}")
    await county.fill('#extend-form input[name="reason"]', "汛期抢险，统一推迟")
    await county.click("#extend-form button")
    await county.wait_for_load_state("networkidle")
    assert "已延期" in await county.locator(".flash.ok").inner_text()

    async def moved() -> bool:
        rows = db_rows(
            stack,
            select(phase_status.c.deadline).where(
                phase_status.c.round_id == ui_round,
                phase_status.c.org_id == "org-b",
                phase_status.c.phase == "mobilisation",
            ),
        )
        return bool(rows) and _aware(rows[0][0]) == target

    await wait_for(moved)
