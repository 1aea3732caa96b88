"""Plan versions through the API and the round's page, on the real stack (dev server, the
project's worker, uvicorn; SQLite and PostgreSQL): the county office reads the plan in
force, previews an edited draft, is refused a draft that changes a phase's steps (the field
named, nothing changed), applies the draft once per Idempotency-Key; every organisation's
open deadline moves and its timeline says so; the versions are listed with what changed;
other roles are refused; the page shows the versions and applies from its form."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest
import yaml

from tests.api.conftest import PASSWORD, Stack, start_demo_round, token, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _edited(plan_yaml: str, *, minutes: int, drop_step: bool = False) -> str:
    """The demo plan with 动员部署 lasting ``minutes`` (and, for a bad draft, a step of
    公开承诺 removed)."""
    data: dict[str, Any] = yaml.safe_load(plan_yaml)
    phases = data["rounds"][0]["phases"]
    phases[0]["duration"] = {"minutes": minutes}
    if drop_step:
        phases[1]["steps"] = phases[1]["steps"][:1]
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def _deadline(status: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(status["state"]["phases"][0]["deadline"])


async def test_the_county_office_previews_and_applies_a_plan_version_once(stack: Stack) -> None:
    rid = await start_demo_round(stack, f"pv-{uuid.uuid4().hex[:8]}")
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        county = await token(http, "county")
        secretary = await token(http, "sec-a")
        assert (await http.get(f"/api/v1/rounds/{rid}/plan", headers=secretary)).status_code == 403
        current = await http.get(f"/api/v1/rounds/{rid}/plan", headers=county)
        assert current.status_code == 200, current.text
        assert current.json()["version"] == 1
        text = current.json()["plan_yaml"]

        # A bad draft: refused naming the field; the round stays on version 1.
        bad = await http.post(
            f"/api/v1/rounds/{rid}/plan-versions",
            json={"plan_yaml": _edited(text, minutes=30, drop_step=True), "reason": "试"},
            headers={**county, "Idempotency-Key": f"bad-{rid}"},
        )
        assert bad.status_code == 422, bad.text
        fields = {e["field"]: e["reason"] for e in bad.json()["errors"]}
        assert "步骤不能在运行中修改" in fields["rounds[0].phases[1].steps"]
        again = await http.get(f"/api/v1/rounds/{rid}/plan", headers=county)
        assert again.json()["version"] == 1

        draft = _edited(text, minutes=30)
        preview = await http.post(
            f"/api/v1/rounds/{rid}/plan-versions/preview",
            json={"plan_yaml": draft, "reason": ""},
            headers=county,
        )
        assert preview.status_code == 200, preview.text
        assert preview.json()["version"] == 2
        assert preview.json()["changes"][0].startswith("动员部署阶段截止时间由")
        new_deadline = datetime.fromisoformat(preview.json()["windows"][0]["deadline"])

        body = {"plan_yaml": draft, "reason": "全县防汛，动员部署统一顺延", "base_version": 1}
        refused = await http.post(
            f"/api/v1/rounds/{rid}/plan-versions",
            json=body,
            headers={**secretary, "Idempotency-Key": f"sec-{rid}"},
        )
        assert refused.status_code == 403, refused.text
        key = {"Idempotency-Key": f"v2-{rid}"}
        applied = await http.post(
            f"/api/v1/rounds/{rid}/plan-versions", json=body, headers={**county, **key}
        )
        assert applied.status_code == 200, applied.text
        assert applied.json()["applied"] is True and applied.json()["version"] == 2
        retried = await http.post(
            f"/api/v1/rounds/{rid}/plan-versions", json=body, headers={**county, **key}
        )
        assert retried.status_code == 200, retried.text
        assert retried.json()["version"] == 2

        async def moved(org: str) -> bool:
            r = await http.get(f"/api/v1/rounds/{rid}/organisations/{org}/status", headers=county)
            return r.status_code == 200 and _deadline(r.json()) == new_deadline

        for org in ("org-a", "org-b", "org-c"):
            await wait_for(lambda o=org: moved(o))

        versions = await http.get(f"/api/v1/rounds/{rid}/plan-versions", headers=county)
        assert versions.status_code == 200, versions.text
        listed = versions.json()
        assert [v["version"] for v in listed] == [1, 2]
        assert listed[1]["reason"] == "全县防汛，动员部署统一顺延"
        assert listed[1]["changes"] == preview.json()["changes"]

        async def in_timeline() -> bool:
            r = await http.get(f"/api/v1/rounds/{rid}/organisations/org-a/timeline", headers=county)
            return r.status_code == 200 and any(
                e["kind"] == "plan_version_applied"
                and e["detail"]["summary"].startswith("计划第2版")
                for e in r.json()
            )

        await wait_for(in_timeline)

    # The round's page: the versions and what changed; the form applies a third version.
    async with httpx.AsyncClient(
        base_url=stack.base_url, timeout=60, headers={"Origin": stack.base_url}
    ) as browser:
        signed = await browser.post(
            "/ui/login", data={"username": "county", "password": PASSWORD, "next": "/ui/"}
        )
        assert signed.status_code == 303, signed.text
        page = await browser.get(f"/ui/rounds/{rid}/plan")
        assert page.status_code == 200, page.text
        assert "第2版" in page.text and "全县防汛，动员部署统一顺延" in page.text
        assert "动员部署阶段截止时间由" in page.text
        third = _edited(draft, minutes=40)
        shown = await browser.post(
            f"/ui/rounds/{rid}/plan",
            data={"plan_yaml": third, "reason": "再顺延", "base_version": "2", "do": "preview"},
        )
        assert shown.status_code == 200 and "启用后将成为第3版" in shown.text
        done = await browser.post(
            f"/ui/rounds/{rid}/plan",
            data={
                "plan_yaml": third,
                "reason": "再顺延",
                "base_version": "2",
                "form_key": uuid.uuid4().hex,
                "do": "apply",
            },
        )
        assert done.status_code == 303, done.text
        assert "/ui/rounds/" in done.headers["location"]
        after = await browser.get(done.headers["location"])
        assert "已启用计划第3版" in after.text
    async with httpx.AsyncClient(
        base_url=stack.base_url, timeout=60, headers={"Origin": stack.base_url}
    ) as other:
        await other.post(
            "/ui/login", data={"username": "sec-a", "password": PASSWORD, "next": "/ui/"}
        )
        assert (await other.get(f"/ui/rounds/{rid}/plan")).status_code == 403
