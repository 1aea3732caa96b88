"""Many counties: a page form that names its round in its BODY (``round=…`` posted, not in
the path or the query) is held to the round's county like every other door.

An outside tester, signed in on the pages as another county's office, circulated county A's
briefing, changed A's 预警 threshold, started a what-if over A's live data and applied its
plan version to A's running round, by posting A's round id in the form (the API's routes for
the same actions answered 404). Here, on the real stack (SQLite and PostgreSQL), county B's
office posts each of the four forms naming A's round: 404, and nothing changed (the briefing
not circulated and nobody's inbox holding it, the threshold the plan's, no what-if job, the
plan still version 1); then A's own office posts the same forms and each goes through.

Beside it, the use cases themselves refuse a round of another county (NotFound) when called
directly, whatever the routes checked (``chuangzheng.services.callers.visible_round``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from activities.db import make_engine, session_factory
from activities.tables import (
    AuditRow,
    BriefingRow,
    DigestRow,
    InspectionDrawRow,
    SupervisionRecordRow,
)
from api.auth import User, upsert_user
from api.callers import service_caller
from chuangzheng.services import briefings, forecast_warning, what_if, what_if_jobs
from chuangzheng.services.counties import create_county
from chuangzheng.services.errors import Conflict, NotFound, Refused
from domain.organisation import Role
from domain.what_if import DraftChange
from tests.api.conftest import PASSWORD, Stack, signed_in, start_demo_round, token, wait_for
from tests.api.service_county import caller, county, demo_round

pytestmark = pytest.mark.asyncio(loop_scope="session")

__all__ = ["county"]  # the fixture, used by the service tests below

ROOT = Path(__file__).resolve().parents[2]
#: The demo plan with the seed plan's 预警 rung, so the round has a threshold to change.
RUNG = """  early_warning:
    kind: early_warning
    name: 预警
    recipient: instructor
    threshold: 0.3
    not_before: 0.25
    text: 请在截止前督促其按序时进度完成规定动作。
"""
TEXT = (
    "我村党支部推行党员设岗定责，把全村划为十二个网格，每名党员联系十户群众，"
    "每月上门走访一次，收集意见建议三十余条，办结群众身边实事二十件，群众满意率明显提高。"
)


def _rung_plan() -> str:
    plan = (ROOT / "plans" / "demo.yaml").read_text("utf-8")
    anchor = "  rectification_period: {minutes: 3}\n"
    assert anchor in plan
    return plan.replace(anchor, anchor + RUNG, 1)


def _hidden(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found is not None, name
    return unescape(found.group(1))


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def office_b(stack: Stack) -> AsyncIterator[str]:
    """County B (``README``: ``chuangzheng accounts create-county``) and its office's account;
    B needs nothing else to try A's forms."""
    code = f"bxian-{uuid.uuid4().hex[:6]}"
    office = f"{code}.county"
    engine = make_engine(stack.settings.database_url)
    with session_factory(engine).begin() as session:
        create_county(session, code=code, name="丙县", now=datetime.now(UTC))
        upsert_user(session, username=office, display_name="丙县县委活动办",
                    password=PASSWORD, role=Role.COUNTY_OFFICE, county=code)  # fmt: skip
    engine.dispose()
    yield office


def _read(stack: Stack, rid: str, briefing_id: str) -> dict[str, Any]:
    """What the four forms would change in round ``rid``, read from the database."""
    engine = make_engine(stack.settings.database_url)
    try:
        with session_factory(engine)() as session:
            row = session.get(BriefingRow, briefing_id)
            assert row is not None
            digests = session.scalar(
                select(func.count())
                .select_from(DigestRow)
                .where(DigestRow.message_id.like(f"briefing-{briefing_id}-%"))
            )
            return {
                "briefing": (row.status, row.circulated_by, row.note),
                "digests": digests,
                "threshold": forecast_warning.round_threshold(session, rid),
                "threshold_changes": session.scalar(
                    select(func.count())
                    .select_from(AuditRow)
                    .where(
                        AuditRow.round_id == rid,
                        AuditRow.action == forecast_warning.THRESHOLD_ACTION,
                    )
                ),
                "what_if_audits": session.scalar(
                    select(func.count())
                    .select_from(AuditRow)
                    .where(AuditRow.round_id == rid, AuditRow.action == "what_if_started")
                ),
                "draws": session.scalar(
                    select(func.count())
                    .select_from(InspectionDrawRow)
                    .where(InspectionDrawRow.round_id == rid)
                ),
                "records": session.scalar(
                    select(func.count())
                    .select_from(SupervisionRecordRow)
                    .where(SupervisionRecordRow.round_id == rid)
                ),
            }
    finally:
        engine.dispose()


