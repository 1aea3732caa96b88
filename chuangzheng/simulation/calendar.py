"""Calendar supplements: extra calendar files merged into a plan, and years with no holiday
data vouched for as weekends-only (which only a simulation may do)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

from domain.calendar import CalendarGap, deadline_day
from domain.plan import CalendarPlan, CampaignPlan, RoundPlan
from domain.plan_loader import load_calendar, load_plan
from domain.schedule import RoundSchedule, is_rebased, resolve_schedule

from .model import SimulationError


def load_plan_files(plan_path: Path, calendar_paths: Iterable[Path] = ()) -> CampaignPlan:
    """Load a plan file with supplementary calendar files merged into its calendar.

    Raises :class:`domain.errors.PlanError` (field errors in Chinese) or ``OSError``.
    """
    supplement: CalendarPlan | None = None
    for path in calendar_paths:
        extra = load_calendar(path.read_text("utf-8"))
        supplement = extra if supplement is None else supplement.merged(extra)
    return load_plan(plan_path.read_text("utf-8"), supplement=supplement)


def resolve_with_gaps(
    plan: CampaignPlan,
    round_plan: RoundPlan,
    starts_at: datetime,
    *,
    fill_gaps: bool,
    warnings: list[str],
) -> tuple[CampaignPlan, RoundSchedule]:
    """The round's schedule from ``starts_at``; with ``fill_gaps``, a year with no holiday
    data is vouched for as weekends-only (and said so), which only a simulation may do."""
    filled: set[int] = set()
    while True:
        try:
            schedule = resolve_schedule(
                plan, round_plan, starts_at, rebased=is_rebased(round_plan, starts_at)
            )
            # The scripts act up to a few units past the ladder; make sure those days exist.
            calendar = plan.calendar.build()
            last = schedule.windows[-1].deadline
            calendar.is_workday(deadline_day(last) + timedelta(days=60))
            return plan, schedule
        except CalendarGap as gap:
            if not fill_gaps or gap.year in filled:
                raise SimulationError(f"{gap}（可用 --calendar 补充该年日历）") from None
            filled.add(gap.year)
            warnings.append(
                f"警告：{gap.year}年没有法定节假日与调休数据，本次模拟按“仅周末休息”处理该年；"
                f"正式开展前须在计划中补充该年日历。"
            )
            plan = plan.model_copy(
                update={"calendar": plan.calendar.merged(CalendarPlan(supplied_years=(gap.year,)))}
            )
