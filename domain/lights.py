"""Traffic lights supervisors read at a glance, and the progress measures behind them.

Green 正常; blue 临期 (the deadline is within ``blue_within`` working days); yellow 滞后
(behind the pro-rata schedule, 序时进度, and behind the organisation's cohort: see
:mod:`domain.cohort`); red 逾期 (overdue, or under a rectification order). A stronger light
hides a weaker one: red > yellow > blue > green.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from domain.calendar import Span, WorkingCalendar

if TYPE_CHECKING:  # domain.state imports Light from here
    from domain.state import PhaseState


class Light(StrEnum):
    """The light of one organisation in one round."""

    GREEN = "green"
    BLUE = "blue"
    YELLOW = "yellow"
    RED = "red"

    @property
    def label(self) -> str:
        """Chinese label."""
        return {"green": "正常", "blue": "临期", "yellow": "滞后", "red": "逾期"}[self.value]


def light_for(
    *,
    deadline: datetime,
    now: datetime,
    done: bool,
    blue_within: Span,
    calendar: WorkingCalendar,
    behind: bool = False,
) -> Light:
    """The light of a phase: green once done; otherwise red past the deadline, yellow when
    ``behind`` the cohort's schedule, blue from ``blue_within`` before the deadline, green."""
    if done:
        return Light.GREEN
    if now > deadline:
        return Light.RED
    if behind:
        return Light.YELLOW
    if now >= calendar.before(deadline, blue_within):
        return Light.BLUE
    return Light.GREEN


def blue_at(*, deadline: datetime, blue_within: Span, calendar: WorkingCalendar) -> datetime:
    """When the light turns blue (so the workflow can wake to update its search attribute)."""
    return calendar.before(deadline, blue_within)


def phase_progress(phase: PhaseState) -> float:
    """How far an organisation is through a phase: the share of its required steps (规定动作)
    accepted or waived, in [0, 1]. A completed phase, or one without required steps, is 1."""
    required = [s for s in phase.steps if s.required]
    if phase.completed_at is not None or not required:
        return 1.0
    return sum(1 for s in required if s.settled) / len(required)


def pro_rata(*, opens_at: datetime, deadline: datetime, now: datetime) -> float:
    """序时进度: the share of a phase's window elapsed by ``now``, clamped to [0, 1]."""
    window = (deadline - opens_at).total_seconds()
    if window <= 0:  # a degenerate window is due as soon as it opens
        return 1.0 if now >= opens_at else 0.0
    return min(1.0, max(0.0, (now - opens_at).total_seconds() / window))