async def _versions(http: httpx.AsyncClient, headers: dict[str, str], rid: str) -> list[int]:
    answer = await http.get(f"/api/v1/rounds/{rid}/plan-versions", headers=headers)
    assert answer.status_code == 200, answer.text
    return [v["version"] for v in answer.json()]


async def test_another_countys_office_cannot_act_on_a_round_named_in_a_forms_body(
    stack: Stack, office_b: str
) -> None:
    rid = await start_demo_round(stack, f"cf-{uuid.uuid4().hex[:8]}", _rung_plan())
    async with (
        httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http,
        signed_in(stack, office_b) as other,
        signed_in(stack, "county") as own,
    ):
        county_a = await token(http, "county")
        submitted = await http.post(
            f"/api/v1/rounds/{rid}/briefings",
            data={"title": "党员设岗定责 网格联系群众", "text": TEXT, "org_id": "org-a"},
            headers=await token(http, "sec-a"),
        )
        assert submitted.status_code == 201, submitted.text
        briefing_id = submitted.json()["briefing_id"]
        before = _read(stack, rid, briefing_id)
        assert before["briefing"] == ("submitted", None, "")
        assert before["digests"] == 0 and before["threshold"] == 0.3
        assert before["threshold_changes"] == 0 and before["what_if_audits"] == 0
        assert before["draws"] == 0 and before["records"] == 0
        draft = {"round": rid, "unit": "minutes", "kind": "extend_phase",
                 "phase": "public_evaluation", "township": "", "amount": "2",
                 "reason": "群众评议需要更多时间", "seed": "3"}  # fmt: skip

        # County B's office, naming A's round only in the forms' bodies: 404 every time.
        refused = {
            "circulate": await other.post(
                f"/ui/briefings/{briefing_id}/circulate",
                data={"round": rid, "note": "乙县选编"},
            ),
            "threshold": await other.post(
                "/ui/what-if/threshold", data={"round": rid, "threshold": "12", "reason": "试"}
            ),
            "what-if": await other.post("/ui/what-if", data=draft),
            # The other forms that name their round in the body (their services keep to the
            # caller's scope as well): a draw, a record, a bulk reminder.
            "draw": await other.post(
                "/ui/supervision/draws",
                data={"round": rid, "size_kind": "count", "size": "1", "stratify_by": "none"},
            ),
            "record": await other.post(
                "/ui/supervision/records",
                data={
                    "round": rid,
                    "kind": "meeting",
                    "held_on": "2025-01-06",
                    "title": "座谈会",
                    "supervisors": "王某",
                    "org_ids": "org-a",
                    "findings": "无",
                },
            ),
            "bulk": await other.post(
                "/ui/laggards/bulk",
                data={"round": rid, "org_id": ["org-a", "org-b"], "bulk_action": "remind"},
            ),
        }
        for name, answer in refused.items():
            assert answer.status_code == 404, (name, answer.status_code, answer.text[:300])
            assert "已选编交流" not in answer.text and "推演已开始" not in answer.text
        # The API's doors were already shut (the round in the path).
        assert (
            await http.post(
                f"/api/v1/rounds/{rid}/briefings/{briefing_id}/circulate",
                json={"note": "乙县"},
                headers=await token(http, office_b),
            )
        ).status_code == 404
        # Nothing changed: the briefing, the inboxes, the threshold, no job.
        assert _read(stack, rid, briefing_id) == before
        assert what_if_jobs.job_status(stack.settings.data_dir, rid) is None

        # County A's own office starts the what-if from the same form: it runs.
        started = await own.post("/ui/what-if", data=draft)
        assert started.status_code == 303, started.text
        assert "推演已开始" in (await own.get(started.headers["location"])).text

        async def finished() -> dict[str, Any] | None:
            answer = await http.get(f"/api/v1/rounds/{rid}/what-if", headers=county_a)
            assert answer.status_code == 200, answer.text
            body: dict[str, Any] = answer.json()
            job = body["job"]
            assert job is not None and job["state"] != "failed", job
            done = job["state"] == "done" and body["result"]
            return body if done and body["result"]["job_id"] == job["job_id"] else None

        await wait_for(finished, timeout=300)
        page = await own.get(f"/ui/what-if?round={rid}")
        post = {
            "round": rid,
            "job_id": _hidden(page.text, "job_id"),
            "form_key": _hidden(page.text, "form_key"),
            "reason": "推演后决定延长群众评议",
        }

        # B applies A's reviewed result: 404, and the round's plan stays version 1.
        applied_by_b = await other.post("/ui/what-if/apply", data=post)
        assert applied_by_b.status_code == 404, applied_by_b.text[:300]
        assert await _versions(http, county_a, rid) == [1]

        # A's own office: each of the four forms goes through.
        applied = await own.post("/ui/what-if/apply", data=post)
        assert applied.status_code == 303, applied.text
        assert "启用计划第2版" in (await own.get(applied.headers["location"])).text
        assert await _versions(http, county_a, rid) == [1, 2]
        changed = await own.post(
            "/ui/what-if/threshold",
            data={"round": rid, "threshold": "12", "reason": "先盯最危险的"},
        )
        assert changed.status_code == 303, changed.text
        assert "预警线已改为 12%" in (await own.get(changed.headers["location"])).text
        circulated = await own.post(
            f"/ui/briefings/{briefing_id}/circulate", data={"round": rid, "note": "值得推广"}
        )
        assert circulated.status_code == 303, circulated.text
        assert "已选编交流" in (await own.get(circulated.headers["location"])).text
        after = _read(stack, rid, briefing_id)
        assert after["briefing"] == ("circulated", "county", "值得推广")
        assert after["digests"] >= 3 and after["threshold"] == 0.12
        assert after["threshold_changes"] == 1 and after["what_if_audits"] == 1


