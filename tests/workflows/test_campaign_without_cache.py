"""Organisation campaigns on a worker whose workflow cache holds nothing, so every workflow
task replays the history from its start (``make test-nocache`` runs the whole workflow suite
that way; these tests keep the case in ``make test``): a whole campaign on the time-skipping
server, and one that continues as new on the dev server.

The campaign goes through every rung of the ladder, a rectification and every phase, so each
kind of workflow task (timers, Updates, activities, the final flush) is replayed. That the
worker really kept nothing is read from the SDK's own metrics, collected in a buffer: every
workflow task it polled ended with the run evicted from the cache, and none found its run
cached (with a cache, nearly every task after the first is a ``sticky_cache_hit``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.runtime import (
    BUFFERED_METRIC_KIND_COUNTER,
    MetricBuffer,
    Runtime,
    TelemetryConfig,
)
from temporalio.testing import WorkflowEnvironment

from activities.tables import CampaignEventRow, NoticeRow
from chuangzheng.sample_evidence import sample_actors, sample_evidence
from chuangzheng.temporal_server import data_converter, start_dev_server_env
from domain.actions import (
    DecideSubmission,
    RecheckRectification,
    ReportRectification,
    SubmitEvidence,
)
from domain.phases import WORKING_PHASES, Phase
from domain.state import Outcome
from tests.workflows.support import (
    do_current_phase,
    instructor,
    org_plan,
    organisation,
    secretary,
    start_campaign,
    status,
)
from worker import build_worker
from workflows.contracts import CampaignResult
from workflows.organisation import OrganisationCampaignWorkflow


async def test_whole_campaign_with_every_task_replayed(
    time_skipping_env: WorkflowEnvironment, sessions: sessionmaker[Session]
) -> None:
    env = time_skipping_env
    task_queue = f"nocache-{uuid.uuid4()}"
    org = organisation("org-nocache-1")
    round_id = "r-nocache"
    plan = org_plan(org, await env.get_current_time(), round_id=round_id)
    calendar = plan.calendar.build()
    # The worker's client on a runtime of its own, whose metrics go to a buffer we read.
    metrics = MetricBuffer(100_000)
    client = await Client.connect(
        env.client.service_client.config.target_host,
        namespace=env.client.namespace,
        data_converter=data_converter(),
        runtime=Runtime(telemetry=TelemetryConfig(metrics=metrics)),
    )
    async with build_worker(
        client, task_queue=task_queue, sessions=sessions, max_cached_workflows=0
    ):
        handle = await start_campaign(env.client, task_queue, plan)
        await do_current_phase(handle, plan, await env.get_current_time())
        # 公开承诺 left undone past the top rung: the whole ladder, then a rectification.
        deadline = (await status(handle)).state.current().deadline
        top_rung = calendar.after(deadline, plan.ladder.rungs[-1].delay)
        await env.sleep(top_rung - await env.get_current_time() + timedelta(hours=1))
        lagging = (await status(handle)).state.current()
        assert lagging.phase is Phase.PUBLIC_COMMITMENT
        assert [e.rung for e in lagging.escalations] == [0, 1, 2]
        await do_current_phase(handle, plan, await env.get_current_time())
        await handle.execute_update(
            OrganisationCampaignWorkflow.report_rectification,
            ReportRectification(
                actor=secretary(org), phase=Phase.PUBLIC_COMMITMENT, report="已补齐全部承诺并公示。"
            ),
        )
        await handle.execute_update(
            OrganisationCampaignWorkflow.recheck_rectification,
            RecheckRectification(actor=instructor(org), phase=Phase.PUBLIC_COMMITMENT, passed=True),
        )
        for phase in WORKING_PHASES[2:]:
            assert (await status(handle)).state.phase is phase
            await do_current_phase(handle, plan, await env.get_current_time())
        result = await handle.result()
        assert isinstance(result, CampaignResult)

    assert result.phase is Phase.COMPLETED
    assert result.outcomes[Phase.MOBILISATION] is Outcome.ON_TIME
    assert result.outcomes[Phase.PUBLIC_COMMITMENT] is Outcome.AFTER_RECTIFICATION
    counted: Counter[str] = Counter()
    for update in metrics.retrieve_updates():
        if update.metric.kind == BUFFERED_METRIC_KIND_COUNTER:
            counted[update.metric.name] += int(update.value)
    tasks = counted["temporal_workflow_task_queue_poll_succeed"]
    assert tasks > 20  # timers, Updates and activities: many tasks, each replayed
    # Every task's run is evicted for the cache of 0; the last one's may instead be evicted
    # as a completed run, whichever the SDK counts first (a clean-clone run counted 49 of 50).
    assert tasks - 1 <= counted["temporal_sticky_cache_total_forced_eviction"] <= tasks
    assert counted["temporal_sticky_cache_hit"] == 0
    with sessions() as session:
        escalated = session.scalar(
            select(func.count())
            .select_from(CampaignEventRow)
            .where(CampaignEventRow.round_id == round_id, CampaignEventRow.kind == "escalated")
        )
        notices = session.scalar(
            select(func.count()).select_from(NoticeRow).where(NoticeRow.round_id == round_id)
        )
        completed = session.scalar(
            select(func.count())
            .select_from(CampaignEventRow)
            .where(
                CampaignEventRow.round_id == round_id,
                CampaignEventRow.kind == "phase_completed",
            )
        )
    # Replaying every task records nothing twice: each rung once, each phase completed once.
    assert escalated == 3
    assert completed == len(WORKING_PHASES)
    assert notices is not None and notices >= 7


async def phase_recorded(sessions: sessionmaker[Session], round_id: str, phase: Phase) -> None:
    """Wait (real time) until the read model has the phase's completion."""
    for _ in range(600):
        with sessions() as session:
            found = session.scalar(
                select(CampaignEventRow.event_id).where(
                    CampaignEventRow.round_id == round_id,
                    CampaignEventRow.kind == "phase_completed",
                    CampaignEventRow.phase == phase.value,
                )
            )
        if found is not None:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{phase} was not recorded")


