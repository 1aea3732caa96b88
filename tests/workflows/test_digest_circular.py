"""Daily digest and circular (通报) over a small round with laggards in three townships, run
by the shared worker on the time-skipping server; the schedules on a real dev server (the
time-skipping server does not implement CreateSchedule)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook  # type: ignore[import-untyped]
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import ScheduleActionStartWorkflow
from temporalio.testing import WorkflowEnvironment

from activities.tables import CampaignStatusRow, CircularRow, DigestRow, OrganisationRow
from chuangzheng.schedules import (
    circular_schedule_id,
    delete_schedules,
    digest_schedule_id,
    ensure_schedules,
)
from chuangzheng.settings import get_settings
from chuangzheng.temporal_server import start_dev_server_env
from domain.calendar import Span
from domain.organisation import Organisation, OrgType, System
from domain.phases import WORKING_PHASES
from tests.workflows.support import do_current_phase, org_plan, start_campaign, status
from workflows.digest import (
    CircularInput,
    CircularReport,
    CircularWorkflow,
    DailyDigestInput,
    DailyDigestWorkflow,
    DigestReport,
)

pytestmark = pytest.mark.usefixtures("worker")

ROUND = "r-digest"
# (id, township, system, instructor, diligent): laggards in all three townships; 陈指导 and
# the health guidance group watch only an organisation that finished on time.
ORGS = [
    ("dg-a1", "青石镇", System.RURAL, "王指导", False),
    ("dg-b1", "白沙镇", System.RURAL, "张指导", False),
    ("dg-a2", "青石镇", System.RURAL, "王指导", True),
    ("dg-b2", "白沙镇", System.EDUCATION, "张指导", False),
    ("dg-c1", "红旗街道", System.ORGANS, "刘指导", False),
    ("dg-c2", "红旗街道", System.HEALTH, "陈指导", True),
]


def _org(org_id: str, township: str, system: System, instructor: str) -> Organisation:
    return Organisation(
        id=org_id,
        name=f"{township}{org_id[-2:]}党支部",
        type=OrgType.RURAL,
        township=township,
        system=system,
        instructor=instructor,
        secretary=f"书记{org_id[-2:]}",
        member_count=12,
    )


def _store_roster(sessions: sessionmaker[Session], orgs: list[Organisation]) -> None:
    """What the roster import would have stored (the digest reads instructors from it)."""
    with sessions.begin() as session:
        for number, org in enumerate(orgs, start=1):
            session.merge(
                OrganisationRow(
                    org_id=org.id,
                    name=org.name,
                    org_type=org.type.value,
                    township=org.township,
                    system=org.system,
                    member_count=org.member_count,
                    secretary=org.secretary,
                    instructor=org.instructor,
                    active=True,
                    row_number=number,
                    updated_at=datetime.now(UTC),
                )
            )


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Circulars go under a temporary data dir (the shared worker reads it from settings)."""
    monkeypatch.setenv("CZ_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    monkeypatch.undo()
    get_settings.cache_clear()


async def _red_rows(sessions: sessionmaker[Session], want: int) -> None:
    """Wait (real time) until the projection shows ``want`` red organisations."""
    for _ in range(200):
        with sessions() as session:
            red = session.scalar(
                select(func.count()).where(
                    CampaignStatusRow.round_id == ROUND, CampaignStatusRow.light == "red"
                )
            )
        if red == want:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {want} red organisations in the read model, got {red}")


async def test_digest_and_circular_over_a_round_with_laggards(
    time_skipping_env: WorkflowEnvironment,
    task_queue: str,
    sessions: sessionmaker[Session],
    data_dir: Path,
) -> None:
    env = time_skipping_env
    orgs = [_org(i, t, s, n) for i, t, s, n, _ in ORGS]
    _store_roster(sessions, orgs)
    plans = {}
    for index, (org, (*_, diligent)) in enumerate(zip(orgs, ORGS, strict=True)):
        if index == 3:  # the second half starts three days later: different days overdue
            await env.sleep(3 * 86_400)
        plan = org_plan(org, await env.get_current_time(), round_id=ROUND)
        plans[org.id] = plan
        handle = await start_campaign(env.client, task_queue, plan)
        if diligent:
            for _phase in WORKING_PHASES:
                await do_current_phase(handle, plan, await env.get_current_time())
        else:
            await status(handle)  # started and its first task done
    last = plans["dg-c1"]
    calendar = last.calendar.build()
    deadline = last.phase(WORKING_PHASES[0]).deadline
    await env.sleep(calendar.after(deadline, Span(working_days=2)) - await env.get_current_time())
    await _red_rows(sessions, want=4)

    # No time may pass between the two runs: they must fall on the same local day.
    with env.auto_time_skipping_disabled():
        first: DigestReport = await env.client.execute_workflow(
            DailyDigestWorkflow.run,
            DailyDigestInput(round_id=ROUND),
            id=f"digest-{uuid.uuid4()}",
            task_queue=task_queue,
        )
        again: DigestReport = await env.client.execute_workflow(
            DailyDigestWorkflow.run,
            DailyDigestInput(round_id=ROUND),
            id=f"digest-{uuid.uuid4()}",
            task_queue=task_queue,
        )
    assert first.sent > 0
    assert (again.sent, again.already_sent) == (0, first.sent)

    with sessions() as session:
        rows = session.scalars(
            select(DigestRow).where(DigestRow.round_id == ROUND, DigestRow.kind == "digest")
        ).all()
    mine = {(r.recipient_role, r.recipient_key): r for r in rows}
    assert len(rows) == len(mine) == first.sent  # one digest per person
    wang = mine[("instructor", "王指导")]
    assert wang.detail["laggards"] == ["dg-a1"]
    assert wang.detail["counts"] == {"green": 1, "blue": 0, "yellow": 0, "red": 1}
    overdue = calendar.working_days_overdue(
        plans["dg-a1"].phase(WORKING_PHASES[0]).deadline, wang.created_at
    )
    assert overdue > 0
    assert f"青石镇a1党支部（青石镇）：动员部署阶段逾期{overdue}个工作日" in wang.body
    zhang = mine[("instructor", "张指导")]
    assert zhang.detail["laggards"] == ["dg-b1", "dg-b2"]  # most overdue first
    assert ("instructor", "陈指导") not in mine  # nothing to report: nothing sent
    assert ("guidance_group", "health") not in mine
    assert set(mine[("county_office", "county")].detail["laggards"]) == {
        "dg-a1",
        "dg-b1",
        "dg-b2",
        "dg-c1",
    }

    report: CircularReport = await env.client.execute_workflow(
        CircularWorkflow.run,
        CircularInput(round_id=ROUND),
        id=f"circular-{uuid.uuid4()}",
        task_queue=task_queue,
    )
    xlsx = Path(report.xlsx_path)
    assert xlsx.is_file() and xlsx.is_relative_to(data_dir / "circulars" / ROUND)
    assert Path(report.text_path).read_text("utf-8").startswith("# 关于r-digest轮")
    book = load_workbook(xlsx)
    progress = [list(r) for r in book["进展情况"].iter_rows(values_only=True)]
    by_township = {r[0]: r for r in progress[3:]}
    assert by_township["青石镇"][1] == 2 and by_township["青石镇"][-1] == 1
    assert by_township["白沙镇"][-1] == 2 and by_township["红旗街道"][-1] == 1
    assert by_township["合计"][1] == 6
    laggards = [r[:2] for r in book["逾期单位"].iter_rows(min_row=2, values_only=True)]
    assert sorted(laggards) == sorted(
        [
            ("白沙镇", "白沙镇b1党支部"),
            ("白沙镇", "白沙镇b2党支部"),
            ("红旗街道", "红旗街道c1党支部"),
            ("青石镇", "青石镇a1党支部"),
        ]
    )
    assert report.notices_sent == 4  # the county office and three townships
    with sessions() as session:
        notices = session.scalars(
            select(DigestRow).where(DigestRow.round_id == ROUND, DigestRow.kind == "circular")
        ).all()
        stored = session.get(CircularRow, report.circular_id)
    county = [n for n in notices if n.recipient_role == "county_office"]
    assert len(county) == 1 and county[0].title.startswith("【通报】")
    assert stored is not None and stored.xlsx_sha256 == report.xlsx_sha256

    repeat: CircularReport = await env.client.execute_workflow(
        CircularWorkflow.run,
        CircularInput(round_id=ROUND, key=report.circular_id.rsplit("/", 1)[-1]),
        id=f"circular-{uuid.uuid4()}",
        task_queue=task_queue,
    )
    assert repeat.already_published and repeat.notices_sent == 0


async def test_ensure_schedules_on_a_dev_server(tmp_path: Path) -> None:
    env = await start_dev_server_env()
    try:
        client = env.client
        ids = await ensure_schedules(client, "r-sched", task_queue="q", digest_time="07:45")
        assert ids == (digest_schedule_id("r-sched"), circular_schedule_id("r-sched"))
        # Again with another time: updated in place, not refused.
        await ensure_schedules(client, "r-sched", task_queue="q", digest_time="08:15")
        digest = await client.get_schedule_handle(ids[0]).describe()
        calendar = digest.schedule.spec.calendars[0]
        assert (calendar.hour[0].start, calendar.minute[0].start) == (8, 15)
        assert digest.schedule.spec.time_zone_name == "Asia/Shanghai"
        action = digest.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert action.workflow == "DailyDigestWorkflow"
        circular = await client.get_schedule_handle(ids[1]).describe()
        assert circular.schedule.spec.calendars[0].day_of_week[0].start == 1  # Monday
        await delete_schedules(client, "r-sched")
        await delete_schedules(client, "r-sched")  # missing schedules are fine
        listed = [s.id async for s in await client.list_schedules()]
        assert not set(ids) & set(listed)
    finally:
        await env.shutdown()
