"""The API's /metrics over the real stack: only for the scraper's token, counted by route
template (never a raw path: ids and ballot tokens stay out of label values), with the read
model's figures."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from tests.api.conftest import Stack, start_demo_round, token, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _scrape_headers(stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.settings.metrics_token}"}


async def test_metrics_exist_only_for_the_scrapers_token(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    assert (await http.get("/metrics")).status_code == 404
    wrong = await http.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 404
    county = await token(http, "county")  # a signed-in user is not a scraper
    assert (await http.get("/metrics", headers=county)).status_code == 404
    scraped = await http.get("/metrics", headers=_scrape_headers(stack))
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    assert "/metrics" not in openapi_paths(await http.get("/openapi.json"))


def openapi_paths(response: httpx.Response) -> set[str]:
    return set(response.json()["paths"])


async def test_requests_are_counted_by_route_template_with_the_county_figures(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    # Unique per run: both stacks (SQLite, PostgreSQL) share one Temporal namespace.
    rid = await start_demo_round(stack, f"r-metrics-{uuid.uuid4().hex[:8]}")
    county = await token(http, "county")
    assert (await http.get(f"/api/v1/rounds/{rid}", headers=county)).status_code == 200
    secret = "k4P28yNotARealBallotTokenButShapedLikeOne"
    await http.get(f"/ballot/{secret}")
    text = (await http.get("/metrics", headers=_scrape_headers(stack))).text

    counted = re.search(
        r'chuangzheng_http_requests_total\{method="GET",route="/api/v1/rounds/\{round_id\}",'
        r'status="200"\} (\d+)',
        text,
    )
    assert counted is not None and int(counted.group(1)) >= 1
    assert 'route="/ballot/{token}"' in text
    assert secret not in text and rid not in text
    assert re.search(r'chuangzheng_http_request_duration_seconds_count\{method="GET",', text)
    lights = dict(re.findall(r'chuangzheng_organisations\{light="(\w+)"\} ([\d.]+)', text))
    assert set(lights) >= {"green", "yellow", "red"}

    async def counted_organisations() -> bool:
        # The read model's figures are reused for READ_MODEL_TTL_SECONDS between scrapes:
        # the demo round's organisations show once the cache has been read again.
        scraped = (await http.get("/metrics", headers=_scrape_headers(stack))).text
        found = re.findall(r'chuangzheng_organisations\{light="\w+"\} ([\d.]+)', scraped)
        return sum(float(v) for v in found) >= 3

    await wait_for(counted_organisations, timeout=30)
