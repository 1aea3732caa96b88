"""The browser tests' stack: the API tests' real stack (Temporal dev server, the project's
worker, uvicorn) reused as is, on SQLite only (a browser scenario on PostgreSQL as well would
double the suite's slowest tests; the pages' SQL is the API's, which runs on both), and a
headless Debian Chromium driven by Playwright's async API on the session's event loop.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from chuangzheng.settings import repo_root
from tests.api import conftest as api_stack
from tests.api.conftest import PASSWORD, Stack, token, wait_for

# The API tests' stack fixtures, reused (pytest finds fixtures by name in this module).
dev_server = api_stack.dev_server
settings = api_stack.settings
roster = api_stack.roster
running_worker = api_stack.running_worker
api_server = api_stack.api_server
stack = api_stack.stack

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = repo_root() / "test-artifacts" / "ui"
#: The charts' library, built from ui/package-lock.json by ``make assets`` (``make test`` does
#: it first); a pytest started by hand without it fails on the charts after 30 s.
ECHARTS = repo_root() / "api" / "ui" / "static" / "vendor" / "echarts.min.js"
MINUTES_FIELD = (
    "              - {name: minutes, label: 会议记录, kind: document, required: false}\n"
)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """SQLite only for the browser tests (see the module docstring)."""
    return f"sqlite:///{tmp_path_factory.mktemp('ui-db') / 'ui.db'}"


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots go (git-ignored; kept by CI as test artifacts)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def demo_plan_with_document() -> str:
    """The demo plan with an optional uploaded document (会议记录) in the first step, so the
    scenario exercises uploads and file links."""
    text = (repo_root() / "plans" / "demo.yaml").read_text("utf-8")
    anchor = "                max_share_of_members: 1.0\n"
    assert anchor in text
    return text.replace(anchor, anchor + MINUTES_FIELD, 1)


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def ui_round(stack: Stack) -> str:
    """A round kicked off through the API by the county office; every campaign has a status
    row in the read model."""
    rid = f"ui-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        county = await token(http, "county")
        created = await http.post(
            "/api/v1/rounds",
            json={"round_id": rid, "plan_yaml": demo_plan_with_document(), "round_plan_id": "demo"},
            headers=county,
        )
        assert created.status_code == 201, created.text
        kicked = await http.post(f"/api/v1/rounds/{rid}/kickoff", headers=county)
        assert kicked.status_code == 200, kicked.text

        async def all_recorded() -> bool:
            listed = await http.get(
                "/api/v1/organisations", params={"round_id": rid}, headers=county
            )
            return all(o.get("phase") for o in listed.json()) and len(listed.json()) == 3

        await wait_for(all_recorded)
    return rid


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless (never a downloaded browser)."""
    if not ECHARTS.exists():
        pytest.fail(f"{ECHARTS.relative_to(repo_root())} is missing: run `make assets` first")
    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@pytest_asyncio.fixture(loop_scope="session")
async def context(browser: Browser, stack: Stack) -> AsyncIterator[BrowserContext]:
    """A fresh browser profile (no cookies) per test."""
    ctx = await browser.new_context(
        base_url=stack.base_url, locale="zh-CN", viewport={"width": 1400, "height": 1000}
    )
    # What the browser saw go wrong, printed at teardown (pytest shows it when the test
    # failed): a page whose script never ran tells nothing in the assertion alone.
    seen: list[str] = []

    def watch(page: Page) -> None:
        page.on(
            "console",
            lambda m: (
                seen.append(f"console {m.type}: {m.text}")
                if m.type in ("error", "warning")
                else None
            ),
        )
        page.on("pageerror", lambda e: seen.append(f"script error: {e}"))
        page.on("requestfailed", lambda r: seen.append(f"request failed: {r.url} {r.failure}"))
        page.on(
            "response",
            lambda r: (
                seen.append(f"{r.status} {r.request.method} {r.url}") if r.status >= 400 else None
            ),
        )

    ctx.on("page", watch)
    yield ctx
    if seen:
        print("the browser saw:", *seen, sep="\n  ")
    await ctx.close()


async def log_in(context: BrowserContext, username: str) -> Page:
    """A page logged in as ``username`` through the login form."""
    page = await context.new_page()
    await page.goto("/ui/login")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_load_state("networkidle")
    assert "/ui/login" not in page.url, await page.content()
    return page
