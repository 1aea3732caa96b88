"""The account pages through the real app (uvicorn over the shared stack): the county office
creates an account and sees its code once, the person activates it on the public page, a
township sees only its own secretaries, and the printed list downloads with its codes."""

from __future__ import annotations

import asyncio
import io
import re
import uuid
from collections.abc import AsyncIterator
from urllib.parse import unquote

import httpx
import pypdf
import pytest_asyncio
from sqlalchemy import select

from activities.db import make_engine, session_factory
from activities.tables import AuditRow
from tests.api.conftest import PASSWORD, Stack

GOOD_PASSWORD = "青石-柳树-2026-春"


@pytest_asyncio.fixture(loop_scope="session")
async def browser(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """A cookie-keeping client whose form posts come from the site's own pages."""
    async with httpx.AsyncClient(
        base_url=stack.base_url, timeout=60, headers={"Origin": stack.base_url}
    ) as client:
        yield client


async def _sign_in(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> None:
    answer = await client.post(
        "/ui/login", data={"username": username, "password": password, "next": "/ui/"}
    )
    assert answer.status_code == 303, answer.text


async def test_county_creates_and_the_person_activates(
    browser: httpx.AsyncClient, stack: Stack
) -> None:
    await _sign_in(browser, "county")
    listing = await browser.get("/ui/accounts")
    assert listing.status_code == 200
    assert 'href="/ui/accounts"' in listing.text  # the navigation links the page
    assert "再次打印本乡镇名单会重新签发并作废此前打印的激活码" in listing.text

    username = f"ui-{uuid.uuid4().hex[:8]}"
    created = await browser.post(
        "/ui/accounts",
        data={
            "username": username,
            "display_name": "青石镇党委",
            "role": "township",
            "scope_key": "青石镇",
        },
    )
    assert created.status_code == 200, created.text
    assert created.headers["cache-control"] == "no-store"
    match = re.search(r'id="activation-code">([A-Z0-9-]+)<', created.text)
    assert match is not None
    code = match.group(1)

    found = await browser.get("/ui/accounts", params={"q": username, "activated": "0"})
    assert f'data-username="{username}"' in found.text and "待激活" in found.text

    async with httpx.AsyncClient(
        base_url=stack.base_url, timeout=60, headers={"Origin": stack.base_url}
    ) as person:
        form = await person.get("/ui/activate")
        assert form.status_code == 200 and "激活账号" in form.text
        mismatch = await person.post(
            "/ui/activate",
            data={
                "username": username,
                "code": code,
                "new_password": GOOD_PASSWORD,
                "new_password_again": GOOD_PASSWORD + "x",
            },
        )
        assert mismatch.status_code == 422 and "两次输入的密码不一致" in mismatch.text
        weak = await person.post(
            "/ui/activate",
            data={
                "username": username,
                "code": code,
                "new_password": "woaini1314",
                "new_password_again": "woaini1314",
            },
        )
        assert weak.status_code == 422 and "密码过于常见或简单" in weak.text
        done = await person.post(
            "/ui/activate",
            data={
                "username": username,
                "code": code,
                "new_password": GOOD_PASSWORD,
                "new_password_again": GOOD_PASSWORD,
            },
        )
        assert done.status_code == 200 and 'id="activated"' in done.text, done.text
        again = await person.post(
            "/ui/activate",
            data={
                "username": username,
                "code": code,
                "new_password": GOOD_PASSWORD,
                "new_password_again": GOOD_PASSWORD,
            },
        )
        assert again.status_code == 422
        await _sign_in(person, username, GOOD_PASSWORD)

    stopped = await browser.post(f"/ui/accounts/{username}/deactivate")
    assert stopped.status_code == 303
    detail = await browser.get(f"/ui/accounts/{username}")
    assert "已停用" in detail.text and "已激活" in detail.text


async def test_a_township_page_shows_only_its_secretaries(
    browser: httpx.AsyncClient, stack: Stack
) -> None:
    await _sign_in(browser, "tw-chengguan")
    listing = await browser.get("/ui/accounts")
    assert listing.status_code == 200
    assert 'data-username="sec-a"' in listing.text
    assert 'data-username="sec-c"' not in listing.text
    assert 'data-username="county"' not in listing.text
    assert (await browser.get("/ui/accounts/sec-c")).status_code == 404
    assert (await browser.post("/ui/accounts/sec-c/reset")).status_code == 404
    refused = await browser.post(
        "/ui/accounts",
        data={
            "username": f"x-{uuid.uuid4().hex[:6]}",
            "display_name": "主任",
            "role": "county_office",
        },
    )
    assert refused.status_code == 403

    username = f"ui-sec-{uuid.uuid4().hex[:6]}"
    created = await browser.post(
        "/ui/accounts",
        data={
            "username": username,
            "display_name": "西关书记",
            "role": "secretary",
            "scope_key": "org-b",
        },
    )
    assert created.status_code == 200, created.text
    printed = await browser.post(
        "/ui/accounts/activation-list", data={"township": "城关镇", "format": "pdf"}
    )
    assert printed.status_code == 200 and printed.content.startswith(b"%PDF")
    text = "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(printed.content)).pages)
    assert username in text and "城关镇西关社区党支部" in text


async def test_a_secretary_has_no_account_pages(browser: httpx.AsyncClient) -> None:
    await _sign_in(browser, "sec-a")
    assert (await browser.get("/ui/accounts")).status_code == 403
    home = await browser.get("/ui/my")
    assert 'href="/ui/accounts"' not in home.text


async def test_a_double_click_on_a_code_form_issues_one_set(
    browser: httpx.AsyncClient, stack: Stack
) -> None:
    await _sign_in(browser, "county")
    username = f"ui-twice-{uuid.uuid4().hex[:6]}"
    created = await browser.post(
        "/ui/accounts",
        data={
            "username": username,
            "display_name": "柳树村书记",
            "role": "secretary",
            "scope_key": "org-c",
        },
    )
    assert created.status_code == 200, created.text

    account = await browser.get(f"/ui/accounts/{username}")
    reset_key = re.search(r'name="form_key" value="([0-9a-f]+-reset)"', account.text)
    assert reset_key is not None, account.text
    answers = await asyncio.gather(
        *(
            browser.post(f"/ui/accounts/{username}/reset", data={"form_key": reset_key.group(1)})
            for _ in range(2)
        )
    )
    pages = sorted(answers, key=lambda a: a.status_code)
    assert [a.status_code for a in pages] == [200, 303], [a.text[:300] for a in answers]
    assert 'id="activation-code"' in pages[0].text
    assert "激活码只显示一次" in unquote(pages[1].headers["location"])

    listing = await browser.get("/ui/accounts")
    list_key = re.search(r'name="form_key" value="([0-9a-f]+-list)"', listing.text)
    assert list_key is not None
    form = {"township": "青石镇", "format": "pdf", "form_key": list_key.group(1)}
    printed = await asyncio.gather(
        *(browser.post("/ui/accounts/activation-list", data=form) for _ in range(2))
    )
    files = [a for a in printed if a.status_code == 200]
    told = [a for a in printed if a.status_code == 303]
    assert len(files) == 1 and len(told) == 1, [a.status_code for a in printed]
    assert files[0].content.startswith(b"%PDF")
    assert "名单已按第一次提交签发" in unquote(told[0].headers["location"])

    # A new rendering is a new request: the list can be printed again on purpose.
    again = await browser.get("/ui/accounts")
    fresh = re.search(r'name="form_key" value="([0-9a-f]+-list)"', again.text)
    assert fresh is not None and fresh.group(1) != list_key.group(1)

    issued = _issued_codes(stack, username)
    assert issued == ["account.create", "account.reset", "account.issue_code"], issued


def _issued_codes(stack: Stack, username: str) -> list[str]:
    engine = make_engine(stack.settings.database_url)
    try:
        with session_factory(engine)() as session:
            rows = session.scalars(select(AuditRow).order_by(AuditRow.at)).all()
            return [r.action for r in rows if r.detail.get("username") == username]
    finally:
        engine.dispose()
