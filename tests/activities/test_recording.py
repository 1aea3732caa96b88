"""The read-model activities against SQLite and PostgreSQL: idempotent, ordered, UTC-aware."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog
from sqlalchemy import func, select
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session, sessionmaker
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

import activities.recording as recording_module
from activities.contracts import CampaignSnapshot, EventBatch, NoticeBatch, RoundRecord
from activities.db import make_engine
from activities.notifier import InboxNotifier, Notifier
from activities.recording import RecordingActivities
from activities.tables import (
    CampaignEventRow,
    CampaignStatusRow,
    NaiveDatetimeError,
    NoticeRow,
    RoundRow,
)
from domain.calendar import SHANGHAI
from domain.lights import Light
from domain.machine import PhaseStatus
from domain.notices import Notice, NoticeKind, build_notice
from domain.organisation import Organisation, OrgType, Role, System, supervisors_of
from domain.phases import Phase
from domain.state import Actor, CampaignEvent, PhaseState, StepState

ROUND = "2024-r1"
NOW = datetime(2024, 3, 4, 9, 30, tzinfo=SHANGHAI)

ORG = Organisation(
    id="org-001",
    name="城关镇东关村党支部",
    type=OrgType.RURAL,
    township="城关镇",
    system=System.RURAL,
    instructor="张指导",
    secretary="李书记",
    member_count=42,
)

SECRETARY = Actor(user="li", name="李书记", role=Role.SECRETARY)


# ----- databases -----------------------------------------------------------------------------


@pytest.fixture
def recording(sessions: sessionmaker[Session]) -> RecordingActivities:
    """The activities, delivering to the in-app inbox."""
    return RecordingActivities(sessions, InboxNotifier(sessions))


# ----- inputs built from the domain ----------------------------------------------------------
def phase_state(deadline: datetime = NOW + timedelta(days=3)) -> PhaseState:
    """The mobilisation phase, open, with one required step still missing."""
    return PhaseState(
        phase=Phase.MOBILISATION,
        status=PhaseStatus.OPEN,
        opens_at=NOW - timedelta(days=10),
        deadline=deadline,
        planned_deadline=deadline,
        steps=[StepState(step_id="meeting", name="召开动员大会", required=True)],
        opened_at=NOW - timedelta(days=10),
    )


def event(seq: int, at: datetime = NOW) -> CampaignEvent:
    """An event with the id scheme the campaign rules use."""
    return CampaignEvent(
        event_id=f"{ROUND}/{ORG.id}/{seq}",
        round_id=ROUND,
        org_id=ORG.id,
        kind="submitted",
        at=at,
        phase=Phase.MOBILISATION,
        step_id="meeting",
        actor=SECRETARY,
        detail={"seq": seq, "submitted_at": at},
    )


def snapshot(
    seq: int,
    *,
    light: Light = Light.GREEN,
    updated_at: datetime = NOW,
    deadline: datetime | None = NOW + timedelta(days=3),
) -> CampaignSnapshot:
    """The organisation's status after event ``seq``."""
    return CampaignSnapshot(
        round_id=ROUND,
        org_id=ORG.id,
        org_name=ORG.name,
        township=ORG.township,
        system=ORG.system,
        org_type=ORG.type,
        phase=Phase.MOBILISATION,
        phase_status=PhaseStatus.OVERDUE if light is Light.RED else PhaseStatus.OPEN,
        light=light,
        overdue=light is Light.RED,
        deadline=deadline,
        top_rung=0 if light is Light.RED else None,
        closed=False,
        event_seq=seq,
        updated_at=updated_at,
    )


def escalations() -> list[Notice]:
    """Rung 0 of the ladder: the instructor and the township are told."""
    overdue = phase_state(deadline=NOW - timedelta(days=2))
    who = supervisors_of(ORG)
    return [
        build_notice(
            kind=NoticeKind.ESCALATION,
            round_id=ROUND,
            org=ORG,
            phase=overdue,
            who=who[role],
            now=NOW,
            rung=0,
            rung_name="指导员督办",
            working_days_overdue=2,
        )
        for role in (Role.INSTRUCTOR, Role.TOWNSHIP)
    ]


def count(sessions: sessionmaker[Session], model: type[object]) -> int:
    """Rows in a model's table."""
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def status_row(sessions: sessionmaker[Session]) -> CampaignStatusRow:
    """The organisation's status row."""
    with sessions() as session:
        row = session.get(CampaignStatusRow, (ROUND, ORG.id))
        assert row is not None
        return row


