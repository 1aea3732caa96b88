"""The bounded round's check in one pass, on working days (patches ``round-check-once`` and
``round-check-working-days``): one activity per check that agrees with the two it replaces
and reads the read model once; checks at 08:00 Asia/Shanghai on the pinned calendar's
working days only; a round still completes at the first check after its last organisation
finishes. Real time-skipping server, the project's worker, the shared SQLite read model."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import WorkflowHandle
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.round_contracts import AggregateRequest, CohortCheck
from activities.round_fanout import RoundFanOutActivities
from activities.round_progress import RoundProgressActivities, round_aggregate, store_plan
from activities.tables import CampaignStatusRow, PhaseStatusRow, RoundRow, RoundVerdictRow
from domain.actions import CloseRound
from domain.calendar import SHANGHAI, PinnedCalendar, local_date, pin_calendar
from domain.lights import Light
from domain.phases import Phase
from domain.schedule import resolve_schedule
from domain.state import Outcome
from tests.workflows.support import COUNTY, record_history, seed_plan, write_roster
from workflows.contracts import RoundProgress
from workflows.ids import organisation_workflow_id, round_workflow_id
from workflows.round import CHECK_AT, CampaignRound, next_check_at
from workflows.round_contracts import CampaignRoundInput, RoundTerms

pytestmark = pytest.mark.usefixtures("worker")

ORGS = 8
NOW = datetime(2026, 11, 30, 8, tzinfo=UTC)


# ----- when the next check falls (pure) -----------------------------------------------------
def calendar_2026() -> PinnedCalendar:
    from domain.calendar import WorkingCalendar

    return pin_calendar(WorkingCalendar(), date(2026, 1, 1), date(2026, 12, 31))


def at(day: date, hour: int = 8) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=SHANGHAI).astimezone(UTC)


def test_next_check_is_the_next_working_morning_skipping_rest_days() -> None:
    cal, day = calendar_2026(), timedelta(days=1)
    # Thursday → Friday; Friday (any hour) → Monday.
    assert next_check_at(cal, at(date(2026, 11, 26), 8), day) == at(date(2026, 11, 27))
    assert next_check_at(cal, at(date(2026, 11, 27), 8), day) == at(date(2026, 11, 30))
    assert next_check_at(cal, at(date(2026, 11, 27), 23), day) == at(date(2026, 11, 30))
    # A check on a Saturday (the kick-off's) → Monday.
    assert next_check_at(cal, at(date(2026, 11, 28), 15), day) == at(date(2026, 11, 30))
    # National Day: 30 September → 8 October, the seven holidays skipped.
    assert not any(cal.is_workday(date(2026, 10, d)) for d in range(1, 8))
    assert next_check_at(cal, at(date(2026, 9, 30), 10), day) == at(date(2026, 10, 8))
    # Spring Festival's make-up Saturday (14 February 2026) is a working day: checked.
    assert date(2026, 2, 14).weekday() == 5 and cal.is_workday(date(2026, 2, 14))
    assert next_check_at(cal, at(date(2026, 2, 13), 9), day) == at(date(2026, 2, 14))
    # A cadence of 30 days keeps its length and lands on a working morning.
    assert next_check_at(cal, at(date(2026, 3, 2), 10), timedelta(days=30)) == at(date(2026, 4, 1))
    assert at(date(2026, 4, 1)).astimezone(SHANGHAI).time() == CHECK_AT


def test_next_check_keeps_the_fixed_cadence_where_no_working_day_applies() -> None:
    cal = calendar_2026()
    minute = timedelta(minutes=1)
    assert next_check_at(cal, NOW, minute) == NOW + minute  # minute-scale demo plans
    assert next_check_at(None, NOW, timedelta(days=1)) == NOW + timedelta(days=1)
    # Past the pinned table (an extension beyond it): the fixed cadence, never a failure.
    last = at(date(2026, 12, 31), 10)
    assert next_check_at(cal, last, timedelta(days=1)) == last + timedelta(days=1)


# ----- one activity, one read ---------------------------------------------------------------
def status_row(round_id: str, org_id: str, **values: Any) -> CampaignStatusRow:
    defaults: dict[str, Any] = {
        "phase": Phase.MOBILISATION.value,
        "light": Light.GREEN.value,
        "overdue": False,
        "closed": False,
        "progress": 0.0,
    }
    defaults.update(values)
    return CampaignStatusRow(
        round_id=round_id,
        org_id=org_id,
        org_name=org_id,
        township="青石镇",
        system="rural",
        org_type="rural",
        phase_status=None,
        deadline=None,
        top_rung=None,
        event_seq=1,
        updated_at=NOW,
        **defaults,
    )


def seed_rows(sessions: sessionmaker[Session], round_id: str) -> None:
    """Four at the schedule, one far behind it and the township's median (yellow), one that
    was behind and has closed, one completed with an outcome, one red and overdue."""
    with sessions.begin() as session:
        session.add_all(
            [
                status_row(round_id, f"c{i}", phase=Phase.PUBLIC_COMMITMENT.value, progress=0.9)
                for i in range(4)
            ]
            + [
                status_row(round_id, "late"),
                status_row(round_id, "gone", closed=True),
                status_row(round_id, "done", phase=Phase.COMPLETED.value, progress=1.0),
                status_row(
                    round_id,
                    "red",
                    phase=Phase.PUBLIC_COMMITMENT.value,
                    progress=0.9,
                    light=Light.RED.value,
                    overdue=True,
                ),
                PhaseStatusRow(
                    round_id=round_id,
                    org_id="done",
                    phase=Phase.MOBILISATION.value,
                    status="done",
                    deadline=None,
                    opened_at=None,
                    completed_at=NOW,
                    outcome=Outcome.ON_TIME.value,
                    event_seq=1,
                ),
                RoundVerdictRow(round_id=round_id, org_id="gone", behind=True, as_of=NOW),
            ]
        )


@contextmanager
def selects_for(sessions: sessionmaker[Session], round_id: str) -> Iterator[list[str]]:
    """The SELECT statements the engine runs with ``round_id`` as a parameter."""
    engine = sessions.kw["bind"]
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and round_id in repr(parameters):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def verdicts(sessions: sessionmaker[Session], round_id: str) -> dict[str, bool]:
    with sessions() as session:
        return dict(
            session.execute(
                select(RoundVerdictRow.org_id, RoundVerdictRow.behind).where(
                    RoundVerdictRow.round_id == round_id
                )
            ).all()
        )


async def test_check_round_agrees_with_the_two_activities_it_replaces_in_one_read(
    time_skipping_env: WorkflowEnvironment, sessions: sessionmaker[Session]
) -> None:
    old, new = "r-check-two", "r-check-once"
    seed_rows(sessions, old)
    seed_rows(sessions, new)
    progress = RoundProgressActivities(sessions)
    # A real client: the organisations have no workflows, so each signal is answered
    # NOT_FOUND and ignored, as for an organisation that has ended.
    fanout = RoundFanOutActivities(time_skipping_env.client, "queue", sessions, progress.plans)
    env = ActivityEnvironment()

    def check(round_id: str) -> CohortCheck:
        return CohortCheck(
            round_id=round_id,
            pro_rata={Phase.MOBILISATION: 1.0, Phase.PUBLIC_COMMITMENT: 0.9},
            tolerance=0.1,
            as_of=NOW,
        )

    with selects_for(sessions, old) as old_selects:
        old_report = await env.run(fanout.check_round_cohorts, check(old))
        old_aggregate = await env.run(progress.load_round_aggregate, AggregateRequest(round_id=old))
    with selects_for(sessions, new) as new_selects:
        result = await env.run(fanout.check_round, check(new))

    assert (result.cohorts.behind, result.cohorts.newly_behind) == (1, 1)
    assert result.cohorts.no_longer_behind == 1  # "gone" closed: no longer behind
    assert result.cohorts == old_report
    assert verdicts(sessions, new) == verdicts(sessions, old) == {"late": True, "gone": False}
    ignore = {"round_id", "as_of"}
    assert result.aggregate.model_dump(exclude=ignore) == old_aggregate.model_dump(exclude=ignore)
    assert result.aggregate.behind == 1 and result.aggregate.finished == 2
    assert result.aggregate.by_light == {Light.GREEN: 7, Light.RED: 1}
    assert result.aggregate.outcomes == {Phase.MOBILISATION: {Outcome.ON_TIME: 1}}
    # One read of the round: its status rows once, its verdicts, its outcomes.
    assert len(new_selects) == 3 and len(old_selects) == 7, (new_selects, old_selects)


# ----- the round on working days --------------------------------------------------------------
def check_instants(history: Any) -> dict[str, list[datetime]]:
    """Per activity type of the round's checks, the ``as_of`` of each in the history."""
    found: dict[str, list[datetime]] = {}
    for ev in history.events:
        if not ev.HasField("activity_task_scheduled_event_attributes"):
            continue
        attrs = ev.activity_task_scheduled_event_attributes
        name = attrs.activity_type.name
        if name not in {"check_round", "check_round_cohorts", "load_round_aggregate"}:
            continue
        payload = json.loads(attrs.input.payloads[0].data)
        as_of = payload.get("as_of")
        found.setdefault(name, []).append(
            datetime.fromisoformat(as_of) if as_of else datetime.min.replace(tzinfo=UTC)
        )
    return found


