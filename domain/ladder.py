"""When the reminder, each rung of the ladder and the rectification check fall due.

Everything is computed from the phase's current deadline, so an approved extension moves
every pending item with it; items already done are remembered in the phase state and never
repeat.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from domain.calendar import WorkingCalendar
from domain.lights import blue_at
from domain.machine import PhaseStatus
from domain.plan import LadderPlan
from domain.state import PhaseState, RectificationStatus


class DueKind(StrEnum):
    """Kinds of timed item in a phase."""

    REMINDER = "reminder"
    BLUE = "blue"
    DEADLINE = "deadline"
    RUNG = "rung"
    RECTIFICATION_OVERDUE = "rectification_overdue"


class Due(BaseModel):
    """A timed item: what, when, and for rungs which one."""

    model_config = ConfigDict(frozen=True)

    kind: DueKind
    at: datetime
    rung: int | None = None


def rung_times(deadline: datetime, ladder: LadderPlan, calendar: WorkingCalendar) -> list[datetime]:
    """When each rung fires for a given deadline."""
    return [calendar.after(deadline, rung.delay) for rung in ladder.rungs]


def pending_items(phase: PhaseState, ladder: LadderPlan, calendar: WorkingCalendar) -> list[Due]:
    """Every timed item still to happen in ``phase``, in time order (empty once done)."""
    if phase.status in (PhaseStatus.DONE, PhaseStatus.PENDING):
        return []
    items: list[Due] = []
    if not phase.reminder_sent:
        items.append(
            Due(kind=DueKind.REMINDER, at=calendar.before(phase.deadline, ladder.reminder_lead))
        )
    if phase.status is PhaseStatus.OPEN:
        items.append(
            Due(
                kind=DueKind.BLUE,
                at=blue_at(
                    deadline=phase.deadline, blue_within=ladder.blue_within, calendar=calendar
                ),
            )
        )
        items.append(Due(kind=DueKind.DEADLINE, at=phase.deadline))
    fired = {e.rung for e in phase.escalations}
    for index, at in enumerate(rung_times(phase.deadline, ladder, calendar)):
        if index not in fired:
            items.append(Due(kind=DueKind.RUNG, at=at, rung=index))
    order = phase.rectification
    if (
        order is not None
        and order.status is not RectificationStatus.PASSED
        and not order.overdue_notified
    ):
        items.append(Due(kind=DueKind.RECTIFICATION_OVERDUE, at=order.deadline))
    # Stable order for simultaneous items: the ladder must climb rung by rung.
    return sorted(items, key=lambda d: (d.at, list(DueKind).index(d.kind), d.rung or 0))


def next_wakeup(items: list[Due], now: datetime) -> datetime | None:
    """The earliest item after ``now``, for the workflow's durable timer."""
    future = [d.at for d in items if d.at > now]
    return min(future) if future else None
