"""A county that has only its roster file, end to end in a real browser (issue 12's "done
means"): the first county office account comes from the command line with a one-time
code; the office activates it on /ui/activate, signs in, imports its roster, prints a
township's activation list from /ui/accounts; a secretary, the township committee and an
instructor activate with their printed codes in the browser, and each then sees exactly
their own organisations (pages and API); a reused code and an expired one are refused.

The county has a database, an API and a browser profile of its own (the shared stack's
roster stays as the other tests expect it). Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import io
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from openpyxl import load_workbook  # type: ignore[import-untyped]
from playwright.async_api import Browser, BrowserContext, Page
from sqlalchemy import update
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from activities.db import create_schema, make_engine, session_factory
from activities.tables import ActivationCodeRow
from api.main import create_app
from chuangzheng.cli import app as cli
from chuangzheng.settings import Settings, get_settings
from tests.api.conftest import free_port

pytestmark = pytest.mark.asyncio(loop_scope="session")

ROSTER = (
    "组织编号,组织名称,组织类型,所属乡镇,所属系统,党员人数,书记,指导员\n"
    "n-1,河东村党支部,农村,河东镇,县农委,30,周一,指导孙\n"
    "n-2,河东社区党支部,社区,河东镇,县农委,22,周二,指导孙\n"
    "n-3,河东卫生院党支部,事业单位,河东镇,县卫生局,15,周三,指导钱\n"
    "n-4,河西村党支部,农村,河西乡,县农委,41,吴一,指导李\n"
)
OFFICE_PASSWORD = "河东河西-county-2026"


@pytest.fixture
def county_settings(tmp_path: Path, dev_server: WorkflowEnvironment) -> Iterator[Settings]:
    """A county of its own: an empty SQLite read model, set in the environment so the
    command line works on it too."""
    settings = Settings(
        environment="test",
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'county.db'}",
        temporal_address=dev_server.client.service_client.config.target_host,
        task_queue=f"newcounty-{uuid.uuid4()}",
        secret_key=f"test-{uuid.uuid4()}",
    )
    engine = make_engine(settings.database_url)
    create_schema(engine)
    engine.dispose()
    yield settings


@pytest_asyncio.fixture(loop_scope="session")
async def county_url(county_settings: Settings) -> AsyncIterator[str]:
    """The county's API and pages under uvicorn."""
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(county_settings), host="127.0.0.1", port=free_port(), log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 10)


@pytest_asyncio.fixture(loop_scope="session")
async def county_browser(browser: Browser, county_url: str) -> AsyncIterator[Browser]:
    """The session's Chromium (contexts are made per person below)."""
    yield browser


