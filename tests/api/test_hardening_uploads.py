"""Uploads (issue 13, item 9): only roles that act on an organisation's evidence upload, and
only into a round the organisation takes part in; over the real stack."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import func, select

from activities.db import make_engine
from activities.tables import UploadedFileRow
from tests.api.conftest import Stack, token

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _upload(name: str = "材料.txt") -> dict[str, tuple[str, bytes, str]]:
    return {"file": (name, f"材料 {uuid.uuid4()}".encode(), "text/plain")}


def _stored(stack: Stack, round_id: str) -> int:
    engine = make_engine(stack.settings.database_url)
    with engine.connect() as connection:
        count = connection.scalar(
            select(func.count())
            .select_from(UploadedFileRow)
            .where(UploadedFileRow.round_id == round_id)
        )
    engine.dispose()
    return int(count or 0)


async def test_the_read_only_assessment_group_cannot_upload(
    http: httpx.AsyncClient, stack: Stack, round_id: str
) -> None:
    before = _stored(stack, round_id)
    response = await http.post(
        f"/api/v1/rounds/{round_id}/organisations/org-a/files",
        files=_upload(),
        headers=await token(http, "assess"),
    )
    assert response.status_code == 403, response.text
    assert _stored(stack, round_id) == before


@pytest.mark.parametrize("username", ["sec-a", "ins-zhang", "tw-chengguan", "gg-rural", "county"])
async def test_those_who_act_on_the_organisation_upload(
    http: httpx.AsyncClient, round_id: str, username: str
) -> None:
    response = await http.post(
        f"/api/v1/rounds/{round_id}/organisations/org-a/files",
        files=_upload(),
        headers=await token(http, username),
    )
    assert response.status_code == 201, response.text


async def test_no_upload_into_a_round_that_does_not_exist_or_has_not_started(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    county, secretary = await token(http, "county"), await token(http, "sec-a")
    created = f"up-{uuid.uuid4().hex[:8]}"
    made = await http.post(
        "/api/v1/rounds",
        json={"round_id": created, "plan_id": "demo", "round_plan_id": "demo"},
        headers=county,
    )
    assert made.status_code == 201, made.text
    for rid in ("no-such-round", created):
        for headers in (secretary, county):
            response = await http.post(
                f"/api/v1/rounds/{rid}/organisations/org-a/files", files=_upload(), headers=headers
            )
            assert response.status_code == 404, (rid, response.text)
        assert _stored(stack, rid) == 0
