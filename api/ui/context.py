"""What pages need about a round besides the status rows: which round, its plan (cached per
plan text), its schedule (the timeline), rung names and working days overdue."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from sqlalchemy import select
from sqlalchemy.orm import Session

from activities.digests import working_days_overdue
from activities.tables import RoundDefinitionRow, RoundRow
from api.errors import not_found
from api.plans import parse_plan
from domain.calendar import CalendarGap
from domain.errors import DomainError
from domain.organisation import OrgType
from domain.phases import Phase
from domain.plan import CalendarPlan, CampaignPlan, RoundPlan, StepPlan
from domain.schedule import PhaseWindow, is_rebased, resolve_schedule


@dataclass(frozen=True)
class RoundInfo:
    """A round as pages show it: its row, plan and resolved phase windows (when known)."""

    row: RoundRow
    plan: CampaignPlan | None
    round_plan: RoundPlan | None
    windows: tuple[PhaseWindow, ...]

    @property
    def round_id(self) -> str:
        return self.row.round_id

    def rung_name(self, rung: int | None) -> str:
        """The ladder rung's Chinese name (rungs count from 0)."""
        if rung is None:
            return ""
        if self.plan is None or self.round_plan is None:
            return f"第{rung + 1}级督办"
        rungs = self.plan.ladder_for(self.round_plan).rungs
        return rungs[rung].name if 0 <= rung < len(rungs) else f"第{rung + 1}级督办"

    def step_name(self, step_id: str | None) -> str:
        """A step's Chinese name in the round's plan (any phase, any organisation type), or
        the id when the plan is not known or has no such step."""
        if not step_id:
            return ""
        if self.round_plan is not None:
            for phase in self.round_plan.phases:
                extra = [s for steps in phase.extra_steps.values() for s in steps]
                for step in (*phase.steps, *extra, *phase.ethnic_area_steps):
                    if step.id == step_id:
                        return step.name
        return step_id

    def rung_names(self) -> list[tuple[int, str]]:
        """Every rung of the round's ladder."""
        if self.plan is None or self.round_plan is None:
            return []
        return [(i, r.name) for i, r in enumerate(self.plan.ladder_for(self.round_plan).rungs)]

    def steps(
        self, phase: Phase, org_type: OrgType, *, ethnic_area: bool = False
    ) -> tuple[StepPlan, ...]:
        """The steps (with evidence fields) an organisation of ``org_type`` has in ``phase``
        (with those of a 少数民族聚居地区 when ``ethnic_area``)."""
        if self.round_plan is None or phase is Phase.COMPLETED:
            return ()
        return self.round_plan.phase(phase).steps_for(org_type, ethnic_area=ethnic_area)

    def field_labels(self) -> dict[str, str]:
        """Evidence field names to their Chinese labels, over every step of the round."""
        if self.round_plan is None:
            return {}
        labels: dict[str, str] = {}
        for phase in self.round_plan.phases:
            extra = [s for steps in phase.extra_steps.values() for s in steps]
            for step in (*phase.steps, *extra, *phase.ethnic_area_steps):
                labels.update({f.name: f.label for f in step.evidence})
        return labels

    @property
    def calendar(self) -> CalendarPlan:
        # Without a plan: the package's calendar alone (a gap year counts weekends only).
        return self.plan.calendar if self.plan is not None else CalendarPlan()


@lru_cache(maxsize=32)
def _plan(text: str) -> CampaignPlan | None:
    try:
        return parse_plan(text)
    except (DomainError, ValueError):
        return None


@lru_cache(maxsize=64)
def _windows(text: str, round_plan_id: str, starts_at: datetime) -> tuple[PhaseWindow, ...]:
    plan = _plan(text)
    if plan is None:
        return ()
    round_plan = plan.round(round_plan_id)
    try:
        schedule = resolve_schedule(
            plan, round_plan, starts_at, rebased=is_rebased(round_plan, starts_at)
        )
    except (CalendarGap, DomainError):
        return ()  # the pages show deadlines from the status rows instead
    return schedule.windows


def rounds(session: Session, counties: Collection[str] | None) -> list[RoundRow]:
    """Every round of ``counties`` (None: of every county), newest first (rounds are
    county-wide; scope applies to organisations)."""
    query = select(RoundRow).order_by(RoundRow.starts_at.desc())
    if counties is not None:
        query = query.where(RoundRow.county.in_(sorted(counties)))
    return list(session.scalars(query).all())


def round_info(
    session: Session, round_id: str | None, counties: Collection[str] | None
) -> RoundInfo | None:
    """The named round (404 if unknown or of another county than ``counties``), else the
    newest running round of ``counties``, else None."""
    if round_id:
        row = session.get(RoundRow, round_id)
        if row is None or (counties is not None and row.county not in counties):
            raise not_found("没有该轮次")
    else:
        listed = rounds(session, counties)
        running = [r for r in listed if r.status == "running"]
        if not listed:
            return None
        row = (running or listed)[0]
    definition = session.get(RoundDefinitionRow, row.round_id)
    if definition is None:
        return RoundInfo(row=row, plan=None, round_plan=None, windows=())
    plan = _plan(definition.plan_yaml)
    round_plan = plan.round(definition.round_plan_id) if plan is not None else None
    starts_at = definition.starts_at or row.starts_at
    windows = _windows(definition.plan_yaml, definition.round_plan_id, starts_at)
    return RoundInfo(row=row, plan=plan, round_plan=round_plan, windows=windows)


class Overdue:
    """Working days overdue on the round's calendar, memoised per deadline (a county's
    laggards share a handful of deadlines)."""

    def __init__(self, calendar: CalendarPlan, now: datetime) -> None:
        self._calendar = calendar
        self._now = now
        self._memo: dict[datetime, int] = {}

    def __call__(self, deadline: datetime | None, overdue: bool) -> int:
        if deadline is None or not overdue:
            return 0
        if deadline not in self._memo:
            self._memo[deadline] = working_days_overdue(self._calendar, deadline, self._now)
        return self._memo[deadline]
