"""A whole campaign round over a county roster, played in virtual time.

:func:`simulate` starts the time-skipping Temporal test server, a throw-away SQLite read
model and the project's real worker, kicks the round off through ``CampaignRoundWorkflow``
and then plays every organisation with a seeded behaviour mix: most are punctual, some
finish a few working days late, some only move after the rectification order (整改通知),
a few have a submission returned once, and one may get an approved extension. Virtual time
is driven by this module (``env.sleep`` from one planned action to the next), so the
ladder's timers fire exactly as they would in a real round, only faster.

Everything an organisation does is planned before the round starts (:class:`OrgScript`),
which is what makes the run reproducible and lets the report say what *should* have
happened next to what the workflows recorded.

The time-skipping server's clock runs at wall-clock speed between sleeps, so every planned
action keeps a margin from deadlines and ladder timers (see :class:`_Timing`).
"""

from __future__ import annotations

import asyncio
import bisect
import csv
import random
import tempfile
import time as wallclock
import unicodedata
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Engine, event, func, select
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from activities.db import create_schema, make_engine, session_factory
from activities.roster_files import read_roster_file
from activities.tables import NoticeRow
from chuangzheng.sample_evidence import sample_evidence
from chuangzheng.settings import repo_root
from chuangzheng.temporal_server import start_time_skipping_env
from domain.actions import (
    AcknowledgeEscalation,
    CloseRound,
    DecideExtension,
    DecideSubmission,
    RecheckRectification,
    ReportRectification,
    RequestExtension,
    SubmitEvidence,
)
from domain.calendar import (
    SHANGHAI,
    CalendarGap,
    WorkingCalendar,
    deadline_day,
    end_of_day,
    local_date,
)
from domain.campaign import CampaignStatus
from domain.notices import NoticeKind
from domain.organisation import Organisation, Role
from domain.phases import WORKING_PHASES, Phase
from domain.plan import CalendarPlan, CampaignPlan, LadderPlan, RoundPlan
from domain.plan_loader import load_calendar, load_plan
from domain.roster_import import ROSTER_HEADERS, organisation_row
from domain.schedule import OrgPlan, RoundSchedule, build_org_plan, is_rebased, resolve_schedule
from domain.state import Actor, Outcome
from worker import build_worker
from workflows.contracts import CampaignResult, RoundInput, RoundKickoff, RoundProgress
from workflows.ids import organisation_workflow_id, round_workflow_id
from workflows.organisation import OrganisationCampaignWorkflow
from workflows.round import CampaignRoundWorkflow

DEFAULT_PLAN = repo_root() / "plans" / "seed-002.yaml"
DEFAULT_ROSTER = repo_root() / "deploy" / "demo" / "roster.csv"
#: seed-002 re-based to today runs into 2027, which only the provisional calendar covers.
DEFAULT_CALENDARS: tuple[Path, ...] = (
    repo_root() / "plans" / "calendars" / "2027-provisional.yaml",
)

#: Organisations act at 10:00 local on working days: after the 09:00 reminders, well before
#: the end-of-day deadlines and rungs, so an action never races a timer.
OFFICE_TIME = time(10, 0)
#: The step of minute-scale plans. The server's clock runs in real time while updates are
#: being sent, so actions keep at least one step away from any deadline or rung.
MINUTE_STEP = timedelta(seconds=20)
#: How many organisations act at once at one stop (each sends its updates in order).
DEFAULT_CONCURRENCY = 48
#: No update is sent this close before a workflow timer fires, nor this soon after it
#: (see :class:`_TimerGuard`); the "after" margin also covers timers set a moment late.
TIMER_GUARD_BEFORE = timedelta(seconds=8)
TIMER_GUARD_AFTER = timedelta(seconds=3)
#: Real seconds to wait for the organisations' last progress reports to reach the round.
REPORT_PATIENCE = 60.0
#: Real time allowed for the round and every organisation workflow to end at the close.
FINISH_TIMEOUT = timedelta(minutes=3)

COUNTY = Actor(user="county", name="县委创先争优活动领导小组办公室", role=Role.COUNTY_OFFICE)

OUTCOME_LABELS: dict[Outcome, str] = {
    Outcome.ON_TIME: "按时完成",
    Outcome.LATE: "逾期完成",
    Outcome.AFTER_RECTIFICATION: "整改后完成",
}


# ----- the behaviour mix ---------------------------------------------------------------------
class Behaviour(StrEnum):
    """How an organisation goes about the round as a whole."""

    PUNCTUAL = "punctual"
    LATE = "late"
    LAGGARD = "laggard"
    RETURNED = "returned"
    EXTENSION = "extension"

    @property
    def label(self) -> str:
        """Chinese label."""
        return {
            "punctual": "按时",
            "late": "逾期",
            "laggard": "整改",
            "returned": "退回重交",
            "extension": "获批延期",
        }[self.value]


class Conduct(StrEnum):
    """What an organisation does in one phase."""

    ON_TIME = "on_time"  # submits everything some days before the deadline
    RETURNED_ONCE = "returned_once"  # one submission is returned, resubmitted the next day
    EXTENDED = "extended"  # asks for a later deadline, gets it, finishes before it
    LATE = "late"  # finishes a few working days late, before the top rung
    LAGGARD = "laggard"  # moves only after the rectification order, then rectifies


class BehaviourMix(BaseModel):
    """Shares of the non-punctual behaviours (the rest are punctual) and the extensions."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    late: float = Field(default=0.15, ge=0, le=1)
    laggard: float = Field(default=0.10, ge=0, le=1)
    returned: float = Field(default=0.08, ge=0, le=1)
    extensions: int = Field(default=1, ge=0)

    @model_validator(mode="after")
    def _fits(self) -> BehaviourMix:
        if self.late + self.laggard + self.returned > 1:
            raise ValueError("逾期、整改、退回重交的比例之和不能超过 1")
        return self

    def counts(self, total: int) -> dict[Behaviour, int]:
        """How many organisations of ``total`` behave each way (rounded, never over total)."""
        counts = {
            Behaviour.LATE: round(total * self.late),
            Behaviour.LAGGARD: round(total * self.laggard),
            Behaviour.RETURNED: round(total * self.returned),
        }
        counts[Behaviour.EXTENSION] = min(self.extensions, max(0, total - sum(counts.values())))
        counts[Behaviour.PUNCTUAL] = max(0, total - sum(counts.values()))
        return counts


class ActionKind(StrEnum):
    """One visit of an organisation's people to the system."""

    FINISH = "finish"  # submit every required step still open and have it accepted
    SUBMIT_RETURNED = "submit_returned"  # submit everything; the first step is returned
    REQUEST_EXTENSION = "request_extension"  # ask for a later deadline; the instructor agrees
    RECTIFY = "rectify"  # finish the steps, report rectification, pass the re-check


