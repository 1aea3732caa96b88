"""Virtual-time arithmetic for planned actions, in the plan's own unit.

The time-skipping server's clock runs at wall-clock speed between sleeps, so every planned
action keeps a margin from deadlines and ladder timers.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from domain.calendar import SHANGHAI, WorkingCalendar, deadline_day, end_of_day, local_date
from domain.plan import LadderPlan

#: Organisations act at 10:00 local on working days: after the 09:00 reminders, well before
#: the end-of-day deadlines and rungs, so an action never races a timer.
OFFICE_TIME = time(10, 0)
#: The step of minute-scale plans. The server's clock runs in real time while updates are
#: being sent, so actions keep at least one step away from any deadline or rung.
MINUTE_STEP = timedelta(seconds=20)


class Timing:
    """Action instants in the plan's own unit: a working day (at 10:00) or a 20-second step.

    ``before(D, k)`` is k units before deadline D, ``after(D, u)`` u units after it. On the
    working-day ladder, acting on day u after the deadline day is after every rung with a
    delay below u and before the others (rungs fire at the end of a day). On a minute
    ladder, instants that coincide with a timer are avoided.
    """

    def __init__(self, ladder: LadderPlan, calendar: WorkingCalendar) -> None:
        self.calendar = calendar
        self.in_minutes = ladder.rungs[0].delay.minutes is not None
        self.rung_units = [self._units(r.delay.minutes, r.delay.working_days) for r in ladder.rungs]
        self.top_units = self.rung_units[-1]
        self.reminder_units = self._units(
            ladder.reminder_lead.minutes, ladder.reminder_lead.working_days
        )
        self.rectification_units = self._units(
            ladder.rectification_period.minutes, ladder.rectification_period.working_days
        )
        # Units an on-time finish keeps before its deadline (the clock runs during updates).
        self.margin = 2 if self.in_minutes else 0

    def _units(self, minutes: int | None, working_days: int | None) -> int:
        if minutes is not None:
            return minutes * 60 // int(MINUTE_STEP.total_seconds())
        assert working_days is not None
        return working_days

    def _office(self, day: date) -> datetime:
        return datetime.combine(day, OFFICE_TIME, SHANGHAI)

    def before(self, deadline: datetime, units: int) -> datetime:
        """``units`` before a deadline (0: 10:00 on the deadline day)."""
        if self.in_minutes:
            return deadline - units * MINUTE_STEP
        day = self.calendar.subtract_working_days(deadline_day(deadline), units)
        return self._office(day)

    def after(self, deadline: datetime, units: int) -> datetime:
        """``units`` (>= 1) after a deadline."""
        if self.in_minutes:
            return deadline + units * MINUTE_STEP
        return self._office(self.calendar.add_working_days(deadline_day(deadline), units))

    def next_unit(self, moment: datetime) -> datetime:
        """One unit after ``moment`` (the next working day at 10:00)."""
        if self.in_minutes:
            return moment + MINUTE_STEP
        return self._office(self.calendar.add_working_days(local_date(moment), 1))

    def latest_on_time(self, deadline: datetime) -> datetime:
        """The last instant an on-time action may be planned for."""
        return self.before(deadline, self.margin)

    def fits_on_time(self, moment: datetime, deadline: datetime) -> bool:
        """Whether an on-time action may be planned for ``moment``: within the margin before
        ``deadline`` and off the phase's timers."""
        return moment <= self.latest_on_time(deadline) and not self.clashes(moment, deadline)

    def extended_deadline(
        self, deadline: datetime, next_deadline: datetime | None = None
    ) -> datetime | None:
        """A deadline beyond where the top rung would have fired, with room to finish, that
        the extension rule allows: before the next phase's deadline ``next_deadline``
        (``domain.schedule.check_extended_deadline`` refuses one that reaches it). Kept a
        unit short of the next deadline when the wish would reach it; None when that leaves
        no later deadline at all. Callers check that the planned finish still fits."""
        if self.in_minutes:
            wanted = deadline + (self.top_units + 3) * MINUTE_STEP
            latest = next_deadline - MINUTE_STEP if next_deadline is not None else None
        else:
            wanted = end_of_day(
                self.calendar.add_working_days(deadline_day(deadline), self.top_units + 4)
            )
            latest = (
                end_of_day(self.calendar.subtract_working_days(deadline_day(next_deadline), 1))
                if next_deadline is not None
                else None
            )
        if latest is not None and wanted > latest:
            wanted = latest
        return wanted if wanted > deadline else None

    def rungs_fired_by(self, units_after: int) -> int:
        """Rungs that have fired when acting ``units_after`` units after the deadline."""
        return sum(1 for r in self.rung_units if r < units_after)

    def clashes(self, moment: datetime, deadline: datetime) -> bool:
        """Whether ``moment`` falls on one of the phase's timers (only possible in minutes)."""
        if not self.in_minutes:
            return False
        timers = {self.before(deadline, self.reminder_units), deadline}
        timers |= {deadline + r * MINUTE_STEP for r in self.rung_units}
        return moment in timers

    def late_choices(self) -> list[int]:
        """Units after the deadline at which a late finisher passes some but not all rungs,
        keeping a unit clear of the next rung."""
        choices = []
        for units in range(1, self.top_units + 1):
            fired = self.rungs_fired_by(units)
            if not 1 <= fired < len(self.rung_units):
                continue
            next_rung = self.rung_units[fired]
            if self.in_minutes and next_rung - units < 2:
                continue
            choices.append(units)
        return choices
