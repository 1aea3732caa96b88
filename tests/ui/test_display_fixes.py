"""The pages in Chromium: long unbroken text wraps instead of widening the page (at 1280px
and on a 375px phone, where the secretary's button must stay tappable), the favicon
answers, and a form posted after the session lapsed comes back, after signing in, to the
page it was on instead of a POST-only URL (405)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page

from tests.api.conftest import PASSWORD, Stack, start_demo_round, token
from tests.ui.conftest import log_in

pytestmark = pytest.mark.asyncio(loop_scope="session")

LONG = "A" * 400
STEP = "set_up_leading_group"


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def long_round(stack: Stack) -> str:
    """A round where org-a's 成立领导小组 was returned: its evidence and the reason are one
    unbroken 400-character string each."""
    rid = await start_demo_round(stack, f"ld-{uuid.uuid4().hex[:8]}")
    base = f"/api/v1/rounds/{rid}/organisations/org-a"
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        submitted = await http.post(
            f"{base}/submissions",
            json={"step_id": STEP, "values": {"leader": LONG, "members": ["李明", "王芳"]}},
            headers=await token(http, "sec-a"),
        )
        assert submitted.status_code == 200, submitted.text
        returned = await http.post(
            f"{base}/decisions",
            json={"step_id": STEP, "accept": False, "reason": LONG},
            headers=await token(http, "ins-zhang"),
        )
        assert returned.status_code == 200, returned.text
    return rid


@pytest_asyncio.fixture(loop_scope="session")
async def phone(browser: Browser, stack: Stack) -> AsyncIterator[BrowserContext]:
    """A 375px-wide touch phone, as secretaries use."""
    ctx = await browser.new_context(
        base_url=stack.base_url,
        locale="zh-CN",
        viewport={"width": 375, "height": 740},
        is_mobile=True,
        has_touch=True,
    )
    yield ctx
    await ctx.close()


async def page_width(page: Page) -> int:
    width: int = await page.evaluate("document.documentElement.scrollWidth")
    return width


async def test_long_text_wraps_at_1280_and_on_a_phone(
    browser: Browser, stack: Stack, phone: BrowserContext, long_round: str
) -> None:
    desk = await browser.new_context(
        base_url=stack.base_url, viewport={"width": 1280, "height": 900}
    )
    try:
        page = await log_in(desk, "county")
        await page.goto(f"/ui/orgs/org-a?round={long_round}")
        details = page.locator('details[data-phase="mobilisation"]')
        await details.evaluate("d => { d.open = true }")
        assert LONG in await page.content()
        assert await page_width(page) <= 1280
    finally:
        await desk.close()

    page = await log_in(phone, "sec-a")
    await page.goto(f"/ui/my?round={long_round}")
    article = page.locator(f'article[data-step="{STEP}"]')
    assert LONG in await article.locator(".returned").inner_text()
    assert await page_width(page) <= 375
    button = article.locator("button[type=submit]")
    box = await button.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375, box
    await button.scroll_into_view_if_needed()
    await button.tap(trial=True)  # visible, enabled and not covered: a finger reaches it
    # A table wider than the phone scrolls inside its own box, not the page.
    table = page.locator("#deadlines")
    table_box = await table.bounding_box()
    assert table_box is not None and table_box["x"] + table_box["width"] <= 375


async def test_pages_link_a_favicon_that_answers(context: BrowserContext) -> None:
    failed: list[str] = []
    page = await log_in(context, "sec-a")
    page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
    await page.goto("/ui/my")
    href = await page.get_attribute("link[rel=icon]", "href")
    assert href == "/ui/static/favicon.svg"
    icon = await page.request.get(href)
    assert icon.ok and icon.headers["content-type"].startswith("image/svg")
    legacy = await page.request.get("/favicon.ico")
    assert legacy.ok
    assert failed == []


async def test_a_form_posted_after_the_session_lapsed_comes_back_to_its_page(
    context: BrowserContext, long_round: str
) -> None:
    page = await log_in(context, "sec-a")
    await page.goto(f"/ui/my?round={long_round}")
    await context.clear_cookies()  # the session lapsed while the form was open
    await page.locator(f'article[data-step="{STEP}"] button[type=submit]').click()
    await page.wait_for_url(re.compile(r"/ui/login\?next="))
    await page.fill("input[name=username]", "sec-a")
    await page.fill("input[name=password]", PASSWORD)
    async with page.expect_navigation() as landed:
        await page.click("button[type=submit]")
    response = await landed.value
    assert response is not None and response.status == 200, await page.content()
    assert page.url.endswith(f"/ui/my?round={long_round}"), page.url
    assert await page.locator(f'article[data-step="{STEP}"]').count() == 1
