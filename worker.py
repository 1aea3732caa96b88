"""The one place where workflows, activities, the database and notifiers are assembled.

``python -m worker`` (or ``chuangzheng worker``) connects to Temporal from settings and runs
until interrupted. Tests call :func:`build_worker` with their own client and database.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from pathlib import Path

import structlog
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.channels import ChannelRouter, build_notifier
from activities.db import create_schema, make_engine, session_factory
from activities.digests import DigestActivities
from activities.evaluations import EvaluationActivities
from activities.kickoff import KickoffActivities, RosterActivities
from activities.notifier import InboxNotifier, Notifier
from activities.recording import RecordingActivities
from chuangzheng.logging import configure_logging
from chuangzheng.settings import Settings, get_settings
from chuangzheng.temporal_server import data_converter
from workflows.digest import CircularWorkflow, DailyDigestWorkflow
from workflows.evaluation import EvaluationWorkflow
from workflows.organisation import OrganisationCampaignWorkflow
from workflows.reminders import SupervisorReminderWorkflow
from workflows.round import CampaignRoundWorkflow

log = structlog.get_logger(__name__)

WORKFLOWS: Sequence[type] = (
    OrganisationCampaignWorkflow,
    CampaignRoundWorkflow,
    DailyDigestWorkflow,
    CircularWorkflow,
    EvaluationWorkflow,
    SupervisorReminderWorkflow,
)

# Pure, deterministic modules shared by all workflow runs instead of re-imported per run:
# re-importing pydantic models and transitions machines for every workflow is the main cost
# of the sandbox at thousands of workflows.
_PASSTHROUGH = (
    "domain",
    "activities.contracts",
    "workflows.common",
    "workflows.contracts",
    "workflows.reporting",
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
    data_dir: Path | None = None,
) -> Worker:
    """A worker for every workflow and activity of the project (circulars are written under
    ``data_dir``, by default the settings' ``data_dir``)."""
    recording = RecordingActivities(sessions, notifier or InboxNotifier(sessions))
    roster = RosterActivities()
    kickoff = KickoffActivities(client, task_queue)
    # Digests and circular notices go out on the same channels as escalations, if any.
    sender = notifier if isinstance(notifier, ChannelRouter) else None
    digests = DigestActivities(sessions, data_dir, sender=sender)
    evaluations = EvaluationActivities(sessions, client)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=list(WORKFLOWS),
        activities=[
            recording.record_events,
            recording.deliver_notices,
            recording.record_round,
            roster.load_roster_page,
            kickoff.start_organisation_workflows,
            kickoff.signal_organisations,
            digests.load_round_status,
            digests.send_digests,
            digests.publish_circular,
            evaluations.open_evaluation,
            evaluations.close_evaluation,
            evaluations.publish_evaluation,
            evaluations.order_rectification,
        ],
        workflow_runner=workflow_runner(),
        max_concurrent_activities=max_concurrent_activities,
    )


async def connect(settings: Settings) -> Client:
    """A client for the configured Temporal namespace, with the project's data converter."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(),
    )


async def run_worker(settings: Settings | None = None) -> None:
    """Connect, make sure the schema exists, and poll until cancelled."""
    settings = settings or get_settings()
    configure_logging(settings)
    engine = make_engine(settings.database_url)
    create_schema(engine)
    client = await connect(settings)
    sessions = session_factory(engine)
    worker = build_worker(
        client,
        task_queue=settings.task_queue,
        sessions=sessions,
        notifier=build_notifier(sessions, settings),
    )
    log.info("worker started", task_queue=settings.task_queue, temporal=settings.temporal_address)
    await worker.run()


def main() -> None:
    """Entry point for ``python -m worker``."""
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is the normal way to stop
        asyncio.run(run_worker())


if __name__ == "__main__":
    main()