# ----- tests -----------------------------------------------------------------------------------
async def test_same_event_batch_recorded_twice_stores_each_event_once(
    recording: RecordingActivities, sessions: sessionmaker[Session]
) -> None:
    batch = EventBatch(events=[event(1), event(2)], snapshot=snapshot(2))
    env = ActivityEnvironment()

    assert await env.run(recording.record_events, batch) == 2
    assert await env.run(recording.record_events, batch) == 0

    assert count(sessions, CampaignEventRow) == 2
    assert count(sessions, CampaignStatusRow) == 1
    with sessions() as session:
        row = session.get(CampaignEventRow, f"{ROUND}/{ORG.id}/2")
        assert row is not None
        assert (row.phase, row.actor_user, row.actor_role) == ("mobilisation", "li", "secretary")
        # Details are stored as JSON: the datetime became an ISO string.
        assert row.detail["seq"] == 2
        assert datetime.fromisoformat(row.detail["submitted_at"]) == NOW


async def test_duplicate_event_within_one_batch_is_stored_once(
    recording: RecordingActivities, sessions: sessionmaker[Session]
) -> None:
    batch = EventBatch(events=[event(1), event(1)], snapshot=snapshot(1))
    assert await ActivityEnvironment().run(recording.record_events, batch) == 1
    assert count(sessions, CampaignEventRow) == 1


async def test_older_snapshot_does_not_overwrite_newer(
    recording: RecordingActivities, sessions: sessionmaker[Session]
) -> None:
    env = ActivityEnvironment()
    newer = EventBatch(events=[event(5)], snapshot=snapshot(5, light=Light.RED))
    older = EventBatch(events=[event(3)], snapshot=snapshot(3, light=Light.GREEN))

    await env.run(recording.record_events, newer)
    # The late batch's events are still news; only its status is stale.
    assert await env.run(recording.record_events, older) == 1

    row = status_row(sessions)
    assert (row.event_seq, row.light, row.overdue, row.top_rung) == (5, "red", True, 0)
    assert count(sessions, CampaignEventRow) == 2

    newest = EventBatch(events=[event(6)], snapshot=snapshot(6, light=Light.BLUE))
    await env.run(recording.record_events, newest)
    row = status_row(sessions)
    assert (row.event_seq, row.light, row.overdue, row.top_rung) == (6, "blue", False, None)


async def test_empty_event_batch_still_updates_status(
    recording: RecordingActivities, sessions: sessionmaker[Session]
) -> None:
    batch = EventBatch(events=[], snapshot=snapshot(0))
    assert await ActivityEnvironment().run(recording.record_events, batch) == 0
    assert status_row(sessions).event_seq == 0


async def test_same_notices_delivered_twice_store_one_row_each(
    recording: RecordingActivities, sessions: sessionmaker[Session]
) -> None:
    batch = NoticeBatch(notices=escalations())
    env = ActivityEnvironment()

    first = await env.run(recording.deliver_notices, batch)
    second = await env.run(recording.deliver_notices, batch)

    assert (first.delivered, first.already_delivered) == (2, 0)
    assert (second.delivered, second.already_delivered) == (0, 2)
    assert count(sessions, NoticeRow) == 2
    with sessions() as session:
        rows = session.scalars(select(NoticeRow).order_by(NoticeRow.recipient_role)).all()
    assert [(r.recipient_role, r.recipient_key) for r in rows] == [
        ("instructor", ORG.instructor),
        ("township", ORG.township),
    ]
    assert all(r.kind == "escalation" and r.rung == 0 and r.read_at is None for r in rows)
    assert all(r.delivered_at.tzinfo is UTC for r in rows)
    assert rows[0].body == batch.notices[0].body  # Chinese text survives the round trip


async def test_inbox_notifier_is_a_notifier_and_idempotent(
    sessions: sessionmaker[Session],
) -> None:
    inbox = InboxNotifier(sessions)
    assert isinstance(inbox, Notifier)
    notice = escalations()[0]
    assert await inbox.deliver(notice) is True
    assert await inbox.deliver(notice) is False


async def test_datetimes_read_back_aware_in_utc(
    recording: RecordingActivities, sessions: sessionmaker[Session]
) -> None:
    deadline = datetime(2024, 3, 8, 0, 0, tzinfo=SHANGHAI)  # midnight Beijing = 16:00 UTC
    batch = EventBatch(events=[event(1)], snapshot=snapshot(1, deadline=deadline))
    await ActivityEnvironment().run(recording.record_events, batch)
    await ActivityEnvironment().run(recording.deliver_notices, NoticeBatch(notices=escalations()))

    row = status_row(sessions)
    assert row.deadline is not None
    assert row.deadline.tzinfo is UTC and row.updated_at.tzinfo is UTC
    assert row.deadline == deadline
    assert row.deadline.hour == 16 and row.deadline.day == 7
    with sessions() as session:
        ev = session.get(CampaignEventRow, f"{ROUND}/{ORG.id}/1")
        notice = session.scalars(select(NoticeRow)).first()
    assert ev is not None and notice is not None
    assert ev.at.tzinfo is UTC and ev.at == NOW
    assert ev.recorded_at.tzinfo is UTC
    assert notice.created_at.tzinfo is UTC and notice.created_at == NOW


