"""The back-off rule for failed sign-ins, kept pure: the caller loads a counter, asks what
a failure makes of it, and stores the answer.

A counter is kept per key (an account or an address). Failures within ``window`` of the
last activity add up; the ``threshold``-th failure blocks the key for ``base_block``, and
every further failure after a block has passed doubles it, up to ``max_block``. A key that
stays quiet for ``window`` after its last failure or block starts afresh, so a person who
mistyped a password twice yesterday is not one failure away from a block today.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class ThrottlePolicy:
    """How many failures a key may have, and how long the blocks last."""

    threshold: int
    window: timedelta
    base_block: timedelta
    max_block: timedelta

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ValueError("threshold must be at least 1")
        if self.base_block <= timedelta(0) or self.max_block < self.base_block:
            raise ValueError("blocks must be positive and max_block at least base_block")


@dataclass(frozen=True)
class ThrottleCounter:
    """The failures of one key so far and the block they earned (None: not blocked)."""

    failures: int
    first_failure_at: datetime
    last_failure_at: datetime
    blocked_until: datetime | None = None


def remaining_block(counter: ThrottleCounter | None, now: datetime) -> timedelta | None:
    """How much longer ``counter`` blocks its key at ``now`` (None when it does not)."""
    if counter is None or counter.blocked_until is None or counter.blocked_until <= now:
        return None
    return counter.blocked_until - now


def retry_after_seconds(wait: timedelta) -> int:
    """Whole seconds to put in ``Retry-After`` (rounded up, at least 1)."""
    return max(1, math.ceil(wait.total_seconds()))


def block_for(failures: int, policy: ThrottlePolicy) -> timedelta | None:
    """The block that the ``failures``-th failure earns: none below the threshold, then
    ``base_block`` doubled for each failure beyond it, capped at ``max_block``."""
    beyond = failures - policy.threshold
    if beyond < 0:
        return None
    # Past 20 doublings any block exceeds the cap; keep the exponent small.
    doubled: timedelta = policy.base_block * (2 ** min(beyond, 20))
    return min(doubled, policy.max_block)


def after_failure(
    counter: ThrottleCounter | None, policy: ThrottlePolicy, now: datetime
) -> ThrottleCounter:
    """The counter once one more failure happened at ``now``."""
    if counter is not None and _quiet_since(counter) + policy.window <= now:
        counter = None
    if counter is None:
        failures, first = 1, now
        blocked_until: datetime | None = None
    else:
        failures, first = counter.failures + 1, counter.first_failure_at
        blocked_until = counter.blocked_until
    block = block_for(failures, policy)
    if block is not None:
        blocked_until = now + block
    return ThrottleCounter(
        failures=failures, first_failure_at=first, last_failure_at=now, blocked_until=blocked_until
    )


def _quiet_since(counter: ThrottleCounter) -> datetime:
    """When the key's last failure or block ended."""
    if counter.blocked_until is not None and counter.blocked_until > counter.last_failure_at:
        return counter.blocked_until
    return counter.last_failure_at
