"""The organisation workflow's flush as a local activity (``LOCAL_FLUSH_PATCH``).

- An accepted Update costs one workflow task: ``record_outbox`` (``record_events`` before
  the patch ``external-delivery-only``) runs inside it (one
  ``MARKER_RECORDED``, no activity scheduled), and the Update's response goes out with
  that task's completion, so the read model has the Update's events when the caller gets
  the result.
- The inputs stay small: the whole snapshot once, then only what changed (observed by an
  activity interceptor on the real worker, since a local activity's input is not in
  history).
- A late organisation's notices are recorded locally, each once; with the inbox alone no
  ``deliver_notices`` is scheduled (``tests/activities/test_organisation_external_delivery.py``
  has the worker with external channels).
- The read model locked past the local budget: the flush falls back to the regular
  activity, which the server retries until the lock goes; every event lands once.

The time-skipping tests run on a server of their own, so the shared server's clock (which the
suite's whole rounds move years ahead) is not moved further. With CZ_RECORD_HISTORIES=1 this
records ``organisation_local_flush`` for the replay test.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    Worker,
)

from activities.contracts import EventBatch
from activities.db import create_schema, make_engine, session_factory
from activities.tables import CampaignEventRow, CampaignStatusRow, NoticeRow
from chuangzheng.sample_evidence import sample_evidence
from chuangzheng.temporal_server import start_dev_server_env, start_time_skipping_env
from domain.actions import DecideSubmission, SubmitEvidence
from domain.events import EventKind
from domain.machine import StepStatus
from domain.phases import Phase
from tests.workflows.support import (
    do_current_phase,
    instructor,
    leave_next_phase_past_its_top_rung,
    max_cached_workflows,
    org_plan,
    organisation,
    record_history,
    secretary,
    start_campaign,
    status,
)
from worker import build_worker
from workflows.activity_refs import RECORD_EVENTS, RECORD_OUTBOX
from workflows.contracts import ActionResult
from workflows.organisation import LOCAL_FLUSH_PATCH, OrganisationCampaignWorkflow

Handle = WorkflowHandle[OrganisationCampaignWorkflow, object]
#: The activities that record a batch: today's, and the one runs from before
#: ``EXTERNAL_DELIVERY_PATCH`` call.
RECORDERS = frozenset({RECORD_OUTBOX.name, RECORD_EVENTS.name})
#: How long the lock test holds the read model: past the local budget (7 s) and a few of the
#: regular activity's attempts (SQLite's busy timeout is 5 s each).
LOCK_SECONDS = 25.0


class _Inputs(Interceptor):
    """Keeps every batch the worker records (``record_outbox``, or ``record_events`` for a
    run from before it), local or regular, with whether it ran as a local activity."""

    def __init__(self) -> None:
        self.batches: list[tuple[bool, EventBatch]] = []

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        seen = self.batches

        class _Inbound(ActivityInboundInterceptor):
            async def execute_activity(self, input: ExecuteActivityInput) -> Any:
                from temporalio import activity

                info = activity.info()
                if info.activity_type in RECORDERS:
                    seen.append((info.is_local, input.args[0]))
                return await super().execute_activity(input)

        return _Inbound(next)


def _worker(
    client: Client, task_queue: str, sessions: sessionmaker[Session], seen: _Inputs
) -> Worker:
    """The project's worker (``worker.build_worker``) with the observing interceptor."""
    return build_worker(
        client,
        task_queue=task_queue,
        sessions=sessions,
        max_cached_workflows=max_cached_workflows(),
        interceptors=[seen],
    )


def _sessions(path: Path) -> sessionmaker[Session]:
    engine = make_engine(f"sqlite:///{path}")
    create_schema(engine)
    return session_factory(engine)


def _of_type(events: list[HistoryEvent], kind: int) -> list[HistoryEvent]:
    return [e for e in events if e.event_type == kind]


