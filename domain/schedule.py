"""Resolve a round plan into concrete deadlines, and one organisation's own plan."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from domain.calendar import (
    PACKAGE_SOURCE,
    CalendarGap,
    OutsidePinnedCalendar,
    PinnedCalendar,
    Span,
    WorkingCalendar,
    deadline_day,
    deadline_wording,
    end_of_day,
    last_covered_day,
    local_date,
    pin_calendar,
    require_aware,
)
from domain.errors import DomainError, FieldError, PlanError
from domain.interning import intern
from domain.organisation import Organisation
from domain.phases import Phase
from domain.plan import CalendarPlan, CampaignPlan, LadderPlan, RoundPlan, StepPlan

_FROZEN = ConfigDict(frozen=True)

# How far the pinned table reaches past the last day the round can reach on its own plan
# (its last deadline, the ladder's climb and the rectification period): room for
# extensions without a calendar update. Half a year is far beyond any extension a county
# grants, and costs some ten dates more in every organisation's input. The margin never
# reaches into a year without data (that would be a guess); past the table, an extension
# is refused naming the date until the county office updates the round's calendar.
CALENDAR_MARGIN = timedelta(days=183)


class PhaseWindow(BaseModel):
    """When a phase opens and its (planned) deadline, as aware UTC instants."""

    model_config = _FROZEN

    phase: Phase
    opens_at: datetime
    deadline: datetime


class RoundSchedule(BaseModel):
    """Every phase's window for one round started at ``starts_at``, and the calendar it was
    computed with, pinned for the round's whole span (None: the round counts no days, e.g.
    a plan in minutes, or a schedule from before calendars were pinned)."""

    model_config = _FROZEN

    starts_at: datetime
    windows: tuple[PhaseWindow, ...]
    calendar: PinnedCalendar | None = None

    def window(self, phase: Phase) -> PhaseWindow:
        """The window of one phase."""
        return next(w for w in self.windows if w.phase is phase)


def _counts_days(plan: CampaignPlan, round_plan: RoundPlan) -> bool:
    """Whether any date of the round depends on the calendar (working days or dates)."""
    ladder = plan.ladder_for(round_plan)
    spans: list[Span] = [
        ladder.reminder_lead,
        ladder.blue_within,
        ladder.rectification_period,
        *(r.delay for r in ladder.rungs),
    ]
    for phase_plan in round_plan.phases:
        if phase_plan.deadline is not None:
            return True
        if phase_plan.duration is not None:
            spans.append(phase_plan.duration)
    return any(span.working_days is not None for span in spans)


def _windows(
    round_plan: RoundPlan, kicked_off_at: datetime, calendar: WorkingCalendar
) -> tuple[PhaseWindow, ...]:
    start_day = local_date(kicked_off_at)
    rebased = start_day != round_plan.starts_on
    windows: list[PhaseWindow] = []
    previous = kicked_off_at
    for index, phase_plan in enumerate(round_plan.phases):
        if phase_plan.deadline is not None:
            if rebased:
                raise PlanError(
                    [FieldError(f"phases[{index}].deadline", "使用绝对日期的计划不能改期开展")]
                )
            # Civil Code art. 203: a last day that is a statutory rest day moves to the
            # next working day (this also refuses a year with no data).
            deadline = end_of_day(calendar.add_working_days(phase_plan.deadline, 0))
        else:
            span = phase_plan.duration
            assert span is not None
            if span.minutes is not None:
                # Minute spans are not periods in days: they run from the instant.
                deadline = previous + timedelta(minutes=span.minutes)
            else:
                assert span.working_days is not None
                # Civil Code art. 201: a period counted in days starts on the day after
                # its start, whatever the hour. The first phase starts on the kick-off's
                # local date; a later one at the previous deadline, the end of day D, so
                # it counts from D + 1. Its last day ends at 24:00 (end_of_day).
                anchor = start_day if index == 0 else deadline_day(previous)
                deadline = end_of_day(calendar.add_working_days(anchor, span.working_days))
        if deadline <= previous:
            raise PlanError(
                [FieldError(f"phases[{index}].deadline", "截止时间必须晚于上一阶段的截止时间")]
            )
        windows.append(PhaseWindow(phase=phase_plan.phase, opens_at=previous, deadline=deadline))
        previous = deadline
    return tuple(windows)


def _ladder_end(ladder: LadderPlan, calendar: WorkingCalendar, deadline: datetime) -> datetime:
    """The last instant the ladder reaches for ``deadline``: the top rung, then the
    rectification order's own deadline."""
    top = calendar.after(deadline, ladder.rungs[-1].delay)
    return calendar.after(top, ladder.rectification_period)


