"""The one place where workflows, activities, the database and notifiers are assembled.

``python -m worker`` (or ``chuangzheng worker``, what production and ``make run`` start) builds
its services with :mod:`chuangzheng.bootstrap` and runs until SIGTERM or Ctrl-C, then drains:
it stops polling and gives running activities ``CZ_WORKER_GRACEFUL_SHUTDOWN_SECONDS``.
Capacity (concurrent activities and workflow tasks, the sticky workflow cache) comes from
settings. ``CZ_WORKER_ROLE`` (``chuangzheng worker --role``) makes a process poll for
workflow tasks only or activities only (:class:`~chuangzheng.settings.WorkerRole`): during a
deadline storm the workflow tasks behind submissions then do not wait behind the storm's
activities for the same interpreter. Tests call :func:`build_worker` with their own client
and database.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.worker import Interceptor, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.channels import ChannelRouter
from activities.digests import DigestActivities
from activities.evaluations import EvaluationActivities
from activities.kickoff import KickoffActivities, RosterActivities
from activities.notifier import InboxNotifier, Notifier
from activities.recording import RecordingActivities
from activities.round_fanout import RoundFanOutActivities
from activities.round_progress import RoundProgressActivities
from chuangzheng.bootstrap import (
    Services,
    StartupRefused,
    connect_temporal,
    load_settings,
    open_services,
    report_refusal,
)
from chuangzheng.logging import configure_logging
from chuangzheng.services.forecast_warning import EarlyWarningSender
from chuangzheng.settings import Settings, WorkerRole, get_settings
from chuangzheng.telemetry import configure_tracing, install_temporal_runtime
from workflows.digest import CircularWorkflow, DailyDigestWorkflow
from workflows.evaluation import EvaluationWorkflow
from workflows.organisation import OrganisationCampaignWorkflow
from workflows.reminders import SupervisorReminderWorkflow
from workflows.round import CampaignRound
from workflows.round_legacy import CampaignRoundWorkflow

log = structlog.get_logger(__name__)

WORKFLOWS: Sequence[type] = (
    OrganisationCampaignWorkflow,
    CampaignRound,
    # The legacy round type, for rounds kicked off before CampaignRound (frozen).
    CampaignRoundWorkflow,
    DailyDigestWorkflow,
    CircularWorkflow,
    EvaluationWorkflow,
    SupervisorReminderWorkflow,
)

# Pure, deterministic modules shared by all workflow runs instead of re-imported per run:
# re-importing pydantic models and transitions machines for every workflow is the main cost
# of the sandbox at thousands of workflows.
#
# ``workflows.organisation`` is passed through as well, and its workflow now runs outside the
# sandbox altogether (``@workflow.defn(sandboxed=False)``; see the comment there): the sandbox
# checked nothing of that module's or ``domain``'s calls once both were passed through, and
# its per-activation context cost 15-25 % of the worker's CPU per Update. Both keep no state
# of their own (constants only; everything a run holds is on its instance) and take time
# only from ``workflow.now()``; the replay tests of the recorded histories guard determinism.
# The round, digest, evaluation and reminder workflows (a handful per round) stay sandboxed.
_PASSTHROUGH = (
    "domain",
    "workflows.organisation",
    "activities.contracts",
    "activities.round_contracts",
    "workflows.activity_refs",
    "workflows.common",
    "workflows.contracts",
    "workflows.digest_contracts",
    "workflows.evaluation_contracts",
    "workflows.reporting",
    "workflows.round_contracts",
    "workflows.ids",
    "workflows.search_attributes",
    "pydantic",
    "pydantic_core",
    "transitions",
    "chinese_calendar",
    "yaml",
)


def workflow_runner() -> SandboxedWorkflowRunner:
    """The sandbox with our pure modules passed through."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*_PASSTHROUGH)
    )


