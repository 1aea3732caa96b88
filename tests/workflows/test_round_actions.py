"""Round-wide actions in the time-skipping server: extend a phase for everyone, close."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from domain.actions import CloseRound
from domain.calendar import Span
from domain.phases import Phase
from domain.schedule import resolve_schedule
from tests.workflows.support import COUNTY, organisation, secretary, seed_plan, write_roster
from workflows.contracts import RoundExtensionRequest, RoundInput, RoundKickoff
from workflows.ids import organisation_workflow_id, round_workflow_id
from workflows.organisation import OrganisationCampaignWorkflow
from workflows.round import CampaignRoundWorkflow

pytestmark = pytest.mark.usefixtures("worker")


async def test_round_extension_reaches_everyone_and_close_stops_them(
    time_skipping_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    env = time_skipping_env
    roster = tmp_path / "roster.csv"
    write_roster(roster, 12)
    plan = seed_plan()
    now = await env.get_current_time()
    kickoff = RoundKickoff(
        round_id="r-round-actions",
        plan=plan,
        round_plan_id="round-1",
        roster_source=str(roster),
        actor=COUNTY,
        starts_at=now,
        batch_size=5,
    )
    handle = await env.client.start_workflow(
        CampaignRoundWorkflow.run,
        RoundInput(kickoff=kickoff),
        id=round_workflow_id(kickoff.round_id),
        task_queue=task_queue,
    )
    progress = await handle.query(CampaignRoundWorkflow.progress)
    for _ in range(200):
        if (
            progress.starting_done
            and len(progress.by_phase)
            and sum(progress.by_phase.values()) == 12
        ):
            break
        await asyncio.sleep(0.1)
        progress = await handle.query(CampaignRoundWorkflow.progress)
    assert progress.started == 12 and progress.by_phase == {Phase.MOBILISATION: 12}

    schedule = resolve_schedule(plan, plan.round("round-1"), now, rebased=True)
    original = schedule.window(Phase.MOBILISATION).deadline
    new_deadline = plan.calendar.build().after(original, Span(working_days=15))

    # Only the county office may extend for everyone, and only with a reason.
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update(
            CampaignRoundWorkflow.extend_phase,
            RoundExtensionRequest(
                actor=secretary(organisation()),
                phase=Phase.MOBILISATION,
                new_deadline=new_deadline,
                reason="x",
            ),
        )
    await handle.execute_update(
        CampaignRoundWorkflow.extend_phase,
        RoundExtensionRequest(
            actor=COUNTY,
            phase=Phase.MOBILISATION,
            new_deadline=new_deadline,
            reason="全县防汛，动员部署统一顺延",
        ),
    )
    org_ids = [f"org-{i:04d}" for i in range(1, 13)]
    for org_id in org_ids:
        org_handle = env.client.get_workflow_handle_for(
            OrganisationCampaignWorkflow.run, organisation_workflow_id(kickoff.round_id, org_id)
        )
        for _ in range(100):
            status = await org_handle.query(OrganisationCampaignWorkflow.status)
            if status.state.current().deadline == new_deadline:
                break
            await asyncio.sleep(0.05)
        assert status.state.current().deadline == new_deadline
        assert status.state.current().planned_deadline == original

    result = await handle.execute_update(
        CampaignRoundWorkflow.close, CloseRound(actor=COUNTY, reason="本轮活动结束")
    )
    assert result.closed
    final = await handle.result()
    assert final.closed
    for org_id in org_ids:
        org_handle = env.client.get_workflow_handle_for(
            OrganisationCampaignWorkflow.run, organisation_workflow_id(kickoff.round_id, org_id)
        )
        outcome = await org_handle.result()
        assert outcome.closed and outcome.phase is Phase.MOBILISATION