class PlannedAction(BaseModel):
    """An action at a virtual instant."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    phase: Phase
    kind: ActionKind
    new_deadline: datetime | None = None


class OrgScript(BaseModel):
    """What one organisation will do in the round, decided before it starts."""

    model_config = ConfigDict(frozen=True)

    org_id: str
    behaviour: Behaviour
    conduct: dict[Phase, Conduct]
    # Rungs expected to fire per phase (late: those passed before finishing; laggard: all).
    rungs_expected: dict[Phase, int]
    actions: tuple[PlannedAction, ...]

    def expected_outcome(self, phase: Phase) -> Outcome:
        """The outcome the workflows should record for ``phase``."""
        conduct = self.conduct[phase]
        if conduct is Conduct.LATE:
            return Outcome.LATE
        if conduct is Conduct.LAGGARD:
            return Outcome.AFTER_RECTIFICATION
        return Outcome.ON_TIME


# ----- the report ----------------------------------------------------------------------------
class PhaseOutcomes(BaseModel):
    """How the organisations ended one phase."""

    model_config = ConfigDict(frozen=True)

    phase: Phase
    on_time: int = 0
    late: int = 0
    after_rectification: int = 0
    unfinished: int = 0

    @property
    def finished(self) -> int:
        """Organisations that completed the phase, however."""
        return self.on_time + self.late + self.after_rectification


class NoticeCount(BaseModel):
    """Notices of one kind (and rung) sent to one kind of recipient in one phase."""

    model_config = ConfigDict(frozen=True)

    phase: Phase
    kind: NoticeKind
    rung: int | None
    recipient_role: Role
    label: str
    count: int


class SimulationReport(BaseModel):
    """What a simulated round did: outcomes per phase, notices per rung, timings."""

    model_config = ConfigDict(frozen=True)

    plan_id: str
    plan_name: str
    round_plan_id: str
    round_name: str
    round_id: str
    seed: int
    mix: BehaviourMix
    organisations: int
    behaviours: dict[Behaviour, int]
    started_at: datetime
    finished_at: datetime
    wall_seconds: float
    stops: int
    updates: int
    # The latest an action was sent after its planned instant (virtual seconds).
    max_drift_seconds: float
    # How often updates were held back while a workflow timer fired.
    timer_waits: int
    all_completed: bool
    closed_early: bool
    final_phases: dict[Phase, int]
    outcomes: list[PhaseOutcomes]
    expected_outcomes: list[PhaseOutcomes]
    notices: list[NoticeCount]
    rung_names: list[str]
    scripts: list[OrgScript]
    failures: list[str]
    warnings: list[str]

    @property
    def virtual_span(self) -> timedelta:
        """Virtual time from the kick-off to the end of the round."""
        return self.finished_at - self.started_at

    def outcome(self, phase: Phase) -> PhaseOutcomes:
        """The outcomes of one phase."""
        return next(o for o in self.outcomes if o.phase is phase)

    def notice_total(
        self,
        *,
        kind: NoticeKind | None = None,
        rung: int | None = None,
        phase: Phase | None = None,
        recipient_role: Role | None = None,
    ) -> int:
        """Notices matching every filter given."""
        return sum(
            n.count
            for n in self.notices
            if (kind is None or n.kind is kind)
            and (rung is None or n.rung == rung)
            and (phase is None or n.phase is phase)
            and (recipient_role is None or n.recipient_role is recipient_role)
        )

    def conduct_count(self, phase: Phase, conduct: Conduct) -> int:
        """How many organisations were scripted to behave ``conduct`` in ``phase``."""
        return sum(1 for s in self.scripts if s.conduct[phase] is conduct)


class SimulationError(RuntimeError):
    """The simulation could not run (bad plan, roster or calendar): the message is Chinese."""


class SimulationStalled(SimulationError):
    """The round's workflows did not end in time (the servers were shut down regardless)."""


# ----- loading inputs ------------------------------------------------------------------------
def load_plan_files(plan_path: Path, calendar_paths: Iterable[Path] = ()) -> CampaignPlan:
    """Load a plan file with supplementary calendar files merged into its calendar.

    Raises :class:`domain.errors.PlanError` (field errors in Chinese) or ``OSError``.
    """
    supplement: CalendarPlan | None = None
    for path in calendar_paths:
        extra = load_calendar(path.read_text("utf-8"))
        supplement = extra if supplement is None else supplement.merged(extra)
    return load_plan(plan_path.read_text("utf-8"), supplement=supplement)


