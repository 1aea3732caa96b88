"""The bounded round (``CampaignRound``) on the time-skipping server with the shared worker and
its SQLite read model: kick-off, idempotent round-wide extension reaching everyone, progress
from the read model, a restart that resumes and finishes, close, failure, and the round's
status row following the workflow."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.round_progress import store_plan
from activities.tables import CampaignEventRow, RoundRow
from domain.actions import CalendarUpdate, CloseRound
from domain.calendar import Span, local_date
from domain.phases import Phase
from domain.plan import CalendarPlan
from domain.plan_loader import load_plan
from domain.schedule import reresolve_round, resolve_schedule
from tests.workflows.support import COUNTY, ROOT, record_history, seed_plan, write_roster
from workflows.contracts import RoundExtensionRequest, RoundProgress
from workflows.ids import organisation_workflow_id, round_workflow_id
from workflows.organisation import OrganisationCampaignWorkflow
from workflows.round import CampaignRound
from workflows.round_contracts import CampaignRoundInput, RoundTerms

pytestmark = pytest.mark.usefixtures("worker")

ORGS = 8
ORG_IDS = [f"org-{i:04d}" for i in range(1, ORGS + 1)]
CHECK_EVERY = timedelta(hours=1)
T = TypeVar("T")

RoundHandle = WorkflowHandle[CampaignRound, RoundProgress]


async def eventually(
    probe: Callable[[], Awaitable[T]], ok: Callable[[T], bool], *, tries: int = 200
) -> T:
    """Poll ``probe`` (real time) until ``ok``; return the last value."""
    value = await probe()
    for _ in range(tries):
        if ok(value):
            return value
        await asyncio.sleep(0.1)
        value = await probe()
    return value


def next_weekday(moment: datetime) -> date:
    """The first Monday-to-Friday on or after ``moment``'s date (Beijing)."""
    day = local_date(moment)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def round_row(sessions: sessionmaker[Session], round_id: str) -> RoundRow | None:
    with sessions() as session:
        return session.get(RoundRow, round_id)


def create_row(sessions: sessionmaker[Session], round_id: str, now: datetime) -> None:
    """What the API's "create round" writes."""
    with sessions.begin() as session:
        session.add(
            RoundRow(
                round_id=round_id,
                name="第一轮",
                campaign_id="seed-002",
                round_plan_id="round-1",
                starts_at=now,
                status="created",
                kicked_off_by=COUNTY.user,
                updated_at=now,
            )
        )


async def start_round(
    env: WorkflowEnvironment,
    task_queue: str,
    sessions: sessionmaker[Session],
    round_id: str,
    roster: Path,
    **terms: Any,
) -> tuple[RoundHandle, CampaignRoundInput]:
    plan = seed_plan()
    now = await env.get_current_time()
    schedule = resolve_schedule(plan, plan.round("round-1"), now, rebased=True)
    input = CampaignRoundInput(
        terms=RoundTerms(
            round_id=round_id,
            round_plan_id="round-1",
            roster_source=str(roster),
            actor=COUNTY,
            starts_at=now,
            start_chunk=3,
            page_size=2,
            cohort_check_every=CHECK_EVERY,
            **terms,
        ),
        plan_ref=store_plan(sessions, plan),
        schedule=schedule,
    )
    handle = await env.client.start_workflow(
        CampaignRound.run, input, id=round_workflow_id(round_id), task_queue=task_queue
    )
    return handle, input


async def reported(env: WorkflowEnvironment, handle: RoundHandle, count: int) -> RoundProgress:
    """Skip workflow time one check at a time until the round's aggregate shows ``count``."""
    progress = await handle.query(CampaignRound.progress)
    for _ in range(20):
        if progress.starting_done and progress.reported >= count:
            break
        await env.sleep(CHECK_EVERY)
        progress = await eventually(
            lambda: handle.query(CampaignRound.progress), lambda p: p.reported >= count, tries=20
        )
    return progress