# ----- the use cases themselves ----------------------------------------------------------------


def _other_county_office() -> Any:
    """County C's office as the services see it (county C need not exist for the check)."""
    return service_caller(
        User(
            username="c.county",
            display_name="c",
            role=Role.COUNTY_OFFICE,
            scope_key="",
            county="c-county",
        )
    )


async def test_each_use_case_refuses_a_round_of_another_county(
    county: sessionmaker[Session], tmp_path: Path
) -> None:
    """Called directly, with nothing in front of them: circulating (and listing, and a
    briefing's file), the threshold, starting a what-if and applying one each answer
    NotFound for the default county's round to another county's office, the same answer as
    for no round at all, and record nothing; the round's own office gets past the check
    (and meets the next rule instead)."""
    rid = await demo_round(county, "r-county-a")
    other, own = _other_county_office(), caller("county")
    change = DraftChange.model_validate(
        {"kind": "rectification_period", "period": {"minutes": 2}, "reason": "试"}
    )

    def never(_data_dir: Path, _round_id: str) -> int:
        raise AssertionError("no job may be launched")

    async def apply(who: Any) -> Any:
        return await what_if.apply_what_if(
            county, None, None, rid, job_id="", reason="试", caller=who,  # type: ignore[arg-type]
            idempotency_key="k",
        )  # fmt: skip

    with pytest.raises(NotFound, match="轮次不存在"):
        briefings.circulate(county, other, rid, "br-any", note="")
    with county() as session, pytest.raises(NotFound):
        briefings.list_briefings(session, other, rid)
    with county() as session, pytest.raises(NotFound):
        briefings.briefing_file(session, other, rid, "br-any", tmp_path)
    with county.begin() as session, pytest.raises(NotFound, match="轮次不存在"):
        forecast_warning.set_round_threshold(session, other, rid, 0.2)
    with county.begin() as session, pytest.raises(NotFound, match="轮次不存在"):
        what_if_jobs.start_job(session, other, rid, change, data_dir=tmp_path, launch=never)
    with pytest.raises(NotFound, match="轮次不存在"):
        await apply(other)
    assert what_if_jobs.job_status(tmp_path, rid) is None
    with county() as session:
        actions = session.scalars(select(AuditRow.action)).all()
    assert actions == ["round_created"]

    # The round's own office: past the county, the next rule answers.
    with pytest.raises(NotFound, match="简报不存在"):
        briefings.circulate(county, own, rid, "br-any", note="")
    with county() as session:
        assert briefings.list_briefings(session, own, rid) == []
    with county.begin() as session, pytest.raises(Refused, match="预警"):
        forecast_warning.set_round_threshold(session, own, rid, 0.2)  # the demo plan has none
    with county.begin() as session, pytest.raises(Conflict, match="进行中"):
        what_if_jobs.start_job(session, own, rid, change, data_dir=tmp_path, launch=never)
    with pytest.raises(NotFound, match="本轮尚无推演结果"):
        await apply(own)
