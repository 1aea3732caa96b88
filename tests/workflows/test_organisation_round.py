"""A whole seed-002 round for one organisation across several continue-as-new runs.

With CZ_RECORD_HISTORIES=1 this records the first run (it ends in continue-as-new) and the
last (it starts from a carried input and completes) for the replay test.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from activities.tables import CampaignEventRow
from chuangzheng.sample_evidence import sample_actors, sample_evidence
from domain.actions import DecideSubmission, SubmitEvidence
from domain.events import EventKind
from domain.machine import StepStatus
from domain.phases import WORKING_PHASES, Phase
from domain.state import Outcome
from tests.workflows.support import (
    org_plan,
    organisation,
    record_history,
    start_campaign,
)
from workflows.organisation import OrganisationCampaignWorkflow

pytestmark = pytest.mark.usefixtures("worker")
ROUND = "r-round-can"


async def recorded(sessions: sessionmaker[Session], phase: Phase) -> None:
    """Wait (real time) until the read model has the phase's completion."""
    for _ in range(200):
        with sessions() as session:
            found = session.scalar(
                select(CampaignEventRow.event_id).where(
                    CampaignEventRow.round_id == ROUND,
                    CampaignEventRow.kind == EventKind.PHASE_COMPLETED.value,
                    CampaignEventRow.phase == phase.value,
                )
            )
        if found is not None:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{phase} was not recorded")


async def test_a_whole_round_across_continue_as_new_keeps_every_event_once(
    time_skipping_env: WorkflowEnvironment, task_queue: str, sessions: sessionmaker[Session]
) -> None:
    env = time_skipping_env
    org = organisation("org-round-01")
    plan = org_plan(org, await env.get_current_time(), round_id=ROUND)
    handle = await start_campaign(env.client, task_queue, plan, history_limit=100)
    first_run = (await handle.describe()).run_id
    # Updates only, no queries: a query landing while a run continues as new can be lost on
    # the time-skipping server (the run it reached has closed).
    for phase in WORKING_PHASES:
        phase_plan = plan.phase(phase)
        now = await env.get_current_time()
        for step in (s for s in phase_plan.steps if s.required):
            values = sample_evidence(
                step, org, opens_at=phase_plan.opens_at, deadline=phase_plan.deadline, now=now
            )
            submitter, decider = sample_actors(step, org)  # whom the plan names
            submitted = await handle.execute_update(
                OrganisationCampaignWorkflow.submit_evidence,
                SubmitEvidence(actor=submitter, step_id=step.id, values=values),
            )
            if decider is None:  # a ballot's result, a declaration, the 审定: settled at once
                assert submitted.step_status is StepStatus.ACCEPTED
                continue
            assert submitted.phase is phase and submitted.step_status is StepStatus.SUBMITTED
            await handle.execute_update(
                OrganisationCampaignWorkflow.decide_submission,
                DecideSubmission(actor=decider, step_id=step.id, accept=True),
            )
        # Let the flush of the phase's completion end, so the workflow looks at its history
        # length (it continues as new between flushes, never while updates keep coming).
        await recorded(sessions, phase)
    # The last run's result (``handle.result()`` following the runs times out on the
    # time-skipping server once a run has continued as new).
    latest = env.client.get_workflow_handle_for(OrganisationCampaignWorkflow.run, handle.id)
    for _ in range(100):
        if (await latest.describe()).status == WorkflowExecutionStatus.COMPLETED:
            break
        await asyncio.sleep(0.1)
    result = await latest.result()
    assert result.outcomes == {phase: Outcome.ON_TIME for phase in WORKING_PHASES}
    assert result.phase is Phase.COMPLETED

    # More than one run: each but the last ended by continue-as-new.
    runs = 1
    started = (await latest.fetch_history()).events[0].workflow_execution_started_event_attributes
    while started.continued_execution_run_id:
        runs += 1
        previous = env.client.get_workflow_handle(
            handle.id, run_id=started.continued_execution_run_id
        )
        started = (
            (await previous.fetch_history()).events[0].workflow_execution_started_event_attributes
        )
    assert runs >= 2
    first = env.client.get_workflow_handle(handle.id, run_id=first_run)
    kinds = [EventType.Name(e.event_type) for e in (await first.fetch_history()).events]
    assert kinds[-1] == "EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW"

    # Every event of the round reached the read model once, numbered without a gap.
    with sessions() as session:
        rows = session.execute(
            select(CampaignEventRow.event_id, CampaignEventRow.kind).where(
                CampaignEventRow.round_id == ROUND
            )
        ).all()
    seqs = sorted(int(event_id.rsplit("/", 1)[1]) for event_id, _ in rows)
    assert seqs == list(range(1, len(rows) + 1))
    assert [k for _, k in rows].count(EventKind.PHASE_COMPLETED.value) == 5
    assert EventKind.CAMPAIGN_COMPLETED.value in [k for _, k in rows]

    await record_history(first, "organisation_round_first_run")
    await record_history(latest, "organisation_round_last_run")
