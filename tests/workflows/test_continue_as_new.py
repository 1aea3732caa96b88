"""Long rounds stay under Temporal's history limits: continue-as-new carries state intact."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.testing import WorkflowEnvironment

from chuangzheng.sample_evidence import sample_evidence
from domain.actions import DecideSubmission, SubmitEvidence
from domain.phases import Phase
from tests.workflows.support import (
    do_current_phase,
    instructor,
    org_plan,
    organisation,
    secretary,
    start_campaign,
    status,
)
from workflows.organisation import OrganisationCampaignWorkflow

pytestmark = pytest.mark.usefixtures("worker")


async def test_many_actions_continue_as_new_with_state_carried_over(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    env = time_skipping_env
    org = organisation("org-can-01")
    plan = org_plan(org, await env.get_current_time(), round_id="r-can")
    handle = await start_campaign(env.client, task_queue, plan, history_limit=100)
    first_run = (await handle.describe()).run_id
    step = plan.phase(Phase.MOBILISATION).steps[0]
    phase = (await status(handle)).state.current()
    values = sample_evidence(
        step,
        org,
        opens_at=phase.opens_at,
        deadline=phase.deadline,
        now=await env.get_current_time(),
    )
    # A secretary and an instructor who cannot agree: 20 rounds of submit and return.
    for attempt in range(20):
        await handle.execute_update(
            OrganisationCampaignWorkflow.submit_evidence,
            SubmitEvidence(
                actor=secretary(org), step_id=step.id, values=values, idempotency_key=f"s{attempt}"
            ),
        )
        await handle.execute_update(
            OrganisationCampaignWorkflow.decide_submission,
            DecideSubmission(
                actor=instructor(org),
                step_id=step.id,
                accept=False,
                reason=f"第{attempt + 1}次退回：材料不全",
            ),
        )
    # Give the loop a moment to roll over, then look at the new run.
    for _ in range(50):
        described = await handle.describe()
        if described.run_id != first_run:
            break
        await asyncio.sleep(0.1)
    assert described.run_id != first_run
    current = await status(handle)
    carried = current.state.current().step(step.id)
    assert carried is not None and len(carried.submissions) == 20
    assert carried.submissions[7].reason == "第8次退回：材料不全"
    assert current.state.event_seq >= 41  # phase_opened + 40 actions, numbering continued
    # An idempotency key from before the roll-over is still honoured: no 21st submission.
    await handle.execute_update(
        OrganisationCampaignWorkflow.submit_evidence,
        SubmitEvidence(actor=secretary(org), step_id=step.id, values=values, idempotency_key="s3"),
    )
    carried = (await status(handle)).state.current().step(step.id)
    assert carried is not None and len(carried.submissions) == 20
    await do_current_phase(handle, plan, await env.get_current_time())
    assert (await status(handle)).state.phase is Phase.PUBLIC_COMMITMENT
