"""A circular notice's link opens that circular (issue 13, item 11): published over the real
stack, the link the notice carries followed with a signed-in browser's cookie."""

from __future__ import annotations

import hashlib
import uuid

import httpx
import pytest
from sqlalchemy import select

from activities.db import make_engine
from activities.tables import CircularRow, digests
from tests.api.conftest import PASSWORD, Stack, start_demo_round, token

pytestmark = pytest.mark.asyncio(loop_scope="session")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def _browser(stack: Stack, username: str) -> httpx.AsyncClient:
    http = httpx.AsyncClient(base_url=stack.base_url, timeout=60, follow_redirects=True)
    login = await http.post(
        "/ui/login",
        data={"username": username, "password": PASSWORD},
        headers={"Origin": stack.base_url},
    )
    assert login.status_code == 200, login.text  # followed to the landing page
    return http


async def test_the_circular_notices_link_opens_the_published_circular(stack: Stack) -> None:
    rid = await start_demo_round(stack, f"link-{uuid.uuid4().hex[:8]}")
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        published = await http.post(
            f"/api/v1/rounds/{rid}/circulars",
            headers={**await token(http, "county"), "Idempotency-Key": "week-1"},
        )
        assert published.status_code == 201, published.text
    engine = make_engine(stack.settings.database_url)
    with engine.connect() as connection:
        links = set(
            connection.scalars(
                select(digests.c.link_path).where(
                    digests.c.round_id == rid, digests.c.kind == "circular"
                )
            )
        )
        row = connection.execute(select(CircularRow).where(CircularRow.round_id == rid)).one()
    engine.dispose()
    assert len(links) == 1
    (link,) = links
    county = await _browser(stack, "county")
    try:
        opened = await county.get(link)
        assert opened.status_code == 200, (link, opened.url, opened.text[:300])
        assert opened.headers["content-type"] == XLSX
        assert hashlib.sha256(opened.content).hexdigest() == row.xlsx_sha256
        missing = await county.get(f"/rounds/{rid}/circulars/no-such-key")
        assert missing.status_code == 404
    finally:
        await county.aclose()
    secretary = await _browser(stack, "sec-a")
    try:
        assert (await secretary.get(link)).status_code == 404
    finally:
        await secretary.aclose()
