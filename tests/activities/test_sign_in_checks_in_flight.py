"""The sign-in throttle counts a password check before it runs, on SQLite and PostgreSQL
(``chuangzheng.services.sign_in``): however many checks of one account run at once, no more
run than the policy allows failures; no database lock is held while a password is checked
(one address serves a whole county office: a slow check must not hold up the others); and
a right password gives the address back the attempt it counted.

The password check is replaced by one that takes as long as the test says (the standard
argon2 parameters take 60-270 ms here), so the checks overlap whatever the hashing."""

from __future__ import annotations

import functools
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from activities.tables.access import SignInThrottleRow
from api.auth import upsert_user
from chuangzheng.services import sign_in
from chuangzheng.settings import Settings
from domain.organisation import Role
from domain.throttle import ThrottleCounter, ThrottlePolicy

PASSWORD = "青山绿水-2026-春耕"
SETTINGS = Settings()
T0 = datetime(2026, 11, 30, 8, tzinfo=UTC)


def new_account(sessions: sessionmaker[Session], password: str = PASSWORD) -> str:
    username = f"flight-{uuid.uuid4().hex[:8]}"
    with sessions.begin() as session:
        upsert_user(session, username=username, display_name=username, password=password,
                    role=Role.COUNTY_OFFICE)  # fmt: skip
    return username


def attempt(
    sessions: sessionmaker[Session], username: str, password: str, ip: str
) -> str:  # fmt: skip
    """One sign-in: ``ok``, ``refused`` (bad credentials) or ``throttled``."""
    with sessions() as session:
        try:
            sign_in.sign_in(session, username=username, password=password, ip=ip,
                            via=sign_in.SignInVia.API, settings=SETTINGS)  # fmt: skip
        except sign_in.Throttled:
            return "throttled"
        except sign_in.SignInRefused:
            return "refused"
    return "ok"


def slow_checks(
    monkeypatch: pytest.MonkeyPatch, pause: Callable[[str], None]
) -> dict[str, int]:  # fmt: skip
    """Make every password check call ``pause(password)`` first; the counts of checks run
    and of the most running at once."""
    real = sign_in.verify_password
    seen = {"checks": 0, "running": 0, "most": 0}
    lock = threading.Lock()

    def check(password_hash: str | None, password: str) -> bool:
        with lock:
            seen["checks"] += 1
            seen["running"] += 1
            seen["most"] = max(seen["most"], seen["running"])
        try:
            pause(password)
            return real(password_hash, password)
        finally:
            with lock:
                seen["running"] -= 1

    monkeypatch.setattr(sign_in, "verify_password", check)
    return seen


def run_all(work: list[Callable[[], str]]) -> list[str]:
    """Run every item in its own thread, all released at once; their answers."""
    answers: list[str] = [""] * len(work)
    start = threading.Barrier(len(work))

    def run(index: int) -> None:
        start.wait()
        answers[index] = work[index]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(work))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return answers