async def test_naive_datetime_refused_without_writing(
    recording: RecordingActivities, sessions: sessionmaker[Session]
) -> None:
    naive = datetime(2024, 3, 4, 9, 30)
    batch = EventBatch(events=[event(1)], snapshot=snapshot(1, updated_at=naive))

    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(recording.record_events, batch)

    assert raised.value.non_retryable
    assert raised.value.type == "NaiveDatetime"
    # One transaction: the event inserted before the status failed was rolled back.
    assert count(sessions, CampaignEventRow) == 0
    assert count(sessions, CampaignStatusRow) == 0


async def test_naive_datetime_refused_directly_by_the_column_type(
    sessions: sessionmaker[Session],
) -> None:
    notice = escalations()[0].model_copy(update={"created_at": datetime(2024, 3, 4, 9, 30)})
    # SQLAlchemy wraps errors raised while binding parameters; the cause is ours.
    with pytest.raises(StatementError, match="naive datetime") as raised:
        await InboxNotifier(sessions).deliver(notice)
    assert isinstance(raised.value.orig, NaiveDatetimeError)
    assert count(sessions, NoticeRow) == 0


async def test_record_round_upserts_and_ignores_stale_records(
    recording: RecordingActivities, sessions: sessionmaker[Session]
) -> None:
    env = ActivityEnvironment()
    kickoff = RoundRecord(
        round_id=ROUND,
        name="2024年第一轮创先争优",
        campaign_id="cxzy",
        round_plan_id="standard",
        starts_at=NOW,
        status="running",
        kicked_off_by=Actor(user="office", name="县委办", role=Role.COUNTY_OFFICE),
        updated_at=NOW,
    )
    finished = kickoff.model_copy(update={"status": "completed", "updated_at": NOW + timedelta(1)})

    await env.run(recording.record_round, kickoff)
    await env.run(recording.record_round, kickoff)  # a retry
    await env.run(recording.record_round, finished)
    await env.run(recording.record_round, kickoff)  # a stale, late write

    assert count(sessions, RoundRow) == 1
    with sessions() as session:
        row = session.get(RoundRow, ROUND)
    assert row is not None
    assert (row.status, row.kicked_off_by, row.name) == ("completed", "office", kickoff.name)
    assert row.starts_at == NOW and row.starts_at.tzinfo is UTC


async def test_log_line_carries_round_org_and_activity_ids(
    recording: RecordingActivities, monkeypatch: pytest.MonkeyPatch
) -> None:
    # structlog's defaults and a logger of its own: another test may have configured logging
    # for the process (the CLI and the bootstrap do, at WARNING, with loggers cached on
    # first use), which ``capture_logs`` alone cannot undo. Failed when run after them.
    saved = structlog.get_config()
    structlog.reset_defaults()
    monkeypatch.setattr(recording_module, "log", structlog.get_logger(recording_module.__name__))
    try:
        await _assert_log_line(recording)
    finally:
        structlog.configure(**saved)


async def _assert_log_line(recording: RecordingActivities) -> None:
    batch = EventBatch(events=[event(1)], snapshot=snapshot(1))
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        await ActivityEnvironment().run(recording.record_events, batch)
    # Only this batch's line: the process may be running a worker of its own at the same
    # time (the API stack's, a session fixture of the same test worker), which records
    # other rounds through the same logger. A line without these ids is not found at all.
    (line,) = [
        entry
        for entry in logs
        if entry["event"] == "events recorded"
        and (entry.get("round_id"), entry.get("org_id")) == (ROUND, ORG.id)
    ]
    assert line["inserted"] == 1
    assert line["activity_id"] and "workflow_id" in line


def test_make_engine_creates_parent_dir_and_enables_wal(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "read.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
        assert path.exists()
    finally:
        engine.dispose()


async def test_notices_are_recorded_in_the_same_transaction_as_their_escalation(
    recording: RecordingActivities, sessions: sessionmaker[Session]
) -> None:
    notices = escalations()
    batch = EventBatch(events=[event(1)], snapshot=snapshot(1), notices=notices)
    await ActivityEnvironment().run(recording.record_events, batch)
    await ActivityEnvironment().run(recording.record_events, batch)  # a retry: no second copy
    assert count(sessions, CampaignEventRow) == 1
    assert count(sessions, NoticeRow) == len(notices)
    # Delivery afterwards finds them already in the inbox.
    report = await ActivityEnvironment().run(
        recording.deliver_notices, NoticeBatch(notices=notices)
    )
    assert (report.delivered, report.already_delivered) == (0, len(notices))

    # If the escalation cannot be recorded, neither is any of its notices (one transaction).
    naive = datetime(2024, 3, 4, 9, 30)
    failing = EventBatch(
        events=[event(2)],
        snapshot=snapshot(2, updated_at=naive),
        notices=[n.model_copy(update={"notice_id": n.notice_id + "/later"}) for n in notices],
    )
    with pytest.raises(ApplicationError):
        await ActivityEnvironment().run(recording.record_events, failing)
    assert count(sessions, CampaignEventRow) == 1
    assert count(sessions, NoticeRow) == len(notices)
