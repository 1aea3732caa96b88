"""The small forms of the organisation workflow's activity inputs (``SMALL_INPUTS_PATCH``).

``deliver_notices`` by ``notice_ids``: the notices the outbox recorded are loaded from the
inbox and sent on real channels (a local SMTP server and robot server), each once.
``record_events`` with a ``StatusChange``: only the changed fields of the status row are
written, under the ``event_seq`` guard, on SQLite and PostgreSQL; an organisation with no
status row is refused (the workflow then sends the whole snapshot). Old inputs still read.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import Engine, Table, delete, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.channels import (
    ChannelsConfig,
    DeliveryStatus,
    deliveries_of,
    router_from_config,
)
from activities.contracts import (
    NOTICES_NOT_RECORDED,
    STATUS_ROW_MISSING,
    CampaignSnapshot,
    DeliveryReport,
    EventBatch,
    NoticeBatch,
    RecordReceipt,
    StatusChange,
)
from activities.db import session_factory
from activities.notifier import InboxNotifier
from activities.recording import RecordingActivities
from activities.tables import (
    CampaignEventRow,
    CampaignStatusRow,
    EscalationRow,
    NoticeRow,
    campaign_status,
    notices,
)
from chuangzheng.settings import Settings
from chuangzheng.temporal_server import data_converter, start_time_skipping_env
from domain.campaign import OrderRectification
from domain.events import EventKind
from domain.lights import Light
from domain.machine import PhaseStatus
from domain.notices import Notice
from domain.organisation import Role
from domain.phases import Phase
from domain.state import Actor, CampaignEvent
from tests.activities.receivers import MailBox, Robots
from tests.activities.test_channels import (
    NOW,
    ORG,
    ROUND,
    TO_INSTRUCTOR,
    TO_TOWNSHIP,
    channels_config,
    escalation,
)
from tests.workflows.support import org_plan, organisation, status
from worker import workflow_runner
from workflows.activity_refs import DELIVER_NOTICES, RECORD_OUTBOX
from workflows.contracts import OrganisationCampaignInput
from workflows.ids import organisation_workflow_id
from workflows.organisation import OrganisationCampaignWorkflow


def snapshot(seq: int, org_id: str = ORG.id, **changes: object) -> CampaignSnapshot:
    """Where ``ORG`` stands at ``seq`` (mobilisation, open, green unless ``changes`` say)."""
    return CampaignSnapshot(
        round_id=ROUND,
        org_id=org_id,
        org_name=ORG.name,
        township=ORG.township,
        system=ORG.system,
        org_type=ORG.type,
        phase=Phase.MOBILISATION,
        phase_status=PhaseStatus.OPEN,
        light=Light.GREEN,
        overdue=False,
        deadline=NOW + timedelta(days=3),
        top_rung=None,
        closed=False,
        event_seq=seq,
        updated_at=NOW + timedelta(minutes=seq),
    ).model_copy(update=changes)


def event(seq: int, kind: EventKind, org_id: str = ORG.id, **detail: object) -> CampaignEvent:
    return CampaignEvent(
        event_id=f"{ROUND}/{org_id}/{seq}",
        round_id=ROUND,
        org_id=org_id,
        kind=kind,
        at=NOW + timedelta(minutes=seq),
        phase=Phase.MOBILISATION,
        detail=detail,
    )


def status_row(sessions: sessionmaker[Session], org_id: str = ORG.id) -> CampaignStatusRow | None:
    with sessions() as session:
        return session.get(CampaignStatusRow, (ROUND, org_id))


def wire(value: BaseModel) -> bytes:
    """What the workflow puts in history for ``value`` (the project's data converter)."""
    (payload,) = data_converter().payload_converter.to_payloads([value])
    return payload.data


# ----- record_outbox: which notices still have to go out ----------------------------------------
async def test_record_outbox_names_only_the_notices_a_channel_carries(
    sessions: sessionmaker[Session], mailbox: MailBox, robots: Robots
) -> None:
    """Instructors (mail, WeCom) and townships (DingTalk) have channels, secretaries the
    inbox alone: the receipt names the first two; recording sends nothing; a worker with
    the inbox alone names none (and writes nothing twice)."""
    to_secretary = escalation(Role.SECRETARY, 0, "提醒")
    batch = EventBatch(
        events=[event(1, EventKind.PHASE_OPENED)],
        snapshot=snapshot(1),
        notices=[TO_INSTRUCTOR, TO_TOWNSHIP, to_secretary],
    )
    router = router_from_config(sessions, channels_config(mailbox, robots), Settings())
    receipt = await RecordingActivities(sessions, router).record_outbox(batch)
    assert receipt == RecordReceipt(
        inserted=1, to_send=[TO_INSTRUCTOR.notice_id, TO_TOWNSHIP.notice_id]
    )
    assert mailbox.mails == [] and robots.received == []
    inbox_only = RecordingActivities(sessions, InboxNotifier(sessions))
    assert await inbox_only.record_outbox(batch) == RecordReceipt(inserted=0, to_send=[])
    with sessions() as session:
        filed = session.scalars(select(NoticeRow.notice_id).where(NoticeRow.round_id == ROUND))
        assert sorted(filed) == sorted(n.notice_id for n in batch.notices)


# ----- deliver_notices by id -------------------------------------------------------------------
async def test_id_only_delivery_sends_the_recorded_notices_once_on_real_channels(
    sessions: sessionmaker[Session], mailbox: MailBox, robots: Robots
) -> None:
    router = router_from_config(sessions, channels_config(mailbox, robots), Settings())
    activities = RecordingActivities(sessions, router)
    # The outbox: the notices go into the inbox with the batch, nothing is sent yet.
    await activities.record_events(
        EventBatch(events=[], snapshot=snapshot(1), notices=[TO_INSTRUCTOR, TO_TOWNSHIP])
    )
    assert mailbox.mails == [] and robots.received == []
    batch = NoticeBatch(notice_ids=[TO_INSTRUCTOR.notice_id, TO_TOWNSHIP.notice_id])
    assert b"org_name" not in wire(batch)  # ids only in history

    first = await activities.deliver_notices(batch)
    second = await activities.deliver_notices(batch)  # a retry, or a replayed schedule

    assert (first.delivered, first.already_delivered) == (2, 0)
    assert (second.delivered, second.already_delivered) == (0, 2)
    [mail] = mailbox.mails
    assert mail["Subject"] == TO_INSTRUCTOR.title
    assert TO_INSTRUCTOR.body in mail.get_content()
    assert mailbox.recipients == [["zhang@example.gov.cn"]]
    [wecom] = robots.on("/wecom/send")
    [dingtalk] = robots.on("/robot/send")
    assert TO_INSTRUCTOR.title in json.dumps(wecom, ensure_ascii=False)
    assert TO_TOWNSHIP.title in json.dumps(dingtalk, ensure_ascii=False)
    assert {
        d.channel: (d.status, d.attempts) for d in deliveries_of(sessions, TO_INSTRUCTOR.notice_id)
    } == {
        "email": (DeliveryStatus.SENT, 1),
        "wecom": (DeliveryStatus.SENT, 1),
    }
    with sessions() as session:
        rows = session.scalars(select(NoticeRow.notice_id).where(NoticeRow.round_id == ROUND)).all()
    assert sorted(rows) == sorted([TO_INSTRUCTOR.notice_id, TO_TOWNSHIP.notice_id])


async def test_ids_not_in_the_inbox_are_refused_before_anything_is_sent(
    sessions: sessionmaker[Session], mailbox: MailBox, robots: Robots
) -> None:
    router = router_from_config(sessions, channels_config(mailbox, robots), Settings())
    activities = RecordingActivities(sessions, router)
    await activities.record_events(
        EventBatch(events=[], snapshot=snapshot(1), notices=[TO_INSTRUCTOR])
    )
    with pytest.raises(ApplicationError) as refused:
        await activities.deliver_notices(
            NoticeBatch(notice_ids=[TO_INSTRUCTOR.notice_id, TO_TOWNSHIP.notice_id])
        )
    assert refused.value.type == NOTICES_NOT_RECORDED and refused.value.non_retryable
    assert refused.value.details == ([TO_TOWNSHIP.notice_id],)
    assert mailbox.mails == [] and robots.received == []
    # The workflow's fallback, the notices whole, files the missing one and sends both once.
    report = await activities.deliver_notices(NoticeBatch(notices=[TO_INSTRUCTOR, TO_TOWNSHIP]))
    assert (report.delivered, report.already_delivered) == (2, 0)
    assert len(mailbox.mails) == 1 and len(robots.received) == 2


async def test_id_only_delivery_to_the_inbox_alone_writes_nothing_more(
    sessions: sessionmaker[Session],
) -> None:
    activities = RecordingActivities(sessions, InboxNotifier(sessions))
    await activities.record_events(
        EventBatch(events=[], snapshot=snapshot(1), notices=[TO_INSTRUCTOR])
    )
    report = await activities.deliver_notices(NoticeBatch(notice_ids=[TO_INSTRUCTOR.notice_id]))
    assert (report.delivered, report.already_delivered) == (0, 1)
    with sessions() as session:
        [row] = session.scalars(select(NoticeRow).where(NoticeRow.round_id == ROUND)).all()
    assert Notice.model_validate({n: getattr(row, n) for n in Notice.model_fields}) == TO_INSTRUCTOR


# ----- record_events with a status change ------------------------------------------------------
async def test_status_change_writes_only_what_changed_and_never_moves_back(
    sessions: sessionmaker[Session],
) -> None:
    activities = RecordingActivities(sessions, InboxNotifier(sessions))
    first = snapshot(1)
    await activities.record_events(
        EventBatch(events=[event(1, EventKind.PHASE_OPENED)], snapshot=first)
    )
    later = snapshot(
        3, light=Light.YELLOW, progress=0.5, deadline=None, phase_status=PhaseStatus.OVERDUE
    )
    change = StatusChange.between(first, later)
    assert set(change.changes()) == {"light", "progress", "deadline", "phase_status"}
    events = [event(2, EventKind.SUBMITTED), event(3, EventKind.DEADLINE_PASSED)]
    assert await activities.record_events(EventBatch(events=events, status=change)) == 2

    row = status_row(sessions)
    assert row is not None
    assert (row.phase, row.phase_status, row.light, row.overdue) == (
        "mobilisation",
        "overdue",
        "yellow",
        False,
    )
    assert (row.deadline, row.top_rung, row.closed, row.progress) == (None, None, False, 0.5)
    assert (row.event_seq, row.updated_at) == (3, later.updated_at)
    assert (row.org_name, row.township, row.system, row.org_type) == (
        ORG.name,
        ORG.township,
        ORG.system,
        ORG.type.value,
    )

    # A late retry of an older change is guarded like a snapshot: nothing moves back.
    stale = StatusChange.between(first, snapshot(2, light=Light.RED))
    await activities.record_events(EventBatch(events=[event(2, EventKind.SUBMITTED)], status=stale))
    row = status_row(sessions)
    assert row is not None and (row.light, row.event_seq) == ("yellow", 3)
    # A change with no event (the light alone) keeps the sequence number and is written.
    blue = StatusChange.between(later, snapshot(3, light=Light.BLUE, progress=0.5, deadline=None))
    assert blue.changes() == {"light": Light.BLUE, "phase_status": PhaseStatus.OPEN}
    await activities.record_events(EventBatch(events=[], status=blue))
    row = status_row(sessions)
    assert row is not None and (row.light, row.phase_status, row.event_seq) == ("blue", "open", 3)


async def test_status_change_without_a_status_row_is_refused_and_writes_nothing(
    sessions: sessionmaker[Session],
) -> None:
    activities = RecordingActivities(sessions, InboxNotifier(sessions))
    await activities.record_events(EventBatch(events=[], snapshot=snapshot(1, org_id="org-002")))
    change = StatusChange.between(snapshot(1), snapshot(2, light=Light.YELLOW))
    orphan = EventBatch(
        events=[event(2, EventKind.SUBMITTED)], status=change, notices=[TO_TOWNSHIP]
    )
    other = EventBatch(
        events=[event(2, EventKind.SUBMITTED, org_id="org-002")],
        status=StatusChange.between(
            snapshot(1, org_id="org-002"), snapshot(2, org_id="org-002", light=Light.YELLOW)
        ),
    )
    # In one group with another organisation's change: that one is written, this one fails.
    outcomes = await asyncio.gather(
        activities.record_events(orphan), activities.record_events(other), return_exceptions=True
    )
    refused, written = outcomes
    assert isinstance(refused, ApplicationError)
    assert refused.type == STATUS_ROW_MISSING and refused.non_retryable
    assert written == 1
    assert status_row(sessions) is None
    other_row = status_row(sessions, "org-002")
    assert other_row is not None and other_row.light == "yellow"
    with sessions() as session:
        assert (
            session.scalars(
                select(CampaignEventRow.event_id).where(CampaignEventRow.org_id == ORG.id)
            ).all()
            == []
        )
        assert session.scalars(select(NoticeRow.notice_id)).all() == []
    # The workflow's fallback: the same batch with the whole snapshot.
    whole = EventBatch(
        events=orphan.events, snapshot=snapshot(2, light=Light.YELLOW), notices=orphan.notices
    )
    assert await activities.record_events(whole) == 1
    row = status_row(sessions)
    assert row is not None and (row.light, row.org_name) == ("yellow", ORG.name)


async def test_escalation_in_a_status_change_batch_names_the_stored_township(
    sessions: sessionmaker[Session],
) -> None:
    activities = RecordingActivities(sessions, InboxNotifier(sessions))
    await activities.record_events(EventBatch(events=[], snapshot=snapshot(1)))
    escalated = event(
        2, EventKind.ESCALATED, rung=1, name="乡镇党委督办", recipient=Role.TOWNSHIP.value
    )
    change = StatusChange.between(snapshot(1), snapshot(2, top_rung=1, light=Light.RED))
    await activities.record_events(
        EventBatch(events=[escalated], status=change, notices=[TO_TOWNSHIP])
    )
    with sessions() as session:
        [row] = session.scalars(select(EscalationRow).where(EscalationRow.round_id == ROUND)).all()
    assert (row.rung, row.recipient_role, row.recipient_key) == (1, "township", ORG.township)
    status = status_row(sessions)
    assert status is not None and (status.top_rung, status.light) == (1, "red")


# ----- the inputs in history -------------------------------------------------------------------
class _OldEventBatch(BaseModel):
    """``EventBatch`` as workers from before the status change read it."""

    model_config = ConfigDict(frozen=True)
    events: list[CampaignEvent]
    snapshot: CampaignSnapshot
    notices: list[Notice] = []


class _OldNoticeBatch(BaseModel):
    """``NoticeBatch`` as workers from before ``notice_ids`` read it."""

    model_config = ConfigDict(frozen=True)
    notices: list[Notice]


def test_old_inputs_still_read_and_new_ones_are_not_misread_by_old_workers() -> None:
    old_events = _OldEventBatch(events=[event(1, EventKind.PHASE_OPENED)], snapshot=snapshot(1))
    assert EventBatch.model_validate_json(old_events.model_dump_json()).snapshot == snapshot(1)
    old_notices = _OldNoticeBatch(notices=[TO_INSTRUCTOR])
    assert NoticeBatch.model_validate_json(old_notices.model_dump_json()).notices == [TO_INSTRUCTOR]
    # The new forms leave out what an old worker would take for "nothing to do".
    change = StatusChange.between(snapshot(1), snapshot(2))
    new_events = wire(EventBatch(events=[], status=change))
    assert json.loads(new_events) == {
        "events": [],
        "status": {
            "round_id": ROUND,
            "org_id": ORG.id,
            "event_seq": 2,
            "updated_at": json.loads(wire(snapshot(2)))["updated_at"],
        },
    }
    with pytest.raises(ValidationError):
        _OldEventBatch.model_validate_json(new_events)
    with pytest.raises(ValidationError):
        _OldNoticeBatch.model_validate_json(wire(NoticeBatch(notice_ids=["n-1"])))
    with pytest.raises(ValidationError):
        EventBatch(events=[], snapshot=snapshot(1), status=change)
    with pytest.raises(ValidationError):
        EventBatch(events=[])


# ----- the workflow's fallbacks ----------------------------------------------------------------
async def test_workflow_sends_the_whole_snapshot_and_notices_when_the_read_model_lost_them(
    engine: Engine, robots: Robots
) -> None:
    """The status row and the outbox's notice vanish between the workflow's activities (a
    read model restored from an older backup): the refused small inputs are sent whole.
    The secretary's notices go to a WeCom robot (a local HTTP server), so the rectification
    order is one that ``deliver_notices`` must send (with the inbox alone it is not handed
    to it at all: ``EXTERNAL_DELIVERY_PATCH``).

    On a time-skipping server of its own, apart from the session's shared one.
    """
    env = await start_time_skipping_env()
    try:
        await _lose_and_fall_back(env, session_factory(engine), robots)
    finally:
        await env.shutdown()


def _secretary_on_a_robot(robots: Robots, secretary: str) -> ChannelsConfig:
    return ChannelsConfig.model_validate(
        {
            "routes": {"secretary": ["wecom"]},
            "robots": {"支部书记群": {"kind": "wecom", "url": robots.url("/wecom/send?key=K2")}},
            "recipients": [
                {"role": "secretary", "key": secretary, "addresses": {"wecom": "支部书记群"}}
            ],
        }
    )


async def _lose_and_fall_back(
    env: WorkflowEnvironment, sessions: sessionmaker[Session], robots: Robots
) -> None:
    org = organisation("org-fallback-01")
    config = _secretary_on_a_robot(robots, org.secretary)
    recording = RecordingActivities(sessions, router_from_config(sessions, config, Settings()))
    seen: list[EventBatch | NoticeBatch] = []
    # Batches whose ``deliver_notices`` has finished (returned or refused): a batch is seen
    # before its notices reach the robot, and a loaded machine may be between the two.
    finished: list[NoticeBatch] = []
    lose_before_next = asyncio.Event()

    def lose(table: Table) -> None:
        with sessions.begin() as session:
            session.execute(delete(table))

    @activity.defn(name=RECORD_OUTBOX.name)
    async def record_outbox(batch: EventBatch) -> RecordReceipt:
        seen.append(batch)
        if batch.status is not None and lose_before_next.is_set():
            lose(campaign_status)
        return await recording.record_outbox(batch)

    @activity.defn(name=DELIVER_NOTICES.name)
    async def deliver_notices(batch: NoticeBatch) -> DeliveryReport:
        seen.append(batch)
        if batch.notice_ids:
            lose(notices)
        try:
            return await recording.deliver_notices(batch)
        finally:
            finished.append(batch)

    round_id = f"r-fallback-{uuid.uuid4().hex[:8]}"
    plan = org_plan(org, await env.get_current_time(), round_id=round_id)
    task_queue = f"fallback-{uuid.uuid4()}"
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[OrganisationCampaignWorkflow],
        activities=[record_outbox, deliver_notices],
        workflow_runner=workflow_runner(),
    ):
        handle = await env.client.start_workflow(
            OrganisationCampaignWorkflow.run,
            OrganisationCampaignInput(plan=plan),
            id=organisation_workflow_id(round_id, org.id),
            task_queue=task_queue,
        )
        try:
            await status(handle)
            lose_before_next.set()
            order = OrderRectification(
                actor=Actor(user="county", name="县委活动办", role=Role.COUNTY_OFFICE),
                source="evaluation",
                reference="ev-fallback",
                reason="群众评议满意率低于计划规定的比例。",
            )
            landed = await handle.execute_update(
                OrganisationCampaignWorkflow.order_rectification, order
            )
            row: CampaignStatusRow | None = None
            inbox: list[str] = []
            for _ in range(600):  # real time: a loaded machine may take seconds
                with sessions() as session:
                    row = session.get(CampaignStatusRow, (round_id, org.id))
                    inbox = list(
                        session.scalars(
                            select(NoticeRow.notice_id).where(NoticeRow.round_id == round_id)
                        )
                    )
                if inbox and len(finished) == 2:
                    break
                await asyncio.sleep(0.05)
        finally:
            await handle.terminate("test over")
    kinds = [
        "snapshot"
        if isinstance(b, EventBatch) and b.snapshot is not None
        else "status"
        if isinstance(b, EventBatch)
        else "ids"
        if b.notice_ids
        else "notices"
        for b in seen
    ]
    # First batch whole; the change refused (no row), sent whole; ids refused, sent whole.
    assert kinds == ["snapshot", "status", "snapshot", "ids", "notices"]
    assert row is not None and row.event_seq == landed.version
    assert (row.org_name, row.township) == (org.name, org.township)
    [notice] = [b for b in seen if isinstance(b, NoticeBatch)][-1].notices
    assert inbox == [notice.notice_id]
    assert len(robots.on("/wecom/send")) == 1  # sent once, by the whole batch