def test_parallel_guesses_run_no_more_checks_than_the_limit(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    username, ip = new_account(sessions), f"10.1.{uuid.uuid4().int % 250}.7"
    seen = slow_checks(monkeypatch, lambda _password: time.sleep(0.2))
    limit, burst = SETTINGS.signin_account_failures, 20
    answers = run_all(
        [functools.partial(attempt, sessions, username, f"guess-{i}", ip) for i in range(burst)]
    )
    assert sorted(answers) == ["refused"] * limit + ["throttled"] * (burst - limit)
    assert seen["checks"] == limit
    # Checked side by side, not one after another behind a lock.
    assert seen["most"] >= 2
    # The right password after them is refused: the account is blocked.
    assert attempt(sessions, username, PASSWORD, f"10.2.0.{uuid.uuid4().int % 250}") == (
        "throttled"
    )
    with sessions() as session:
        row = session.get(SignInThrottleRow, sign_in.account_key(username))
        assert row is not None and row.failures == limit and row.blocked_until is not None


def test_no_lock_is_held_while_a_password_is_checked(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """While one person's password is being checked, others from the same address sign in,
    and fail, to the end: nothing waits for the first check."""
    held_password = "慢慢来-检查中-2026"
    slow, other, ip = new_account(sessions, held_password), new_account(sessions), "10.9.9.9"
    others_done = threading.Event()

    def pause(password: str) -> None:
        if password == held_password:
            assert others_done.wait(timeout=20), "the other sign-ins waited for this check"

    slow_checks(monkeypatch, pause)
    first: list[str] = []
    held = threading.Thread(target=lambda: first.append(attempt(sessions, slow, held_password, ip)))
    held.start()
    try:
        time.sleep(0.2)  # the first is in its check by now (or soon: it waits either way)
        assert attempt(sessions, other, PASSWORD, ip) == "ok"
        assert attempt(sessions, other, "wrong-password", ip) == "refused"
        assert attempt(sessions, other, PASSWORD, ip) == "ok"
    finally:
        others_done.set()
        held.join(timeout=30)
    assert first == ["ok"]
    with sessions() as session:
        # Two right passwords gave their attempts back; the wrong one stays counted.
        row = session.get(SignInThrottleRow, sign_in.address_key(ip))
        assert row is not None and row.failures == 1
        assert session.get(SignInThrottleRow, sign_in.account_key(slow)) is None


def test_a_right_password_that_reached_the_address_limit_leaves_no_block(
    sessions: sessionmaker[Session],
) -> None:
    username, ip = new_account(sessions), "10.7.7.7"
    limit = SETTINGS.signin_address_failures
    for _ in range(limit - 1):
        assert attempt(sessions, f"nobody-{uuid.uuid4().hex[:6]}", "x", ip) == "refused"
    # Counted as the limit-th while it was checked, which blocked the address for a moment.
    assert attempt(sessions, username, PASSWORD, ip) == "ok"
    with sessions() as session:
        row = session.get(SignInThrottleRow, sign_in.address_key(ip))
        assert row is not None and (row.failures, row.blocked_until) == (limit - 1, None)
    assert attempt(sessions, username, PASSWORD, ip) == "ok"


# ----- giving an attempt back (pure) -----

POLICY = ThrottlePolicy(3, timedelta(minutes=15), timedelta(seconds=30), timedelta(hours=1))


def counter(failures: int, at: datetime, blocked_until: datetime | None = None) -> ThrottleCounter:
    return ThrottleCounter(failures, T0, at, blocked_until)


def test_an_attempt_nothing_followed_is_undone_whole() -> None:
    before = counter(1, T0)
    counted = counter(2, T0 + timedelta(seconds=5))
    assert sign_in._given_back(counted, POLICY, before, counted) == before
    first = ThrottleCounter(1, T0, T0)
    assert sign_in._given_back(first, POLICY, None, first) is None


def test_an_attempt_others_followed_is_taken_out_of_the_count() -> None:
    before = counter(1, T0)
    counted = counter(2, T0 + timedelta(seconds=1))
    # A wrong guess after it reached the threshold and blocked: without this attempt it
    # would have been the second failure, no block.
    later = counter(3, T0 + timedelta(seconds=2), T0 + timedelta(seconds=32))
    assert sign_in._given_back(later, POLICY, before, counted) == counter(
        2, T0 + timedelta(seconds=2)
    )


def test_a_block_this_attempt_set_is_lifted_one_earned_before_it_is_kept() -> None:
    block = T0 + timedelta(seconds=40)
    before = counter(3, T0 + timedelta(seconds=10), block)
    counted = counter(4, T0 + timedelta(seconds=50), T0 + timedelta(seconds=110))
    later = counter(5, T0 + timedelta(seconds=51), T0 + timedelta(seconds=110))
    assert sign_in._given_back(later, POLICY, before, counted) == counter(
        4, T0 + timedelta(seconds=51), block
    )
    # A block set after it by another failure stays.
    other = counter(5, T0 + timedelta(seconds=120), T0 + timedelta(seconds=240))
    assert sign_in._given_back(other, POLICY, before, counted) == counter(
        4, T0 + timedelta(seconds=120), T0 + timedelta(seconds=240)
    )


def test_a_count_forgotten_or_started_afresh_is_left_alone() -> None:
    counted = counter(2, T0)
    assert sign_in._given_back(None, POLICY, None, counted) is None
    fresh = ThrottleCounter(1, T0 + timedelta(hours=1), T0 + timedelta(hours=1))
    assert sign_in._given_back(fresh, POLICY, None, counted) == fresh