def _write_roster(organisations: Sequence[Organisation], path: Path) -> None:
    """A roster CSV of exactly these organisations (what the round workflow will read)."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(ROSTER_HEADERS))
        writer.writeheader()
        for org in organisations:
            writer.writerow(organisation_row(org))


# ----- virtual time arithmetic ---------------------------------------------------------------
class _Timing:
    """Action instants in the plan's own unit: a working day (at 10:00) or a 20-second step.

    ``before(D, k)`` is k units before deadline D, ``after(D, u)`` u units after it. On the
    working-day ladder, acting on day u after the deadline day is after every rung with a
    delay below u and before the others (rungs fire at the end of a day). On a minute
    ladder, instants that coincide with a timer are avoided.
    """

    def __init__(self, ladder: LadderPlan, calendar: WorkingCalendar) -> None:
        self.calendar = calendar
        self.in_minutes = ladder.rungs[0].delay.minutes is not None
        self.rung_units = [self._units(r.delay.minutes, r.delay.working_days) for r in ladder.rungs]
        self.top_units = self.rung_units[-1]
        self.reminder_units = self._units(
            ladder.reminder_lead.minutes, ladder.reminder_lead.working_days
        )
        self.rectification_units = self._units(
            ladder.rectification_period.minutes, ladder.rectification_period.working_days
        )
        # Units an on-time finish keeps before its deadline (the clock runs during updates).
        self.margin = 2 if self.in_minutes else 0

    def _units(self, minutes: int | None, working_days: int | None) -> int:
        if minutes is not None:
            return minutes * 60 // int(MINUTE_STEP.total_seconds())
        assert working_days is not None
        return working_days

    def _office(self, day: date) -> datetime:
        return datetime.combine(day, OFFICE_TIME, SHANGHAI)

    def before(self, deadline: datetime, units: int) -> datetime:
        """``units`` before a deadline (0: 10:00 on the deadline day)."""
        if self.in_minutes:
            return deadline - units * MINUTE_STEP
        day = self.calendar.subtract_working_days(deadline_day(deadline), units)
        return self._office(day)

    def after(self, deadline: datetime, units: int) -> datetime:
        """``units`` (>= 1) after a deadline."""
        if self.in_minutes:
            return deadline + units * MINUTE_STEP
        return self._office(self.calendar.add_working_days(deadline_day(deadline), units))

    def next_unit(self, moment: datetime) -> datetime:
        """One unit after ``moment`` (the next working day at 10:00)."""
        if self.in_minutes:
            return moment + MINUTE_STEP
        return self._office(self.calendar.add_working_days(local_date(moment), 1))

    def latest_on_time(self, deadline: datetime) -> datetime:
        """The last instant an on-time action may be planned for."""
        return self.before(deadline, self.margin)

    def extended_deadline(self, deadline: datetime) -> datetime:
        """A deadline beyond where the top rung would have fired, with room to finish."""
        if self.in_minutes:
            return deadline + (self.top_units + 3) * MINUTE_STEP
        return end_of_day(
            self.calendar.add_working_days(deadline_day(deadline), self.top_units + 4)
        )

    def rungs_fired_by(self, units_after: int) -> int:
        """Rungs that have fired when acting ``units_after`` units after the deadline."""
        return sum(1 for r in self.rung_units if r < units_after)

    def clashes(self, moment: datetime, deadline: datetime) -> bool:
        """Whether ``moment`` falls on one of the phase's timers (only possible in minutes)."""
        if not self.in_minutes:
            return False
        timers = {self.before(deadline, self.reminder_units), deadline}
        timers |= {deadline + r * MINUTE_STEP for r in self.rung_units}
        return moment in timers

    def late_choices(self) -> list[int]:
        """Units after the deadline at which a late finisher passes some but not all rungs,
        keeping a unit clear of the next rung."""
        choices = []
        for units in range(1, self.top_units + 1):
            fired = self.rungs_fired_by(units)
            if not 1 <= fired < len(self.rung_units):
                continue
            next_rung = self.rung_units[fired]
            if self.in_minutes and next_rung - units < 2:
                continue
            choices.append(units)
        return choices


#: Conducts an organisation may show in more than one phase.
_SLIPS = (Conduct.LATE, Conduct.LAGGARD)


class _Scripter:
    """Plans each organisation's actions from its behaviour and the round's deadlines."""

    def __init__(
        self, timing: _Timing, schedule: RoundSchedule, rng: random.Random, starts_at: datetime
    ) -> None:
        self.timing = timing
        self.windows = {w.phase: (w.opens_at, w.deadline) for w in schedule.windows}
        self.rng = rng
        self.starts_at = starts_at

    def script(self, org: Organisation, behaviour: Behaviour) -> OrgScript:
        """A feasible script for ``behaviour``: the phases it slips in are drawn again until
        the rest of the round still fits (a late finish eats into the next phase)."""
        special = {
            Behaviour.LATE: Conduct.LATE,
            Behaviour.LAGGARD: Conduct.LAGGARD,
            Behaviour.RETURNED: Conduct.RETURNED_ONCE,
            Behaviour.EXTENSION: Conduct.EXTENDED,
        }.get(behaviour)
        for _attempt in range(30):
            conduct = dict.fromkeys(WORKING_PHASES, Conduct.ON_TIME)
            if special is not None:
                # Late and lagging organisations slip in one or two phases, not all five.
                how_many = self.rng.choice((1, 1, 2)) if special in _SLIPS else 1
                for phase in self.rng.sample(WORKING_PHASES, how_many):
                    conduct[phase] = special
            planned = self._plan(conduct)
            if planned is not None:
                actions, rungs = planned
                return OrgScript(
                    org_id=org.id,
                    behaviour=behaviour,
                    conduct=conduct,
                    rungs_expected=rungs,
                    actions=tuple(actions),
                )
        raise SimulationError(f"无法为组织 {org.id} 安排“{behaviour.label}”的行动，请检查计划时限")

    def _on_time(self, deadline: datetime, earliest: datetime, first_unit: int) -> datetime | None:
        """ "Some days before the deadline": a random unit from ``first_unit`` on, never on a
        timer and never before the organisation can act; None if that leaves no room."""
        timing = self.timing
        candidates = [
            timing.before(deadline, k)
            for k in range(first_unit, first_unit + 4)
            if not timing.clashes(timing.before(deadline, k), deadline)
        ]
        at = max(self.rng.choice(candidates), earliest) if candidates else earliest
        if at > timing.latest_on_time(deadline) or timing.clashes(at, deadline):
            return None
        return at

    def _plan(
        self, conduct: dict[Phase, Conduct]
    ) -> tuple[list[PlannedAction], dict[Phase, int]] | None:
        """Actions and expected rungs for a conduct per phase, or None if it cannot fit."""
        timing, rng = self.timing, self.rng
        actions: list[PlannedAction] = []
        rungs: dict[Phase, int] = {}
        ready = self.starts_at  # when the organisation enters the phase
        for phase in WORKING_PHASES:
            opens_at, deadline = self.windows[phase]
            earliest = max(ready, opens_at)
            how = conduct[phase]
            rungs[phase] = 0

            if how is Conduct.ON_TIME:
                at = self._on_time(deadline, earliest, max(1, timing.margin))
                if at is None:
                    return None
                actions.append(PlannedAction(at=at, phase=phase, kind=ActionKind.FINISH))
                finish = at
            elif how is Conduct.RETURNED_ONCE:
                first = self._on_time(deadline, earliest, timing.margin + 1)
                if first is None:
                    return None
                second = timing.next_unit(first)
                if second > timing.latest_on_time(deadline) or timing.clashes(second, deadline):
                    return None
                actions.append(
                    PlannedAction(at=first, phase=phase, kind=ActionKind.SUBMIT_RETURNED)
                )
                actions.append(PlannedAction(at=second, phase=phase, kind=ActionKind.FINISH))
                finish = second
            elif how is Conduct.EXTENDED:
                asked = self._on_time(deadline, earliest, max(1, timing.margin))
                if asked is None:
                    return None
                new_deadline = timing.extended_deadline(deadline)
                # Finish after the top rung would have fired: proof that nothing escalated.
                finish = timing.after(deadline, timing.top_units + 1)
                if finish > timing.latest_on_time(new_deadline) or timing.clashes(
                    finish, new_deadline
                ):
                    return None
                actions.append(
                    PlannedAction(
                        at=asked,
                        phase=phase,
                        kind=ActionKind.REQUEST_EXTENSION,
                        new_deadline=new_deadline,
                    )
                )
                actions.append(PlannedAction(at=finish, phase=phase, kind=ActionKind.FINISH))
            elif how is Conduct.LATE:
                choices = timing.late_choices()
                if not choices:
                    return None
                units = rng.choice(choices)
                finish = timing.after(deadline, units)
                if finish < earliest:
                    return None
                rungs[phase] = timing.rungs_fired_by(units)
                actions.append(PlannedAction(at=finish, phase=phase, kind=ActionKind.FINISH))
            else:  # LAGGARD: only after the rectification order, well within its own deadline
                finish = timing.after(deadline, timing.top_units + 1)
                if finish < earliest or timing.rectification_units < 2:
                    return None
                rungs[phase] = len(timing.rung_units)
                actions.append(PlannedAction(at=finish, phase=phase, kind=ActionKind.RECTIFY))
            # The next phase opens the moment this one completes.
            ready = finish
        return actions, rungs