def _scheduled(events: list[HistoryEvent], name: str) -> list[HistoryEvent]:
    return [
        e
        for e in _of_type(events, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
        if e.activity_task_scheduled_event_attributes.activity_type.name == name
    ]


def _local_markers(events: list[HistoryEvent], name: str) -> list[HistoryEvent]:
    """Local-activity markers of activity ``name`` (the marker's data names the type)."""
    return [
        e
        for e in _of_type(events, EventType.EVENT_TYPE_MARKER_RECORDED)
        if e.marker_recorded_event_attributes.marker_name == "core_local_activity"
        and name.encode() in e.marker_recorded_event_attributes.SerializeToString()
    ]


async def _row(sessions: sessionmaker[Session], round_id: str, org_id: str) -> CampaignStatusRow:
    with sessions() as session:
        row = session.get(CampaignStatusRow, (round_id, org_id))
    assert row is not None
    return row


async def _eventually(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


def _event_rows(sessions: sessionmaker[Session], round_id: str) -> list[str]:
    with sessions() as session:
        return list(
            session.scalars(
                select(CampaignEventRow.event_id).where(CampaignEventRow.round_id == round_id)
            )
        )


@dataclass
class Observed:
    """A time-skipping server of its own (the shared one's clock is left alone), a worker on
    its own task queue and read model, and what that worker ran as record_outbox."""

    env: WorkflowEnvironment
    queue: str
    sessions: sessionmaker[Session]
    seen: _Inputs


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def observed(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Observed]:
    sessions = _sessions(tmp_path_factory.mktemp("local-flush") / "readmodel.db")
    seen = _Inputs()
    queue = f"local-flush-{uuid.uuid4()}"
    env = await start_time_skipping_env()
    try:
        async with _worker(env.client, queue, sessions, seen):
            yield Observed(env, queue, sessions, seen)
    finally:
        await env.shutdown()


async def test_an_accepted_update_is_one_workflow_task_and_recorded_when_it_returns(
    observed: Observed,
) -> None:
    env, queue, sessions, seen = observed.env, observed.queue, observed.sessions, observed.seen
    round_id = f"r-local-{uuid.uuid4().hex[:6]}"
    org = organisation("org-local-01")
    plan = org_plan(org, await env.get_current_time(), round_id=round_id)
    handle = await start_campaign(env.client, queue, plan)
    first = (await status(handle)).state
    await _eventually(
        lambda: _recorded_seq(sessions, round_id, org.id) == first.event_seq, 30, "the first flush"
    )
    phase = plan.phase(first.phase)
    step = next(s for s in phase.steps if s.required)
    current = first.current()
    before = len((await handle.fetch_history()).events)

    values = sample_evidence(
        step,
        org,
        opens_at=current.opens_at,
        deadline=current.deadline,
        now=await env.get_current_time(),
    )
    result: ActionResult = await handle.execute_update(
        OrganisationCampaignWorkflow.submit_evidence,
        SubmitEvidence(actor=secretary(org), step_id=step.id, values=values),
    )
    # Recorded before the response: the row has the Update's version at once (no waiting).
    assert (await _row(sessions, round_id, org.id)).event_seq == result.version
    assert result.step_status is StepStatus.SUBMITTED

    events = list((await handle.fetch_history()).events)
    after = events[before:]
    assert len(_of_type(after, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)) == 1
    assert len(_of_type(after, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED)) == 1
    assert len(_of_type(after, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)) == 1, [
        EventType.Name(e.event_type) for e in after
    ]
    assert len(_local_markers(after, RECORD_OUTBOX.name)) == 1
    assert not _of_type(after, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
    # The whole run: every recording local, none as an activity; the patch is marked.
    assert not _scheduled(events, RECORD_OUTBOX.name)
    markers = _of_type(events, EventType.EVENT_TYPE_MARKER_RECORDED)
    assert any(LOCAL_FLUSH_PATCH.encode() in m.SerializeToString() for m in markers)
    # Small inputs as before: the whole snapshot first, then only the changes.
    mine = [(local, b) for local, b in seen.batches if b.where.org_id == org.id]
    assert len(mine) >= 2 and all(local for local, _ in mine)
    assert mine[0][1].snapshot is not None and mine[0][1].status is None
    assert all(b.snapshot is None and b.status is not None for _, b in mine[1:])
    await handle.terminate("test done")


def _recorded_seq(sessions: sessionmaker[Session], round_id: str, org_id: str) -> int | None:
    with sessions() as session:
        row = session.get(CampaignStatusRow, (round_id, org_id))
    return None if row is None else row.event_seq


async def test_late_organisation_records_every_notice_once_locally(
    observed: Observed,
) -> None:
    env, queue, sessions, seen = observed.env, observed.queue, observed.sessions, observed.seen
    round_id = f"r-local-late-{uuid.uuid4().hex[:6]}"
    org = organisation("org-local-02")
    plan = org_plan(org, await env.get_current_time(), round_id=round_id)
    handle = await start_campaign(env.client, queue, plan)
    # Nothing done in 公开承诺 past the top rung: reminder, rungs, circular, order.
    await leave_next_phase_past_its_top_rung(env, handle, plan)
    await do_current_phase(handle, plan, await env.get_current_time())
    state = (await status(handle)).state
    await _eventually(
        lambda: _recorded_seq(sessions, round_id, org.id) == state.event_seq, 30, "the flush"
    )
    events = list((await handle.fetch_history()).events)
    assert not _scheduled(events, RECORD_OUTBOX.name)
    # The inbox alone (this worker's notifier): its row is the delivery, nothing to send.
    assert not _scheduled(events, "deliver_notices")
    # Every notice recorded by a local record_outbox, and each in the inbox once.
    recorded_ids = [
        n.notice_id for _, b in seen.batches if b.where.org_id == org.id for n in b.notices
    ]
    with sessions() as session:
        inbox = list(
            session.scalars(select(NoticeRow.notice_id).where(NoticeRow.round_id == round_id))
        )
    assert len(inbox) >= 8 and len(set(inbox)) == len(inbox)
    assert sorted(set(recorded_ids)) == sorted(inbox)
    # Events: each once in the read model, as many as the workflow made.
    rows = _event_rows(sessions, round_id)
    assert len(rows) == len(set(rows)) == state.event_seq
    await record_history(handle, "organisation_local_flush")
    await handle.terminate("test done")


async def test_read_model_locked_past_the_local_budget_falls_back_to_the_activity(
    tmp_path: Path,
) -> None:
    """On the dev server (real time): the read model is locked for LOCK_SECONDS around an Update;
    the Update still answers (after the local budget), the flush goes on as the regular
    ``record_events``, retried with back-off, and every event lands once after the unlock."""
    env = await start_dev_server_env()
    path = tmp_path / "readmodel.db"
    sessions = _sessions(path)
    seen = _Inputs()
    queue = f"local-flush-lock-{uuid.uuid4()}"
    round_id = f"r-local-lock-{uuid.uuid4().hex[:6]}"
    org = organisation("org-local-03")
    try:
        async with _worker(env.client, queue, sessions, seen):
            plan = org_plan(org, await env.get_current_time(), round_id=round_id)
            handle: Handle = await start_campaign(env.client, queue, plan)
            try:
                first = (await status(handle)).state
                await _eventually(
                    lambda: _recorded_seq(sessions, round_id, org.id) == first.event_seq,
                    30,
                    "the first flush",
                )
                step = next(s for s in plan.phase(first.phase).steps if s.required)
                current = first.current()
                values = sample_evidence(
                    step,
                    org,
                    opens_at=current.opens_at,
                    deadline=current.deadline,
                    now=await env.get_current_time(),
                )
                blocker = sqlite3.connect(path, timeout=1, isolation_level=None)
                try:
                    blocker.execute("BEGIN EXCLUSIVE")
                    sent = time.monotonic()
                    result = await handle.execute_update(
                        OrganisationCampaignWorkflow.submit_evidence,
                        SubmitEvidence(actor=secretary(org), step_id=step.id, values=values),
                    )
                    answered = time.monotonic() - sent
                    await asyncio.sleep(max(0.0, LOCK_SECONDS - answered))
                    assert _recorded_seq(sessions, round_id, org.id) == first.event_seq
                finally:
                    blocker.execute("ROLLBACK")
                    blocker.close()
                await _eventually(
                    lambda: _recorded_seq(sessions, round_id, org.id) == result.version,
                    60,
                    "the fallback activity to record",
                )
                # Then business as usual: the next Update is local again.
                decided = await handle.execute_update(
                    OrganisationCampaignWorkflow.decide_submission,
                    DecideSubmission(actor=instructor(org), step_id=step.id, accept=True),
                )
                assert _recorded_seq(sessions, round_id, org.id) == decided.version
            except BaseException:
                # Seen once at cache 0 in CI, not reproduced since (docs/reliability.md):
                # the history goes to the log, to be replayed.
                history = await handle.fetch_history()
                print("history of the failed run:", history.to_json())
                raise
            events = list((await handle.fetch_history()).events)
            await handle.terminate("test done")
    finally:
        await env.shutdown()

    # The Update answered within the local budget plus a little, not after the lock.
    assert answered < 12, answered
    fallback = _scheduled(events, RECORD_OUTBOX.name)
    assert len(fallback) == 1
    started = [
        e.activity_task_started_event_attributes.attempt
        for e in _of_type(events, EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)
        if e.activity_task_started_event_attributes.scheduled_event_id == fallback[0].event_id
    ]
    assert started and started[0] > 1  # retried with back-off while locked
    assert started[0] <= 6
    local = [local for local, b in seen.batches if b.where.org_id == org.id]
    assert local.count(False) >= 2  # the regular activity's attempts
    assert local[-1] is True  # the next Update recorded locally again
    rows = _event_rows(sessions, round_id)
    assert len(rows) == len(set(rows)) == decided.version
    with sessions() as session:
        counted = session.scalar(
            select(func.count())
            .select_from(CampaignEventRow)
            .where(
                CampaignEventRow.round_id == round_id,
                CampaignEventRow.kind == EventKind.SUBMITTED.value,
            )
        )
    assert counted == 1
    assert Phase.COMPLETED not in (result.phase, decided.phase)
