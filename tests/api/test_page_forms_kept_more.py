"""More page forms that keep what was typed after a refusal, over the real stack (dev server +
worker + uvicorn; SQLite and PostgreSQL), through a page session as a browser holds it: the
secretary's 整改报告 and 延期申请 on the task page (``/ui/my/act``) and the supervision page's
spot-check draw come back with the typed values (HTML-escaped) and the reason in Chinese, with
the refusal's status, instead of a redirect to an emptied form; the refused form's key is not
spent, so the corrected form, posted with it, goes through, and once.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from domain.calendar import SHANGHAI
from tests.api.conftest import (
    Stack,
    extended_first_deadline,
    signed_in,
    start_demo_round,
    token,
    wait_for,
)
from tests.api.test_page_forms_kept import flash, form_key

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def rid(stack: Stack) -> str:
    """A demo round of this module."""
    return await start_demo_round(stack, f"pkm-{uuid.uuid4().hex[:8]}")


def form(page: httpx.Response, css_class: str) -> str:
    """The page's one form of ``css_class``, as HTML."""
    parts = page.text.split(f'class="{css_class}"')
    assert len(parts) == 2, page.text[:2000]
    return parts[1].split("</form>")[0]


def local(moment: datetime) -> str:
    """A ``datetime-local`` value, as the form shows and posts it (Shanghai time)."""
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M")


async def status(http: httpx.AsyncClient, rid: str, org: str) -> dict[str, Any]:
    answer = await http.get(
        f"/api/v1/rounds/{rid}/organisations/{org}/status", headers=await token(http, "county")
    )
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


# --- the secretary's task page ----------------------------------------------------------------


async def test_a_refused_rectification_report_keeps_the_report(
    stack: Stack, rid: str, http: httpx.AsyncClient
) -> None:
    ordered = await http.post(
        f"/api/v1/rounds/{rid}/organisations/org-a/rectification-orders",
        json={"ground": "not_taken_seriously", "reason": "动员会未召开", "period_working_days": 5},
        headers=await token(http, "tw-chengguan") | {"Idempotency-Key": uuid.uuid4().hex},
    )
    assert ordered.status_code == 201, ordered.text
    async with signed_in(stack, "sec-a") as secretary:
        shown = await secretary.get("/ui/my", params={"round": rid})
        assert shown.status_code == 200 and 'class="rect-form"' in shown.text, shown.text[:2000]
        assert 'action="/ui/my/act" class="rect-form"' in shown.text
        key = form_key(shown, "-report_rectification-[a-z_]+")
        phase = re.search(r'name="phase" value="([a-z_]+)"', form(shown, "rect-form"))
        assert phase is not None
        report = {"round": rid, "action": "report_rectification", "form_key": key,
                  "phase": phase.group(1), "report": "已整改<会议>"}  # fmt: skip

        short = await secretary.post("/ui/my/act", data=report)
        assert short.status_code == 422, short.text[:1000]
        assert "整改报告过短，至少 10 字" in flash(short)
        assert ">已整改&lt;会议&gt;</textarea>" in form(short, "rect-form")
        assert "report" not in flash(short)  # no internal field name

        # Invisible characters only: as short as nothing, and still shown as typed.
        blank = report | {"report": "\u200b" * 12 + "\u3000" * 3}
        invisible = await secretary.post("/ui/my/act", data=blank)
        assert invisible.status_code == 422, invisible.text[:1000]
        assert "整改报告过短，至少 10 字" in flash(invisible)
        assert ">" + "\u200b" * 12 + "\u3000" * 3 + "</textarea>" in form(invisible, "rect-form")

        # Corrected, with the same rendering's key: it goes through, and a second copy (a
        # double click) is the same command, not a second report nor a refusal.
        text = "已召开支部党员大会补开动员会，书记作动员讲话，<会议记录>已归档。"
        corrected = report | {"report": text}
        sent = await secretary.post("/ui/my/act", data=corrected)
        assert sent.status_code == 303, sent.text[:1000]
        assert "msg=" in sent.headers["location"] and "error=" not in sent.headers["location"]
        again = await secretary.post("/ui/my/act", data=corrected)
        assert again.status_code == 303 and "error=" not in again.headers["location"]
        after = await secretary.get(sent.headers["location"])
        assert "整改报告已提交" in after.text and 'class="rect-form"' not in after.text
    (order,) = [p["rectification"] for p in (await status(http, rid, "org-a"))["state"]["phases"]
                if p["rectification"]]  # fmt: skip
    assert order["status"] == "reported" and order["report"] == text