def assign_behaviours(
    org_ids: Sequence[str], mix: BehaviourMix, rng: random.Random
) -> dict[str, Behaviour]:
    """A seeded, shuffled assignment of behaviours in the mix's proportions."""
    shuffled = list(org_ids)
    rng.shuffle(shuffled)
    assigned: dict[str, Behaviour] = {}
    position = 0
    for behaviour, count in mix.counts(len(org_ids)).items():
        for org_id in shuffled[position : position + count]:
            assigned[org_id] = behaviour
        position += count
    return assigned


# ----- playing an organisation ---------------------------------------------------------------
def _secretary(org: Organisation) -> Actor:
    return Actor(user=org.secretary, name=org.secretary, role=Role.SECRETARY)


def _instructor(org: Organisation) -> Actor:
    return Actor(user=org.instructor, name=org.instructor, role=Role.INSTRUCTOR)


class _TimerGuard:
    """Holds updates back while an organisation workflow's timer is about to fire.

    An update wakes the workflow, whose task then cancels the pending timer. The
    time-skipping server strands a workflow whose task cancels a timer that fired while the
    task was on the worker: it refuses the completion ("invalid history builder state for
    action", temporalio/sdk-java#3088) and never retries the task, so the workflow never
    finishes and time skipping stalls. Between sleeps the server's clock runs at real pace,
    so a busy stop can run into the next timer; the guard estimates virtual now from the
    last sleep and sends nothing from ``TIMER_GUARD_BEFORE`` before a timer instant to
    ``TIMER_GUARD_AFTER`` after it.
    """

    def __init__(self, instants: Iterable[datetime]) -> None:
        self._instants = sorted(set(instants))
        self._virtual: datetime | None = None
        self._anchored_at = 0.0
        self.waits = 0

    def anchor(self, virtual_now: datetime) -> None:
        """The server's time now (just read); later estimates add the real time elapsed."""
        self._virtual, self._anchored_at = virtual_now, wallclock.monotonic()

    def now(self) -> datetime:
        """The estimated virtual now."""
        assert self._virtual is not None, "anchor() first"
        return self._virtual + timedelta(seconds=wallclock.monotonic() - self._anchored_at)

    async def admit(self) -> None:
        """Return when no timer fires within the guard window around now."""
        while True:
            now = self.now()
            index = bisect.bisect_left(self._instants, now - TIMER_GUARD_AFTER)
            if index == len(self._instants):
                return
            instant = self._instants[index]
            if instant - now > TIMER_GUARD_BEFORE:
                return
            self.waits += 1
            await asyncio.sleep((instant + TIMER_GUARD_AFTER - now).total_seconds())


def _timer_instants(
    schedule: RoundSchedule,
    scripts: Iterable[OrgScript],
    ladder: LadderPlan,
    calendar: WorkingCalendar,
) -> list[datetime]:
    """Every instant an organisation workflow may wake on a timer: per deadline (planned or
    extended) the reminder, the blue light, the deadline, each rung and the deadline of the
    rectification order the top rung issues."""
    deadlines = {w.deadline for w in schedule.windows}
    deadlines |= {a.new_deadline for s in scripts for a in s.actions if a.new_deadline}
    instants: set[datetime] = set()
    for deadline in deadlines:
        instants.add(calendar.before(deadline, ladder.reminder_lead))
        instants.add(calendar.before(deadline, ladder.blue_within))
        instants.add(deadline)
        rungs = [calendar.after(deadline, rung.delay) for rung in ladder.rungs]
        instants.update(rungs)
        instants.add(calendar.deadline_after(rungs[-1], ladder.rectification_period))
    return sorted(instants)