def _describe(calendar: CalendarPlan) -> str:
    extra: list[str] = []
    if calendar.supplied_years:
        extra.append("years " + ",".join(str(y) for y in calendar.supplied_years))
    if calendar.holidays:
        extra.append(f"{len(calendar.holidays)} holidays")
    if calendar.workdays:
        extra.append(f"{len(calendar.workdays)} make-up days")
    return PACKAGE_SOURCE + (f" + plan ({'; '.join(extra)})" if extra else "")


def _pin(
    plan: CampaignPlan,
    round_plan: RoundPlan,
    windows: tuple[PhaseWindow, ...],
    kicked_off_at: datetime,
    calendar: WorkingCalendar,
) -> PinnedCalendar | None:
    if not _counts_days(plan, round_plan):
        return None  # nothing in this round ever consults the calendar
    ladder = plan.ladder_for(round_plan)
    # From the kick-off, or earlier when the first phase's reminder or blue light falls
    # before it (a short first phase).
    lead = max(ladder.reminder_lead.working_days or 0, ladder.blue_within.working_days or 0)
    first = min(
        local_date(kicked_off_at),
        calendar.subtract_working_days(deadline_day(windows[0].deadline), lead),
    )
    needed = deadline_day(_ladder_end(ladder, calendar, windows[-1].deadline))
    last = max(needed, last_covered_day(calendar, needed, needed + CALENDAR_MARGIN))
    return pin_calendar(calendar, first, last, source=_describe(plan.calendar))


def resolve_round(
    plan: CampaignPlan,
    round_plan: RoundPlan,
    kicked_off_at: datetime,
    *,
    calendar: WorkingCalendar | None = None,
) -> RoundSchedule:
    """The one resolution of a round's schedule, used by the workflow, the API, the CLI's
    ``validate-plan`` and the simulation.

    Periods follow the Civil Code (arts. 201, 203): they are counted from the kick-off's
    local DATE, never its hour, so a kick-off at 00:00, 09:00 or 23:59 on a day gives the
    same deadlines; each deadline is the end (24:00, Asia/Shanghai) of its last day; an
    absolute deadline on a rest day moves to the next working day. A kick-off on another
    date than ``round_plan.starts_on`` re-bases the round, which only plans written in
    durations allow. The result carries the calendar pinned for the round's whole span
    (see :data:`CALENDAR_MARGIN`). ``calendar`` overrides the plan's own (package data
    plus the plan's supplements), e.g. to re-resolve with newly published data.

    Raises :class:`CalendarGap` when a deadline, or the ladder after the last one, falls
    in a year with no holiday data, and :class:`PlanError` for an impossible schedule.
    """
    require_aware(kicked_off_at)
    source = calendar if calendar is not None else plan.calendar.build()
    windows = _windows(round_plan, kicked_off_at, source)
    return RoundSchedule(
        starts_at=kicked_off_at,
        windows=windows,
        calendar=_pin(plan, round_plan, windows, kicked_off_at, source),
    )


def resolve_windows(
    round_plan: RoundPlan, kicked_off_at: datetime, calendar: WorkingCalendar
) -> tuple[PhaseWindow, ...]:
    """The phases' windows alone, by the rules of :func:`resolve_round`, with nothing
    pinned: a running round's new plan version (``domain.plan_version``) is resolved with
    the calendar the round has pinned, so the round keeps it."""
    require_aware(kicked_off_at)
    return _windows(round_plan, kicked_off_at, calendar)


def reresolve_round(
    plan: CampaignPlan,
    round_plan: RoundPlan,
    kicked_off_at: datetime,
    published: CalendarPlan,
) -> RoundSchedule:
    """The round's schedule again, from the same kick-off date, with newly published
    calendar data (e.g. the State Council's notice for a new year) added to the plan's:
    what a calendar update (``domain.actions.CalendarUpdate``) carries to every
    organisation. Raises like :func:`resolve_round`."""
    updated = plan.model_copy(update={"calendar": plan.calendar.merged(published)})
    return resolve_round(updated, round_plan, kicked_off_at)


def resolve_schedule(
    plan: CampaignPlan, round_plan: RoundPlan, starts_at: datetime, *, rebased: bool = False
) -> RoundSchedule:
    """Kept for existing callers: :func:`resolve_round`. ``rebased`` is no longer needed
    (the kick-off's date decides) and is ignored."""
    del rebased
    return resolve_round(plan, round_plan, starts_at)


#: The furthest an extension moves a deadline. A round runs a year or two; an extension of
#: more than a year is a typing mistake (9999-12-31), and the ladder's rung times counted from
#: such a deadline overflow the calendar, which left the workflow unable to run a task.
MAX_EXTENSION = timedelta(days=366)