async def test_continue_as_new_with_every_task_replayed_on_the_dev_server(
    sessions: sessionmaker[Session],
) -> None:
    """A campaign that continues as new under Updates, at cache 0, on the dev server.

    The time-skipping test server cannot run this case at cache 0 (a full-history replay after
    an Update stops at the workflow's first history-length check there, so the run never
    continues as new; ``make test-nocache`` deselects its two continue-as-new tests for that),
    so it runs here on the real server: the decision to continue as new is made from the
    history length, which every replay must see as the first execution did.
    """
    env = await start_dev_server_env()
    try:
        task_queue = f"nocache-can-{uuid.uuid4()}"
        org = organisation("org-nocache-can")
        round_id = f"r-nocache-can-{uuid.uuid4().hex[:6]}"
        plan = org_plan(org, await env.get_current_time(), round_id=round_id)
        async with build_worker(
            env.client, task_queue=task_queue, sessions=sessions, max_cached_workflows=0
        ):
            handle = await start_campaign(env.client, task_queue, plan, history_limit=100)
            for phase in WORKING_PHASES:
                phase_plan = plan.phase(phase)
                now = await env.get_current_time()
                for step in (s for s in phase_plan.steps if s.required):
                    values = sample_evidence(
                        step,
                        org,
                        opens_at=phase_plan.opens_at,
                        deadline=phase_plan.deadline,
                        now=now,
                    )
                    submitter, decider = sample_actors(step, org)  # whom the plan names
                    await handle.execute_update(
                        OrganisationCampaignWorkflow.submit_evidence,
                        SubmitEvidence(actor=submitter, step_id=step.id, values=values),
                    )
                    if decider is not None:  # None: a ballot's result settles the step
                        await handle.execute_update(
                            OrganisationCampaignWorkflow.decide_submission,
                            DecideSubmission(actor=decider, step_id=step.id, accept=True),
                        )
                # The workflow continues as new between flushes, not while Updates keep coming:
                # let the flush of the phase's completion end.
                await phase_recorded(sessions, round_id, phase)
            latest = env.client.get_workflow_handle_for(OrganisationCampaignWorkflow.run, handle.id)
            result = await asyncio.wait_for(latest.result(), timeout=60)
            runs = 1
            history = await latest.fetch_history()
            started = history.events[0].workflow_execution_started_event_attributes
            while started.continued_execution_run_id:
                runs += 1
                previous = env.client.get_workflow_handle(
                    handle.id, run_id=started.continued_execution_run_id
                )
                first_event = (await previous.fetch_history()).events[0]
                started = first_event.workflow_execution_started_event_attributes
    finally:
        await env.shutdown()
    assert isinstance(result, CampaignResult)
    assert result.phase is Phase.COMPLETED
    assert result.outcomes == {phase: Outcome.ON_TIME for phase in WORKING_PHASES}
    assert runs >= 2
    with sessions() as session:
        event_ids = session.scalars(
            select(CampaignEventRow.event_id).where(CampaignEventRow.round_id == round_id)
        ).all()
    # Every event once across the runs, numbered without a gap.
    seqs = sorted(int(event_id.rsplit("/", 1)[1]) for event_id in event_ids)
    assert seqs == list(range(1, len(event_ids) + 1))
