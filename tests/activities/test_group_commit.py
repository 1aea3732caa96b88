"""The read model under a storm: record_events calls written together (group commit), each
exactly once, a poisoned batch failing alone; the outbox's notices not written again by
delivery; SQLite in WAL with a busy timeout; the PostgreSQL pool from settings."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.exceptions import ApplicationError

from activities.channels import ChannelRouter, ChannelsConfig, DeliveryStatus, deliveries_of
from activities.channels.message import Outgoing
from activities.contracts import CampaignSnapshot, EventBatch, NoticeBatch
from activities.db import make_engine
from activities.group_commit import GroupCommit
from activities.notifier import InboxNotifier
from activities.recording import RecordingActivities
from activities.tables import (
    CampaignEventRow,
    CampaignStatusRow,
    EscalationRow,
    NoticeRow,
    PhaseStatusRow,
    organisations,
)
from chuangzheng.settings import Settings
from domain.calendar import SHANGHAI
from domain.lights import Light
from domain.machine import PhaseStatus
from domain.notices import Notice, NoticeKind, build_notice
from domain.organisation import Organisation, OrgType, Role, System, supervisors_of
from domain.phases import Phase
from domain.state import CampaignEvent, PhaseState, StepState

ROUND = "2024-storm"
DEADLINE = datetime(2024, 3, 8, 17, 30, tzinfo=SHANGHAI)
NOW = DEADLINE + timedelta(seconds=1)
ORGANISATIONS = 60


def organisation(n: int) -> Organisation:
    return Organisation(
        id=f"org-{n:04d}",
        name=f"第{n}党支部",
        type=OrgType.RURAL,
        township="城关镇",
        system=System.RURAL,
        instructor=f"指导员{n}",
        secretary=f"书记{n}",
        member_count=20,
    )


def late_phase() -> PhaseState:
    return PhaseState(
        phase=Phase.MOBILISATION,
        status=PhaseStatus.OVERDUE,
        opens_at=DEADLINE - timedelta(days=14),
        deadline=DEADLINE,
        planned_deadline=DEADLINE,
        steps=[StepState(step_id="meeting", name="召开动员大会", required=True)],
    )


def storm_batch(n: int, *, updated_at: datetime = NOW) -> EventBatch:
    """What organisation ``n`` records when it misses the deadline: the deadline passing,
    rung 0 of the ladder, its status and the two notices (instructor, secretary)."""
    org = organisation(n)
    events = [
        CampaignEvent(
            event_id=f"{ROUND}/{org.id}/2",
            round_id=ROUND,
            org_id=org.id,
            kind="deadline_passed",
            at=NOW,
            phase=Phase.MOBILISATION,
        ),
        CampaignEvent(
            event_id=f"{ROUND}/{org.id}/3",
            round_id=ROUND,
            org_id=org.id,
            kind="escalated",
            at=NOW,
            phase=Phase.MOBILISATION,
            detail={"rung": 0, "recipient": "instructor", "name": "指导员督办"},
        ),
    ]
    who = supervisors_of(org)
    notices = [
        build_notice(
            kind=NoticeKind.ESCALATION,
            round_id=ROUND,
            org=org,
            phase=late_phase(),
            who=who[role],
            now=NOW,
            rung=0,
            rung_name="指导员督办",
            working_days_overdue=0,
        )
        for role in (Role.INSTRUCTOR, Role.SECRETARY)
    ]
    snapshot = CampaignSnapshot(
        round_id=ROUND,
        org_id=org.id,
        org_name=org.name,
        township=org.township,
        system=org.system,
        org_type=org.type,
        phase=Phase.MOBILISATION,
        phase_status=PhaseStatus.OVERDUE,
        light=Light.RED,
        overdue=True,
        deadline=DEADLINE,
        top_rung=0,
        closed=False,
        event_seq=3,
        updated_at=updated_at,
    )
    return EventBatch(events=events, snapshot=snapshot, notices=notices)


def count(sessions: sessionmaker[Session], model: type[object]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def commits(engine: Engine) -> list[int]:
    """A list that grows by one on every commit of ``engine``."""
    seen: list[int] = []
    event.listen(engine, "commit", lambda _conn: seen.append(1))
    return seen


def statements(engine: Engine) -> list[str]:
    """Every SQL statement ``engine`` sends from now on."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        seen.append(sql)

    event.listen(engine, "before_cursor_execute", record)
    return seen


@pytest.fixture
def recording(sessions: sessionmaker[Session]) -> RecordingActivities:
    """The activities with the inbox alone, the roster of the storm's organisations stored."""
    with sessions.begin() as session:
        session.execute(
            organisations.insert(),
            [
                {
                    "org_id": org.id,
                    "name": org.name,
                    "org_type": org.type.value,
                    "township": org.township,
                    "system": org.system,
                    "member_count": org.member_count,
                    "secretary": org.secretary,
                    "instructor": org.instructor,
                    "active": True,
                    "row_number": n,
                    "updated_at": NOW,
                }
                for n in range(ORGANISATIONS)
                for org in [organisation(n)]
            ],
        )
    return RecordingActivities(sessions, InboxNotifier(sessions))