class _Player:
    """Sends one organisation's planned actions as updates, in order."""

    def __init__(
        self,
        client: Client,
        plan: OrgPlan,
        script: OrgScript,
        guard: _TimerGuard,
    ) -> None:
        self.plan = plan
        self.script = script
        self.guard = guard
        self.org = plan.organisation
        self.handle: WorkflowHandle[OrganisationCampaignWorkflow, CampaignResult] = (
            client.get_workflow_handle_for(
                OrganisationCampaignWorkflow.run,
                organisation_workflow_id(plan.round_id, plan.organisation.id),
            )
        )
        self.deadlines = {p.phase: p.deadline for p in plan.phases}
        # What this player has done, so an action only sends what is still missing.
        self.accepted: set[tuple[Phase, str]] = set()
        self.submitted: set[tuple[Phase, str]] = set()
        self.submissions: Counter[tuple[Phase, str]] = Counter()
        self.updates = 0
        self.drift = timedelta(0)
        self.failed: str | None = None

    def _key(self, *parts: object) -> str:
        return "/".join(["sim", self.org.id, *(str(p) for p in parts)])

    async def _update(self, name: str, update: object) -> CampaignStatus:
        await self.guard.admit()
        self.updates += 1
        result: CampaignStatus = await self.handle.execute_update(
            name, update, result_type=CampaignStatus
        )
        return result

    async def act(self, action: PlannedAction) -> None:
        """Carry out one planned action; a refusal stops this organisation's script."""
        if self.failed is not None:
            return
        now = self.guard.now()
        self.drift = max(self.drift, now - action.at)
        try:
            if action.kind is ActionKind.REQUEST_EXTENSION:
                await self._extend(action)
            elif action.kind is ActionKind.SUBMIT_RETURNED:
                await self._submit_all(action.phase, now, return_first=True)
            elif action.kind is ActionKind.FINISH:
                await self._submit_all(action.phase, now)
            else:
                await self._rectify(action.phase, now)
        except WorkflowUpdateFailedError as exc:
            reason = str(exc.cause) if exc.cause is not None else str(exc)
            self.failed = f"{self.org.id} {action.phase.label} {action.kind.value}：{reason}"

    async def _submit_all(self, phase: Phase, now: datetime, *, return_first: bool = False) -> None:
        phase_plan = self.plan.phase(phase)
        required = [s for s in phase_plan.steps if s.required]
        for index, step in enumerate(required):
            key = (phase, step.id)
            if key in self.accepted:
                continue
            if key not in self.submitted:
                values = sample_evidence(
                    step,
                    self.org,
                    opens_at=phase_plan.opens_at,
                    deadline=self.deadlines[phase],
                    now=now,
                )
                self.submissions[key] += 1
                await self._update(
                    "submit_evidence",
                    SubmitEvidence(
                        actor=_secretary(self.org),
                        step_id=step.id,
                        values=values,
                        idempotency_key=self._key(phase, step.id, "submit", self.submissions[key]),
                    ),
                )
                self.submitted.add(key)
            if return_first and index == 0:
                await self._update(
                    "decide_submission",
                    DecideSubmission(
                        actor=_instructor(self.org),
                        step_id=step.id,
                        accept=False,
                        reason="佐证材料不全，请补充会议签到表和照片后重新提交",
                        idempotency_key=self._key(phase, step.id, "return"),
                    ),
                )
                self.submitted.discard(key)  # returned: resubmitted at the next action
                continue
            await self._update(
                "decide_submission",
                DecideSubmission(
                    actor=_instructor(self.org),
                    step_id=step.id,
                    accept=True,
                    idempotency_key=self._key(phase, step.id, "accept"),
                ),
            )
            self.accepted.add(key)

    async def _extend(self, action: PlannedAction) -> None:
        assert action.new_deadline is not None
        status = await self._update(
            "request_extension",
            RequestExtension(
                actor=_secretary(self.org),
                new_deadline=action.new_deadline,
                reason="村两委换届选举与本阶段时间冲突，申请顺延",
                idempotency_key=self._key(action.phase, "extension"),
            ),
        )
        await self._update(
            "decide_extension",
            DecideExtension(
                actor=_instructor(self.org),
                extension_id=status.state.extensions[-1].id,
                approve=True,
                reason="情况属实，同意顺延",
                idempotency_key=self._key(action.phase, "extension", "approve"),
            ),
        )
        self.deadlines[action.phase] = action.new_deadline

    async def _rectify(self, phase: Phase, now: datetime) -> None:
        top = len(self.plan.ladder.rungs) - 1
        # The county office signs for its own rung (签收) before the organisation catches up.
        await self._update(
            "acknowledge_escalation",
            AcknowledgeEscalation(
                actor=COUNTY, phase=phase, rung=top, idempotency_key=self._key(phase, "ack")
            ),
        )
        await self._submit_all(phase, now)
        await self._update(
            "report_rectification",
            ReportRectification(
                actor=_secretary(self.org),
                phase=phase,
                report=f"{self.org.name}已补齐{phase.label}阶段全部规定动作，并召开支委会查摆整改。",
                idempotency_key=self._key(phase, "rectification"),
            ),
        )
        await self._update(
            "recheck_rectification",
            RecheckRectification(
                actor=_instructor(self.org),
                phase=phase,
                passed=True,
                idempotency_key=self._key(phase, "recheck"),
            ),
        )


# ----- the simulation ------------------------------------------------------------------------
def _say(on_message: Callable[[str], None] | None, message: str) -> None:
    if on_message is not None:
        on_message(message)


