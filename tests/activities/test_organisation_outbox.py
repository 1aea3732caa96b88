"""Continue-as-new carries everything the organisation workflow still owes the read model.

Both tests run the real organisation workflow on the time-skipping server with the real
recording activities over a real read model (SQLite, and PostgreSQL when it answers: the
``engine`` fixture of this folder). ``record_outbox`` is wrapped so a test can hold a flush
in flight and act while it is held.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.contracts import EventBatch, RecordReceipt
from activities.db import session_factory
from activities.notifier import InboxNotifier
from activities.recording import RecordingActivities
from activities.tables import CampaignEventRow, NoticeRow
from chuangzheng.sample_evidence import sample_evidence
from domain.actions import DecideSubmission, SubmitEvidence
from domain.campaign import Campaign, OrderRectification, new_state
from domain.events import EventKind
from domain.organisation import Role
from domain.phases import Phase
from domain.state import Actor
from tests.workflows.support import instructor, org_plan, organisation, secretary, status
from worker import workflow_runner
from workflows.activity_refs import RECORD_OUTBOX
from workflows.contracts import CarriedOutbox, OrganisationCampaignInput
from workflows.ids import organisation_workflow_id
from workflows.organisation import OrganisationCampaignWorkflow

LIMIT = 100  # the smallest history_limit the input allows
EVALUATOR = Actor(user="county", name="县委活动办", role=Role.COUNTY_OFFICE)


class FlushGate:
    """Holds the next ``record_outbox`` call until released, and tells when it is held.

    The workflow records as a local activity (patch ``local-flush``), inside its workflow
    task, where no Update can land; while a hold is asked for, local attempts fail (the
    workflow retries them within its local budget, then records through the regular
    activity) and the regular activity is the one held, as a read model that is slow or
    down would make it."""

    def __init__(self) -> None:
        self.batches: list[EventBatch] = []
        self._hold_next = False
        self.held = asyncio.Event()
        self._release = asyncio.Event()

    def hold_next(self) -> None:
        """The next batch waits in the activity until :meth:`release`."""
        self._hold_next, self._release = True, asyncio.Event()
        self.held.clear()

    def release(self) -> None:
        """Let the held batch be written."""
        self._release.set()

    async def passing(self, batch: EventBatch) -> None:
        """Called by the wrapped activity before it writes ``batch``."""
        if self._hold_next and activity.info().is_local:
            raise RuntimeError("读模型暂不可用（测试）")
        self.batches.append(batch)
        if self._hold_next:
            self._hold_next = False
            self.held.set()
            await self._release.wait()


@asynccontextmanager
async def gated_worker(
    client: Client, sessions: sessionmaker[Session], gate: FlushGate
) -> AsyncIterator[str]:
    """The organisation workflow with the real recording activities, ``record_outbox``
    passing through ``gate``; yields the task queue."""
    recording = RecordingActivities(sessions, InboxNotifier(sessions))

    @activity.defn(name=RECORD_OUTBOX.name)
    async def record_outbox(batch: EventBatch) -> RecordReceipt:
        await gate.passing(batch)
        return await recording.record_outbox(batch)

    task_queue = f"outbox-{uuid.uuid4()}"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[OrganisationCampaignWorkflow],
        activities=[record_outbox, recording.deliver_notices],
        workflow_runner=workflow_runner(),
    ):
        yield task_queue


def order(reference: str) -> OrderRectification:
    """A 整改通知 from a 群众评议: one event and one notice to the secretary."""
    return OrderRectification(
        actor=EVALUATOR,
        source="evaluation",
        reference=reference,
        reason="群众评议满意率低于计划规定的比例。",
    )


def recorded(
    sessions: sessionmaker[Session], round_id: str, kind: EventKind
) -> tuple[list[str], list[str]]:
    """Event ids of ``kind`` and rectification-order notice ids in the read model."""
    with sessions() as session:
        events = session.scalars(
            select(CampaignEventRow.event_id).where(
                CampaignEventRow.round_id == round_id, CampaignEventRow.kind == kind.value
            )
        ).all()
        notices = session.scalars(
            select(NoticeRow.notice_id).where(
                NoticeRow.round_id == round_id, NoticeRow.kind == "rectification_order"
            )
        ).all()
    return list(events), list(notices)


async def wait_for_new_run(handle: WorkflowHandle[object, object], first_run: str) -> str:
    """The run id once the workflow has continued as new (real time, a few seconds at most)."""
    for _ in range(100):
        run_id = (await handle.describe()).run_id
        if run_id != first_run:
            return run_id
        await asyncio.sleep(0.1)
    raise AssertionError("the workflow did not continue as new")


async def test_update_landing_during_the_final_flush_reaches_the_read_model_once(
    time_skipping_env: WorkflowEnvironment, engine: Engine
) -> None:
    env, sessions, gate = time_skipping_env, session_factory(engine), FlushGate()
    org = organisation("org-outbox-01")
    round_id = f"r-outbox-{uuid.uuid4().hex[:8]}"
    plan = org_plan(org, await env.get_current_time(), round_id=round_id)
    step = plan.phase(Phase.MOBILISATION).steps[0]
    async with gated_worker(env.client, sessions, gate) as task_queue:
        handle = await env.client.start_workflow(
            OrganisationCampaignWorkflow.run,
            OrganisationCampaignInput(plan=plan, history_limit=LIMIT),
            id=organisation_workflow_id(round_id, org.id),
            task_queue=task_queue,
        )
        try:
            first_run = (await handle.describe()).run_id
            phase = (await status(handle)).state.current()
            values = sample_evidence(
                step,
                org,
                opens_at=phase.opens_at,
                deadline=phase.deadline,
                now=await env.get_current_time(),
            )
            # Submit and return until the run's history is a few Updates short of the limit
            # (each adds 8 events or more); the next flush, held, is then the run's last:
            # once it and the Update landing meanwhile are recorded, the history is past the
            # limit and the workflow continues as new.
            for attempt in range(LIMIT):
                held = len((await handle.fetch_history()).events) + 10 > LIMIT
                if held:
                    gate.hold_next()
                if attempt % 2 == 0:
                    update = SubmitEvidence(
                        actor=secretary(org),
                        step_id=step.id,
                        values=values,
                        idempotency_key=f"s{attempt}",
                    )
                    await handle.execute_update(
                        OrganisationCampaignWorkflow.submit_evidence, update
                    )
                else:
                    await handle.execute_update(
                        OrganisationCampaignWorkflow.decide_submission,
                        DecideSubmission(
                            actor=instructor(org), step_id=step.id, accept=False, reason="材料不全"
                        ),
                    )
                if held:
                    await asyncio.wait_for(gate.held.wait(), timeout=30)
                    break
            # The final flush is held in its activity: a 整改通知 lands now.
            landed = await handle.execute_update(
                OrganisationCampaignWorkflow.order_rectification,
                order("ev-during-flush"),
                id="landed-during-final-flush",
            )
            gate.release()
            await wait_for_new_run(handle, first_run)

            history = await env.client.get_workflow_handle(
                handle.id, run_id=first_run
            ).fetch_history()
            kinds = [EventType.Name(e.event_type) for e in history.events]
            assert kinds[-1] == "EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW"
            accepted = [
                e.workflow_execution_update_accepted_event_attributes.accepted_request.meta.update_id
                for e in history.events
                if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
            ]
            assert accepted[-1] == "landed-during-final-flush"  # in the run that continued
            # The continued run has the order, and its events and notice are in the read
            # model exactly once.
            continued = await status(handle)
            assert continued.state.event_seq == landed.version
            assert continued.state.current().rectification is not None
            for _ in range(100):
                events, notices = recorded(sessions, round_id, EventKind.RECTIFICATION_REQUIRED)
                if events and notices:
                    break
                await asyncio.sleep(0.1)
            assert len(events) == 1 and len(notices) == 1
            # Every event of the first run was handed to the read model once, in order.
            seqs = [int(e.event_id.rsplit("/", 1)[1]) for b in gate.batches for e in b.events]
            assert seqs == list(range(1, landed.version + 1))
        finally:
            gate.release()
            await handle.terminate("test over")


async def test_continued_run_flushes_the_carried_outbox_first(
    time_skipping_env: WorkflowEnvironment, engine: Engine
) -> None:
    env, sessions, gate = time_skipping_env, session_factory(engine), FlushGate()
    org = organisation("org-outbox-02")
    round_id = f"r-outbox-{uuid.uuid4().hex[:8]}"
    now = await env.get_current_time()
    plan = org_plan(org, now, round_id=round_id)
    # What a previous run owed when it continued as new: the phase it opened and an order
    # that landed during its last flush, with the order's notice.
    previous = Campaign(plan, new_state(plan))
    previous.settle(now)
    previous.order_rectification(order("ev-carried"), now)
    events, notices = previous.take_outbox()
    assert [e.kind for e in events] == [EventKind.PHASE_OPENED, EventKind.RECTIFICATION_REQUIRED]
    assert len(notices) == 1
    async with gated_worker(env.client, sessions, gate) as task_queue:
        handle = await env.client.start_workflow(
            OrganisationCampaignWorkflow.run,
            OrganisationCampaignInput(
                plan=plan,
                state=previous.state,
                carried=CarriedOutbox(events=tuple(events), notices=tuple(notices)),
            ),
            id=organisation_workflow_id(round_id, org.id),
            task_queue=task_queue,
        )
        try:
            await status(handle)
            for _ in range(100):
                found, filed = recorded(sessions, round_id, EventKind.RECTIFICATION_REQUIRED)
                if found and filed:
                    break
                await asyncio.sleep(0.1)
            assert found == [events[1].event_id]
            assert filed == [notices[0].notice_id]
            # The carried events were the continued run's first write, in order.
            first = gate.batches[0]
            assert [e.event_id for e in first.events[:2]] == [e.event_id for e in events]
            assert first.notices == notices
            assert not any(
                e.kind is EventKind.PHASE_OPENED for b in gate.batches[1:] for e in b.events
            )
        finally:
            await handle.terminate("test over")