# ----- group commit ----------------------------------------------------------------------------
async def test_concurrent_batches_are_written_together_each_exactly_once(
    recording: RecordingActivities, sessions: sessionmaker[Session], engine: Engine
) -> None:
    batches = [storm_batch(n) for n in range(ORGANISATIONS)]
    committed = commits(engine)

    # Every batch twice at once (a retry racing its first attempt): each event is credited once.
    results = await asyncio.gather(*(recording.record_events(b) for b in batches + batches))

    assert sum(results) == 2 * ORGANISATIONS
    assert sorted(results[:ORGANISATIONS] + results[ORGANISATIONS:]).count(2) == ORGANISATIONS
    # Far fewer transactions than calls: the calls were written in groups.
    assert 1 <= len(committed) <= ORGANISATIONS // 5
    assert count(sessions, CampaignEventRow) == 2 * ORGANISATIONS
    assert count(sessions, CampaignStatusRow) == ORGANISATIONS
    assert count(sessions, NoticeRow) == 2 * ORGANISATIONS
    assert count(sessions, EscalationRow) == ORGANISATIONS
    with sessions() as session:
        statuses = session.scalars(select(CampaignStatusRow)).all()
        phases = session.scalars(select(PhaseStatusRow)).all()
        escalation = session.get(EscalationRow, (ROUND, "org-0007", "mobilisation", 0))
    assert {(s.light, s.event_seq, s.top_rung) for s in statuses} == {("red", 3, 0)}
    assert {(p.status, p.event_seq) for p in phases} == {("overdue", 2)}
    # The escalation names the organisation's own instructor, read from the roster.
    assert escalation is not None and escalation.recipient_key == "指导员7"

    # Recorded again later (a retry after a lost reply): nothing new, nothing written twice.
    assert await asyncio.gather(*(recording.record_events(b) for b in batches)) == [0] * len(
        batches
    )
    assert count(sessions, CampaignEventRow) == 2 * ORGANISATIONS


async def test_newest_snapshot_wins_within_a_group_and_against_the_stored_row(
    recording: RecordingActivities, sessions: sessionmaker[Session]
) -> None:
    newer = storm_batch(1)
    older = newer.model_copy(
        update={
            "snapshot": newer.snapshot.model_copy(update={"event_seq": 1, "light": Light.GREEN})
        }
    )
    # Both in one group, the older one last: the status must not move backwards.
    await asyncio.gather(recording.record_events(newer), recording.record_events(older))
    with sessions() as session:
        row = session.get(CampaignStatusRow, (ROUND, "org-0001"))
    assert row is not None and (row.event_seq, row.light) == (3, "red")

    await recording.record_events(older)  # late, alone
    with sessions() as session:
        row = session.get(CampaignStatusRow, (ROUND, "org-0001"))
    assert row is not None and (row.event_seq, row.light) == (3, "red")


async def test_a_poisoned_batch_fails_alone(
    recording: RecordingActivities, sessions: sessionmaker[Session]
) -> None:
    poisoned = 5
    naive = datetime(2024, 3, 8, 17, 30)
    batches = [
        storm_batch(n, updated_at=naive) if n == poisoned else storm_batch(n)
        for n in range(ORGANISATIONS)
    ]

    results = await asyncio.gather(
        *(recording.record_events(b) for b in batches), return_exceptions=True
    )

    failure = results[poisoned]
    assert isinstance(failure, ApplicationError) and failure.type == "NaiveDatetime"
    assert failure.non_retryable
    others = results[:poisoned] + results[poisoned + 1 :]
    assert others == [2] * (ORGANISATIONS - 1)
    assert count(sessions, CampaignStatusRow) == ORGANISATIONS - 1
    assert count(sessions, CampaignEventRow) == 2 * (ORGANISATIONS - 1)
    # Nothing of the poisoned batch was written, its notices neither (one transaction).
    assert count(sessions, NoticeRow) == 2 * (ORGANISATIONS - 1)


async def test_group_commit_settles_each_caller_with_its_own_outcome() -> None:
    groups: list[list[int]] = []

    def write(items: Sequence[int]) -> list[int]:
        groups.append(list(items))
        if 13 in items:
            raise ValueError("13 is poisoned")
        return [item * 2 for item in items]

    writer: GroupCommit[int, int] = GroupCommit(write, max_items=20, max_wait=0.01)
    results = await asyncio.gather(*(writer.submit(i) for i in range(50)), return_exceptions=True)

    assert [r for i, r in enumerate(results) if i != 13] == [i * 2 for i in range(50) if i != 13]
    assert isinstance(results[13], ValueError)
    # Groups of at most 20; the one with 13 was retried item by item.
    assert max(len(g) for g in groups) == 20
    assert [13] in groups
    assert sum(1 for g in groups if len(g) > 1) <= 4