def on_the_minute(moment: datetime) -> time:
    """The Asia/Shanghai time of day of ``moment``, to the minute."""
    return moment.astimezone(SHANGHAI).time().replace(second=0, microsecond=0)


async def test_round_checks_on_working_mornings_only_and_still_completes(
    time_skipping_env: WorkflowEnvironment,
    task_queue: str,
    sessions: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    env = time_skipping_env
    round_id = "r-check-working-days"
    roster = write_roster(tmp_path / "roster.csv", ORGS)
    plan = seed_plan()
    kicked_off = await env.get_current_time()
    schedule = resolve_schedule(plan, plan.round("round-1"), kicked_off, rebased=True)
    calendar = schedule.calendar
    assert calendar is not None
    round_input = CampaignRoundInput(
        terms=RoundTerms(
            round_id=round_id,
            round_plan_id="round-1",
            roster_source=str(roster),
            actor=COUNTY,
            starts_at=kicked_off,
        ),  # the default cadence: a day
        plan_ref=store_plan(sessions, plan),
        schedule=schedule,
    )
    assert round_input.terms.cohort_check_every == timedelta(days=1)
    handle: WorkflowHandle[CampaignRound, RoundProgress] = await env.client.start_workflow(
        CampaignRound.run, round_input, id=round_workflow_id(round_id), task_queue=task_queue
    )

    # Nine days of virtual time: a weekend at least, every check on the way.
    await env.sleep(timedelta(days=9))
    checks = check_instants(await handle.fetch_history())
    assert "check_round_cohorts" not in checks and "load_round_aggregate" not in checks
    instants = checks["check_round"]
    # The first right after the kick-off (real seconds pass on the server meanwhile).
    assert kicked_off <= instants[0] < kicked_off + timedelta(minutes=5)
    later = instants[1:]
    days = [local_date(t) for t in later]
    # A timer fires a few milliseconds after its instant.
    assert all(on_the_minute(t) == CHECK_AT for t in later), later
    assert all(calendar.is_workday(d) for d in days), days
    # Every working day after the kick-off's has its check, once, and no rest day has one.
    span = [
        local_date(kicked_off) + timedelta(days=n)
        for n in range(1, (days[-1] - local_date(kicked_off)).days + 1)
    ]
    assert days == [d for d in span if calendar.is_workday(d)]
    assert any(not calendar.is_workday(d) for d in span), "no rest day in the span"

    # Every organisation ends (closed on its own): the round completes at its next check.
    for n in range(1, ORGS + 1):
        org = env.client.get_workflow_handle(organisation_workflow_id(round_id, f"org-{n:04d}"))
        await org.signal("close_round", CloseRound(actor=COUNTY, reason="单独结束"))
    closed_at = await env.get_current_time()

    def finished() -> int:
        with sessions() as session:
            return round_aggregate(session, round_id, as_of=closed_at).finished

    # Real time, no skipping: the organisations write their ends to the read model.
    for _ in range(200):
        if finished() == ORGS:
            break
        await asyncio.sleep(0.1)
    assert finished() == ORGS
    result = await handle.result()
    assert not result.closed and result.reported == ORGS
    final = check_instants(await handle.fetch_history())["check_round"]
    after_close = [t for t in final if t > closed_at]
    assert len(after_close) == 1, after_close
    due = next_check_at(calendar, final[-2], timedelta(days=1))
    assert due <= after_close[0] < due + timedelta(minutes=1)
    assert calendar.is_workday(local_date(after_close[0]))
    with sessions() as session:
        row = session.get(RoundRow, round_id)
        assert row is not None and row.status == "completed"
    await record_history(handle, "round_check_working_days")
