"""Read-then-write races on SQLite, where ``FOR UPDATE``/``FOR SHARE`` lock nothing and a
transaction only begins at its first write: a row read as "running" or "open" may have been
closed by another writer before the write that relied on it. Each test commits the other
writer exactly in that gap (PostgreSQL's row locks make the gap impossible, so these run on
SQLite only) and checks that what the write relied on is checked again by the write, or that
the other writer had to wait (``activities.db.write_lock``)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import ActivityEnvironment

from activities.evaluations import (
    BallotRefused,
    cast_ballot,
    close_and_tally,
    register_evaluation,
    token_for,
)
from activities.round_contracts import RoundStatus, RoundStatusRecord
from activities.round_progress import RoundProgressActivities
from activities.tables import BallotRow, EvaluationRow, RoundRow
from activities.tables.access import SignInThrottleRow
from chuangzheng.services import sign_in
from chuangzheng.settings import Settings
from domain.evaluation import EvaluationTarget, RaterKind, Rating
from domain.evaluation_rules import FIVE_GOODS
from domain.organisation import Role
from domain.state import Actor
from tests.workflows.support import seed_plan
from workflows.evaluation_contracts import EvaluationInput, EvaluationStage

NOW = datetime(2026, 11, 30, 8, tzinfo=UTC)
SECRET = "race-test-secret"


# The conftest's engine on SQLite only (see the module's docstring).
pytestmark = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)


def _in_the_gap(
    monkeypatch: pytest.MonkeyPatch, entity: type[Any], other_writer: Any
) -> list[bool]:
    """Make the next ``Session.get`` of ``entity`` run ``other_writer`` (committing on its
    own connection) right after the read; the list says whether it ran."""
    read = Session.get
    ran: list[bool] = []

    def read_then_write(self: Session, cls: Any, ident: Any, **kwargs: Any) -> Any:
        found = read(self, cls, ident, **kwargs)
        if cls is entity and not ran:
            ran.append(True)
            other_writer()
        return found

    monkeypatch.setattr(Session, "get", read_then_write)
    return ran


async def test_a_close_between_the_read_and_the_write_stays_closed(
    engine: Engine, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """CI met it: the kick-off's late cursor report ("running") read the round while it
    ran, the county office's close committed, and the report wrote ``running`` over
    ``closed``. The status stays closed; the cursor still lands."""
    activities = RoundProgressActivities(sessions)
    start = RoundStatusRecord(
        round_id="r-race", status=RoundStatus.RUNNING, at=NOW, round_plan_id="round-1",
        kicked_off_by="county", started=0,
    )  # fmt: skip
    await ActivityEnvironment().run(activities.record_round_status, start)

    def close() -> None:
        with engine.begin() as other:
            other.execute(
                update(RoundRow).where(RoundRow.round_id == "r-race").values(status="closed")
            )

    ran = _in_the_gap(monkeypatch, RoundRow, close)
    late = start.model_copy(
        update={"at": NOW + timedelta(minutes=1), "started": 8, "total": 8, "starting_done": True}
    )
    await ActivityEnvironment().run(activities.record_round_status, late)
    monkeypatch.undo()
    assert ran
    with sessions() as session:
        row = session.get(RoundRow, "r-race")
        assert row is not None
        assert (row.status, row.started, row.total) == ("closed", 8, 8)


def test_a_ballot_cast_while_the_window_closes_is_refused_not_lost(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ballot that read the window open while the close tallied: before, it was stored
    after the tally and the voter told it counted; now it is refused as after the close,
    and every stored ballot is in the tally."""
    plan = seed_plan()
    evaluation = EvaluationInput(
        evaluation_id="ev-race",
        round_id="r-race",
        org_id="org-a",
        org_workflow_id="campaign/r-race/org-a",
        target=EvaluationTarget.ORGANISATION,
        subject="柳树村党支部",
        opened_by=Actor(user="tw-qingshi", name="青石镇党委", role=Role.TOWNSHIP),
        rules=plan.evaluation,
        calendar=plan.calendar,
    )
    with sessions.begin() as session:
        row = register_evaluation(
            session, SECRET, evaluation=evaluation, seq=1, workflow_id="evaluation/r-race",
            raters={RaterKind.MEMBER: 2, RaterKind.NON_MEMBER: 0}, now=NOW,
        )  # fmt: skip
        row.status = EvaluationStage.OPEN.value
        row.opens_at, row.closes_at = NOW, NOW + timedelta(days=3)
    ratings = {item.id: Rating.SATISFIED.value for item in FIVE_GOODS}
    cast_ballot(sessions, token_for(SECRET, "ev-race", 0), ratings, NOW + timedelta(hours=1))

    def close() -> None:
        with sessions.begin() as other:
            close_and_tally(other, "ev-race", NOW + timedelta(hours=2))

    ran = _in_the_gap(monkeypatch, EvaluationRow, close)
    with pytest.raises(BallotRefused) as refused:
        cast_ballot(sessions, token_for(SECRET, "ev-race", 1), ratings, NOW + timedelta(hours=2))
    monkeypatch.undo()
    assert ran
    assert refused.value.code == "window_closed"
    with sessions() as session:
        stored = session.scalar(select(func.count()).select_from(BallotRow))
        tallied = session.get(EvaluationRow, "ev-race")
        assert tallied is not None and tallied.result is not None
        assert (stored, tallied.cast) == (1, 1)


def test_two_failed_sign_ins_at_once_count_twice(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A password-guessing bot sends its guesses in parallel: a second failure counted
    while the first was between reading its counter and writing it back was lost. Now the
    second waits for the first (SQLite's write lock), and both count."""
    settings = Settings()

    def fail_once() -> None:
        with sessions() as session, pytest.raises(sign_in.SignInRefused):
            sign_in.sign_in(
                session, username="nobody", password="guess", ip="10.0.0.9",
                via=sign_in.SignInVia.API, settings=settings,
            )  # fmt: skip

    read = sign_in._counters
    other = threading.Thread(target=fail_once)

    def read_then_fail_elsewhere(session: Session, keys: Any, *, lock: bool) -> Any:
        found = read(session, keys, lock=lock)
        if lock and not other.is_alive() and other.ident is None:
            other.start()
            other.join(timeout=1.0)  # long enough to commit in the gap, if it can
        return found

    monkeypatch.setattr(sign_in, "_counters", read_then_fail_elsewhere)
    fail_once()
    other.join(timeout=10)
    assert not other.is_alive()
    with sessions() as session:
        rows = session.execute(select(SignInThrottleRow.key, SignInThrottleRow.failures))
        failures = {key: count for key, count in rows}
    assert failures == {"account:nobody": 2, "address:10.0.0.9": 2}
