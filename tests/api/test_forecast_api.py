"""The forecast through the real app: the supervision API lists it within the caller's scope
with its reasons, and the laggard list and the organisation page show it (read only), once a
model is kept under the data directory."""

from __future__ import annotations

import random
import re
import uuid

import httpx
import pytest

from chuangzheng.services.forecast import model_path, save_model
from domain.forecast import ForecastFeatures, ForecastModel, Sample
from domain.forecast_fit import fit
from domain.phases import Phase
from tests.api.conftest import PASSWORD, Stack, start_demo_round, token

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _small_model() -> ForecastModel:
    """A model whose risk rises with the progress gap (the demo round has no history)."""
    rng = random.Random(1)
    samples = []
    for i in range(300):
        elapsed = rng.random()
        progress = rng.random() * elapsed
        missed = rng.random() < 0.1 + 0.8 * (elapsed - progress)
        features = ForecastFeatures(
            org_id=f"o{i}", phase=Phase.MOBILISATION, elapsed=elapsed, progress=progress
        )
        samples.append(Sample(features=features, missed=missed))
    return fit(samples, threshold=0.05)


async def test_forecast_is_scoped_explained_and_shown_on_the_pages(stack: Stack) -> None:
    rid = await start_demo_round(stack, f"fc-{uuid.uuid4().hex[:8]}")
    path = model_path(stack.settings.data_dir)
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        county = await token(http, "county")
        url = f"/api/v1/rounds/{rid}/supervision/forecast"
        if not path.exists():  # another test may have kept one already
            before = await http.get(url, headers=county)
            assert before.status_code == 200, before.text
            assert before.json() == {
                "fitted": False,
                "threshold": None,
                "fitted_on": "",
                "items": [],
            }
        model = _small_model()
        save_model(model, path)
        listed = await http.get(url, headers=county)
        assert listed.status_code == 200, listed.text
        body = listed.json()
        assert body["fitted"] and body["threshold"] == 0.05
        orgs = {item["org_id"] for item in body["items"]}
        # The demo round's first phase is open for minutes: every organisation is forecast.
        assert orgs == {"org-a", "org-b", "org-c"}
        probabilities = [item["probability"] for item in body["items"]]
        assert probabilities == sorted(probabilities, reverse=True)
        for item in body["items"]:
            assert item["phase"] == "mobilisation" and 0 < item["probability"] < 1
            assert item["reasons"] and all(item["reasons"])
            assert item["warn"] == (item["probability"] >= 0.05)
        # A secretary sees its own organisation only.
        own = await http.get(url, headers=await token(http, "sec-a"))
        assert {i["org_id"] for i in own.json()["items"]} == {"org-a"}

    async with httpx.AsyncClient(
        base_url=stack.base_url, timeout=60, headers={"Origin": stack.base_url}
    ) as browser:
        signed = await browser.post(
            "/ui/login", data={"username": "county", "password": PASSWORD, "next": "/ui/"}
        )
        assert signed.status_code == 303, signed.text
        laggards = await browser.get(f"/ui/laggards?round={rid}&light=all")
        assert laggards.status_code == 200
        assert "逾期风险（预测）" in laggards.text
        # Time moves between the calls (the phase lasts minutes), so the figures may too:
        # every listed organisation has a probability and a reason in its row.
        cells = re.findall(
            r'<td class="forecast[^"]*" title="([^"]+)"><b>(\d+)%</b>', laggards.text
        )
        assert len(cells) == 3 and all(reason and 0 < int(p) < 100 for reason, p in cells)
        # Sorted by risk, likeliest first; "only 预警" keeps the rows above the threshold
        # (all three here: the threshold is 5 %), whatever their light.
        ranked = await browser.get(f"/ui/laggards?round={rid}&warn=1&sort=risk&dir=desc")
        assert ranked.status_code == 200
        shown = [
            int(p)
            for p in re.findall(r'<td class="forecast warn"[^>]*><b>(\d+)%</b> 预警', ranked.text)
        ]
        assert len(shown) == 3 and shown == sorted(shown, reverse=True)
        page = await browser.get(f"/ui/orgs/org-a?round={rid}")
        assert page.status_code == 200
        assert re.search(r"逾期风险（预测）：动员部署 <b>\d+%</b>.*主要原因：\S+", page.text)
