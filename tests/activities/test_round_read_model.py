"""The bounded round's activities over a real read model (SQLite, and PostgreSQL when it
answers): the plan stored once, the status row following the workflow, the aggregate, the
cohort check that signals only changed verdicts, and a fan-out that resumes at its
checkpoint and reaches every started organisation."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import ActivityEnvironment

from activities.round_contracts import (
    AggregateRequest,
    CohortCheck,
    RoundFanOut,
    RoundScope,
    RoundSignal,
    RoundSignalKind,
    RoundStatus,
    RoundStatusRecord,
)
from activities.round_fanout import RoundFanOutActivities
from activities.round_progress import RoundProgressActivities, round_progress, store_plan
from activities.tables import (
    CampaignStatusRow,
    PhaseStatusRow,
    RoundPlanRow,
    RoundRow,
    RoundVerdictRow,
)
from domain.lights import Light
from domain.phases import Phase
from domain.state import Outcome
from tests.workflows.support import seed_plan, write_roster
from workflows.ids import organisation_workflow_id

NOW = datetime(2026, 11, 30, 8, tzinfo=UTC)


class FakeHandle:
    def __init__(self, client: FakeClient, workflow_id: str) -> None:
        self._client, self._id = client, workflow_id

    async def signal(self, name: str, payload: Any) -> None:
        if self._id in self._client.gone:
            raise RPCError("workflow not found", RPCStatusCode.NOT_FOUND, b"")
        self._client.signals.append((self._id, name, payload))


class FakeClient:
    """Records signals; workflows in ``gone`` have finished (NOT_FOUND)."""

    def __init__(self) -> None:
        self.signals: list[tuple[str, str, Any]] = []
        self.gone: set[str] = set()

    def get_workflow_handle(self, workflow_id: str) -> FakeHandle:
        return FakeHandle(self, workflow_id)


def status_row(
    org_id: str,
    *,
    round_id: str = "r-agg",
    phase: Phase = Phase.MOBILISATION,
    light: Light = Light.GREEN,
    overdue: bool = False,
    closed: bool = False,
    progress: float = 0.0,
    township: str = "青石镇",
) -> CampaignStatusRow:
    return CampaignStatusRow(
        round_id=round_id,
        org_id=org_id,
        org_name=org_id,
        township=township,
        system="rural",
        org_type="rural",
        phase=phase.value,
        phase_status=None,
        light=light.value,
        overdue=overdue,
        deadline=None,
        top_rung=None,
        closed=closed,
        event_seq=1,
        updated_at=NOW,
        progress=progress,
    )


def test_plan_is_stored_once_by_content(sessions: sessionmaker[Session]) -> None:
    plan = seed_plan()
    first, second = store_plan(sessions, plan), store_plan(sessions, plan)
    assert first == second and first.startswith("sha256-") and len(first) <= 64
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(RoundPlanRow)) == 1
    assert RoundProgressActivities(sessions).plans.get(first) == plan


async def test_round_status_follows_the_workflow_and_never_leaves_a_final_status(
    sessions: sessionmaker[Session],
) -> None:
    activities = RoundProgressActivities(sessions)
    env = ActivityEnvironment()

    def record(status: RoundStatus, minutes: int, **fields: Any) -> RoundStatusRecord:
        return RoundStatusRecord(
            round_id="r-status",
            status=status,
            at=NOW + timedelta(minutes=minutes),
            round_plan_id="round-1",
            kicked_off_by="county",
            **fields,
        )

    def row() -> RoundRow:
        with sessions() as session:
            found = session.get(RoundRow, "r-status")
            assert found is not None
            return found

    # A round started outside the API gets a row; the cursor lands on it.
    await env.run(activities.record_round_status, record(RoundStatus.RUNNING, 0, started=0))
    assert row().status == "running"
    await env.run(
        activities.record_round_status,
        record(RoundStatus.RUNNING, 1, started=8, total=8, starting_done=True),
    )
    assert (row().started, row().total, row().starting_done) == (8, 8, True)
    await env.run(activities.record_round_status, record(RoundStatus.COMPLETED, 2, started=8))
    assert row().status == "completed"
    # A late, retried "running" and a second final status leave it completed.
    await env.run(activities.record_round_status, record(RoundStatus.RUNNING, 3, started=8))
    await env.run(activities.record_round_status, record(RoundStatus.FAILED, 4, reason="x"))
    assert row().status == "completed" and row().status_reason is None


async def test_failed_round_keeps_its_reason(sessions: sessionmaker[Session]) -> None:
    activities = RoundProgressActivities(sessions)
    with sessions.begin() as session:
        session.add(
            RoundRow(
                round_id="r-fail",
                name="第一轮",
                campaign_id="seed-002",
                round_plan_id="round-1",
                starts_at=NOW,
                status="created",
                kicked_off_by="county",
                updated_at=NOW,
            )
        )
    await ActivityEnvironment().run(
        activities.record_round_status,
        RoundStatusRecord(
            round_id="r-fail",
            status=RoundStatus.FAILED,
            reason="2031年没有法定节假日与调休数据",
            started=0,
            at=NOW,
        ),
    )
    with sessions() as session:
        row = session.get(RoundRow, "r-fail")
        assert row is not None
        assert (row.status, row.status_reason, row.name) == (
            "failed",
            "2031年没有法定节假日与调休数据",
            "第一轮",
        )


async def test_aggregate_counts_the_read_model(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        session.add_all(
            [
                status_row("o1"),
                status_row("o2", light=Light.RED, overdue=True),
                status_row("o3", phase=Phase.COMPLETED),
                status_row("o4", closed=True),
                status_row("other", round_id="r-other"),
                PhaseStatusRow(
                    round_id="r-agg",
                    org_id="o3",
                    phase=Phase.MOBILISATION.value,
                    status="done",
                    deadline=None,
                    opened_at=None,
                    completed_at=NOW,
                    outcome=Outcome.ON_TIME.value,
                    event_seq=1,
                ),
                RoundVerdictRow(round_id="r-agg", org_id="o1", behind=True, as_of=NOW),
                RoundRow(
                    round_id="r-agg",
                    name="第一轮",
                    campaign_id="seed-002",
                    round_plan_id="round-1",
                    starts_at=NOW,
                    status="running",
                    kicked_off_by="county",
                    updated_at=NOW,
                    started=4,
                    total=5,
                    starting_done=False,
                ),
            ]
        )
    aggregate = await ActivityEnvironment().run(
        RoundProgressActivities(sessions).load_round_aggregate, AggregateRequest(round_id="r-agg")
    )
    assert aggregate.reported == 4 and aggregate.finished == 2
    assert aggregate.by_phase == {Phase.MOBILISATION: 3, Phase.COMPLETED: 1}
    assert aggregate.by_light == {Light.GREEN: 3, Light.RED: 1}
    assert aggregate.overdue == 1 and aggregate.behind == 1
    assert aggregate.outcomes == {Phase.MOBILISATION: {Outcome.ON_TIME: 1}}
    # The API's status page reads the same, with the cursor from the round's row.
    with sessions() as session:
        row = session.get(RoundRow, "r-agg")
        assert row is not None
        progress = round_progress(session, row, as_of=NOW)
    assert (progress.started, progress.total, progress.starting_done) == (4, 5, False)
    assert progress.by_phase == aggregate.by_phase and progress.behind == 1


async def test_cohort_check_signals_only_changed_verdicts(
    sessions: sessionmaker[Session],
) -> None:
    # Five in one township: four at the schedule, one far behind both it and the median.
    with sessions.begin() as session:
        session.add_all(
            [
                status_row(
                    f"c{i}", round_id="r-cohort", phase=Phase.PUBLIC_COMMITMENT, progress=0.9
                )
                for i in range(4)
            ]
            + [status_row("late", round_id="r-cohort", phase=Phase.MOBILISATION)]
        )
    client = FakeClient()
    activities = RoundFanOutActivities(
        client,  # type: ignore[arg-type]
        "queue",
        sessions,
        RoundProgressActivities(sessions).plans,
    )
    check = CohortCheck(
        round_id="r-cohort",
        pro_rata={Phase.MOBILISATION: 1.0, Phase.PUBLIC_COMMITMENT: 0.9},
        tolerance=0.1,
        as_of=NOW,
    )
    env = ActivityEnvironment()
    report = await env.run(activities.check_round_cohorts, check)
    assert (report.behind, report.newly_behind, report.no_longer_behind) == (1, 1, 0)
    late = organisation_workflow_id("r-cohort", "late")
    assert [(w, s, p["behind"]) for w, s, p in client.signals] == [
        (late, "set_behind_schedule", True)
    ]
    # Nothing changed: nobody is told again.
    client.signals.clear()
    report = await env.run(activities.check_round_cohorts, check)
    assert report.newly_behind == 0 and client.signals == []
    # The laggard catches up: told once that it is no longer behind.
    with sessions.begin() as session:
        row = session.get(CampaignStatusRow, ("r-cohort", "late"))
        assert row is not None
        row.phase, row.progress = Phase.PUBLIC_COMMITMENT.value, 0.9
    report = await env.run(activities.check_round_cohorts, check)
    assert report.no_longer_behind == 1
    assert [(w, p["behind"]) for w, _, p in client.signals] == [(late, False)]


async def test_fan_out_reaches_every_started_organisation_and_resumes(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    roster = write_roster(tmp_path / "roster.csv", 12)
    plan = seed_plan()
    scope = RoundScope(
        round_id="r-fan",
        round_workflow_id="round/r-fan",
        plan_ref=store_plan(sessions, plan),
        round_plan_id="round-1",
        roster_source=str(roster),
    )
    client = FakeClient()
    client.gone.add(organisation_workflow_id("r-fan", "org-0002"))
    activities = RoundFanOutActivities(
        client,  # type: ignore[arg-type]
        "queue",
        sessions,
        RoundProgressActivities(sessions).plans,
    )
    fan_out = RoundFanOut(
        scope=scope,
        signal=RoundSignal(kind=RoundSignalKind.CLOSE_ROUND, payload={"reason": "结束"}),
        upto=10,
        page_size=3,
        concurrency=2,
    )
    env = ActivityEnvironment()
    beats: list[Any] = []
    env.on_heartbeat = lambda *details: beats.append(details[0])
    report = await env.run(activities.fan_out_round_signal, fan_out)
    assert (report.signalled, report.missing) == (9, 1)
    assert sorted(w for w, _, _ in client.signals) == sorted(
        organisation_workflow_id("r-fan", f"org-{i:04d}") for i in range(1, 11) if i != 2
    )
    assert beats and beats[-1] == 10

    # A retry after a checkpoint at position 7 signals only the rest.
    client.signals.clear()
    env.info = dataclasses.replace(env.info, heartbeat_details=[7])
    report = await env.run(activities.fan_out_round_signal, fan_out)
    assert sorted(w for w, _, _ in client.signals) == [
        organisation_workflow_id("r-fan", f"org-{i:04d}") for i in (8, 9, 10)
    ]
