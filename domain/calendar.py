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
from pydantic import BaseModel, ConfigDict, PrivateAttr, model_validator

SHANGHAI = ZoneInfo("Asia/Shanghai")
UTC = ZoneInfo("UTC")
# Reminders go out at the start of the office day, not at midnight.
OFFICE_DAY_START = time(9, 0)

_PACKAGE_YEARS: frozenset[int] = frozenset(d.year for d in chinese_calendar.holidays)
# Named in a pinned calendar's ``source`` so an audit shows which data a round runs on.
PACKAGE_SOURCE = f"chinese-calendar {getattr(chinese_calendar, '__version__', '?')}"


class CalendarGap(ValueError):
    """A date falls in a year with no holiday data."""

    def __init__(self, year: int) -> None:
        super().__init__(
            f"{year}年没有法定节假日与调休数据，请在计划的 calendar 中补充该年安排"
            "（或以 calendar.include 选用补充日历）"
        )
        self.year = year


class OutsidePinnedCalendar(CalendarGap):
    """A date outside a round's pinned calendar (:class:`PinnedCalendar`)."""

    def __init__(self, day: date, first_day: date, last_day: date) -> None:
        ValueError.__init__(
            self,
            f"{day.isoformat()} 超出本轮固定日历的范围（{first_day.isoformat()}至"
            f"{last_day.isoformat()}），请先由县委活动办更新本轮日历",
        )
        self.year = day.year
        self.day = day


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


def is_end_of_day(deadline: datetime) -> bool:
    """Whether ``deadline`` is the end of a local day (every period in working days ends so)."""
    return end_of_day(deadline_day(deadline)) == deadline


def deadline_wording(deadline: datetime, day_format: str = "%Y年%m月%d日") -> str:
    """A deadline as people read it: one at the end of a day is "D 24:00" of its last day D
    ("D+1 00:00" reads as a day more than there is); any other instant (a minute-scale
    plan's) its local date and minute."""
    if is_end_of_day(deadline):
        return f"{deadline_day(deadline):{day_format}} 24:00"
    return deadline.astimezone(SHANGHAI).strftime(f"{day_format} %H:%M")


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


class PinnedCalendar(BaseModel, WorkingCalendar):
    """A round's working-day table, fixed at kick-off (``domain.schedule.resolve_round``).

    It answers exactly what :class:`WorkingCalendar` answers, from data carried in the
    round's own inputs, so upgrading ``chinese-calendar`` never moves a running round's
    deadlines or timers. Only the days that break the Monday-to-Friday rule are stored
    (weekday rest days and weekend make-up days, some twenty a year), so it stays a few
    hundred bytes. Any day outside ``first_day``..``last_day`` raises
    :class:`OutsidePinnedCalendar`: the county office must update the round's calendar
    (``domain.actions.CalendarUpdate``) before a deadline may move there.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    first_day: date
    last_day: date
    # Monday-to-Friday days off (statutory holidays), sorted.
    rest_days: tuple[date, ...] = ()
    # Saturdays and Sundays that are working days (调休 make-up days), sorted.
    make_up_days: tuple[date, ...] = ()
    # Where the data came from, for the audit trail (package version, plan supplements).
    source: str = ""

    _rest: frozenset[date] = PrivateAttr(default_factory=frozenset)
    _make_up: frozenset[date] = PrivateAttr(default_factory=frozenset)

    @model_validator(mode="after")
    def _consistent(self) -> PinnedCalendar:
        if self.last_day < self.first_day:
            raise ValueError("固定日历的结束日期不能早于开始日期")
        outside = [
            d
            for d in (*self.rest_days, *self.make_up_days)
            if not self.first_day <= d <= self.last_day
        ]
        if outside:
            raise ValueError(f"日期 {outside[0].isoformat()} 不在固定日历范围内")
        if any(d.weekday() >= 5 for d in self.rest_days):
            raise ValueError("rest_days 只列周一至周五的休息日")
        if any(d.weekday() < 5 for d in self.make_up_days):
            raise ValueError("make_up_days 只列周六、周日的调休上班日")
        return self

    def model_post_init(self, context: object, /) -> None:
        # Lookups run for every day a deadline computation walks over.
        self._rest = frozenset(self.rest_days)
        self._make_up = frozenset(self.make_up_days)

    def spans(self, day: date) -> bool:
        """Whether ``day`` lies inside the pinned table."""
        return self.first_day <= day <= self.last_day

    def covers(self, year: int) -> bool:
        """Whether every day of ``year`` that the round may reach is in the table."""
        return self.first_day.year <= year <= self.last_day.year

    def is_workday(self, day: date) -> bool:
        """True on a working day; raises :class:`OutsidePinnedCalendar` outside the table."""
        if not self.spans(day):
            raise OutsidePinnedCalendar(day, self.first_day, self.last_day)
        if day.weekday() < 5:
            return day not in self._rest
        return day in self._make_up

    def require(self, day: date) -> None:
        """Refuse a day outside the table (e.g. an extended deadline), naming the date."""
        if not self.spans(day):
            raise OutsidePinnedCalendar(day, self.first_day, self.last_day)


def pin_calendar(
    calendar: WorkingCalendar, first_day: date, last_day: date, *, source: str = PACKAGE_SOURCE
) -> PinnedCalendar:
    """The working-day table of ``calendar`` from ``first_day`` to ``last_day``.

    Raises :class:`CalendarGap` for the first year in the range that has no data.
    """
    rest: list[date] = []
    make_up: list[date] = []
    day = first_day
    while day <= last_day:
        workday = calendar.is_workday(day)
        if day.weekday() < 5 and not workday:
            rest.append(day)
        elif day.weekday() >= 5 and workday:
            make_up.append(day)
        day += timedelta(days=1)
    return PinnedCalendar(
        first_day=first_day,
        last_day=last_day,
        rest_days=tuple(rest),
        make_up_days=tuple(make_up),
        source=source,
    )


def last_covered_day(calendar: WorkingCalendar, day: date, limit: date) -> date:
    """The last day up to ``limit`` such that every year from ``day``'s on has data (at
    least ``day``): how far a margin can reach without guessing."""
    year = day.year
    while year < limit.year and calendar.covers(year + 1):
        year += 1
    return min(limit, date(year, 12, 31)) if calendar.covers(day.year) else day