def _resolve_with_gaps(
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


def _outcomes(progress: RoundProgress, total: int) -> list[PhaseOutcomes]:
    rows = []
    for phase in WORKING_PHASES:
        counts = progress.outcomes.get(phase, {})
        on_time = counts.get(Outcome.ON_TIME, 0)
        late = counts.get(Outcome.LATE, 0)
        after = counts.get(Outcome.AFTER_RECTIFICATION, 0)
        rows.append(
            PhaseOutcomes(
                phase=phase,
                on_time=on_time,
                late=late,
                after_rectification=after,
                unfinished=total - on_time - late - after,
            )
        )
    return rows


def _expected(scripts: Sequence[OrgScript]) -> list[PhaseOutcomes]:
    rows = []
    for phase in WORKING_PHASES:
        counts = Counter(s.expected_outcome(phase) for s in scripts)
        rows.append(
            PhaseOutcomes(
                phase=phase,
                on_time=counts[Outcome.ON_TIME],
                late=counts[Outcome.LATE],
                after_rectification=counts[Outcome.AFTER_RECTIFICATION],
            )
        )
    return rows


def notice_label(kind: NoticeKind, rung: int | None, ladder: LadderPlan) -> str:
    """The Chinese name a notice is counted under: the rung's name for escalations."""
    if kind is NoticeKind.ESCALATION and rung is not None and rung < len(ladder.rungs):
        return ladder.rungs[rung].name
    return kind.label


def _count_notices(engine: Engine, round_id: str, ladder: LadderPlan) -> list[NoticeCount]:
    """Notices the round delivered, grouped by phase, kind, rung and recipient role."""
    with session_factory(engine)() as session:
        rows = session.execute(
            select(
                NoticeRow.phase,
                NoticeRow.kind,
                NoticeRow.rung,
                NoticeRow.recipient_role,
                func.count(),
            )
            .where(NoticeRow.round_id == round_id)
            .group_by(NoticeRow.phase, NoticeRow.kind, NoticeRow.rung, NoticeRow.recipient_role)
        ).all()
    counts = []
    for phase, kind, rung, role, count in rows:
        notice_kind = NoticeKind(kind)
        counts.append(
            NoticeCount(
                phase=Phase(phase),
                kind=notice_kind,
                rung=rung,
                recipient_role=Role(role),
                label=notice_label(notice_kind, rung, ladder),
                count=int(count),
            )
        )
    order = list(WORKING_PHASES)
    return sorted(
        counts,
        key=lambda n: (order.index(n.phase), list(NoticeKind).index(n.kind), n.rung or 0),
    )


async def simulate(
    plan_path: Path = DEFAULT_PLAN,
    round_plan_id: str | None = None,
    roster_path: Path = DEFAULT_ROSTER,
    *,
    calendar_paths: Sequence[Path] = (),
    seed: int = 1,
    limit: int | None = None,
    mix: BehaviourMix | None = None,
    fill_calendar_gaps: bool = True,
    concurrency: int = DEFAULT_CONCURRENCY,
    env: WorkflowEnvironment | None = None,
    on_message: Callable[[str], None] | None = None,
) -> SimulationReport:
    """Run one round of a plan over a roster in virtual time and report what happened.

    ``round_plan_id`` None takes the plan's first round. ``limit`` keeps the first N
    organisations in the round's scope. ``fill_calendar_gaps`` lets a year with no holiday
    data count as weekends-only (with a warning in the report). ``env``: a running
    time-skipping environment to use; otherwise a private one is started and shut down.
    Either way every workflow this function starts has finished when it returns, so time
    skipping is never left stalled. ``on_message`` receives progress lines in Chinese.

    Bad inputs raise before any server starts: :class:`SimulationError` (Chinese message),
    ``PlanError`` / ``ValidationFailed`` (field errors) or ``OSError``.
    """
    began = wallclock.monotonic()
    plan = load_plan_files(plan_path, calendar_paths)
    try:
        round_plan = plan.round(round_plan_id) if round_plan_id else plan.rounds[0]
    except KeyError as exc:
        raise SimulationError(str(exc.args[0])) from None
    roster = read_roster_file(roster_path)
    in_scope = roster.in_scope(types=round_plan.scope.types, townships=round_plan.scope.townships)
    organisations = in_scope[:limit] if limit is not None else in_scope
    if not organisations:
        raise SimulationError("名册中没有本轮活动范围内的组织")

    with tempfile.TemporaryDirectory(prefix="chuangzheng-sim-") as workdir:
        # The round workflow reads the roster itself: give it exactly the organisations
        # simulated (``limit`` applied).
        roster_file = Path(workdir) / "roster.csv"
        _write_roster(organisations, roster_file)
        engine = make_engine(f"sqlite:///{Path(workdir) / 'readmodel.db'}")
        # A throw-away read model needs no durability; without fsync every commit releases
        # SQLite's single write lock sooner, which the many recording activities queue on.
        event.listen(engine, "connect", _no_fsync)
        create_schema(engine)
        own_env = env is None
        try:
            if env is None:
                _say(on_message, "启动时间跳跃测试服务器……")
                env = await start_time_skipping_env()
            simulation = _Simulation(
                env,
                engine=engine,
                plan=plan,
                round_plan=round_plan,
                organisations=organisations,
                roster_file=roster_file,
                seed=seed,
                mix=mix or BehaviourMix(),
                concurrency=concurrency,
                on_message=on_message,
            )
            return await simulation.run(fill_calendar_gaps=fill_calendar_gaps, began=began)
        finally:
            if own_env and env is not None:
                await env.shutdown()
            engine.dispose()


def _no_fsync(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA synchronous=OFF")
    finally:
        cursor.close()


class _Simulation:
    """One simulated round on a running environment with a fresh read model."""

    def __init__(
        self,
        env: WorkflowEnvironment,
        *,
        engine: Engine,
        plan: CampaignPlan,
        round_plan: RoundPlan,
        organisations: Sequence[Organisation],
        roster_file: Path,
        seed: int,
        mix: BehaviourMix,
        concurrency: int,
        on_message: Callable[[str], None] | None,
    ) -> None:
        self.env = env
        self.engine = engine
        self.plan = plan
        self.round_plan = round_plan
        self.organisations = organisations
        self.roster_file = roster_file
        self.seed = seed
        self.mix = mix
        self.concurrency = concurrency
        self.on_message = on_message
        self.warnings: list[str] = []

    def say(self, message: str) -> None:
        """Report progress to the caller."""
        _say(self.on_message, message)

    async def run(self, *, fill_calendar_gaps: bool, began: float) -> SimulationReport:
        """Plan every organisation's actions, kick the round off, play it, and report."""
        env = self.env
        starts_at = await env.get_current_time()
        plan, schedule = _resolve_with_gaps(
            self.plan,
            self.round_plan,
            starts_at,
            fill_gaps=fill_calendar_gaps,
            warnings=self.warnings,
        )
        for warning in self.warnings:
            self.say(warning)
        round_plan = plan.round(self.round_plan.id)
        ladder = plan.ladder_for(round_plan)
        calendar = plan.calendar.build()
        rng = random.Random(self.seed)
        behaviours = assign_behaviours([o.id for o in self.organisations], self.mix, rng)
        scripter = _Scripter(_Timing(ladder, calendar), schedule, rng, starts_at)
        scripts = [scripter.script(org, behaviours[org.id]) for org in self.organisations]
        guard = _TimerGuard(_timer_instants(schedule, scripts, ladder, calendar))
        # Unique per run, so a shared environment never sees the same workflow id twice.
        round_id = f"sim-{plan.id}-{round_plan.id}-{self.seed}-{uuid.uuid4().hex[:6]}"
        players = [
            _Player(
                env.client,
                build_org_plan(plan, round_plan, schedule, org, round_id=round_id),
                script,
                guard,
            )
            for org, script in zip(self.organisations, scripts, strict=True)
        ]
        task_queue = f"simulation-{uuid.uuid4()}"
        worker = build_worker(
            env.client,
            task_queue=task_queue,
            sessions=session_factory(self.engine),
            max_concurrent_activities=100,
        )
        # The worker stays up until every workflow of the round has finished: a workflow
        # left with a due task and no worker stalls the time-skipping server for everyone.
        async with worker:
            round_handle = await env.client.start_workflow(
                CampaignRoundWorkflow.run,
                RoundInput(
                    kickoff=RoundKickoff(
                        round_id=round_id,
                        plan=plan,
                        round_plan_id=round_plan.id,
                        roster_source=str(self.roster_file),
                        actor=COUNTY,
                        starts_at=starts_at,
                    )
                ),
                id=round_workflow_id(round_id),
                task_queue=task_queue,
            )
            self.say(f"已开展轮次 {round_id}：{len(players)} 个组织，开始模拟……")
            stops = await self._play(players, guard)
            finished_at = await env.get_current_time()
            progress, results, closed_early = await self._finish(round_handle, players)

        outcomes = _outcomes(progress, len(players))
        expected = _expected(scripts)
        if [o.model_dump() for o in outcomes] != [e.model_dump() for e in expected]:
            self.warnings.append(
                "注意：部分组织的实际结果与计划的行为不符（多为机器繁忙、操作晚于计划时点所致）。"
            )
        return SimulationReport(
            plan_id=plan.id,
            plan_name=plan.name,
            round_plan_id=round_plan.id,
            round_name=round_plan.name,
            round_id=round_id,
            seed=self.seed,
            mix=self.mix,
            organisations=len(players),
            behaviours=dict(Counter(s.behaviour for s in scripts)),
            started_at=starts_at,
            finished_at=finished_at,
            wall_seconds=wallclock.monotonic() - began,
            stops=stops,
            updates=sum(p.updates for p in players),
            max_drift_seconds=max((p.drift for p in players), default=timedelta(0)).total_seconds(),
            timer_waits=guard.waits,
            all_completed=all(r.phase is Phase.COMPLETED for r in results),
            closed_early=closed_early,
            final_phases=dict(Counter(r.phase for r in results)),
            outcomes=outcomes,
            expected_outcomes=expected,
            notices=_count_notices(self.engine, round_id, ladder),
            rung_names=[r.name for r in ladder.rungs],
            scripts=scripts,
            failures=[p.failed for p in players if p.failed is not None],
            warnings=self.warnings,
        )

    async def _play(self, players: Sequence[_Player], guard: _TimerGuard) -> int:
        """Skip from one planned instant to the next and act there; returns the stop count."""
        env = self.env
        # Every planned action, grouped by instant; one organisation's actions stay in order.
        agenda: dict[datetime, list[tuple[_Player, PlannedAction]]] = defaultdict(list)
        for player in players:
            for action in player.script.actions:
                agenda[action.at].append((player, action))
        limiter = asyncio.Semaphore(self.concurrency)

        async def play(player: _Player, actions: list[PlannedAction]) -> None:
            async with limiter:
                for action in actions:
                    await player.act(action)

        for stop, at in enumerate(sorted(agenda), start=1):
            now = await env.get_current_time()
            if at > now:
                await env.sleep(at - now)
                now = await env.get_current_time()
            guard.anchor(now)
            by_player: dict[str, tuple[_Player, list[PlannedAction]]] = {}
            for player, action in agenda[at]:
                by_player.setdefault(player.org.id, (player, []))[1].append(action)
            await asyncio.gather(*(play(p, acts) for p, acts in by_player.values()))
            if stop % 25 == 0:
                self.say(
                    f"  虚拟时间 {now.astimezone(SHANGHAI):%Y-%m-%d %H:%M}，"
                    f"已处理 {stop}/{len(agenda)} 个时点"
                )
        return len(agenda)

    async def _finish(
        self,
        round_handle: WorkflowHandle[CampaignRoundWorkflow, RoundProgress],
        players: Sequence[_Player],
    ) -> tuple[RoundProgress, list[CampaignResult], bool]:
        """Let the round complete by itself, or close it if someone could not finish; wait
        for every workflow to end. Raises SimulationError if they do not end in time."""
        closed_early = any(p.failed for p in players) or not await _all_reported(
            round_handle, len(players), patience=REPORT_PATIENCE
        )
        if closed_early:
            self.say("有组织未能完成，统一结束本轮活动……")
            await round_handle.execute_update(
                CampaignRoundWorkflow.close,
                CloseRound(actor=COUNTY, reason="模拟结束，统一结束本轮活动"),
            )
        try:
            # Nothing is left to skip to: without this, awaiting a result would let the
            # server jump to its far-future timeouts (years ahead) while the round ends.
            with self.env.auto_time_skipping_disabled():
                async with asyncio.timeout(FINISH_TIMEOUT.total_seconds()):
                    progress = await round_handle.result()
                    results = await asyncio.gather(*(p.handle.result() for p in players))
        except TimeoutError:
            raise SimulationStalled(
                f"本轮活动的工作流未能在{FINISH_TIMEOUT.total_seconds():.0f}秒内结束"
                "（测试服务器可能卡住了某个工作流），模拟中止"
            ) from None
        return progress, list(results), closed_early


async def _all_reported(
    handle: WorkflowHandle[CampaignRoundWorkflow, RoundProgress], total: int, *, patience: float
) -> bool:
    """Wait (real time) until every organisation has reported completion to the round; the
    reports are signals sent after the last update returned, so they trail it briefly."""
    give_up = wallclock.monotonic() + patience
    while True:
        progress = await handle.query(CampaignRoundWorkflow.progress)
        if progress.by_phase.get(Phase.COMPLETED, 0) >= total:
            return True
        if wallclock.monotonic() > give_up:
            return False
        await asyncio.sleep(0.2)


# ----- rendering -----------------------------------------------------------------------------
def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _cell(text: object, width: int, *, left: bool = False) -> str:
    value = str(text)
    pad = " " * max(0, width - _width(value))
    return value + pad if left else pad + value


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    widths = [max(_width(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(_cell(h, widths[i], left=i == 0) for i, h in enumerate(header))]
    lines.append("  ".join("─" * w for w in widths))
    for row in rows:
        lines.append("  ".join(_cell(v, widths[i], left=i == 0) for i, v in enumerate(row)))
    return lines


def _span(delta: timedelta) -> str:
    days, seconds = delta.days, delta.seconds
    if days:
        return f"{days}天{seconds // 3600}小时"
    return f"{seconds // 3600}小时{seconds % 3600 // 60}分{seconds % 60}秒"


def render_report(report: SimulationReport) -> str:
    """The report as Chinese text tables (what ``chuangzheng simulate`` prints)."""
    lines: list[str] = []
    lines.append(f"创先争优活动模拟：{report.plan_name}")
    lines.append(f"轮次：{report.round_name}（{report.round_plan_id}，编号 {report.round_id}）")
    mix = "，".join(
        f"{b.label} {report.behaviours.get(b, 0)}" for b in Behaviour if report.behaviours.get(b)
    )
    lines.append(f"组织：{report.organisations} 个（{mix}），随机种子 {report.seed}")
    start = report.started_at.astimezone(SHANGHAI)
    end = report.finished_at.astimezone(SHANGHAI)
    span = _span(report.virtual_span)
    lines.append(f"虚拟时间：{start:%Y-%m-%d %H:%M} 至 {end:%Y-%m-%d %H:%M}（跨度 {span}）")
    lines.append(
        f"实际用时：{report.wall_seconds:.1f} 秒（{report.stops} 个时点，{report.updates} 次操作）"
    )
    lines.extend(report.warnings)
    lines.append("")
    lines.append("一、各阶段完成情况")
    header = ["阶段", *OUTCOME_LABELS.values(), "未完成", "预期（按时/逾期/整改）"]
    rows: list[list[object]] = []
    for actual, expected in zip(report.outcomes, report.expected_outcomes, strict=True):
        rows.append(
            [
                actual.phase.label,
                actual.on_time,
                actual.late,
                actual.after_rectification,
                actual.unfinished,
                f"{expected.on_time}/{expected.late}/{expected.after_rectification}",
            ]
        )
    lines.extend(_table(header, rows))
    lines.append("")
    lines.append("二、各级提醒与督办通知发送数（份）")
    lines.extend(_notice_table(report))
    lines.append("")
    if report.all_completed:
        lines.append(f"结果：全部 {report.organisations} 个组织完成五个阶段。")
    else:
        phases = "，".join(f"{p.label} {n}" for p, n in report.final_phases.items())
        lines.append(f"结果：未全部完成（{phases}）；本轮已统一结束。")
    for failure in report.failures:
        lines.append(f"  操作被拒绝：{failure}")
    lines.append(
        f"操作最多晚于计划 {report.max_drift_seconds:.1f} 秒（虚拟时间，操作期间时钟照常走），"
        f"为避开计时器暂停 {report.timer_waits} 次。"
    )
    return "\n".join(lines)


def notice_row_label(notice: NoticeCount) -> str:
    """The report row a notice is counted in: each rung to its addressee, the secretary's
    copies of every rung together, and the other kinds by name."""
    if notice.kind is NoticeKind.ESCALATION:
        return "督办抄送书记" if notice.recipient_role is Role.SECRETARY else notice.label
    return {
        NoticeKind.REMINDER: "到期提醒（书记）",
        NoticeKind.CIRCULAR: "通报（乡镇党委）",
        NoticeKind.RECTIFICATION_ORDER: "整改通知（书记）",
    }.get(notice.kind, notice.label)


def _notice_table(report: SimulationReport) -> list[str]:
    """Rows: the reminder, each rung, the copies to secretaries, the circular, the
    rectification order and its overdue notice; columns: the phases."""
    labels = [
        "到期提醒（书记）",
        *report.rung_names,
        "督办抄送书记",
        "通报（乡镇党委）",
        "整改通知（书记）",
        NoticeKind.RECTIFICATION_OVERDUE.label,
    ]
    cells: Counter[tuple[str, Phase]] = Counter()
    for notice in report.notices:
        cells[(notice_row_label(notice), notice.phase)] += notice.count
    header = ["通知", *(p.label for p in WORKING_PHASES), "合计"]
    rows: list[list[object]] = []
    for label in labels:
        per_phase = [cells[(label, phase)] for phase in WORKING_PHASES]
        rows.append([label, *per_phase, sum(per_phase)])
    totals = [sum(n.count for n in report.notices if n.phase is phase) for phase in WORKING_PHASES]
    rows.append(["合计", *totals, sum(totals)])
    return _table(header, rows)


__all__ = [
    "DEFAULT_CALENDARS",
    "DEFAULT_PLAN",
    "DEFAULT_ROSTER",
    "Behaviour",
    "BehaviourMix",
    "Conduct",
    "NoticeCount",
    "OrgScript",
    "PhaseOutcomes",
    "SimulationError",
    "SimulationReport",
    "SimulationStalled",
    "load_plan_files",
    "render_report",
    "simulate",
]
