"""少数民族聚居地区 (issue 15, seed 002 §四's last paragraph) on the time-skipping server: a
roster file flags one of two villages; the kick-off activity resolves each organisation's
own plan from it, so the flagged village's public-commitment phase has the plan's extra
民族团结承诺 step and cannot complete without it, while the unflagged one completes with the
same steps done."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.contracts import RosterPageRequest, StartBatch
from activities.kickoff import KickoffActivities, RosterActivities
from chuangzheng.sample_evidence import sample_actors, sample_evidence
from domain.actions import DecideSubmission, SubmitEvidence
from domain.organisation import Organisation
from domain.phases import Phase
from domain.schedule import OrgPlan, build_org_plan, resolve_schedule
from tests.workflows.support import do_current_phase, seed_plan, status
from workflows.ids import organisation_workflow_id
from workflows.organisation import OrganisationCampaignWorkflow

pytestmark = pytest.mark.usefixtures("worker")

ROUND = "r-ethnic"
EXTRA = "ethnic_unity"
ROSTER = """组织编号,组织名称,组织类型,所属乡镇,所属系统,党员人数,书记,指导员,少数民族聚居地区
eth-1,民族乡团结村党支部,农村,民族乡,县农委,20,阿书记,马指导,是
eth-2,民族乡和平村党支部,农村,民族乡,县农委,20,白书记,马指导,
"""


async def _done_but_the_extra_step(
    handle: WorkflowHandle[OrganisationCampaignWorkflow, object], plan: OrgPlan, now: datetime
) -> None:
    """Submit and accept every required step of the current phase except the extra one."""
    current = await status(handle)
    phase_state = current.state.current()
    for step in plan.phase(current.state.phase).steps:
        if not step.required or step.id == EXTRA:
            continue
        submitter, decider = sample_actors(step, plan.organisation)
        values = sample_evidence(
            step, plan.organisation, opens_at=phase_state.opens_at,
            deadline=phase_state.deadline, now=now,
        )  # fmt: skip
        await handle.execute_update(
            OrganisationCampaignWorkflow.submit_evidence,
            SubmitEvidence(actor=submitter, step_id=step.id, values=values),
        )
        if decider is not None:
            await handle.execute_update(
                OrganisationCampaignWorkflow.decide_submission,
                DecideSubmission(actor=decider, step_id=step.id, accept=True),
            )


async def test_a_flagged_organisation_needs_the_extra_step_an_unflagged_one_does_not(
    time_skipping_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    env = time_skipping_env
    roster = tmp_path / "roster.csv"
    roster.write_text(ROSTER, encoding="utf-8")
    activities = ActivityEnvironment()
    page = await activities.run(
        RosterActivities().load_roster_page,
        RosterPageRequest(source=str(roster), offset=0, limit=10),
    )
    by_id: dict[str, Organisation] = {o.id: o for o in page.organisations}
    assert (by_id["eth-1"].ethnic_area, by_id["eth-2"].ethnic_area) == (True, False)

    plan = seed_plan()
    round_plan = plan.round("round-1")
    schedule = resolve_schedule(plan, round_plan, await env.get_current_time(), rebased=True)
    report = await activities.run(
        KickoffActivities(env.client, task_queue).start_organisation_workflows,
        StartBatch(
            round_id=ROUND,
            round_workflow_id="round-ethnic-not-running",
            plan=plan,
            round_plan_id="round-1",
            schedule=schedule,
            organisations=page.organisations,
        ),
    )
    assert report.started == 2

    handles: dict[str, WorkflowHandle[OrganisationCampaignWorkflow, object]] = {}
    plans: dict[str, OrgPlan] = {}
    for org_id, org in by_id.items():
        handles[org_id] = env.client.get_workflow_handle_for(
            OrganisationCampaignWorkflow.run, organisation_workflow_id(ROUND, org_id)
        )
        plans[org_id] = build_org_plan(plan, round_plan, schedule, org, round_id=ROUND)
        # Mobilisation is the same for both.
        await do_current_phase(handles[org_id], plans[org_id], await env.get_current_time())
    for org_id in by_id:
        current = await status(handles[org_id])
        assert current.state.phase is Phase.PUBLIC_COMMITMENT
        await _done_but_the_extra_step(handles[org_id], plans[org_id], await env.get_current_time())

    # The unflagged village is through; the flagged one waits for its 民族团结承诺.
    unflagged = await status(handles["eth-2"])
    assert unflagged.state.phase is Phase.LEADERSHIP_REVIEW
    assert unflagged.state.phase_state(Phase.PUBLIC_COMMITMENT).step(EXTRA) is None
    flagged = await status(handles["eth-1"])
    assert flagged.state.phase is Phase.PUBLIC_COMMITMENT
    extra = flagged.state.current().step(EXTRA)
    assert extra is not None and extra.status.value == "open"

    plan_1 = plans["eth-1"]
    [step] = [s for s in plan_1.phase(Phase.PUBLIC_COMMITMENT).steps if s.id == EXTRA]
    assert step.required and step.name == "民族团结承诺"
    submitter, decider = sample_actors(step, plan_1.organisation)
    phase_state = flagged.state.current()
    values = sample_evidence(
        step, plan_1.organisation, opens_at=phase_state.opens_at,
        deadline=phase_state.deadline, now=await env.get_current_time(),
    )  # fmt: skip
    await handles["eth-1"].execute_update(
        OrganisationCampaignWorkflow.submit_evidence,
        SubmitEvidence(actor=submitter, step_id=EXTRA, values=values),
    )
    assert decider is not None
    await handles["eth-1"].execute_update(
        OrganisationCampaignWorkflow.decide_submission,
        DecideSubmission(actor=decider, step_id=EXTRA, accept=True),
    )
    after = await status(handles["eth-1"])
    assert after.state.phase is Phase.LEADERSHIP_REVIEW
    done = after.state.phase_state(Phase.PUBLIC_COMMITMENT).step(EXTRA)
    assert done is not None and done.status.value == "accepted"
