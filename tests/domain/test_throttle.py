"""The back-off rule of failed sign-ins (domain.throttle), on explicit times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.throttle import (
    ThrottleCounter,
    ThrottlePolicy,
    after_failure,
    block_for,
    remaining_block,
    retry_after_seconds,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
POLICY = ThrottlePolicy(
    threshold=3,
    window=timedelta(minutes=15),
    base_block=timedelta(seconds=30),
    max_block=timedelta(minutes=5),
)


def fail(
    times: int, start: datetime = T0, counter: ThrottleCounter | None = None
) -> ThrottleCounter:
    for i in range(times):
        counter = after_failure(counter, POLICY, start + timedelta(seconds=i))
    assert counter is not None
    return counter


def test_the_threshold_th_failure_blocks_and_the_block_passes() -> None:
    below = fail(2)
    assert below.blocked_until is None and remaining_block(below, T0) is None
    blocked = fail(3)
    now = T0 + timedelta(seconds=2)
    assert blocked.blocked_until == now + timedelta(seconds=30)
    assert remaining_block(blocked, now) == timedelta(seconds=30)
    assert remaining_block(blocked, now + timedelta(seconds=30)) is None


def test_failures_after_a_block_double_it_up_to_the_cap() -> None:
    assert [block_for(n, POLICY) for n in range(1, 9)] == [
        None,
        None,
        timedelta(seconds=30),
        timedelta(seconds=60),
        timedelta(seconds=120),
        timedelta(seconds=240),
        timedelta(minutes=5),
        timedelta(minutes=5),
    ]
    counter = fail(3)
    after_block = counter.blocked_until
    assert after_block is not None
    again = after_failure(counter, POLICY, after_block + timedelta(seconds=1))
    assert again.failures == 4
    assert again.blocked_until == after_block + timedelta(seconds=61)
    assert block_for(10_000, POLICY) == timedelta(minutes=5)  # no overflow


def test_a_quiet_window_starts_the_count_afresh() -> None:
    counter = fail(2)
    later = T0 + timedelta(minutes=16)
    fresh = after_failure(counter, POLICY, later)
    assert fresh.failures == 1 and fresh.first_failure_at == later
    # Quiet is counted from the end of a block, not from the failure that earned it.
    blocked = ThrottleCounter(
        failures=5, first_failure_at=T0, last_failure_at=T0, blocked_until=T0 + timedelta(hours=1)
    )
    kept = after_failure(blocked, POLICY, T0 + timedelta(hours=1, minutes=1))
    assert kept.failures == 6


def test_retry_after_rounds_up_and_policies_are_checked() -> None:
    assert retry_after_seconds(timedelta(seconds=0.2)) == 1
    assert retry_after_seconds(timedelta(seconds=30.01)) == 31
    with pytest.raises(ValueError):
        ThrottlePolicy(0, timedelta(minutes=1), timedelta(seconds=1), timedelta(seconds=2))
    with pytest.raises(ValueError):
        ThrottlePolicy(3, timedelta(minutes=1), timedelta(seconds=10), timedelta(seconds=2))