async def test_a_refused_extension_request_keeps_its_deadline_and_reason(
    stack: Stack, rid: str, http: httpx.AsyncClient
) -> None:
    before = await status(http, rid, "org-c")
    first = datetime.fromisoformat(before["state"]["phases"][0]["deadline"])
    async with signed_in(stack, "sec-c") as secretary:
        shown = await secretary.get("/ui/my", params={"round": rid})
        assert 'action="/ui/my/act" class="ext-form"' in shown.text, shown.text[:2000]
        key = form_key(shown, "-request_extension-[a-z_]+-0")
        early = local(first - timedelta(days=1))
        request = {"round": rid, "action": "request_extension", "form_key": key,
                   "new_deadline": early, "reason": "村“两委”换届<选举>，会期冲突"}  # fmt: skip

        too_early = await secretary.post("/ui/my/act", data=request)
        assert too_early.status_code == 422, too_early.text[:1000]
        assert "新的截止时间必须晚于当前截止时间" in flash(too_early)
        typed = form(too_early, "ext-form")
        assert f'name="new_deadline" value="{early}"' in typed
        assert 'value="村“两委”换届&lt;选举&gt;，会期冲突"' in typed
        assert "new_deadline" not in flash(too_early)

        # A blank reason: the deadline as typed stays, the reason is named in Chinese.
        later = local(extended_first_deadline(before))
        no_reason = await secretary.post(
            "/ui/my/act", data=request | {"new_deadline": later, "reason": " "}
        )
        assert no_reason.status_code == 422, no_reason.text[:1000]
        assert flash(no_reason).count("必须填写理由") == 1
        assert f'name="new_deadline" value="{later}"' in form(no_reason, "ext-form")

        # A deadline that is not one: the form's own parsing, the same page.
        garbled = await secretary.post("/ui/my/act", data=request | {"new_deadline": "下周五<晚>"})
        assert garbled.status_code == 422, garbled.text[:1000]
        assert "延期后的截止时间" in flash(garbled)
        assert 'name="new_deadline" value="下周五&lt;晚&gt;"' in form(garbled, "ext-form")

        # Corrected, with the same key, twice: one request.
        corrected = request | {"new_deadline": later}
        sent = await secretary.post("/ui/my/act", data=corrected)
        assert sent.status_code == 303, sent.text[:1000]
        assert "msg=" in sent.headers["location"] and "error=" not in sent.headers["location"]
        again = await secretary.post("/ui/my/act", data=corrected)
        assert again.status_code == 303 and "error=" not in again.headers["location"]
    extensions = (await status(http, rid, "org-c"))["state"]["extensions"]
    assert [e["reason"] for e in extensions] == ["村“两委”换届<选举>，会期冲突"]
    assert extensions[0]["status"] == "requested"


async def test_the_task_page_act_is_the_secretarys_own(stack: Stack, rid: str) -> None:
    """Another role gets no task page to post to: 403, nothing run."""
    async with signed_in(stack, "tw-chengguan") as township:
        refused = await township.post(
            "/ui/my/act",
            data={"round": rid, "action": "request_extension", "form_key": uuid.uuid4().hex,
                  "new_deadline": "2030-01-01T18:00", "reason": "不是书记"},
        )  # fmt: skip
        assert refused.status_code == 403, refused.text[:500]


# --- the supervision page's draw ----------------------------------------------------------------


async def test_a_refused_spot_check_draw_keeps_what_was_typed(
    stack: Stack, rid: str, http: httpx.AsyncClient
) -> None:
    seed = f"抽查<种子>-{uuid.uuid4().hex[:6]}"
    async with signed_in(stack, "county") as county:
        shown = await county.get("/ui/supervision", params={"round": rid})
        key = form_key(shown, "-draw")
        draw = {"round": rid, "size_kind": "share", "size": "一半<左右>",
                "stratify_by": "township", "seed": seed, "form_key": key}  # fmt: skip

        not_a_number = await county.post("/ui/supervision/draws", data=draw)
        assert not_a_number.status_code == 422, not_a_number.text[:1000]
        assert "抽查比例（0–1）：应为数字" in flash(not_a_number)
        assert "share" not in flash(not_a_number)
        typed = not_a_number.text.split('id="draw-form"')[1].split("</form>")[0]
        assert '<option value="share" selected>' in typed
        assert 'name="size" required size="6" value="一半&lt;左右&gt;"' in typed
        assert '<option value="township" selected>' in typed
        assert f'value="{seed.replace("<", "&lt;").replace(">", "&gt;")}"' in typed

        too_large = await county.post("/ui/supervision/draws", data=draw | {"size": "1.5"})
        assert too_large.status_code == 422, too_large.text[:1000]
        assert "抽查比例（0–1）：数值过大，最大为 1.0" in flash(too_large)
        assert 'value="1.5"' in too_large.text.split('id="draw-form"')[1].split("</form>")[0]

        # Nothing was drawn; corrected, with the same key, twice: one draw, one redirect.
        corrected = draw | {"size_kind": "count", "size": "1"}
        sent = await county.post("/ui/supervision/draws", data=corrected)
        assert sent.status_code == 303 and "msg=" in sent.headers["location"], sent.text[:500]
        again = await county.post("/ui/supervision/draws", data=corrected)
        assert again.status_code == 303 and again.headers["location"] == sent.headers["location"]

    async def drawn() -> list[dict[str, Any]]:
        listed = await http.get(
            f"/api/v1/rounds/{rid}/inspection-draws", headers=await token(http, "county")
        )
        return [d for d in listed.json() if d["seed"] == seed]

    (made,) = await wait_for(drawn)
    assert len(made["sample"]) == 1 and made["stratify_by"] == "township"


async def test_the_task_page_opens_a_round_the_organisation_takes_part_in(
    stack: Stack, rid: str
) -> None:
    # Found by an outside tester: a newer round scoped to another township made /ui/my show
    # "本单位不在本轮活动中" with no way to the secretary's own round.
    plan = (Path(__file__).resolve().parents[2] / "plans" / "demo.yaml").read_text("utf-8")
    scoped = plan.replace(
        "    starts_on: 2025-01-06\n",
        "    starts_on: 2025-01-06\n    scope: {townships: [青石镇]}\n",
        1,
    )
    assert scoped != plan
    other = await start_demo_round(stack, f"pko-{uuid.uuid4().hex[:8]}", scoped, orgs=("org-c",))
    async with signed_in(stack, "sec-a") as secretary:
        page = await secretary.get("/ui/my")
        assert page.status_code == 200, page.text[:500]
        assert "本单位不在本轮活动中" not in page.text
        assert other not in page.text
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        closed = await http.post(
            f"/api/v1/rounds/{other}/close", json={}, headers=await token(http, "county")
        )
        assert closed.status_code == 200, closed.text  # not the newest running round after
