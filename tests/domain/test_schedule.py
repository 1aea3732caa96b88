"""A round's schedule by the Civil Code's rule for periods, and its pinned calendar.

民法典 第二百零一条: a period counted in days starts on the day after its start, whatever
the hour; 第二百零三条: a last day that is a statutory rest day moves to the next working
day, and the last day ends at 24:00. Holiday facts: chinese-calendar 1.11.0 (2025 National
Day 1–8 Oct, make-up workdays Sun 28 Sep and Sat 11 Oct).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from domain.calendar import (
    SHANGHAI,
    CalendarGap,
    OutsidePinnedCalendar,
    PinnedCalendar,
    WorkingCalendar,
    deadline_day,
    end_of_day,
    pin_calendar,
)
from domain.errors import DomainError
from domain.organisation import Organisation, OrgType
from domain.plan import CampaignPlan
from domain.plan_loader import load_calendar, load_plan
from domain.schedule import (
    CALENDAR_MARGIN,
    build_org_plan,
    check_deadline_in_calendar,
    reresolve_round,
    resolve_round,
)

ROOT = Path(__file__).resolve().parents[2]
CAL = WorkingCalendar()


def _seed() -> CampaignPlan:
    return load_plan((ROOT / "plans" / "seed-002.yaml").read_text("utf-8"))


def _plan(start: str, *, first: dict[str, Any], later_days: int = 10) -> CampaignPlan:
    phases = [
        {
            "phase": p,
            "duration": {"working_days": later_days},
            "steps": [{"id": "s", "name": "步骤"}],
        }
        for p in ("public_commitment", "leadership_review", "public_evaluation", "commendation")
    ]
    data = {
        "id": "t",
        "name": "测试",
        "ladder": {
            "reminder_lead": {"working_days": 3},
            "blue_within": {"working_days": 5},
            "rungs": [
                {
                    "name": "通报",
                    "recipient": "county_office",
                    "delay": {"working_days": 6},
                    "actions": ["notify", "circular", "rectification_order"],
                }
            ],
            "rectification_period": {"working_days": 10},
        },
        "rounds": [
            {
                "id": "r",
                "name": "轮次",
                "starts_on": start,
                "phases": [
                    {"phase": "mobilisation", **first, "steps": [{"id": "s", "name": "步骤"}]},
                    *phases,
                ],
            }
        ],
    }
    return load_plan(yaml.safe_dump(data, allow_unicode=True))


def _days(plan: CampaignPlan, round_id: str, at: datetime) -> list[date]:
    schedule = resolve_round(plan, plan.round(round_id), at)
    return [deadline_day(w.deadline) for w in schedule.windows]


# ── periods: the kick-off's date, never its hour ──────────────────────────────────────


@pytest.mark.parametrize("round_id", ["round-1", "round-2"])
def test_kickoff_hour_on_the_planned_day_does_not_move_any_deadline(round_id: str) -> None:
    plan = _seed()
    day = plan.round(round_id).starts_on
    schedules = [
        resolve_round(plan, plan.round(round_id), datetime.combine(day, moment, SHANGHAI))
        for moment in (time(0, 0), time(9, 0), time(23, 59))
    ]
    deadlines = {tuple(w.deadline for w in s.windows) for s in schedules}
    assert len(deadlines) == 1
    assert len({s.calendar for s in schedules}) == 1


def test_seed_002_lands_on_the_historic_schedule_at_any_hour() -> None:
    plan = _seed()
    for hour in (0, 9, 23):
        one = _days(plan, "round-1", datetime(2010, 5, 4, hour, tzinfo=SHANGHAI))
        two = _days(plan, "round-2", datetime(2011, 7, 1, hour, tzinfo=SHANGHAI))
        assert one == [
            date(2010, 6, 30),
            date(2010, 8, 31),
            date(2010, 12, 31),
            date(2011, 4, 29),
            date(2011, 6, 30),
        ]
        # Commendation before 七一, both rounds (seed 002 §五).
        assert one[-1] < date(2011, 7, 1)
        assert two == [
            date(2011, 7, 29),
            date(2011, 9, 30),
            date(2011, 12, 30),
            date(2012, 4, 27),
            date(2012, 6, 29),
        ]
        assert two[-1] < date(2012, 7, 1)


def test_a_period_starts_on_the_day_after_the_kickoff() -> None:
    # Kicked off Tuesday 30 Sep 2025 at any hour: day one is the next working day, 9 Oct.
    plan = _plan("2025-09-30", first={"duration": {"working_days": 1}})
    for hour in (0, 9, 23):
        at = datetime(2025, 9, 30, hour, 59, tzinfo=SHANGHAI)
        schedule = resolve_round(plan, plan.round("r"), at)
        assert schedule.windows[0].opens_at == at
        assert schedule.windows[0].deadline == end_of_day(date(2025, 10, 9))
        # The next phase opens at that deadline and counts from 10 Oct.
        assert schedule.windows[1].opens_at == end_of_day(date(2025, 10, 9))


def test_a_last_day_on_a_rest_day_moves_to_the_next_working_day() -> None:
    # An absolute deadline on National Day (a statutory rest day) ends on 9 Oct instead.
    plan = _plan("2025-09-01", first={"deadline": "2025-10-01"})
    schedule = resolve_round(plan, plan.round("r"), datetime(2025, 9, 1, 9, tzinfo=SHANGHAI))
    assert deadline_day(schedule.windows[0].deadline) == date(2025, 10, 9)
    # An ordinary Sunday moves to Monday; a 调休 make-up Sunday stays a working day.
    sunday = _plan("2025-09-01", first={"deadline": "2025-09-21"})
    at = datetime(2025, 9, 1, 9, tzinfo=SHANGHAI)
    assert _days(sunday, "r", at)[0] == date(2025, 9, 22)
    make_up = _plan("2025-09-01", first={"deadline": "2025-09-28"})
    assert _days(make_up, "r", at)[0] == date(2025, 9, 28)


def test_durations_end_on_working_days() -> None:
    plan = _plan("2025-09-26", first={"duration": {"working_days": 2}}, later_days=3)
    days = _days(plan, "r", datetime(2025, 9, 26, 15, tzinfo=SHANGHAI))
    # Fri 26 Sep: day one Sun 28 Sep (make-up), day two Mon 29 Sep.
    assert days[0] == date(2025, 9, 29)
    assert all(CAL.is_workday(d) for d in days)


# ── the pinned calendar ───────────────────────────────────────────────────────────────


def test_the_pinned_calendar_covers_the_round_and_a_margin_and_stays_small() -> None:
    plan = _seed()
    schedule = resolve_round(plan, plan.round("round-1"), datetime(2010, 5, 4, 9, tzinfo=SHANGHAI))
    pinned = schedule.calendar
    assert pinned is not None
    assert pinned.first_day == date(2010, 5, 4)
    last_deadline = deadline_day(schedule.windows[-1].deadline)
    assert pinned.last_day >= last_deadline + CALENDAR_MARGIN
    assert len(pinned.model_dump_json()) < 1000
    assert "chinese-calendar" in pinned.source
    # It answers like the package on every day of its span...
    day = pinned.first_day
    while day <= pinned.last_day:
        assert pinned.is_workday(day) == CAL.is_workday(day), day
        day += timedelta(days=1)
    # ...and refuses any other day, naming it.
    with pytest.raises(OutsidePinnedCalendar) as outside:
        pinned.is_workday(pinned.last_day + timedelta(days=1))
    assert isinstance(outside.value, CalendarGap)
    assert (pinned.last_day + timedelta(days=1)).isoformat() in str(outside.value)
    assert "超出本轮固定日历的范围" in str(outside.value)


def test_the_pinned_calendar_does_not_follow_the_package() -> None:
    """What a package upgrade would do: the round keeps answering from its own table."""
    pinned = pin_calendar(CAL, date(2025, 9, 1), date(2025, 12, 31))
    restored = PinnedCalendar.model_validate_json(pinned.model_dump_json())
    assert restored == pinned
    # A "newer package" that declares 9 Oct 2025 a holiday changes nothing pinned.
    newer = WorkingCalendar(extra_holidays=[date(2025, 10, 9)])
    assert not newer.is_workday(date(2025, 10, 9))
    assert restored.is_workday(date(2025, 10, 9))
    assert restored.add_working_days(date(2025, 9, 30), 1) == date(2025, 10, 9)
    # 9 Oct, 10 Oct and the make-up Saturday 11 Oct.
    assert restored.working_days_between(date(2025, 9, 30), date(2025, 10, 11)) == 3


def test_the_margin_stops_where_the_data_stops() -> None:
    # Kicked off in 2026 and ending in 2026: no margin reaches into 2027 (no data there).
    plan = _plan("2026-03-02", first={"duration": {"working_days": 10}})
    schedule = resolve_round(plan, plan.round("r"), datetime(2026, 8, 3, 9, tzinfo=SHANGHAI))
    assert schedule.calendar is not None
    assert schedule.calendar.last_day == date(2026, 12, 31)


def test_minute_plans_pin_nothing() -> None:
    plan = load_plan((ROOT / "plans" / "demo.yaml").read_text("utf-8"))
    schedule = resolve_round(plan, plan.round("demo"), datetime(2031, 2, 3, 10, tzinfo=SHANGHAI))
    assert schedule.calendar is None


def test_the_org_plan_carries_the_pinned_calendar() -> None:
    plan = _seed()
    round_plan = plan.round("round-1")
    schedule = resolve_round(plan, round_plan, datetime(2010, 5, 4, 9, tzinfo=SHANGHAI))
    org = Organisation(
        id="o1",
        name="东关村党支部",
        type=OrgType.RURAL,
        township="城关镇",
        system="rural",
        member_count=20,
        secretary="李明",
        instructor="张指导",
    )
    org_plan = build_org_plan(plan, round_plan, schedule, org, round_id="r1")
    assert org_plan.pinned_calendar == schedule.calendar


def test_an_extension_beyond_the_pinned_calendar_is_refused_naming_the_date() -> None:
    plan = _seed()
    schedule = resolve_round(plan, plan.round("round-1"), datetime(2010, 5, 4, 9, tzinfo=SHANGHAI))
    assert schedule.calendar is not None
    ladder = plan.ladder
    within = end_of_day(date(2011, 9, 30))
    check_deadline_in_calendar(schedule.calendar, ladder, within, field="new_deadline")
    beyond = end_of_day(schedule.calendar.last_day)
    with pytest.raises(DomainError) as refused:
        check_deadline_in_calendar(schedule.calendar, ladder, beyond, field="new_deadline")
    assert refused.value.field == "new_deadline"
    assert schedule.calendar.last_day.isoformat() in refused.value.reason
    assert "超出本轮日历范围" in refused.value.reason
    # An unpinned calendar (old workflows) is not checked here.
    check_deadline_in_calendar(CAL, ladder, beyond, field="new_deadline")


def test_reresolving_with_a_published_year_keeps_the_kickoff_date() -> None:
    plan = _seed()
    at = datetime(2026, 3, 2, 9, 30, tzinfo=SHANGHAI)
    with pytest.raises(CalendarGap):
        resolve_round(plan, plan.round("round-1"), at)
    published = load_calendar((ROOT / "plans/calendars/2027-provisional.yaml").read_text("utf-8"))
    schedule = reresolve_round(plan, plan.round("round-1"), at, published)
    assert schedule.starts_at == at
    assert schedule.calendar is not None and schedule.calendar.last_day.year == 2027
    assert deadline_day(schedule.windows[-1].deadline).year == 2027
    assert date(2027, 1, 1) in schedule.calendar.rest_days
