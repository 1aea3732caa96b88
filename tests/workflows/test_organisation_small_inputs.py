"""The organisation workflow's small activity inputs (``SMALL_INPUTS_PATCH``) end to end: a
late organisation climbs the ladder and rectifies; its history sends the whole snapshot
once and then only what changed, while the read model ends up the same (status row, every
notice once in the inbox). With the inbox alone (this worker's notifier) no notice is sent
anywhere else, so no ``deliver_notices`` is scheduled at all (``EXTERNAL_DELIVERY_PATCH``);
``tests/activities/test_organisation_external_delivery.py`` has a worker with a channel,
whose notices go out by id.

With CZ_RECORD_HISTORIES=1 this records ``organisation_small_inputs`` for the replay test.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from activities.tables import CampaignStatusRow, NoticeRow
from domain.actions import RecheckRectification, ReportRectification
from domain.phases import Phase
from tests.workflows.support import (
    do_current_phase,
    instructor,
    leave_next_phase_past_its_top_rung,
    org_plan,
    organisation,
    record_history,
    secretary,
    start_campaign,
    status,
)
from workflows.organisation import (
    EXTERNAL_DELIVERY_PATCH,
    SMALL_INPUTS_PATCH,
    OrganisationCampaignWorkflow,
)

pytestmark = pytest.mark.usefixtures("worker")
ROUND = "r-small-inputs"


async def test_late_organisation_sends_changes_and_notice_ids_and_the_read_model_agrees(
    time_skipping_env: WorkflowEnvironment, task_queue: str, sessions: sessionmaker[Session]
) -> None:
    env = time_skipping_env
    org = organisation("org-small-01")
    plan = org_plan(org, await env.get_current_time(), round_id=ROUND)
    handle = await start_campaign(env.client, task_queue, plan)
    # Nothing done in 公开承诺 past the top rung: reminder, rungs, circular, order.
    await leave_next_phase_past_its_top_rung(env, handle, plan)
    await do_current_phase(handle, plan, await env.get_current_time())
    await handle.execute_update(
        OrganisationCampaignWorkflow.report_rectification,
        ReportRectification(
            actor=secretary(org),
            phase=Phase.PUBLIC_COMMITMENT,
            report="已补齐全部党员承诺并张榜公示。",
        ),
    )
    result = await handle.execute_update(
        OrganisationCampaignWorkflow.recheck_rectification,
        RecheckRectification(actor=instructor(org), phase=Phase.PUBLIC_COMMITMENT, passed=True),
    )
    assert result.phase is Phase.LEADERSHIP_REVIEW

    # The read model's status row is where the workflow stands (the last flush may still run).
    state = (await status(handle)).state
    row: CampaignStatusRow | None = None
    for _ in range(100):
        with sessions() as session:
            row = session.get(CampaignStatusRow, (ROUND, org.id))
        if row is not None and row.event_seq == state.event_seq:
            break
        await asyncio.sleep(0.05)
    assert row is not None and row.event_seq == state.event_seq
    current = state.current()
    assert (row.phase, row.phase_status, row.light, row.overdue, row.closed) == (
        state.phase.value,
        current.status.value,
        state.light.value,
        state.overdue,
        state.closed,
    )
    assert (row.deadline, row.top_rung) == (current.deadline, None)
    assert (row.org_name, row.township, row.system) == (org.name, org.township, org.system)

    # In history: the patches, and no activity scheduled to record or to deliver.
    events = (await handle.fetch_history()).events
    markers = [
        e.marker_recorded_event_attributes.SerializeToString()
        for e in events
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
    ]
    for patch in (SMALL_INPUTS_PATCH, EXTERNAL_DELIVERY_PATCH):
        assert any(patch.encode() in marker for marker in markers), patch
    inputs: dict[str, list[dict[str, object]]] = {"record_outbox": [], "deliver_notices": []}
    for e in events:
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attributes = e.activity_task_scheduled_event_attributes
            payload = json.loads(attributes.input.payloads[0].data)
            inputs[attributes.activity_type.name].append(payload)
    # The recording runs as a local activity (``local-flush``): its inputs are not in
    # history; test_organisation_local_flush.py checks them (whole once, then changes).
    assert inputs == {"record_outbox": [], "deliver_notices": []}
    with sessions() as session:
        inbox = session.scalars(
            select(NoticeRow.notice_id).where(NoticeRow.round_id == ROUND)
        ).all()
    assert len(inbox) == len(set(inbox)) >= 8  # reminder, 3 rungs to supervisors and secretary
    await record_history(handle, "organisation_small_inputs")