def first_code(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> str:
    """``chuangzheng accounts create-county-office`` on the county's database; its code."""
    monkeypatch.setenv("CZ_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CZ_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("CZ_ENVIRONMENT", "test")
    monkeypatch.setenv("CZ_SECRET_KEY", settings.secret_key)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            cli, ["accounts", "create-county-office", "office", "--name", "县委活动办周主任"]
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    match = re.search(r"激活码：(\S+)", result.output)
    assert match, result.output
    return match.group(1)


async def activate(context: BrowserContext, username: str, code: str, password: str) -> Page:
    """Fill in /ui/activate as the person would; the page after submitting."""
    page = await context.new_page()
    await page.goto("/ui/activate")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=code]", code)
    await page.fill("input[name=new_password]", password)
    await page.fill("input[name=new_password_again]", password)
    await page.click("form[action='/ui/activate'] button[type=submit]")
    await page.wait_for_load_state("networkidle")
    return page


async def sign_in(context: BrowserContext, username: str, password: str) -> Page:
    page = await context.new_page()
    await page.goto("/ui/login")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", password)
    await page.click("form[action='/ui/login'] button[type=submit]")
    await page.wait_for_load_state("networkidle")
    assert "/ui/login" not in page.url, await page.content()
    return page


async def visible_orgs(http: httpx.AsyncClient, username: str, password: str) -> set[str]:
    """The organisations ``username`` sees through the API: the list, and each of the
    county's organisations opened one by one (outside the scope: 404)."""
    signed = await http.post(
        "/api/v1/auth/login", json={"username": username, "password": password}
    )
    assert signed.status_code == 200, signed.text
    headers = {"Authorization": f"Bearer {signed.json()['access_token']}"}
    listed = await http.get("/api/v1/organisations", headers=headers)
    assert listed.status_code == 200, listed.text
    seen = {o["org_id"] for o in listed.json()}
    for org_id in ("n-1", "n-2", "n-3", "n-4"):
        opened = await http.get(f"/api/v1/organisations/{org_id}", headers=headers)
        assert opened.status_code == (200 if org_id in seen else 404), (org_id, opened.text)
    return seen


async def test_a_county_with_only_its_roster_signs_everyone_in_to_their_part(
    county_settings: Settings,
    county_url: str,
    county_browser: Browser,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    office_code = first_code(county_settings, monkeypatch)

    def new_context() -> Any:
        return county_browser.new_context(base_url=county_url, locale="zh-CN")

    office = await new_context()
    try:
        page = await activate(office, "office", office_code, OFFICE_PASSWORD)
        assert "已激活，请用新密码登录" in await page.content()
        page = await sign_in(office, "office", OFFICE_PASSWORD)

        async with httpx.AsyncClient(base_url=county_url, timeout=60) as http:
            signed = await http.post(
                "/api/v1/auth/login", json={"username": "office", "password": OFFICE_PASSWORD}
            )
            headers = {"Authorization": f"Bearer {signed.json()['access_token']}"}
            imported = await http.post(
                "/api/v1/roster",
                files={"file": ("roster.csv", ROSTER.encode(), "text/csv")},
                headers=headers,
            )
            assert imported.status_code == 200, imported.text

        # The township's activation list, printed (= issued) from the admin page.
        await page.goto("/ui/accounts")
        await page.select_option("#activation-list select[name=township]", "河东镇")
        await page.select_option("#activation-list select[name=format]", "xlsx")
        async with page.expect_download() as download_info:
            await page.click("#activation-list button[type=submit]")
        download = await download_info.value
        data = Path(await download.path()).read_bytes()
    finally:
        await office.close()

    sheet = load_workbook(io.BytesIO(data)).active
    rows = [[str(c.value or "") for c in row] for row in sheet.iter_rows()]
    codes: dict[str, str] = {}
    for row in rows:
        usernames = [v for v in row if re.fullmatch(r"(secretary|township|instructor)-\S+", v)]
        found = [v for v in row if re.fullmatch(r"[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}", v)]
        if usernames and found:
            codes[usernames[0]] = found[0]
    secretary = next(u for u in codes if u.startswith("secretary-n-1-"))
    township = "township-河东镇"
    instructor = "instructor-指导孙"
    assert {secretary, township, instructor} <= set(codes), codes
    # Only the township printed: the other township's secretary got no code here.
    assert not any(u.startswith("secretary-n-4-") for u in codes)

    expected = {
        secretary: {"n-1"},
        township: {"n-1", "n-2", "n-3"},
        instructor: {"n-1", "n-2"},
    }
    async with httpx.AsyncClient(base_url=county_url, timeout=60) as http:
        for number, (username, orgs) in enumerate(expected.items()):
            password = f"河东-strong-pass-{number}-{uuid.uuid4().hex[:6]}"
            person = await new_context()
            try:
                page = await activate(person, username, codes[username], password)
                assert "已激活，请用新密码登录" in await page.content()
                landing = await sign_in(person, username, password)
                assert "登录" not in await landing.title()
                # A code is used once.
                again = await activate(person, username, codes[username], password + "x")
                assert "已激活" not in await again.content()
                assert "激活码" in await again.content()
            finally:
                await person.close()
            assert await visible_orgs(http, username, password) == orgs

        # An expired code is refused, whatever else is right.
        late = next(u for u in codes if u.startswith("secretary-n-2-"))
        engine = make_engine(county_settings.database_url)
        with session_factory(engine).begin() as session:
            session.execute(
                update(ActivationCodeRow)
                .where(ActivationCodeRow.username == late)
                .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
            )
        engine.dispose()
        refused = await http.post(
            "/api/v1/auth/activate",
            json={"username": late, "code": codes[late], "new_password": "河东-late-pass-2026"},
        )
        assert refused.status_code == 422, refused.text
        not_signed = await http.post(
            "/api/v1/auth/login", json={"username": late, "password": "河东-late-pass-2026"}
        )
        assert not_signed.status_code == 401
