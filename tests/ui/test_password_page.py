"""A signed-in person changes their own password on ``/ui/password`` in a real browser
(Debian's Chromium through Playwright, over the shared stack): the page is linked from every
page's header; a wrong current password and two different new ones come back as the page's
message in Chinese, the password fields empty; the right ones change the password, the page's
own session goes on while another session of the account ends, and the old password no longer
signs in. The browser comes from an address of its own (``X-Forwarded-For``), so its failed
attempt counts against nobody else's sign-ins."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from playwright.async_api import BrowserContext, Page

from activities.db import make_engine, session_factory
from api.auth import upsert_user
from domain.organisation import Role
from tests.api.conftest import PASSWORD, Stack
from tests.ui.conftest import log_in

pytestmark = pytest.mark.asyncio(loop_scope="session")

NEW_PASSWORD = "青石镇-稻花香里-2027"


def new_instructor(stack: Stack) -> str:
    username = f"pw-ui-{uuid.uuid4().hex[:8]}"
    engine = make_engine(stack.settings.database_url)
    with session_factory(engine).begin() as session:
        upsert_user(session, username=username, display_name="王芳", password=PASSWORD,
                    role=Role.INSTRUCTOR, scope_key="张指导")  # fmt: skip
    engine.dispose()
    return username


async def submit(page: Page, current: str, new: str, again: str) -> None:
    await page.fill("input[name=current_password]", current)
    await page.fill("input[name=new_password]", new)
    await page.fill("input[name=new_password_again]", again)
    async with page.expect_navigation():
        await page.click("#change-password button[type=submit]")
    await page.wait_for_load_state("networkidle")


async def fields_empty(page: Page) -> bool:
    names = ("current_password", "new_password", "new_password_again")
    return all([await page.input_value(f"input[name={n}]") == "" for n in names])


async def test_a_person_changes_their_password_on_the_page(
    stack: Stack, context: BrowserContext, artifacts: Path
) -> None:
    username = new_instructor(stack)
    here = {"X-Forwarded-For": f"2001:db8::{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}"}
    await context.set_extra_http_headers(here)
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60, headers=here) as api:
        other = await api.post(
            "/api/v1/auth/login", json={"username": username, "password": PASSWORD}
        )
        assert other.status_code == 200, other.text
        elsewhere = {"Authorization": f"Bearer {other.json()['access_token']}"}

        page = await log_in(context, username)
        async with page.expect_navigation():
            await page.click("#nav-password")
        assert page.url.endswith("/ui/password")
        assert await page.locator("h1").inner_text() == "修改密码"

        await submit(page, "不是这个密码", NEW_PASSWORD, NEW_PASSWORD)
        assert "当前密码不正确" in await page.locator(".flash.err").inner_text()
        assert await fields_empty(page)

        await submit(page, PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "!")
        assert "两次输入的新密码不一致" in await page.locator(".flash.err").inner_text()
        assert await fields_empty(page)

        await submit(page, PASSWORD, NEW_PASSWORD, NEW_PASSWORD)
        assert "密码已修改" in await page.locator(".flash.ok").inner_text()
        assert await fields_empty(page)
        await page.screenshot(path=str(artifacts / "password-changed.png"), full_page=True)

        # This browser stays signed in; the other session has ended.
        await page.goto("/ui/password")
        assert page.url.endswith("/ui/password"), page.url
        assert (await api.get("/api/v1/users/me", headers=elsewhere)).status_code == 401
        old = await api.post(
            "/api/v1/auth/login", json={"username": username, "password": PASSWORD}
        )
        assert old.status_code == 401
        new = await api.post(
            "/api/v1/auth/login", json={"username": username, "password": NEW_PASSWORD}
        )
        assert new.status_code == 200, new.text
