"""Calendar supplements: calendar files chosen explicitly (``--calendar``, or named by the
plan's ``calendar.include``) merged into a plan, and years with no holiday data vouched for
as weekends-only (which only a simulation may do)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

from chuangzheng.settings import repo_root
from domain.calendar import CalendarGap, deadline_day
from domain.plan import CalendarPlan, CampaignPlan, RoundPlan
from domain.plan_loader import load_calendar, load_plan
from domain.schedule import RoundSchedule, resolve_round

from .model import SimulationError


def load_plan_files(plan_path: Path, calendar_paths: Iterable[Path] = ()) -> CampaignPlan:
    """Load a plan file with the calendar files given (``--calendar``) merged into its
    calendar, and those it names in ``calendar.include`` (from ``plans/calendars/``).

    Raises :class:`domain.errors.PlanError` (field errors in Chinese) or ``OSError``.
    """
    supplement: CalendarPlan | None = None
    for path in calendar_paths:
        extra = load_calendar(path.read_text("utf-8"))
        supplement = extra if supplement is None else supplement.merged(extra)
    return load_plan(
        plan_path.read_text("utf-8"), supplement=supplement, calendars=calendar_library()
    )


def calendar_library() -> dict[str, CalendarPlan]:
    """The shipped supplementary calendars a plan may name in ``calendar.include``."""
    return {
        path.stem: load_calendar(path.read_text("utf-8"))
        for path in sorted((repo_root() / "plans" / "calendars").glob("*.yaml"))
    }


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
            schedule = resolve_round(plan, round_plan, starts_at)
            # The scripts act up to a few units past the ladder; make sure those days have
            # data (the pinned calendar's margin then reaches them too: it runs on as far
            # as data exists, up to half a year past the ladder).
            last = schedule.windows[-1].deadline
            plan.calendar.build().is_workday(deadline_day(last) + timedelta(days=60))
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
