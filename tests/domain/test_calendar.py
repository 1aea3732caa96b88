"""Working-day arithmetic on the PRC calendar, in Asia/Shanghai.

Holiday facts asserted here were checked against the chinese-calendar 1.11.0 data:
2025 National Day 1–8 Oct with make-up workdays Sun 28 Sep and Sat 11 Oct; 2026 Spring
Festival 15–23 Feb with make-up workdays Sat 14 Feb and Sat 28 Feb; 2026 New Year 1–3 Jan
with make-up Sun 4 Jan.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from domain.calendar import (
    SHANGHAI,
    UTC,
    CalendarGap,
    Span,
    WorkingCalendar,
    deadline_day,
    end_of_day,
    local_date,
)
from domain.plan_loader import load_calendar

CALENDAR_2027 = (
    Path(__file__).resolve().parents[2] / "plans" / "calendars" / "2027-provisional.yaml"
)
CAL = WorkingCalendar()


def _shanghai(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


# ── holidays and make-up days ──────────────────────────────────────────────────────────


def test_2025_national_day_and_its_make_up_days() -> None:
    for day in range(1, 9):
        assert not CAL.is_workday(date(2025, 10, day)), day
    assert CAL.is_workday(date(2025, 9, 28))  # Sunday, 调休 make-up day
    assert CAL.is_workday(date(2025, 10, 11))  # Saturday, 调休 make-up day
    assert CAL.is_workday(date(2025, 10, 9))
    assert not CAL.is_workday(date(2025, 10, 12))  # an ordinary Sunday


def test_2026_spring_festival_and_its_make_up_days() -> None:
    for day in range(15, 24):
        assert not CAL.is_workday(date(2026, 2, day)), day
    assert CAL.is_workday(date(2026, 2, 14))  # Saturday before, make-up day
    assert CAL.is_workday(date(2026, 2, 28))  # Saturday after, make-up day
    assert CAL.is_workday(date(2026, 2, 24))


def test_2026_new_year() -> None:
    assert not CAL.is_workday(date(2026, 1, 1))
    assert not CAL.is_workday(date(2026, 1, 2))
    assert CAL.is_workday(date(2026, 1, 4))  # Sunday make-up day


def test_adding_working_days_skips_the_national_day_break() -> None:
    assert CAL.add_working_days(date(2025, 9, 30), 1) == date(2025, 10, 9)
    assert CAL.add_working_days(date(2025, 9, 26), 1) == date(2025, 9, 28)  # Fri → make-up Sun
    assert CAL.add_working_days(date(2025, 9, 30), 3) == date(2025, 10, 11)
    assert CAL.working_days_between(date(2025, 9, 30), date(2025, 10, 11)) == 3
    assert CAL.working_days_between(date(2025, 10, 11), date(2025, 9, 30)) == 0


def test_adding_working_days_across_the_2026_spring_festival() -> None:
    assert CAL.add_working_days(date(2026, 2, 13), 1) == date(2026, 2, 14)
    assert CAL.add_working_days(date(2026, 2, 14), 1) == date(2026, 2, 24)
    assert CAL.subtract_working_days(date(2026, 2, 24), 1) == date(2026, 2, 14)
    assert CAL.working_days_between(date(2026, 2, 13), date(2026, 2, 28)) == 6


def test_zero_working_days_rolls_a_holiday_forward() -> None:
    assert CAL.add_working_days(date(2025, 10, 3), 0) == date(2025, 10, 9)
    assert CAL.add_working_days(date(2025, 10, 9), 0) == date(2025, 10, 9)
    assert CAL.subtract_working_days(date(2025, 10, 3), 0) == date(2025, 10, 3)


# No deadline: the machine is shared, and a first call may wait for the CPU.
@settings(deadline=None)
@given(
    day=st.dates(min_value=date(2010, 1, 1), max_value=date(2026, 10, 31)),
    count=st.integers(min_value=1, max_value=40),
)
def test_adding_and_counting_working_days_agree(day: date, count: int) -> None:
    later = CAL.add_working_days(day, count)
    assert CAL.is_workday(later)
    assert CAL.working_days_between(day, later) == count
    if CAL.is_workday(day):
        assert CAL.subtract_working_days(later, count) == day


# ── instants: end of day in Shanghai ───────────────────────────────────────────────────


def test_a_deadline_on_a_day_is_the_next_shanghai_midnight() -> None:
    deadline = end_of_day(date(2025, 10, 9))
    assert deadline == datetime(2025, 10, 9, 16, 0, tzinfo=UTC)
    assert deadline_day(deadline) == date(2025, 10, 9)
    assert local_date(deadline) == date(2025, 10, 10)
    assert local_date(datetime(2025, 10, 9, 15, 59, tzinfo=UTC)) == date(2025, 10, 9)


def test_deadline_after_counts_working_days_to_the_end_of_the_day() -> None:
    start = _shanghai(2025, 9, 30, 10, 0)
    assert CAL.deadline_after(start, Span(working_days=1)) == end_of_day(date(2025, 10, 9))
    assert CAL.deadline_after(start, Span(working_days=3)) == datetime(
        2025, 10, 11, 16, 0, tzinfo=UTC
    )


def test_deadline_after_uses_the_shanghai_date_of_the_start() -> None:
    # 30 Sep 20:00 UTC is already 1 Oct in Shanghai: the holiday, so the first working day
    # after it is 9 Oct.
    start = datetime(2025, 9, 30, 20, 0, tzinfo=UTC)
    assert CAL.deadline_after(start, Span(working_days=1)) == end_of_day(date(2025, 10, 9))


def test_minute_spans_ignore_the_calendar() -> None:
    start = _shanghai(2025, 10, 1, 23, 58)
    assert CAL.deadline_after(start, Span(minutes=4)) == start + timedelta(minutes=4)
    assert CAL.before(start, Span(minutes=1)) == start - timedelta(minutes=1)
    assert CAL.after(start, Span(minutes=2)) == start + timedelta(minutes=2)
    # Minutes work even in a year without holiday data.
    far = datetime(2031, 1, 1, tzinfo=UTC)
    assert CAL.deadline_after(far, Span(minutes=3)) == far + timedelta(minutes=3)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="时间必须带时区"):
        CAL.deadline_after(datetime(2025, 10, 9, 10, 0), Span(working_days=1))


def test_reminder_before_a_deadline_lands_at_nine_on_a_working_day() -> None:
    deadline = end_of_day(date(2025, 10, 9))
    # Three working days before 9 Oct: 30 Sep, 29 Sep, 28 Sep (the Sunday make-up day).
    assert CAL.before(deadline, Span(working_days=3)) == _shanghai(2025, 9, 28, 9, 0)
    assert CAL.before(deadline, Span(working_days=0)) == _shanghai(2025, 10, 9, 9, 0)


def test_rungs_after_a_deadline() -> None:
    deadline = end_of_day(date(2025, 9, 30))
    assert CAL.after(deadline, Span(working_days=0)) == deadline
    assert CAL.after(deadline, Span(working_days=1)) == end_of_day(date(2025, 10, 9))
    assert CAL.after(deadline, Span(working_days=3)) == end_of_day(date(2025, 10, 11))


def test_working_days_overdue() -> None:
    deadline = end_of_day(date(2025, 9, 30))
    assert CAL.working_days_overdue(deadline, _shanghai(2025, 9, 30, 23, 59)) == 0
    assert CAL.working_days_overdue(deadline, deadline) == 0
    # Counts working days that have ended: the National Day holiday (1-8 Oct) counts none,
    # 9 Oct counts once it is over, and Saturday 11 Oct 2025 is a make-up working day.
    assert CAL.working_days_overdue(deadline, _shanghai(2025, 10, 1, 0, 1)) == 0
    assert CAL.working_days_overdue(deadline, _shanghai(2025, 10, 8, 18, 0)) == 0
    assert CAL.working_days_overdue(deadline, _shanghai(2025, 10, 9, 10, 0)) == 0
    assert CAL.working_days_overdue(deadline, _shanghai(2025, 10, 10, 10, 0)) == 1
    assert CAL.working_days_overdue(deadline, _shanghai(2025, 10, 12, 10, 0)) == 3


# ── years without data ─────────────────────────────────────────────────────────────────


def test_2027_is_a_calendar_gap_unless_supplied() -> None:
    assert CAL.covers(2026) and not CAL.covers(2027)
    with pytest.raises(CalendarGap) as gap:
        CAL.is_workday(date(2027, 1, 4))
    assert gap.value.year == 2027
    assert "2027年" in str(gap.value)
    with pytest.raises(CalendarGap):
        CAL.add_working_days(date(2026, 12, 30), 5)


def test_a_supplied_year_uses_weekends_and_listed_days() -> None:
    calendar = WorkingCalendar(
        extra_holidays=[date(2027, 1, 1)],
        extra_workdays=[date(2027, 1, 9)],
        supplied_years=[2027],
    )
    assert calendar.covers(2027)
    assert not calendar.is_workday(date(2027, 1, 1))  # listed holiday (a Friday)
    assert not calendar.is_workday(date(2027, 1, 2))  # Saturday
    assert calendar.is_workday(date(2027, 1, 9))  # listed make-up Saturday
    assert calendar.is_workday(date(2027, 1, 4))
    assert calendar.add_working_days(date(2026, 12, 31), 1) == date(2027, 1, 4)


def test_the_provisional_2027_calendar() -> None:
    calendar = load_calendar(CALENDAR_2027.read_text(encoding="utf-8")).build()
    assert not calendar.is_workday(date(2027, 2, 8))  # 春节 (初三, a Monday)
    assert not calendar.is_workday(date(2027, 6, 9))  # 端午
    assert not calendar.is_workday(date(2027, 9, 15))  # 中秋
    assert calendar.is_workday(date(2027, 2, 15))
    assert calendar.is_workday(date(2027, 10, 8))
    # No 调休 make-up days are guessed: the Saturday after 国庆 stays a day off.
    assert not calendar.is_workday(date(2027, 10, 9))
    assert calendar.add_working_days(date(2027, 9, 30), 1) == date(2027, 10, 8)


# ── spans ──────────────────────────────────────────────────────────────────────────────


def test_span_needs_exactly_one_non_negative_unit() -> None:
    assert Span(working_days=3).describe() == "3个工作日"
    assert Span(minutes=5).describe() == "5分钟"
    with pytest.raises(ValidationError, match="必须且只能给出 working_days 或 minutes 之一"):
        Span()
    with pytest.raises(ValidationError, match="必须且只能给出 working_days 或 minutes 之一"):
        Span(working_days=1, minutes=1)
    with pytest.raises(ValidationError, match="时长不能为负数"):
        Span(minutes=-1)
    with pytest.raises(ValidationError):
        Span(working_days=1, hours=2)  # type: ignore[call-arg]


def test_a_phase_opening_at_midnight_counts_its_first_day() -> None:
    opens = end_of_day(date(2025, 3, 3))  # the previous phase closed at the end of Monday
    assert CAL.deadline_after(opens, Span(working_days=1)) == end_of_day(date(2025, 3, 4))