async def test_group_commit_writes_at_once_and_groups_what_arrives_during_a_write() -> None:
    """No fixed wait: a lone item goes to a free writer as it is, and the items that arrive
    while that write runs form the next group (the quiet submission waits for nothing; the
    storm's groups grow with the writes' own time)."""
    groups: list[list[int]] = []
    first_write_started = threading.Event()
    release_first_write = threading.Event()

    def write(items: Sequence[int]) -> list[int]:
        groups.append(list(items))
        if len(groups) == 1:
            first_write_started.set()
            release_first_write.wait(timeout=30)
        return list(items)

    writer: GroupCommit[int, int] = GroupCommit(write)
    lone = asyncio.create_task(writer.submit(0))
    assert await asyncio.to_thread(first_write_started.wait, 30)
    later = [asyncio.create_task(writer.submit(i)) for i in range(1, 11)]
    await asyncio.sleep(0.05)  # the ten are queued behind the one write in flight
    release_first_write.set()

    assert await lone == 0
    assert await asyncio.gather(*later) == list(range(1, 11))
    assert groups == [[0], list(range(1, 11))]


async def test_group_commit_forgets_a_cancelled_caller() -> None:
    written: list[int] = []

    def write(items: Sequence[int]) -> list[int]:
        written.extend(items)
        return list(items)

    writer: GroupCommit[int, int] = GroupCommit(write, max_wait=0.05)
    cancelled = asyncio.create_task(writer.submit(1))
    kept = asyncio.create_task(writer.submit(2))
    await asyncio.sleep(0)
    cancelled.cancel()
    assert await kept == 2
    assert cancelled.cancelled() and written == [2]


# ----- delivery serves only external channels ----------------------------------------------------
async def test_deliver_notices_does_not_write_the_notices_the_outbox_recorded(
    recording: RecordingActivities, sessions: sessionmaker[Session], engine: Engine
) -> None:
    batch = storm_batch(1)
    await recording.record_events(batch)
    sent = statements(engine)

    report = await recording.deliver_notices(NoticeBatch(notices=batch.notices))

    assert (report.delivered, report.already_delivered) == (0, len(batch.notices))
    writes = [s for s in sent if not s.lstrip().upper().startswith("SELECT")]
    assert writes == []  # one look-up, no INSERT, no transaction of its own
    assert count(sessions, NoticeRow) == len(batch.notices)


async def test_deliver_notices_still_files_notices_that_came_another_way(
    recording: RecordingActivities, sessions: sessionmaker[Session]
) -> None:
    recorded = storm_batch(1).notices
    reminder: Notice = storm_batch(2).notices[0]
    await recording.record_events(storm_batch(1))

    report = await recording.deliver_notices(NoticeBatch(notices=[*recorded, reminder]))

    assert (report.delivered, report.already_delivered) == (1, len(recorded))
    assert count(sessions, NoticeRow) == len(recorded) + 1


class SlowMail:
    """A mail channel whose send takes a while: long enough to be cancelled in the middle."""

    name = "email"
    takes_idempotency_key = True

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.sent: list[str] = []

    async def send(self, message: Outgoing, address: str) -> None:
        self.started.set()
        await asyncio.sleep(0.2)
        self.sent.append(message.message_id)


async def test_a_send_cut_off_by_a_cancelled_activity_still_completes_and_is_recorded(
    sessions: sessionmaker[Session],
) -> None:
    config = ChannelsConfig.model_validate(
        {
            "routes": {"instructor": ["email"]},
            "smtp": {"host": "127.0.0.1", "port": 25, "from_address": "cxzy@example.gov.cn"},
            "role_addresses": {"instructor": {"email": "office@example.gov.cn"}},
        }
    )
    mail = SlowMail()
    router = ChannelRouter(sessions, config, [mail])
    recording = RecordingActivities(sessions, router)
    notices = storm_batch(1).notices[:1]

    # The activity times out while the mail is on its way (the receiver will have it).
    attempt = asyncio.create_task(recording.deliver_notices(NoticeBatch(notices=notices)))
    await mail.started.wait()
    attempt.cancel()
    with pytest.raises(asyncio.CancelledError):
        await attempt
    await asyncio.sleep(0.5)

    # The send ran to the end and was recorded: the retry does not send it again.
    [delivery] = deliveries_of(sessions, notices[0].notice_id)
    assert delivery.status is DeliveryStatus.SENT
    report = await recording.deliver_notices(NoticeBatch(notices=notices))
    assert (report.delivered, report.already_delivered) == (0, 1)
    assert mail.sent == [notices[0].notice_id]


# ----- engines -----------------------------------------------------------------------------------
def test_sqlite_runs_in_wal_with_busy_timeout_and_normal_sync(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'read.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgres_pool_is_sized_from_settings(postgres_url: str) -> None:
    settings = Settings(worker_max_concurrent_activities=100, database_url=postgres_url)
    assert (settings.database_pool_size, settings.database_max_overflow) == (20, 20)
    assert Settings(database_pool_size=3, database_max_overflow=0).database_max_overflow == 0
    engine = make_engine(
        postgres_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
    )
    try:
        pool: Any = engine.pool
        assert (pool.size(), pool._max_overflow, pool._pre_ping) == (20, 20, True)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT 1").scalar() == 1
    finally:
        engine.dispose()
