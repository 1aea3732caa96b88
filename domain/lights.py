"""Traffic lights supervisors read at a glance (blue: due soon; red: overdue).

Yellow (behind the cohort's pro-rata schedule) needs the cohort and arrives with the notices
issue; the enum already has it so stored values never change meaning.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from domain.calendar import Span, WorkingCalendar


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
    *, deadline: datetime, now: datetime, done: bool, blue_within: Span, calendar: WorkingCalendar
) -> Light:
    """Red once the deadline has passed with the phase not done; blue from ``blue_within``
    before it; green otherwise."""
    if done:
        return Light.GREEN
    if now > deadline:
        return Light.RED
    if now >= calendar.before(deadline, blue_within):
        return Light.BLUE
    return Light.GREEN


def blue_at(*, deadline: datetime, blue_within: Span, calendar: WorkingCalendar) -> datetime:
    """When the light turns blue (so the workflow can wake to update its search attribute)."""
    return calendar.before(deadline, blue_within)