async def test_round_extends_once_per_request_reaches_everyone_and_closes(
    time_skipping_env: WorkflowEnvironment,
    task_queue: str,
    sessions: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    env = time_skipping_env
    round_id = "r-bounded-actions"
    now = await env.get_current_time()
    create_row(sessions, round_id, now)
    roster = write_roster(tmp_path / "roster.csv", ORGS)
    handle, input = await start_round(env, task_queue, sessions, round_id, roster)

    progress = await reported(env, handle, ORGS)
    assert progress.started == ORGS and progress.total == ORGS
    assert progress.by_phase == {Phase.MOBILISATION: ORGS}
    row = round_row(sessions, round_id)
    assert row is not None and row.status == "running"
    assert (row.started, row.total, row.starting_done) == (ORGS, ORGS, True)

    # Two concurrent retries of one request add one extension.
    assert input.schedule is not None
    original = input.schedule.window(Phase.MOBILISATION).deadline
    new_deadline = seed_plan().calendar.build().after(original, Span(working_days=15))
    request = RoundExtensionRequest(
        actor=COUNTY,
        phase=Phase.MOBILISATION,
        new_deadline=new_deadline,
        reason="全县防汛，动员部署统一顺延",
        request_id="ext-req-1",
    )
    first, second = await asyncio.gather(
        handle.execute_update(CampaignRound.extend_phase, request),
        handle.execute_update(CampaignRound.extend_phase, request),
    )
    assert first.action_id == second.action_id == f"{round_id}/round-ext-1"
    assert sorted([first.applied, second.applied]) == [False, True]
    again = await handle.execute_update(CampaignRound.extend_phase, request)
    assert not again.applied

    # The fan-out reaches every organisation, once.
    for org_id in ORG_IDS:
        org = env.client.get_workflow_handle_for(
            OrganisationCampaignWorkflow.run, organisation_workflow_id(round_id, org_id)
        )
        status = await eventually(
            lambda org=org: org.query(OrganisationCampaignWorkflow.status),  # type: ignore[misc]
            lambda s: s.state.current().deadline == new_deadline,
        )
        assert status.state.current().deadline == new_deadline
        assert status.state.current().planned_deadline == original

    def applied_events() -> int:
        with sessions() as session:
            return session.scalar(
                select(func.count()).where(
                    CampaignEventRow.round_id == round_id,
                    CampaignEventRow.kind == "round_extension_applied",
                )
            )

    assert await eventually(lambda: asyncio.to_thread(applied_events), lambda n: n >= ORGS) == ORGS

    # Newly published calendar data: re-resolved from the same kick-off, applied once per
    # update id, and every organisation gets it.
    published = CalendarPlan(holidays=(next_weekday(now + timedelta(days=3)),))
    plan = seed_plan()
    schedule = reresolve_round(plan, plan.round("round-1"), now, published)
    assert schedule.calendar is not None
    update = CalendarUpdate(
        update_id="cal-2026-1",
        calendar=schedule.calendar,
        windows=schedule.windows,
        actor=COUNTY,
        reason="国务院办公厅公布新的节假日安排",
    )
    results = await asyncio.gather(
        handle.execute_update(CampaignRound.update_calendar, update),
        handle.execute_update(CampaignRound.update_calendar, update),
    )
    assert sorted(r.applied for r in results) == [False, True]
    assert {r.action_id for r in results} == {f"{round_id}/calendar/cal-2026-1"}
    for org_id in ORG_IDS:
        org = env.client.get_workflow_handle_for(
            OrganisationCampaignWorkflow.run, organisation_workflow_id(round_id, org_id)
        )
        status = await eventually(
            lambda org=org: org.query(OrganisationCampaignWorkflow.status),  # type: ignore[misc]
            lambda s: "cal-2026-1" in s.state.applied_calendar_updates,
        )
        assert status.state.applied_calendar_updates == ["cal-2026-1"]

    closed = await handle.execute_update(
        CampaignRound.close, CloseRound(actor=COUNTY, reason="本轮活动结束")
    )
    assert closed.applied
    final = await handle.result()
    assert final.closed
    row = round_row(sessions, round_id)
    assert row is not None and row.status == "closed"
    for org_id in ORG_IDS:
        org = env.client.get_workflow_handle_for(
            OrganisationCampaignWorkflow.run, organisation_workflow_id(round_id, org_id)
        )
        outcome = await org.result()
        assert outcome.closed and outcome.phase is Phase.MOBILISATION
    await record_history(handle, "round")


async def test_restarted_round_reports_the_same_progress_and_finishes(
    time_skipping_env: WorkflowEnvironment,
    task_queue: str,
    sessions: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    env = time_skipping_env
    round_id = "r-bounded-restart"
    roster = write_roster(tmp_path / "roster.csv", ORGS)
    handle, input = await start_round(env, task_queue, sessions, round_id, roster)
    before = await reported(env, handle, ORGS)

    await handle.terminate("simulated operator restart")
    restarted = await env.client.start_workflow(
        CampaignRound.run, input, id=round_workflow_id(round_id), task_queue=task_queue
    )
    after = await reported(env, restarted, ORGS)
    assert (after.started, after.total, after.by_phase, after.by_light) == (
        before.started,
        before.total,
        before.by_phase,
        before.by_light,
    )

    # Every organisation ends (closed on its own here): the round sees it in the read model
    # at its next check and completes.
    for org_id in ORG_IDS:
        org = env.client.get_workflow_handle(organisation_workflow_id(round_id, org_id))
        await org.signal("close_round", CloseRound(actor=COUNTY, reason="单独结束"))
    result = await restarted.result()
    assert not result.closed
    assert result.by_phase == {Phase.MOBILISATION: ORGS}
    row = round_row(sessions, round_id)
    assert row is not None and row.status == "completed"


async def test_round_with_a_calendar_gap_fails_with_the_reason_recorded(
    time_skipping_env: WorkflowEnvironment,
    task_queue: str,
    sessions: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    env = time_skipping_env
    round_id = "r-bounded-gap"
    # The shipped plan alone (no supplement) re-based to a year nobody has data for, and no
    # schedule from the API: the round resolves it in an activity and finds the gap.
    plan = load_plan((ROOT / "plans/seed-002.yaml").read_text("utf-8"))
    roster = write_roster(tmp_path / "roster.csv", ORGS)
    input = CampaignRoundInput(
        terms=RoundTerms(
            round_id=round_id,
            round_plan_id="round-1",
            roster_source=str(roster),
            actor=COUNTY,
            starts_at=datetime(2031, 3, 3, 1, tzinfo=UTC),
        ),
        plan_ref=store_plan(sessions, plan),
    )
    handle = await env.client.start_workflow(
        CampaignRound.run, input, id=round_workflow_id(round_id), task_queue=task_queue
    )
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "calendar_gap"
    row = round_row(sessions, round_id)
    assert row is not None and row.status == "failed"
    assert row.status_reason and "2031" in row.status_reason
    assert row.started == 0
