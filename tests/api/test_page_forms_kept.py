"""The supervision and briefing pages over the real stack (dev server + worker + uvicorn;
SQLite and PostgreSQL), through a page session as a browser holds it: the spot check's
re-draw link is a page (the API's route wants a bearer token: a page user got 401) that
shows the sample drawn again beside the recorded one and says whether they agree; a refused
briefing, inspection result, 座谈会/督查 record or 限期整改 order comes back with what was
typed and the reason in Chinese (a file is never refilled), and the refused form's key is
given back, so the corrected form goes through.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import httpx
import pytest
import pytest_asyncio

from domain.calendar import local_date
from tests.api.conftest import Stack, signed_in, start_demo_round, token

pytestmark = pytest.mark.asyncio(loop_scope="session")

NAMES = {
    "org-a": "城关镇东关村党支部",
    "org-b": "城关镇西关社区党支部",
    "org-c": "青石镇柳树村党支部",
}


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def rid(stack: Stack) -> str:
    """A demo round of this module."""
    return await start_demo_round(stack, f"pk-{uuid.uuid4().hex[:8]}")


def flash(page: httpx.Response) -> str:
    """The page's one error line."""
    found = re.findall(r'class="flash err" role="alert">(.*?)</p>', page.text, re.S)
    assert len(found) == 1, page.text[:2000]
    return str(found[0])


def form_key(page: httpx.Response, suffix: str = "") -> str:
    found = re.search(rf'name="form_key" value="([0-9a-f]+{suffix})"', page.text)
    assert found is not None, page.text[:2000]
    return found.group(1)


def today() -> str:
    return local_date(datetime.now(UTC)).isoformat()


async def test_the_redraw_link_is_a_page_with_the_redrawn_list_and_its_verdict(
    stack: Stack, rid: str
) -> None:
    async with signed_in(stack, "county") as county:
        home = await county.get("/ui/supervision", params={"round": rid})
        drawn = await county.post(
            "/ui/supervision/draws",
            data={"round": rid, "size_kind": "count", "size": "2", "stratify_by": "township",
                  "seed": "复核种子", "form_key": form_key(home, "-draw")},
        )  # fmt: skip
        assert drawn.status_code == 303 and "msg=" in drawn.headers["location"]
        draws = await county.get(
            f"/api/v1/rounds/{rid}/inspection-draws", headers=await token(county, "county")
        )
        (draw,) = [d for d in draws.json() if d["seed"] == "复核种子"]
        assert len(draw["sample"]) == 2
        listed = await county.get("/ui/supervision", params={"round": rid})
        links = re.findall(r'class="redraw-link" href="([^"]+)"', listed.text)
        link = f"/ui/supervision/draws/{draw['draw_id']}/redraw?round={rid}"
        assert link in links and "/redraw" not in listed.text.replace(link, ""), links

        checked = await county.get(link)
        assert checked.status_code == 200, checked.text[:1000]
        assert "核对结果：一致" in checked.text and "不一致" not in checked.text
        assert "复核种子" in checked.text
        recorded = re.findall(r'<td class="recorded">(.*?)</td>', checked.text)
        redrawn = re.findall(r'<td class="redrawn">(.*?)</td>', checked.text)
        assert recorded == redrawn == [NAMES[o] for o in draw["sample"]]

    # The API's visibility rule on the page too: a guidance group of another system, and a
    # draw that does not exist, are 404 pages.
    async with signed_in(stack, "gg-health") as other:
        assert (await other.get(link)).status_code == 404
    async with signed_in(stack, "county") as county:
        missing = await county.get(f"/ui/supervision/draws/no-such-draw/redraw?round={rid}")
        assert missing.status_code == 404


async def test_a_refused_briefing_keeps_its_title_and_text_but_not_its_file(
    stack: Stack, rid: str
) -> None:
    title = "网格联系群众的做法（标题不应丢失）"
    text = "党员每月走访联系户，<收集意见>并及时办结（正文不应丢失）"  # under 50 characters
    async with signed_in(stack, "sec-a") as secretary:
        shown = await secretary.get("/ui/briefings", params={"round": rid})
        key = form_key(shown)
        refused = await secretary.post(
            "/ui/briefings",
            data={"round": rid, "title": title, "text": text, "form_key": key},
            files={"file": ("做法.exe", b"MZ not a briefing", "application/octet-stream")},
        )
        assert refused.status_code == 422, refused.text[:1000]
        assert "正文应为50–20000个字" in flash(refused)
        assert f'value="{title}"' in refused.text
        assert "党员每月走访联系户，&lt;收集意见&gt;并及时办结（正文不应丢失）</textarea>" in (
            refused.text
        )
        assert "做法.exe" not in refused.text  # a file input is never filled
        # The text corrected, the file refused: both typed fields still there.
        longer = text + "，群众满意度明显提高，全村办结群众身边实事二十件，收集意见建议三十余条。"
        data = {"round": rid, "title": title, "text": longer, "form_key": key}
        wrong_file = await secretary.post(
            "/ui/briefings",
            data=data,
            files={"file": ("做法.exe", b"MZ not a briefing", "application/octet-stream")},
        )
        assert wrong_file.status_code == 422, wrong_file.text[:1000]
        assert "附件：不支持的文件类型" in flash(wrong_file)
        assert f'value="{title}"' in wrong_file.text
        assert "收集意见建议三十余条。</textarea>" in wrong_file.text
        assert "做法.exe" not in wrong_file.text
        # The refusals gave the key back: the corrected form, with the same key, goes through.
        sent = await secretary.post("/ui/briefings", data=data)
        assert sent.status_code == 303 and "msg=" in sent.headers["location"], sent.text[:500]


