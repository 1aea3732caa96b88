"""Circulars (通报) on demand over HTTP, their download, digests, and the round's schedules."""

from __future__ import annotations

import io

import httpx
from openpyxl import load_workbook
from temporalio.testing import WorkflowEnvironment

from chuangzheng.schedules import circular_schedule_id, digest_schedule_id
from tests.api.conftest import token


async def test_circular_on_demand_is_published_once_and_downloadable(
    http: httpx.AsyncClient, round_id: str
) -> None:
    county = await token(http, "county")
    key = {"Idempotency-Key": f"circular-{round_id}"}
    first = await http.post(f"/api/v1/rounds/{round_id}/circulars", headers=county | key)
    assert first.status_code == 201, first.text
    again = await http.post(f"/api/v1/rounds/{round_id}/circulars", headers=county | key)
    assert again.status_code in (200, 201), again.text
    assert again.json()["circular_id"] == first.json()["circular_id"]
    assert "xlsx_path" not in first.json()  # no server paths in answers

    township = await token(http, "tw-chengguan")
    listed = await http.get(f"/api/v1/rounds/{round_id}/circulars", headers=township)
    assert listed.status_code == 200
    assert [c["circular_id"] for c in listed.json()] == [first.json()["circular_id"]]

    download = await http.get(first.json()["download"], headers=township)
    assert download.status_code == 200
    workbook = load_workbook(io.BytesIO(download.content), read_only=True)
    cells = {
        str(c)
        for sheet in workbook.worksheets
        for row in sheet.iter_rows(values_only=True)
        for c in row
    }
    assert {"城关镇", "青石镇"} <= cells

    # A secretary neither lists nor downloads circulars; nor may a township publish one.
    secretary = await token(http, "sec-a")
    assert (
        await http.get(f"/api/v1/rounds/{round_id}/circulars", headers=secretary)
    ).status_code == 404
    assert (await http.get(first.json()["download"], headers=secretary)).status_code == 404
    assert (
        await http.post(f"/api/v1/rounds/{round_id}/circulars", headers=township)
    ).status_code == 403

    # The county office and each township got one circular notice in their digests inbox.
    county_digests = (await http.get("/api/v1/digests", headers=county)).json()
    assert (
        sum(1 for d in county_digests if d["kind"] == "circular" and d["round_id"] == round_id) == 1
    )
    township_digests = (await http.get("/api/v1/digests", headers=township)).json()
    assert any(d["kind"] == "circular" and d["round_id"] == round_id for d in township_digests)


async def test_kickoff_creates_the_rounds_schedules(
    dev_server: WorkflowEnvironment, round_id: str
) -> None:
    for schedule_id in (digest_schedule_id(round_id), circular_schedule_id(round_id)):
        described = await dev_server.client.get_schedule_handle(schedule_id).describe()
        assert described.schedule.spec.time_zone_name == "Asia/Shanghai"
    digest = await dev_server.client.get_schedule_handle(digest_schedule_id(round_id)).describe()
    calendar = digest.schedule.spec.calendars[0]
    assert (calendar.hour[0].start, calendar.minute[0].start) == (8, 30)  # CZ_DIGEST_TIME
