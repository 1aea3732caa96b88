"""The rule that keeps a round from starting in the past (``rounds.retroactive_start``), on
resolved schedules, no stack: a round that counts working days may start at any hour of
today in Asia/Shanghai but not on an earlier day (even with its first deadline ahead); a
minute-scale round may start minutes ago as long as no deadline has passed."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from chuangzheng.plans import check_kickoff, parse_plan
from chuangzheng.services.rounds import retroactive_start
from domain.calendar import SHANGHAI

PLANS = Path(__file__).resolve().parents[1] / "plans"
# seed-002 naming the provisional 2027 calendar and vouching for 2028 (weekends only), so a
# start in December 2026 resolves.
SEED = (PLANS / "seed-002.yaml").read_text("utf-8") + (
    "\ncalendar:\n  include: [2027-provisional]\n  supplied_years: [2028]\n"
)
DEMO = (PLANS / "demo.yaml").read_text("utf-8")
# 10:00 on a Wednesday in Shanghai.
NOW = datetime(2026, 12, 2, 10, 0, tzinfo=SHANGHAI)


def seed_round(starts_at: datetime) -> str | None:
    return retroactive_start(check_kickoff(parse_plan(SEED), "round-2", starts_at), NOW)


def demo_round(starts_at: datetime) -> str | None:
    return retroactive_start(check_kickoff(parse_plan(DEMO), "demo", starts_at), NOW)


def test_a_working_day_round_may_start_at_any_hour_of_today() -> None:
    midnight = datetime.combine(NOW.date(), time(0), SHANGHAI)
    assert seed_round(midnight) is None
    assert seed_round(NOW) is None
    assert seed_round(NOW + timedelta(days=3)) is None
    # Periods counted in days begin the next day: any hour of today gives the same deadlines.
    at_midnight = check_kickoff(parse_plan(SEED), "round-2", midnight)
    at_now = check_kickoff(parse_plan(SEED), "round-2", NOW)
    assert [w.deadline for w in at_midnight.windows] == [w.deadline for w in at_now.windows]


def test_a_working_day_round_may_not_start_on_an_earlier_day_even_with_its_deadline_ahead() -> None:
    yesterday_evening = datetime.combine(NOW.date() - timedelta(days=1), time(23, 59), SHANGHAI)
    schedule = check_kickoff(parse_plan(SEED), "round-2", yesterday_evening)
    assert min(w.deadline for w in schedule.windows) > NOW  # nothing due yet…
    # …but every window is a day short, and the pro-rata schedule already behind.
    assert seed_round(yesterday_evening) == "开始时间不能早于今天（2026-12-02）"
    # The day is Shanghai's: 16:30 UTC on 1 December is already 2 December there, 15:30 not.
    assert seed_round(datetime(2026, 12, 1, 16, 30, tzinfo=UTC)) is None
    assert seed_round(datetime(2026, 12, 1, 15, 30, tzinfo=UTC)) is not None


def test_a_minute_round_may_start_minutes_ago_while_no_deadline_has_passed() -> None:
    # The demo's first phase lasts four minutes.
    assert demo_round(NOW - timedelta(minutes=3)) is None
    reason = demo_round(NOW - timedelta(minutes=10))
    assert reason is not None
    assert reason.startswith(
        "开始时间过早：动员部署阶段的截止时间（2026-12-02 09:54）在启动时已经过去"
    )
    # The day rule is for rounds that count days: a minute round from last night is refused
    # for its deadlines, not its day.
    last_night = demo_round(NOW - timedelta(hours=12))
    assert last_night is not None and last_night.startswith("开始时间过早")
