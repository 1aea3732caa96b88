"""Keeping updates away from the instants the organisation workflows' timers fire."""

from __future__ import annotations

import asyncio
import bisect
import time as wallclock
from collections.abc import Iterable
from datetime import datetime, timedelta

from domain.calendar import WorkingCalendar
from domain.plan import LadderPlan
from domain.schedule import RoundSchedule

from .model import OrgScript

#: No update is sent this close before a workflow timer fires, nor this soon after it
#: (see :class:`TimerGuard`); the "after" margin also covers timers set a moment late.
TIMER_GUARD_BEFORE = timedelta(seconds=8)
TIMER_GUARD_AFTER = timedelta(seconds=3)


class TimerGuard:
    """Holds updates back while an organisation workflow's timer is about to fire.

    An update wakes the workflow, whose task then cancels the pending timer. The
    time-skipping server strands a workflow whose task cancels a timer that fired while the
    task was on the worker: it refuses the completion ("invalid history builder state for
    action", temporalio/sdk-java#3088) and never retries the task, so the workflow never
    finishes and time skipping stalls. Between sleeps the server's clock runs at real pace,
    so a busy stop can run into the next timer; the guard estimates virtual now from the
    last sleep and sends nothing from ``TIMER_GUARD_BEFORE`` before a timer instant to
    ``TIMER_GUARD_AFTER`` after it.
    """

    def __init__(self, instants: Iterable[datetime]) -> None:
        self._instants = sorted(set(instants))
        self._virtual: datetime | None = None
        self._anchored_at = 0.0
        self.waits = 0

    def anchor(self, virtual_now: datetime) -> None:
        """The server's time now (just read); later estimates add the real time elapsed."""
        self._virtual, self._anchored_at = virtual_now, wallclock.monotonic()

    def now(self) -> datetime:
        """The estimated virtual now."""
        assert self._virtual is not None, "anchor() first"
        return self._virtual + timedelta(seconds=wallclock.monotonic() - self._anchored_at)

    async def admit(self) -> None:
        """Return when no timer fires within the guard window around now."""
        while True:
            now = self.now()
            index = bisect.bisect_left(self._instants, now - TIMER_GUARD_AFTER)
            if index == len(self._instants):
                return
            instant = self._instants[index]
            if instant - now > TIMER_GUARD_BEFORE:
                return
            self.waits += 1
            await asyncio.sleep((instant + TIMER_GUARD_AFTER - now).total_seconds())


def timer_instants(
    schedule: RoundSchedule,
    scripts: Iterable[OrgScript],
    ladder: LadderPlan,
    calendar: WorkingCalendar,
) -> list[datetime]:
    """Every instant an organisation workflow may wake on a timer: per deadline (planned or
    extended) the reminder, the blue light, the deadline, each rung and the deadline of the
    rectification order the top rung issues."""
    deadlines = {w.deadline for w in schedule.windows}
    deadlines |= {a.new_deadline for s in scripts for a in s.actions if a.new_deadline}
    instants: set[datetime] = set()
    for deadline in deadlines:
        instants.add(calendar.before(deadline, ladder.reminder_lead))
        instants.add(calendar.before(deadline, ladder.blue_within))
        instants.add(deadline)
        rungs = [calendar.after(deadline, rung.delay) for rung in ladder.rungs]
        instants.update(rungs)
        instants.add(calendar.deadline_after(rungs[-1], ladder.rectification_period))
    return sorted(instants)