def build_worker(
    client: Client,
    *,
    task_queue: str,
    sessions: sessionmaker[Session],
    notifier: Notifier | None = None,
    max_concurrent_activities: int = 50,
    max_concurrent_workflow_tasks: int | None = None,
    max_cached_workflows: int = 1000,
    graceful_shutdown: timedelta = timedelta(),
    data_dir: Path | None = None,
    role: WorkerRole = WorkerRole.ALL,
    interceptors: Sequence[Interceptor] = (),
) -> Worker:
    """A worker for every workflow and activity of the project (circulars are written under
    ``data_dir``, by default the settings' ``data_dir``), or only for the workflows or only
    for the activities (``role``: the SDK's worker then polls only that half of the task
    queue). Processes take the capacity from settings through :func:`worker_for`; tests
    may add ``interceptors`` to observe what runs."""
    recording = RecordingActivities(sessions, notifier or InboxNotifier(sessions))
    roster = RosterActivities()
    kickoff = KickoffActivities(client, task_queue, sessions)
    round_progress = RoundProgressActivities(sessions)
    round_fanout = RoundFanOutActivities(
        client,
        task_queue,
        sessions,
        round_progress.plans,
        early_warnings=EarlyWarningSender(
            sessions, recording.deliver_notices, data_dir or get_settings().data_dir
        ),
    )
    # Digests and circular notices go out on the same channels as escalations, if any.
    sender = notifier if isinstance(notifier, ChannelRouter) else None
    digests = DigestActivities(sessions, data_dir, sender=sender)
    evaluations = EvaluationActivities(sessions, client)
    activities: list[Callable[..., Any]]
    if role.runs_activities:
        activities = [
            recording.record_events,
            recording.record_outbox,
            recording.deliver_notices,
            recording.record_round,
            roster.load_roster_page,
            kickoff.start_organisation_workflows,
            kickoff.signal_organisations,
            round_progress.record_round_status,
            round_progress.load_round_aggregate,
            round_progress.resolve_round_schedule,
            round_fanout.start_round_organisations,
            round_fanout.fan_out_round_signal,
            round_fanout.check_round_cohorts,
            round_fanout.check_round,
            digests.send_digests,
            digests.publish_circular,
            evaluations.open_evaluation,
            evaluations.close_evaluation,
            evaluations.publish_evaluation,
            evaluations.order_rectification,
            evaluations.settle_step,
        ]
    else:
        # The organisation workflow records as a local activity (patch ``local-flush``),
        # which runs in the worker that runs the workflow task: a workflows-only worker
        # registers it for that use alone and polls for no activity task.
        activities = [recording.record_events, recording.record_outbox]
    return Worker(
        client,
        task_queue=task_queue,
        workflows=list(WORKFLOWS) if role.runs_workflows else [],
        activities=activities,
        no_remote_activities=not role.runs_activities,
        workflow_runner=workflow_runner(),
        max_concurrent_activities=max_concurrent_activities,
        max_concurrent_workflow_tasks=max_concurrent_workflow_tasks,
        max_cached_workflows=max_cached_workflows,
        graceful_shutdown_timeout=graceful_shutdown,
        interceptors=interceptors,
    )


def worker_for(services: Services) -> Worker:
    """The worker of a process: services from the bootstrap, capacity from settings."""
    settings = services.settings
    return build_worker(
        services.temporal,
        task_queue=settings.task_queue,
        sessions=services.sessions,
        notifier=services.notifier,
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        max_concurrent_workflow_tasks=settings.worker_max_concurrent_workflow_tasks,
        max_cached_workflows=settings.worker_max_cached_workflows,
        graceful_shutdown=timedelta(seconds=settings.worker_graceful_shutdown_seconds),
        data_dir=settings.data_dir,
        role=settings.worker_role,
    )


async def connect(settings: Settings) -> Client:
    """A client for the configured Temporal namespace, with the project's data converter."""
    return await connect_temporal(settings)


async def run_worker(settings: Settings | None = None) -> None:
    """Build the services, poll until SIGTERM/SIGINT, then drain (stop polling, give running
    activities the graceful period, let in-flight workflow tasks finish)."""
    settings = settings or get_settings()
    configure_logging(settings)
    # Core logs through our logging; Prometheus metrics on CZ_METRICS_ADDRESS if set.
    install_temporal_runtime(settings)
    configure_tracing(settings, "chuangzheng-worker")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # The read model must be at the migrations' head (chuangzheng.bootstrap.ensure_schema):
    # the worker never creates or alters its tables.
    async with open_services(settings) as services:
        worker = worker_for(services)
        running = asyncio.create_task(worker.run())
        stopping = asyncio.create_task(stop.wait())
        log.info(
            "worker started",
            task_queue=settings.task_queue,
            temporal=settings.temporal_address,
            pid=os.getpid(),
            role=settings.worker_role.value,
            max_cached_workflows=settings.worker_max_cached_workflows,
        )
        await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if running.done():  # a fatal worker error: let the supervisor restart the process
            stopping.cancel()
            running.result()
            return
        log.info("worker draining", graceful_seconds=settings.worker_graceful_shutdown_seconds)
        await worker.shutdown()
        await running
        log.info("worker stopped")


def main(role: WorkerRole | None = None) -> None:
    """Entry point for ``python -m worker`` and ``chuangzheng worker`` (``role``, from
    ``--role``, overrides ``CZ_WORKER_ROLE``).

    Ends without interpreter teardown: the SDK's Rust threads can abort a finalising
    interpreter (temporalio/sdk-python#300), turning a clean stop into exit code 134.
    """
    code = 0
    try:
        settings = load_settings()
        if role is not None:
            settings = settings.model_copy(update={"worker_role": role})
        asyncio.run(run_worker(settings))
    except KeyboardInterrupt:
        pass
    except StartupRefused as refusal:
        # Settings, schema or Temporal at start: the reason on stderr, no traceback.
        report_refusal(refusal)
        code = refusal.exit_code
    except Exception:
        log.exception("worker failed")
        code = 1
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
