"""A calendar update signalled to a running organisation workflow (time-skipping server):
the open phase's deadline and its timers move, the completed phase stays, the update is
audited in the read model and applied once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment

from activities.tables import CampaignEventRow
from domain.actions import CalendarUpdate, CloseRound
from domain.calendar import deadline_day
from domain.machine import PhaseStatus
from domain.phases import Phase
from domain.plan import CalendarPlan
from domain.schedule import reresolve_round
from tests.workflows.support import (
    COUNTY,
    do_current_phase,
    org_plan,
    organisation,
    seed_plan,
    start_campaign,
    status,
)
from workflows.organisation import OrganisationCampaignWorkflow

pytestmark = pytest.mark.usefixtures("worker")


async def test_a_calendar_update_moves_the_open_deadline_and_its_timers(
    time_skipping_env: WorkflowEnvironment, task_queue: str, sessions: sessionmaker[Session]
) -> None:
    env = time_skipping_env
    org = organisation("org-calendar-01")
    kicked_off_at = await env.get_current_time()
    plan = org_plan(org, kicked_off_at, round_id="r-calendar")
    assert plan.pinned_calendar is not None
    handle = await start_campaign(env.client, task_queue, plan)
    await do_current_phase(handle, plan, await env.get_current_time())
    before = await status(handle)
    assert before.state.phase is Phase.PUBLIC_COMMITMENT
    done = before.state.phase_state(Phase.MOBILISATION)
    open_phase = before.state.phase_state(Phase.PUBLIC_COMMITMENT)
    old_deadline = open_phase.deadline

    # "Published": the last days of both windows turn out to be days off. 动员部署 is
    # completed and stays; 公开承诺 and everything after move later.
    published = CalendarPlan(holidays=(deadline_day(done.deadline), deadline_day(old_deadline)))
    schedule = reresolve_round(seed_plan(), seed_plan().round("round-1"), kicked_off_at, published)
    assert schedule.calendar is not None
    cmd = CalendarUpdate(
        update_id="cal-2027",
        calendar=schedule.calendar,
        windows=schedule.windows,
        actor=COUNTY,
        reason="国务院办公厅关于2027年部分节假日安排的通知",
    )
    new_deadline = schedule.window(Phase.PUBLIC_COMMITMENT).deadline
    assert new_deadline > old_deadline
    await handle.signal(OrganisationCampaignWorkflow.apply_calendar, cmd)
    await handle.signal(OrganisationCampaignWorkflow.apply_calendar, cmd)  # applied once

    after = await status(handle)
    assert after.state.phase_state(Phase.MOBILISATION).deadline == done.deadline
    assert after.state.phase_state(Phase.MOBILISATION).status is PhaseStatus.DONE
    assert after.state.phase_state(Phase.PUBLIC_COMMITMENT).deadline == new_deadline
    for phase in (Phase.LEADERSHIP_REVIEW, Phase.PUBLIC_EVALUATION, Phase.COMMENDATION):
        assert after.state.phase_state(phase).deadline == schedule.window(phase).deadline
    assert after.state.calendar == schedule.calendar
    assert after.state.applied_calendar_updates == ["cal-2027"]

    # The timer moved too: past the old deadline nothing is overdue...
    await env.sleep(old_deadline - await env.get_current_time() + timedelta(hours=1))
    current = await status(handle)
    assert current.state.phase_state(Phase.PUBLIC_COMMITMENT).status is PhaseStatus.OPEN
    # ...past the new one it is.
    await env.sleep(new_deadline - await env.get_current_time() + timedelta(hours=1))
    current = await status(handle)
    assert current.state.phase_state(Phase.PUBLIC_COMMITMENT).status is PhaseStatus.OVERDUE

    with sessions() as session:
        rows = session.scalars(
            select(CampaignEventRow).where(
                CampaignEventRow.round_id == "r-calendar",
                CampaignEventRow.kind == "calendar_updated",
            )
        ).all()
    assert {row.phase for row in rows} == {
        "public_commitment",
        "leadership_review",
        "public_evaluation",
        "commendation",
    }
    await handle.signal(OrganisationCampaignWorkflow.close_round, CloseRound(actor=COUNTY))
    await handle.result()
