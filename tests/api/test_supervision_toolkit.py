"""The supervisors' toolkit over the real stack (dev server, worker, API, SQLite and
PostgreSQL): 限期整改 at discretion reaches the organisation's workflow once however often it
is asked, only from the roles and scopes allowed; a spot check's draw is reproducible from its
seed and stratified, and a verdict of 差 orders rectification; supervision records show on the
organisation's timeline and in the circular; a contact-point cadre, made through the account
machinery, sees their organisations and nothing else."""

from __future__ import annotations

import asyncio
import io
import re
import uuid
from typing import Any

import httpx
import openpyxl  # type: ignore[import-untyped]
import pytest

from tests.api.conftest import PASSWORD, Stack, start_demo_round, token, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")

ORDER = {
    "ground": "not_taken_seriously",
    "reason": "动员会未召开，支部书记未作动员讲话",
    "period_working_days": 3,
}


async def _round(stack: Stack) -> str:
    return await start_demo_round(stack, f"sv-{uuid.uuid4().hex[:8]}")


def _rectifications(status: dict[str, Any]) -> list[dict[str, Any]]:
    return [p["rectification"] for p in status["state"]["phases"] if p["rectification"]]


async def _status(http: httpx.AsyncClient, rid: str, org: str, who: str) -> dict[str, Any]:
    answer = await http.get(
        f"/api/v1/rounds/{rid}/organisations/{org}/status", headers=await token(http, who)
    )
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def test_a_discretionary_order_reaches_the_workflow_once_and_passes_on_recheck(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    rid = await _round(stack)
    path = f"/api/v1/rounds/{rid}/organisations/org-a/rectification-orders"
    township = await token(http, "tw-chengguan") | {"Idempotency-Key": "order-1"}
    # The same request twice at once, then again: one order.
    first, twin = await asyncio.gather(
        http.post(path, json=ORDER, headers=township),
        http.post(path, json=ORDER, headers=township),
    )
    assert {first.status_code, twin.status_code} == {201}, (first.text, twin.text)
    again = await http.post(path, json=ORDER, headers=township)
    assert again.status_code == 201
    order = first.json()["order"]
    assert (
        twin.json()["order"]["order_id"] == again.json()["order"]["order_id"] == order["order_id"]
    )
    assert order["source"] == "discretion" and order["ground_label"] == "思想上不重视"
    assert "思想上不重视" in order["reason"] and order["deadline"]
    (issued,) = _rectifications(first.json()["status"])
    assert issued["status"] == "issued"

    status = await _status(http, rid, "org-a", "county")
    assert len(_rectifications(status)) == 1
    keys = [k for k in status["state"]["idempotency_keys"] if k.startswith("discretion:")]
    assert keys == [f"discretion:{order['order_id']}"]

    async def notified() -> list[dict[str, Any]]:
        inbox = await http.get(
            "/api/v1/notices",
            params={"round_id": rid, "kind": "rectification_order"},
            headers=await token(http, "sec-a"),
        )
        found: list[dict[str, Any]] = inbox.json()
        return found

    (notice,) = await wait_for(notified)
    assert "思想上不重视" in notice["body"] and notice["title"].startswith("【整改通知】")
    listed = await http.get(f"/api/v1/rounds/{rid}/rectification-orders", headers=township)
    assert [o["order_id"] for o in listed.json()] == [order["order_id"]]

    # The same machinery as any order: the secretary reports, a supervisor re-checks.
    phase = order["phase"]
    base = f"/api/v1/rounds/{rid}/organisations/org-a"
    report = await http.post(
        f"{base}/rectification/report",
        json={"phase": phase, "report": "已召开动员会，书记作了动员讲话，材料已上传。"},
        headers=await token(http, "sec-a"),
    )
    assert report.status_code == 200, report.text
    recheck = await http.post(
        f"{base}/rectification/recheck",
        json={"phase": phase, "passed": True},
        headers=await token(http, "tw-chengguan"),
    )
    assert recheck.status_code == 200, recheck.text
    (passed,) = _rectifications(await _status(http, rid, "org-a", "county"))
    assert passed["status"] == "passed"


async def test_only_supervising_bodies_order_within_their_scope_and_bad_fields_are_named(
    http: httpx.AsyncClient, round_id: str
) -> None:
    def path(org: str) -> str:
        return f"/api/v1/rounds/{round_id}/organisations/{org}/rectification-orders"

    for who, org, expected in [
        ("sec-a", "org-a", 403),  # the organisation itself
        ("ins-zhang", "org-a", 403),  # an instructor guides; the order is the committee's
        ("tw-chengguan", "org-c", 404),  # another township's organisation
        ("gg-health", "org-a", 404),  # another system's guidance group
    ]:
        answer = await http.post(path(org), json=ORDER, headers=await token(http, who))
        assert answer.status_code == expected, (who, org, answer.text)
    bad = await http.post(
        path("org-a"),
        json={"ground": "lazy", "reason": "差", "period_working_days": 0},
        headers=await token(http, "county"),
    )
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {
        "ground",
        "reason",
        "period_working_days",
    }


async def test_a_spot_check_redraws_from_its_seed_is_stratified_and_a_poor_verdict_orders(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    rid = await _round(stack)
    county = await token(http, "county")
    body = {"count": 2, "stratify_by": "township", "seed": "2026-第48周"}
    drawn = await http.post(f"/api/v1/rounds/{rid}/inspection-draws", json=body, headers=county)
    assert drawn.status_code == 201, drawn.text
    draw = drawn.json()
    assert draw["seed"] == "2026-第48周"
    assert sorted(draw["population"]) == ["org-a", "org-b", "org-c"]
    # Two of three, by township: one of 城关镇's two and 青石镇's one.
    assert len(draw["sample"]) == 2 and "org-c" in draw["sample"]
    # Anyone who sees the draw can draw again from the record; a new draw with the same
    # seed and size draws the same organisations.
    redraw = await http.get(
        f"/api/v1/rounds/{rid}/inspection-draws/{draw['draw_id']}/redraw", headers=county
    )
    assert redraw.json()["same"] is True and redraw.json()["redrawn"] == draw["sample"]
    twin = await http.post(f"/api/v1/rounds/{rid}/inspection-draws", json=body, headers=county)
    assert twin.json()["sample"] == draw["sample"]
    # Without a seed one is chosen and recorded.
    unseeded = await http.post(
        f"/api/v1/rounds/{rid}/inspection-draws", json={"share": 1}, headers=county
    )
    assert unseeded.status_code == 201 and unseeded.json()["seed"]
    assert unseeded.json()["sample"] == ["org-a", "org-b", "org-c"]

    # A guidance group draws in its scope; another's draw is not its business.
    rural = await token(http, "gg-rural")
    own = await http.post(
        f"/api/v1/rounds/{rid}/inspection-draws",
        json={"share": 0.5, "stratify_by": "type", "seed": "s"},
        headers=rural,
    )
    assert own.status_code == 201, own.text
    assert len(own.json()["sample"]) == 2  # one 农村 of two, the one 社区
    assert "org-b" in own.json()["sample"]
    health = await token(http, "gg-health")
    assert (
        await http.get(
            f"/api/v1/rounds/{rid}/inspection-draws/{own.json()['draw_id']}", headers=health
        )
    ).status_code == 404
    assert (
        await http.post(f"/api/v1/rounds/{rid}/inspection-draws", json=body, headers=health)
    ).status_code == 404  # nothing of its system in the round
    township = await token(http, "tw-chengguan")
    assert (
        await http.post(f"/api/v1/rounds/{rid}/inspection-draws", json=body, headers=township)
    ).status_code == 403
    both = await http.post(
        f"/api/v1/rounds/{rid}/inspection-draws",
        json={"count": 1, "share": 0.5},
        headers=county,
    )
    assert both.status_code == 422 and both.json()["errors"][0]["field"] == "count"

    # The verdict on org-c: 差 orders rectification, once however often it is recorded.
    (inspection,) = [i for i in draw["inspections"] if i["org_id"] == "org-c"]
    result = {
        "inspectors": "县委活动办李某、张某",
        "inspected_on": "2026-11-30",
        "findings": "公开承诺未向群众公布",
        "verdict": "rectify",
        "period_working_days": 5,
    }
    url = f"/api/v1/rounds/{rid}/inspections/{inspection['inspection_id']}"
    recorded = await http.put(url, json=result, headers=county)
    assert recorded.status_code == 200, recorded.text
    assert recorded.json()["verdict_label"] == "差，限期整改" and recorded.json()["order_id"]
    again = await http.put(url, json=result, headers=county)
    assert again.json()["order_id"] == recorded.json()["order_id"]
    (issued,) = _rectifications(await _status(http, rid, "org-c", "county"))
    assert issued["status"] == "issued"
    orders = await http.get(
        f"/api/v1/rounds/{rid}/rectification-orders", params={"org_id": "org-c"}, headers=county
    )
    assert [(o["source"], o["inspection_id"]) for o in orders.json()] == [
        ("inspection", inspection["inspection_id"])
    ]
    changed = await http.put(url, json=result | {"verdict": "good"}, headers=county)
    assert changed.status_code == 422 or changed.status_code == 409, changed.text
    missing = await http.put(url, json=result | {"period_working_days": None}, headers=county)
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "period_working_days"


async def test_supervision_records_show_on_the_timeline_and_in_the_circular(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    rid = await _round(stack)
    township = await token(http, "tw-chengguan")
    record = {
        "kind": "symposium",
        "held_on": "2026-11-27",
        "title": "城关镇创先争优座谈会",
        "supervisors": ["镇党委赵书记", "组织委员钱某"],
        "org_ids": ["org-a", "org-b"],
        "findings": "西关社区承诺公示不及时",
        "follow_ups": "一周内回访西关社区",
    }
    # The same request twice at once (a double click): one record, the same answer twice.
    # The record's id is fresh per insert, so only the key's claim can make them one.
    keyed = township | {"Idempotency-Key": f"record-{rid}"}
    made, twin = await asyncio.gather(
        *(
            http.post(f"/api/v1/rounds/{rid}/supervision-records", json=record, headers=keyed)
            for _ in range(2)
        )
    )
    assert made.status_code == twin.status_code == 201, (made.text, twin.text)
    assert made.json() == twin.json()
    # A key whose request failed is given back: the corrected request runs under it.
    failed_key = township | {"Idempotency-Key": f"failed-{rid}"}
    refused = await http.post(
        f"/api/v1/rounds/{rid}/supervision-records",
        json=record | {"org_ids": ["org-c"], "title": "另一次督查"},
        headers=failed_key,
    )
    assert refused.status_code == 422
    # (the same key with another body would be refused as reused, had the claim stayed)
    corrected = await http.post(
        f"/api/v1/rounds/{rid}/supervision-records",
        json=record | {"title": "另一次督查"},
        headers=failed_key,
    )
    assert corrected.status_code == 201, corrected.text
    outside = await http.post(
        f"/api/v1/rounds/{rid}/supervision-records",
        json=record | {"org_ids": ["org-a", "org-c"]},
        headers=township,
    )
    assert outside.status_code == 422
    assert [e["field"] for e in outside.json()["errors"]] == ["org_ids.1"]
    # The supervisors are kept joined in a 500-character column: fifty names of twenty
    # characters each used to pass the request's checks and then fail PostgreSQL's write
    # (a 500). Each name, and all of them together, are measured first; nothing is kept.
    too_many = await http.post(
        f"/api/v1/rounds/{rid}/supervision-records",
        json=record | {"supervisors": [f"第{i:02d}督导组组长" + "某" * 12 for i in range(50)]},
        headers=township,
    )
    assert too_many.status_code == 422, too_many.text
    assert too_many.json()["errors"] == [
        {"field": "supervisors", "reason": "督导人员姓名合计不能超过500字"}
    ]
    one_long = await http.post(
        f"/api/v1/rounds/{rid}/supervision-records",
        json=record | {"supervisors": ["赵书记", "钱" * 41, "孙某、李某"]},
        headers=township,
    )
    assert one_long.status_code == 422, one_long.text
    assert [e["field"] for e in one_long.json()["errors"]] == [
        "supervisors.1",
        "supervisors.2",
    ]
    # The timeline of org-a (its secretary sees it); org-c's has nothing.
    timeline = await http.get(
        f"/api/v1/rounds/{rid}/supervision-records",
        params={"org_id": "org-a"},
        headers=await token(http, "sec-a"),
    )
    assert sorted(r["title"] for r in timeline.json()) == ["另一次督查", "城关镇创先争优座谈会"]
    assert {r["kind_label"] for r in timeline.json()} == {"座谈会"}
    other = await http.get(
        f"/api/v1/rounds/{rid}/supervision-records", headers=await token(http, "sec-c")
    )
    assert other.json() == []
    hidden = await http.get(
        f"/api/v1/rounds/{rid}/supervision-records",
        params={"org_id": "org-a"},
        headers=await token(http, "sec-c"),
    )
    assert hidden.status_code == 404

    county = await token(http, "county")
    published = await http.post(
        f"/api/v1/rounds/{rid}/circulars", headers=county | {"Idempotency-Key": "w48"}
    )
    assert published.status_code == 201, published.text
    workbook = await http.get(published.json()["download"], headers=county)
    assert workbook.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(workbook.content))["督促检查"]
    rows = sorted(tuple(c.value for c in r) for r in sheet.iter_rows(min_row=2))
    assert rows == [
        (
            "2026-11-27",
            "座谈会",
            f"{title}，督导人员镇党委赵书记、组织委员钱某",
            "城关镇东关村党支部、城关镇西关社区党支部",
            "西关社区承诺公示不及时",
            "后续跟进：一周内回访西关社区",
        )
        for title in sorted(["城关镇创先争优座谈会", "另一次督查"])
    ]


async def test_a_contact_point_cadre_sees_their_organisations_and_nothing_else(
    http: httpx.AsyncClient, round_id: str
) -> None:
    county = await token(http, "county")
    username = f"cadre-{uuid.uuid4().hex[:6]}"
    cadre_key = f"王副县长-{username}"
    created = await http.post(
        "/api/v1/accounts",
        json={
            "username": username,
            "display_name": "王副县长",
            "role": "leading_cadre",
            "scope_key": cadre_key,
        },
        headers=county,
    )
    assert created.status_code == 201, created.text
    password = "Spring-联系点-2026!"  # not the account name (the rule refuses "cadre-…")
    activated = await http.post(
        "/api/v1/auth/activate",
        json={
            "username": username,
            "code": created.json()["activation_code"],
            "new_password": password,
        },
    )
    assert activated.status_code == 200, activated.text
    login = await http.post("/api/v1/auth/login", json={"username": username, "password": password})
    cadre = {"Authorization": f"Bearer {login.json()['access_token']}"}
    # Before a contact point: nothing.
    assert (
        await http.get(f"/api/v1/rounds/{round_id}/organisations/org-a/status", headers=cadre)
    ).status_code == 404

    point = await http.post(
        "/api/v1/contact-points",
        json={
            "cadre_key": cadre_key,
            "cadre_name": "王某",
            "title": "副县长，分管农业农村",
            "org_ids": ["org-a", "org-x"],
        },
        headers=county,
    )
    assert point.status_code == 422
    assert [e["field"] for e in point.json()["errors"]] == ["org_ids.1"]
    point = await http.post(
        "/api/v1/contact-points",
        json={
            "cadre_key": cadre_key,
            "cadre_name": "王某",
            "title": "副县长，分管农业农村",
            "org_ids": ["org-a"],
        },
        headers=county,
    )
    assert point.status_code == 201, point.text
    refused = await http.post(
        "/api/v1/contact-points", json=point.json() | {}, headers=await token(http, "tw-chengguan")
    )
    assert refused.status_code in (403, 422)

    seen = await http.get(f"/api/v1/rounds/{round_id}/organisations/org-a/status", headers=cadre)
    assert seen.status_code == 200
    assert seen.json()["organisation"]["id"] == "org-a"
    for org in ("org-b", "org-c"):
        other = await http.get(
            f"/api/v1/rounds/{round_id}/organisations/{org}/status", headers=cadre
        )
        assert other.status_code == 404
    listed = await http.get("/api/v1/organisations", headers=cadre)
    assert [o["org_id"] for o in listed.json()] == ["org-a"]
    mine = await http.get("/api/v1/contact-points", headers=cadre)
    assert [p["org_ids"] for p in mine.json()] == [["org-a"]]
    # Read only: the workflow lets no action of the role through.
    acted = await http.post(
        f"/api/v1/rounds/{round_id}/organisations/org-a/rectification-orders",
        json=ORDER,
        headers=cadre,
    )
    assert acted.status_code == 403
    # The pages: the organisation's page (read), and 404 for another.
    async with httpx.AsyncClient(
        base_url=str(http.base_url), timeout=60, headers={"Origin": str(http.base_url)}
    ) as browser:
        signed = await browser.post(
            "/ui/login", data={"username": username, "password": password, "next": "/ui/"}
        )
        assert signed.status_code == 303
        own = await browser.get("/ui/orgs/org-a", params={"round": round_id})
        assert own.status_code == 200 and "城关镇东关村党支部" in own.text
        assert "督办操作" not in own.text  # no supervisor forms for a reader
        other = await browser.get("/ui/orgs/org-c", params={"round": round_id})
        assert other.status_code == 404


async def test_the_pages_draw_record_and_order_through_the_same_services(
    stack: Stack,
) -> None:
    rid = await _round(stack)
    async with httpx.AsyncClient(
        base_url=stack.base_url, timeout=60, headers={"Origin": stack.base_url}
    ) as browser:
        signed = await browser.post(
            "/ui/login", data={"username": "county", "password": PASSWORD, "next": "/ui/"}
        )
        assert signed.status_code == 303
        home = await browser.get("/ui/supervision", params={"round": rid})
        assert home.status_code == 200 and 'href="/ui/supervision?round=' in home.text
        rendered = re.findall(r'name="form_key" value="([0-9a-f]+-(draw|record))"', home.text)
        keys = {form: key for key, form in rendered}
        # The rendered form's key: refused first (the page again, the size as typed and what
        # to correct; the key is given back), then corrected and sent twice at once (a double
        # click): one draw, the same redirect twice.
        bad = await browser.post(
            "/ui/supervision/draws",
            data={"round": rid, "size_kind": "count", "size": "x", "form_key": keys["draw"]},
        )
        assert bad.status_code == 422 and "location" not in bad.headers, bad.text[:500]
        assert 'class="flash err" role="alert">抽查数量：应为整数</p>' in bad.text, bad.text[:2000]
        assert 'name="size" required size="6" value="x"' in bad.text
        draw_form = {"round": rid, "size_kind": "count", "size": "1", "stratify_by": "township",
                     "seed": "页面种子", "form_key": keys["draw"]}  # fmt: skip
        drawn, twin = await asyncio.gather(
            *(browser.post("/ui/supervision/draws", data=draw_form) for _ in range(2))
        )
        assert drawn.status_code == twin.status_code == 303
        assert "msg=" in drawn.headers["location"]
        assert twin.headers["location"] == drawn.headers["location"]
        county = await token(browser, "county")
        draws = await browser.get(f"/api/v1/rounds/{rid}/inspection-draws", headers=county)
        assert len(draws.json()) == 1, draws.text
        record_form = {"round": rid, "kind": "visit", "held_on": "2026-11-30",
                       "title": "页面督查", "supervisors": "赵书记，钱某", "org_ids": "org-a",
                       "findings": "台账不全，需补齐", "form_key": keys["record"]}  # fmt: skip
        for _ in range(2):  # posted again (the browser's back and resubmit): one record
            recorded = await browser.post("/ui/supervision/records", data=record_form)
            assert "msg=" in recorded.headers["location"], recorded.headers["location"]
        records = await browser.get(f"/api/v1/rounds/{rid}/supervision-records", headers=county)
        assert [r["title"] for r in records.json()] == ["页面督查"], records.text
        listed = await browser.get("/ui/supervision", params={"round": rid})
        assert "页面种子" in listed.text and 'class="inline result-form"' in listed.text

        form = {
            "round": rid,
            "form_key": "k-1",
            "ground": "ineffective_work",
            "reason": "群众评议组织不力",
            "period_working_days": "4",
        }
        for _ in range(2):  # a double submit: one order
            ordered = await browser.post("/ui/orgs/org-b/rectification-orders", data=form)
            assert ordered.status_code == 303, ordered.text
            assert "msg=" in ordered.headers["location"], ordered.headers["location"]
        timeline = await browser.get("/ui/orgs/org-b/supervision", params={"round": rid})
        assert timeline.status_code == 200
        assert timeline.text.count("data-order=") == 1 and "工作上不得力" in timeline.text
        org_page = await browser.get("/ui/orgs/org-b", params={"round": rid})
        assert 'id="supervision-link"' in org_page.text
