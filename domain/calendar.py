"""PRC working-day arithmetic in Asia/Shanghai.

Holidays and make-up workdays (调休) come from the ``chinese-calendar`` package, whose data is
bundled with it (no I/O). A plan may add holidays and make-up days and may supply whole years
the package has no data for; any other year is refused rather than guessed, because a wrong
deadline is worse than a clear error at plan load.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar
from pydantic import BaseModel, ConfigDict, model_validator

SHANGHAI = ZoneInfo("Asia/Shanghai")
UTC = ZoneInfo("UTC")
# Reminders go out at the start of the office day, not at midnight.
OFFICE_DAY_START = time(9, 0)

_PACKAGE_YEARS: frozenset[int] = frozenset(d.year for d in chinese_calendar.holidays)


class CalendarGap(ValueError):
    """A date falls in a year with no holiday data."""

    def __init__(self, year: int) -> None:
        super().__init__(f"{year}年没有法定节假日与调休数据，请在计划的 calendar 中补充该年安排")
        self.year = year


class Span(BaseModel):
    """A length of time: working days (production plans) or minutes (demo plans)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    working_days: int | None = None
    minutes: int | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Span:
        given = [v for v in (self.working_days, self.minutes) if v is not None]
        if len(given) != 1:
            raise ValueError("必须且只能给出 working_days 或 minutes 之一")
        if given[0] < 0:
            raise ValueError("时长不能为负数")
        return self

    def describe(self) -> str:
        """Chinese wording, e.g. "3个工作日"."""
        return (
            f"{self.working_days}个工作日"
            if self.working_days is not None
            else f"{self.minutes}分钟"
        )


def require_aware(moment: datetime) -> datetime:
    """Refuse naive datetimes: every instant in the system is timezone-aware."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("时间必须带时区")
    return moment


def local_date(moment: datetime) -> date:
    """The Asia/Shanghai calendar date of an instant."""
    return require_aware(moment).astimezone(SHANGHAI).date()


def end_of_day(day: date) -> datetime:
    """A deadline "on day D" is the end of D in Shanghai, i.e. the next local midnight, in UTC."""
    return datetime.combine(day + timedelta(days=1), time(0), SHANGHAI).astimezone(UTC)


def deadline_day(deadline: datetime) -> date:
    """The local day a deadline instant closes (the inverse of :func:`end_of_day`)."""
    return local_date(deadline - timedelta(microseconds=1))


class WorkingCalendar:
    """Working days on the PRC calendar, with a plan's own additions."""

    def __init__(
        self,
        *,
        extra_holidays: Iterable[date] = (),
        extra_workdays: Iterable[date] = (),
        supplied_years: Iterable[int] = (),
    ) -> None:
        self._holidays = frozenset(extra_holidays)
        self._workdays = frozenset(extra_workdays)
        self._supplied = frozenset(supplied_years)

    def covers(self, year: int) -> bool:
        """Whether holiday data exists for ``year`` (from the package or the plan)."""
        return year in _PACKAGE_YEARS or year in self._supplied

    def is_workday(self, day: date) -> bool:
        """True on a working day; raises :class:`CalendarGap` for a year with no data."""
        if day in self._workdays:
            return True
        if day in self._holidays:
            return False
        if day.year in _PACKAGE_YEARS:
            return bool(chinese_calendar.is_workday(day))
        if day.year in self._supplied:
            return day.weekday() < 5
        raise CalendarGap(day.year)

    def add_working_days(self, day: date, count: int) -> date:
        """The ``count``-th working day after ``day``; 0 gives ``day`` or the next workday."""
        current = day
        if count == 0:
            while not self.is_workday(current):
                current += timedelta(days=1)
            return current
        remaining = count
        while remaining > 0:
            current += timedelta(days=1)
            if self.is_workday(current):
                remaining -= 1
        return current

    def subtract_working_days(self, day: date, count: int) -> date:
        """The ``count``-th working day before ``day`` (0 gives ``day`` itself)."""
        current = day
        remaining = count
        while remaining > 0:
            current -= timedelta(days=1)
            if self.is_workday(current):
                remaining -= 1
        return current

    def working_days_between(self, start: date, end: date) -> int:
        """Working days in the half-open interval (start, end]; 0 when end <= start."""
        count = 0
        current = start
        while current < end:
            current += timedelta(days=1)
            if self.is_workday(current):
                count += 1
        return count

    def deadline_after(self, start: datetime, span: Span) -> datetime:
        """The instant ``span`` after ``start``: end of the n-th working day, or plain minutes."""
        require_aware(start)
        if span.minutes is not None:
            return start + timedelta(minutes=span.minutes)
        assert span.working_days is not None
        # Count from the day ``start`` closes, so a phase opening at local midnight (the
        # previous deadline) counts its first full day.
        return end_of_day(self.add_working_days(deadline_day(start), span.working_days))

    def before(self, deadline: datetime, span: Span) -> datetime:
        """The instant ``span`` before a deadline; working days land at 09:00 local."""
        require_aware(deadline)
        if span.minutes is not None:
            return deadline - timedelta(minutes=span.minutes)
        assert span.working_days is not None
        day = self.subtract_working_days(deadline_day(deadline), span.working_days)
        return datetime.combine(day, OFFICE_DAY_START, SHANGHAI).astimezone(UTC)

    def after(self, deadline: datetime, span: Span) -> datetime:
        """The instant ``span`` after a deadline: end of the n-th following working day."""
        require_aware(deadline)
        if span.minutes is not None:
            return deadline + timedelta(minutes=span.minutes)
        assert span.working_days is not None
        if span.working_days == 0:
            return deadline
        return end_of_day(self.add_working_days(deadline_day(deadline), span.working_days))

    def working_days_overdue(self, deadline: datetime, now: datetime) -> int:
        """Working days that have fully ended since the deadline (0 on the first day late).

        This is the figure notices quote: the rung "3 working days after the deadline" fires
        when the third working day has ended, and says "逾期3个工作日".
        """
        if now <= deadline:
            return 0
        yesterday = local_date(now) - timedelta(days=1)
        return self.working_days_between(deadline_day(deadline), yesterday)
