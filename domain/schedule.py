"""Resolve a round plan into concrete deadlines, and one organisation's own plan."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from domain.calendar import CalendarGap, end_of_day, local_date, require_aware
from domain.errors import FieldError, PlanError
from domain.organisation import Organisation
from domain.phases import Phase
from domain.plan import CalendarPlan, CampaignPlan, LadderPlan, RoundPlan, StepPlan

_FROZEN = ConfigDict(frozen=True)


class PhaseWindow(BaseModel):
    """When a phase opens and its (planned) deadline, as aware UTC instants."""

    model_config = _FROZEN

    phase: Phase
    opens_at: datetime
    deadline: datetime


class RoundSchedule(BaseModel):
    """Every phase's window for one round started at ``starts_at``."""

    model_config = _FROZEN

    starts_at: datetime
    windows: tuple[PhaseWindow, ...]

    def window(self, phase: Phase) -> PhaseWindow:
        """The window of one phase."""
        return next(w for w in self.windows if w.phase is phase)


def resolve_schedule(
    plan: CampaignPlan, round_plan: RoundPlan, starts_at: datetime, *, rebased: bool = False
) -> RoundSchedule:
    """Deadlines for every phase. ``rebased``: the round starts on another date than planned,
    which only plans written in durations allow. Raises :class:`CalendarGap` when a deadline,
    or the ladder after the last one, falls in a year with no holiday data."""
    require_aware(starts_at)
    calendar = plan.calendar.build()
    ladder = plan.ladder_for(round_plan)
    windows: list[PhaseWindow] = []
    previous = starts_at
    for index, phase_plan in enumerate(round_plan.phases):
        if phase_plan.deadline is not None:
            if rebased:
                raise PlanError(
                    [FieldError(f"phases[{index}].deadline", "使用绝对日期的计划不能改期开展")]
                )
            calendar.is_workday(phase_plan.deadline)  # refuses a year with no data
            deadline = end_of_day(phase_plan.deadline)
        else:
            assert phase_plan.duration is not None
            deadline = calendar.deadline_after(previous, phase_plan.duration)
        if deadline <= previous:
            raise PlanError(
                [FieldError(f"phases[{index}].deadline", "截止时间必须晚于上一阶段的截止时间")]
            )
        windows.append(PhaseWindow(phase=phase_plan.phase, opens_at=previous, deadline=deadline))
        previous = deadline
    # The ladder climbs past the last deadline; its dates need holiday data too.
    top = calendar.after(previous, ladder.rungs[-1].delay)
    calendar.after(top, ladder.rectification_period)
    return RoundSchedule(starts_at=starts_at, windows=tuple(windows))


class OrgPhasePlan(BaseModel):
    """One phase as one organisation runs it: its window and its own steps."""

    model_config = _FROZEN

    phase: Phase
    opens_at: datetime
    deadline: datetime
    steps: tuple[StepPlan, ...]


class OrgPlan(BaseModel):
    """Everything one organisation's workflow needs from the plan, resolved and small."""

    model_config = _FROZEN

    campaign_id: str
    round_id: str
    round_name: str
    organisation: Organisation
    phases: tuple[OrgPhasePlan, ...]
    ladder: LadderPlan
    calendar: CalendarPlan

    def phase(self, phase: Phase) -> OrgPhasePlan:
        """The plan of one phase."""
        return next(p for p in self.phases if p.phase is phase)


def build_org_plan(
    plan: CampaignPlan,
    round_plan: RoundPlan,
    schedule: RoundSchedule,
    organisation: Organisation,
    *,
    round_id: str,
) -> OrgPlan:
    """The organisation's own plan: its type's steps (分类指导) and the round's deadlines."""
    return OrgPlan(
        campaign_id=plan.id,
        round_id=round_id,
        round_name=round_plan.name,
        organisation=organisation,
        phases=tuple(
            OrgPhasePlan(
                phase=w.phase,
                opens_at=w.opens_at,
                deadline=w.deadline,
                steps=round_plan.phase(w.phase).steps_for(organisation.type),
            )
            for w in schedule.windows
        ),
        ladder=plan.ladder_for(round_plan),
        calendar=plan.calendar,
    )


def is_rebased(round_plan: RoundPlan, starts_at: datetime) -> bool:
    """Whether a kick-off at ``starts_at`` moves the round off its planned start date."""
    return local_date(starts_at) != round_plan.starts_on


__all__ = [
    "CalendarGap",
    "OrgPhasePlan",
    "OrgPlan",
    "PhaseWindow",
    "RoundSchedule",
    "build_org_plan",
    "is_rebased",
    "resolve_schedule",
]