async def test_a_refused_inspection_result_keeps_what_was_typed(
    stack: Stack, rid: str, http: httpx.AsyncClient
) -> None:
    county = await token(http, "county")
    made = await http.post(
        f"/api/v1/rounds/{rid}/inspection-draws",
        json={"count": 1, "seed": "结果表单"},
        headers=county,
    )
    assert made.status_code == 201, made.text
    (inspection,) = made.json()["inspections"]
    fields = {"round": rid, "inspectors": "县委活动办李某、张某", "inspected_on": today(),
              "findings": "公开承诺未向群众公布（不应丢失）", "verdict": "rectify",
              "period_working_days": ""}  # fmt: skip
    async with signed_in(stack, "county") as browser:
        refused = await browser.post(
            f"/ui/supervision/inspections/{inspection['inspection_id']}", data=fields
        )
        assert refused.status_code == 422, refused.text[:1000]
        assert "整改期限（工作日）：结论为限期整改时须给出整改期限" in flash(refused)
        row = refused.text.split(f'data-inspection="{inspection["inspection_id"]}"')[1]
        row = row.split("</tr>")[0]
        assert 'value="县委活动办李某、张某"' in row and f'value="{today()}"' in row
        assert 'value="公开承诺未向群众公布（不应丢失）"' in row
        assert '<option value="rectify" selected>' in row
        assert "period_working_days" not in flash(refused)


async def test_a_refused_supervision_record_keeps_what_was_typed(
    stack: Stack, rid: str, http: httpx.AsyncClient
) -> None:
    async with signed_in(stack, "county") as browser:
        shown = await browser.get("/ui/supervision", params={"round": rid})
        key = form_key(shown, "-record")
        record = {"round": rid, "kind": "visit", "held_on": "2030-01-01",
                  "title": "承诺兑现督查（不应丢失）", "supervisors": "赵书记，钱某",
                  "org_ids": ["org-a", "org-c"], "findings": "承诺事项台账不全",
                  "follow_ups": "两周内补齐台账", "form_key": key}  # fmt: skip
        refused = await browser.post("/ui/supervision/records", data=record)
        assert refused.status_code == 422, refused.text[:1000]
        assert "日期：不能晚于今天" in flash(refused)
        form = refused.text.split('id="record-form"')[1].split("</form>")[0]
        assert '<option value="visit" selected>' in form
        assert 'value="2030-01-01"' in form and 'value="承诺兑现督查（不应丢失）"' in form
        assert 'value="赵书记，钱某"' in form
        assert '<option value="org-a" selected>' in form
        assert '<option value="org-c" selected>' in form
        assert '<option value="org-b" selected>' not in form
        assert ">承诺事项台账不全</textarea>" in form and ">两周内补齐台账</textarea>" in form
        # Kept in the form only: nothing was recorded.
        listed = refused.text.split('class="list records"')[1]
        assert "承诺兑现督查（不应丢失）" not in listed
        # The key was given back: corrected, the same rendering's form is recorded once.
        kept = await browser.post("/ui/supervision/records", data=record | {"held_on": today()})
        assert kept.status_code == 303 and "msg=" in kept.headers["location"], kept.text[:500]
    records = await http.get(
        f"/api/v1/rounds/{rid}/supervision-records", headers=await token(http, "county")
    )
    assert [r["title"] for r in records.json()] == ["承诺兑现督查（不应丢失）"]


async def test_a_refused_rectification_order_keeps_what_was_typed(stack: Stack, rid: str) -> None:
    async with signed_in(stack, "tw-chengguan") as township:
        shown = await township.get("/ui/orgs/org-b/supervision", params={"round": rid})
        assert shown.status_code == 200 and 'value="5"' in shown.text  # the default period
        order = {"round": rid, "ground": "ineffective_work",
                 "reason": "群众评议组织不力（不应丢失）", "period_working_days": "61",
                 "form_key": form_key(shown)}  # fmt: skip
        refused = await township.post("/ui/orgs/org-b/rectification-orders", data=order)
        assert refused.status_code == 422, refused.text[:1000]
        assert "整改期限（工作日）：数值过大，最大为 60" in flash(refused)
        form = refused.text.split('id="order-form"')[1].split("</form>")[0]
        assert '<option value="ineffective_work" selected>' in form
        assert ">群众评议组织不力（不应丢失）</textarea>" in form and 'value="61"' in form
        assert "period_working_days" not in flash(refused)
        # Outside the township's scope it is still a 404, not a page with the form.
        other = await township.post(
            "/ui/orgs/org-c/rectification-orders", data=order | {"period_working_days": "5"}
        )
        assert other.status_code == 404
