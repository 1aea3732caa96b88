"""A workflows-only worker and an activities-only worker on one task queue run a whole
organisation campaign on the dev server, each doing only its half.

``CZ_WORKER_ROLE`` splits the worker so that, during a deadline storm, the workflow tasks
behind submissions do not wait for the storm's activities in the same interpreter. What
could go wrong: a workflow needing an activity no one polls for (the campaign would hang at
its first recording), an activity worker that still takes workflow tasks (no split at all).
Each worker runs on a client with a runtime of its own whose metrics go to a buffer, so the
SDK's own counters tell which worker did what.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.runtime import (
    BUFFERED_METRIC_KIND_COUNTER,
    BUFFERED_METRIC_KIND_HISTOGRAM,
    MetricBuffer,
    Runtime,
    TelemetryConfig,
)

from activities.tables import CampaignEventRow, CampaignStatusRow
from chuangzheng.settings import WorkerRole
from chuangzheng.temporal_server import data_converter, start_dev_server_env
from domain.phases import WORKING_PHASES, Phase
from domain.state import Outcome
from tests.workflows.support import do_current_phase, org_plan, organisation, start_campaign
from worker import build_worker
from workflows.contracts import CampaignResult


async def _client(target: str, namespace: str, metrics: MetricBuffer) -> Client:
    return await Client.connect(
        target,
        namespace=namespace,
        data_converter=data_converter(),
        runtime=Runtime(telemetry=TelemetryConfig(metrics=metrics)),
    )


def _tally(metrics: MetricBuffer) -> Counter[str]:
    """Counter totals, and the number of observations of each histogram."""
    counted: Counter[str] = Counter()
    for update in metrics.retrieve_updates():
        if update.metric.kind == BUFFERED_METRIC_KIND_COUNTER:
            counted[update.metric.name] += int(update.value)
        elif update.metric.kind == BUFFERED_METRIC_KIND_HISTOGRAM:
            counted[update.metric.name] += 1
    return counted


async def test_workflows_only_and_activities_only_workers_run_a_whole_campaign(
    sessions: sessionmaker[Session],
) -> None:
    env = await start_dev_server_env()
    try:
        target = env.client.service_client.config.target_host
        namespace = env.client.namespace
        task_queue = f"roles-{uuid.uuid4()}"
        org = organisation("org-roles-1")
        round_id = f"r-roles-{uuid.uuid4().hex[:6]}"
        plan = org_plan(org, await env.get_current_time(), round_id=round_id)
        workflow_metrics, activity_metrics = MetricBuffer(100_000), MetricBuffer(100_000)
        workflow_client = await _client(target, namespace, workflow_metrics)
        activity_client = await _client(target, namespace, activity_metrics)
        workflows_only = build_worker(
            workflow_client, task_queue=task_queue, sessions=sessions, role=WorkerRole.WORKFLOWS
        )
        activities_only = build_worker(
            activity_client, task_queue=task_queue, sessions=sessions, role=WorkerRole.ACTIVITIES
        )
        async with workflows_only, activities_only:
            handle = await start_campaign(env.client, task_queue, plan)
            for _ in WORKING_PHASES:
                await do_current_phase(handle, plan, await env.get_current_time())
            result = await asyncio.wait_for(handle.result(), timeout=120)
    finally:
        await env.shutdown()

    assert isinstance(result, CampaignResult)
    assert result.phase is Phase.COMPLETED
    assert result.outcomes == {phase: Outcome.ON_TIME for phase in WORKING_PHASES}
    # The read model was written, so the recording ran.
    with sessions() as session:
        completed = session.scalar(
            select(func.count())
            .select_from(CampaignEventRow)
            .where(
                CampaignEventRow.round_id == round_id,
                CampaignEventRow.kind == "phase_completed",
            )
        )
        recorded_phase = session.scalar(
            select(CampaignStatusRow.phase).where(CampaignStatusRow.round_id == round_id)
        )
    assert completed == len(WORKING_PHASES)
    assert recorded_phase == Phase.COMPLETED.value
    workflow_side, activity_side = _tally(workflow_metrics), _tally(activity_metrics)
    # Each worker did its half only.
    assert workflow_side["temporal_workflow_task_queue_poll_succeed"] > 10
    assert activity_side["temporal_workflow_task_queue_poll_succeed"] == 0
    # The recording is a local activity (patch ``local-flush``): it runs on the workflows-only
    # worker, inside its workflow tasks; that worker takes no activity task from the queue.
    assert workflow_side["temporal_local_activity_execution_latency"] > 5
    assert workflow_side["temporal_activity_execution_latency"] == 0
