"""Supervision views, uploads, roster import and the notice inbox over HTTP."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from tests.api.conftest import ROSTER_CSV, token

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_counts_by_township_are_scoped(http: httpx.AsyncClient, round_id: str) -> None:
    county = await http.get(
        f"/api/v1/rounds/{round_id}/supervision/counts",
        params={"by": "township"},
        headers=await token(http, "county"),
    )
    assert county.status_code == 200
    assert {g["township"]: g["total"] for g in county.json()} == {"城关镇": 2, "青石镇": 1}
    township = await http.get(
        f"/api/v1/rounds/{round_id}/supervision/counts",
        headers=await token(http, "tw-chengguan"),
    )
    assert [g["township"] for g in township.json()] == ["城关镇"]
    for path in ("overdue", "escalations"):
        listed = await http.get(
            f"/api/v1/rounds/{round_id}/supervision/{path}", headers=await token(http, "sec-a")
        )
        assert listed.status_code == 200
        assert all(item["org_id"] == "org-a" for item in listed.json())


async def test_upload_stores_by_sha256_with_type_and_size_limits(
    http: httpx.AsyncClient, round_id: str
) -> None:
    secretary = await token(http, "sec-a")
    base = f"/api/v1/rounds/{round_id}/organisations/org-a/files"
    data = "实施方案".encode()
    stored = await http.post(
        base, files={"file": ("方案.txt", data, "text/plain")}, headers=secretary
    )
    assert stored.status_code == 201, stored.text
    assert stored.json()["sha256"] == hashlib.sha256(data).hexdigest()
    refused = await http.post(
        base, files={"file": ("x.exe", b"MZ", "application/octet-stream")}, headers=secretary
    )
    assert refused.status_code == 415
    other_org = await http.post(
        f"/api/v1/rounds/{round_id}/organisations/org-c/files",
        files={"file": ("a.txt", b"x", "text/plain")},
        headers=secretary,
    )
    assert other_org.status_code == 404


async def test_roster_import_reports_bad_rows_and_imports_nothing(
    http: httpx.AsyncClient,
) -> None:
    county = await token(http, "county")
    bad = ROSTER_CSV + "org-d,新村党支部,火星,城关镇,县农委,0,甲,乙\n"
    response = await http.post(
        "/api/v1/roster", files={"file": ("roster.csv", bad.encode(), "text/csv")}, headers=county
    )
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert {"第5行·组织类型", "第5行·党员人数"} <= fields
    listed = await http.get("/api/v1/organisations", headers=county)
    assert "org-d" not in {o["org_id"] for o in listed.json()}
    same = await http.post(
        "/api/v1/roster",
        files={"file": ("roster.csv", ROSTER_CSV.encode(), "text/csv")},
        headers=county,
    )
    # The same roster again: nothing changed, so nothing is counted as updated.
    assert same.status_code == 200, same.text
    assert (same.json()["updated"], same.json()["unchanged"]) == (0, 3)
    forbidden = await http.post(
        "/api/v1/roster",
        files={"file": ("roster.csv", ROSTER_CSV.encode(), "text/csv")},
        headers=await token(http, "sec-a"),
    )
    assert forbidden.status_code == 403


async def test_inbox_is_personal(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/v1/notices", headers=await token(http, "ins-liu"))
    assert response.status_code == 200
    assert all(n["org_id"] == "org-c" for n in response.json())


async def test_openapi_is_served(http: httpx.AsyncClient) -> None:
    response = await http.get("/openapi.json")
    assert response.status_code == 200
    assert "/api/v1/auth/login" in response.json()["paths"]


async def test_overdue_is_paged_with_its_total_in_a_header(
    http: httpx.AsyncClient, round_id: str
) -> None:
    """The list stays a list (older clients read it as before); the total and the next
    page's cursor are headers, documented in OpenAPI. Paging under writes is
    tests/activities/test_dashboard_paging.py."""
    county = await token(http, "county")
    url = f"/api/v1/rounds/{round_id}/supervision/overdue"
    first = await http.get(url, headers=county)
    assert first.status_code == 200, first.text
    assert isinstance(first.json(), list)
    assert int(first.headers["X-Total-Count"]) == len(first.json())
    assert "X-Next-Cursor" not in first.headers
    for bad in ({"limit": 0}, {"limit": 5001}, {"cursor": "not-a-cursor"}):
        refused = await http.get(url, params=bad, headers=county)
        assert refused.status_code == 422, bad
    spec = (await http.get("/openapi.json")).json()
    operation = spec["paths"]["/api/v1/rounds/{round_id}/supervision/overdue"]["get"]
    assert {"cursor", "limit"} <= {p["name"] for p in operation["parameters"]}
    assert {"X-Total-Count", "X-Next-Cursor", "Link"} <= set(
        operation["responses"]["200"]["headers"]
    )