def check_extension_reach(current: datetime, new_deadline: datetime, *, field: str) -> None:
    """Refuse a new deadline more than :data:`MAX_EXTENSION` after ``current`` (the deadline
    it replaces), naming the latest one allowed in Asia/Shanghai."""
    if new_deadline - current > MAX_EXTENSION:
        latest = deadline_day(current + MAX_EXTENSION)
        raise DomainError(
            f"延期过长：新的截止时间不能晚于原截止时间一年以上（最晚 {latest.isoformat()}）",
            code="invalid_deadline",
            field=field,
        )


def check_extended_deadline(
    deadlines: Sequence[tuple[Phase, datetime]], phase: Phase, new_deadline: datetime, *, field: str
) -> None:
    """Refuse an extension of ``phase`` to ``new_deadline`` that does not move it later, moves
    it by more than :data:`MAX_EXTENSION`, or reaches the next phase's deadline (the next phase
    would open already overdue and climb the ladder at once). ``deadlines``: every phase's
    current deadline, in order (extensions included)."""
    current = dict(deadlines)
    if phase not in current:
        return
    if new_deadline <= current[phase]:
        raise DomainError(
            f"新的截止时间必须晚于{phase.label}阶段当前的截止时间"
            f"（{deadline_wording(current[phase], '%Y-%m-%d')}）",
            code="invalid_deadline",
            field=field,
        )
    check_extension_reach(current[phase], new_deadline, field=field)
    order = [p for p, _ in deadlines]
    following = order[order.index(phase) + 1 :]
    if following and new_deadline >= current[following[0]]:
        nxt = following[0]
        asked, next_deadline = (
            deadline_wording(d, "%Y-%m-%d") for d in (new_deadline, current[nxt])
        )
        raise DomainError(
            f"延期后{phase.label}阶段的截止时间（{asked}）"
            f"将不早于下一阶段{nxt.label}的截止时间（{next_deadline}），"
            "下一阶段一开始就会逾期：请缩短延期，或先调整本轮计划中后续阶段的时限",
            code="invalid_deadline",
            field=field,
        )


def check_deadline_in_calendar(
    calendar: WorkingCalendar, ladder: LadderPlan | None, deadline: datetime, *, field: str
) -> None:
    """Refuse a (new) deadline whose ladder would run past a pinned calendar, naming the
    date, so an extension never leaves a workflow with timers it cannot compute. Without a
    ladder (the round workflow holds none: each organisation checks its own) only the
    deadline's day is checked."""
    if not isinstance(calendar, PinnedCalendar):
        return
    day = deadline_day(deadline)
    try:
        calendar.require(day)
        if ladder is not None:
            _ladder_end(ladder, calendar, deadline)
    except OutsidePinnedCalendar:
        raise DomainError(
            f"截止日期 {day.isoformat()} 连同其后的督办和整改期限超出本轮日历范围"
            f"（{calendar.first_day.isoformat()}至{calendar.last_day.isoformat()}），"
            "请先由县委活动办更新本轮日历",
            code="invalid_deadline",
            field=field,
        ) from None


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
    # The round's calendar pinned at kick-off; None in plans built before calendars were
    # pinned (their workflows keep computing from ``calendar`` and the installed package).
    pinned_calendar: PinnedCalendar | None = None

    @field_validator("phases", mode="after")
    @classmethod
    def _shared_phases(cls, phases: tuple[OrgPhasePlan, ...]) -> tuple[OrgPhasePlan, ...]:
        """Every organisation of a round (of a type) has the same windows and steps: one
        shared copy per worker process instead of one per cached workflow
        (:mod:`domain.interning`)."""
        return tuple(intern(p) for p in phases)

    @field_validator("ladder", "calendar", "pinned_calendar", mode="after")
    @classmethod
    def _shared_part(cls, part: Any) -> Any:
        """The round's ladder and calendars, shared likewise."""
        return intern(part) if part is not None else None

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
    """The organisation's own plan: its type's steps (分类指导), those of a 少数民族聚居地区
    when the roster flags it, and the round's deadlines."""
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
                steps=round_plan.phase(w.phase).steps_for(
                    organisation.type, ethnic_area=organisation.ethnic_area
                ),
            )
            for w in schedule.windows
        ),
        ladder=plan.ladder_for(round_plan),
        calendar=plan.calendar,
        pinned_calendar=schedule.calendar,
    )


def is_rebased(round_plan: RoundPlan, starts_at: datetime) -> bool:
    """Whether a kick-off at ``starts_at`` moves the round off its planned start date."""
    return local_date(starts_at) != round_plan.starts_on


__all__ = [
    "CALENDAR_MARGIN",
    "CalendarGap",
    "OrgPhasePlan",
    "OrgPlan",
    "PhaseWindow",
    "RoundSchedule",
    "build_org_plan",
    "check_deadline_in_calendar",
    "is_rebased",
    "reresolve_round",
    "resolve_round",
    "resolve_schedule",
    "resolve_windows",
]
