"""The what-if's organisations at work: each one's real campaign state (``domain.campaign``)
driven by its forecast pace, from the carried state to the end of the round.

:class:`CountyRun` is a discrete-event rehearsal over a batch of organisations: it knows
every organisation's next timed item (``Campaign.tick``: reminder, deadline, each rung of
the arm's ladder, the rectification order's deadline) and its next action, and
:meth:`CountyRun.advance` applies, at one virtual instant, first what time brings and then
what the organisations do, through the same domain calls the organisation workflow makes
for its Updates (submit, accept, return, report, re-check). The domain is always given the
planned instant as ``now``, never a clock, so a run is a function of its inputs: the same
what-if gives the same tallies. :mod:`.what_if_workflow` moves virtual time between the
instants on the time-skipping server.

**How an organisation behaves** (:class:`OrgPace`, drawn by
:mod:`chuangzheng.services.what_if`): in each phase it aims to finish at a share of the
phase's planned window (its pace); the action falls on the plan's grid (10:00 on a working
day, or a 20-second step in minute plans), never before it entered the phase. At that
instant it finishes every required step still open (accepted at once); if the phase is
under a rectification order by then, it finishes, reports and passes the re-check. Some
phases have one submission returned first (finished the next unit). An organisation whose
pace is beyond the rectification point (``waits_for_order``) does nothing once overdue
until the rectification order comes, and acts one unit after it. The behaviour is the same
in both arms: the draft changes deadlines and the ladder, not how people work.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field

from chuangzheng.sample_evidence import sample_actors, sample_evidence
from domain.actions import (
    DecideSubmission,
    RecheckRectification,
    ReportRectification,
    RoundExtension,
    SubmitEvidence,
)
from domain.calendar import SHANGHAI, Span, WorkingCalendar, local_date
from domain.campaign import Campaign
from domain.machine import PhaseStatus
from domain.organisation import Role
from domain.phases import Phase
from domain.plan import CampaignPlan, LadderPlan
from domain.schedule import OrgPlan, RoundSchedule, build_org_plan
from domain.state import Actor, Outcome
from domain.what_if import (
    ArmTally,
    DraftChange,
    OrgStart,
    carry_state,
    extended_deadline,
    extends,
    notice_label,
    tally,
)

from .model import ActionKind, PlannedAction
from .timing import MINUTE_STEP, OFFICE_TIME, Timing

_FROZEN = ConfigDict(frozen=True, extra="forbid")
T = TypeVar("T")

COUNTY = Actor(user="county", name="县委创先争优活动领导小组办公室", role=Role.COUNTY_OFFICE)
#: How long after the last planned deadline the rehearsal gives up on an organisation that
#: still has nothing left to do (it then counts as unfinished).
HORIZON = timedelta(days=730)
#: A workflow's timer task runs a moment after the timer's instant, and the domain is given
#: that moment as now: a rung firing at a deadline's 24:00 runs on the next day, so the
#: rectification order it issues counts its period from that day (measured: without this,
#: the rehearsal's orders fell due a working day early and 3 of 55 overdue notices too many).
TIMER_LATENCY = timedelta(seconds=1)
#: Actions one organisation may take in the rehearsal at most (a stuck one stops there).
_MAX_ACTIONS = 40


class OrgPace(BaseModel):
    """How one organisation will work from here (drawn once, the same in both arms)."""

    model_config = _FROZEN

    org_id: str
    # Per phase still to finish: the share of the phase's planned window at which it aims
    # to finish (0.6: at 60 % of it; 1.2: a fifth of a window late).
    aims: dict[Phase, float]
    returned: tuple[Phase, ...] = ()
    waits_for_order: tuple[Phase, ...] = ()


class BatchInput(BaseModel):
    """One batch of one arm: the round's plan, schedule and arm ladder, the draft (None in
    the unchanged arm) and the organisations with their carried state and pace."""

    model_config = _FROZEN

    round_id: str
    plan: CampaignPlan
    round_plan_id: str
    schedule: RoundSchedule
    ladder: LadderPlan
    change: DraftChange | None = None
    starts_at: datetime
    organisations: tuple[OrgStart, ...]
    paces: tuple[OrgPace, ...]
    # Give back every organisation's actions (the real-run comparison plays them).
    record_actions: bool = False


class BatchResult(BaseModel):
    """The batch's tally, every organisation's outcomes and, if asked, its actions."""

    model_config = _FROZEN

    tally: ArmTally
    outcomes: dict[str, dict[Phase, Outcome]]
    actions: dict[str, list[PlannedAction]] = Field(default_factory=dict)
    instants: int = 0


class _MemoCalendar(WorkingCalendar):
    """The round's calendar with its answers remembered: every organisation of a batch asks
    for the same deadlines' reminders, rungs and orders, thousands of times. Only the
    rehearsal uses it; an extension's calendar check runs on the real calendar first."""

    def __init__(self, inner: WorkingCalendar) -> None:
        super().__init__()
        self._inner = inner
        self._memo: dict[tuple[object, ...], object] = {}

    def _cached(self, key: tuple[object, ...], compute: Callable[[], T]) -> T:
        try:
            return self._memo[key]  # type: ignore[return-value]
        except KeyError:
            value = self._memo[key] = compute()
            return value

    def covers(self, year: int) -> bool:
        return self._inner.covers(year)

    def is_workday(self, day: date) -> bool:
        return self._cached(("w", day), lambda: self._inner.is_workday(day))

    def before(self, deadline: datetime, span: Span) -> datetime:
        return self._cached(("b", deadline, span), lambda: self._inner.before(deadline, span))

    def after(self, deadline: datetime, span: Span) -> datetime:
        return self._cached(("a", deadline, span), lambda: self._inner.after(deadline, span))

    def deadline_after(self, start: datetime, span: Span) -> datetime:
        return self._cached(("d", start, span), lambda: self._inner.deadline_after(start, span))

    def working_days_overdue(self, deadline: datetime, now: datetime) -> int:
        return self._cached(
            ("o", deadline, now), lambda: self._inner.working_days_overdue(deadline, now)
        )


class _Org:
    """One organisation in the rehearsal: its campaign, pace and next action."""

    __slots__ = ("actions", "campaign", "next_action", "pace", "plan", "returned_done", "wake")

    def __init__(self, plan: OrgPlan, campaign: Campaign, pace: OrgPace) -> None:
        self.plan = plan
        self.campaign = campaign
        self.pace = pace
        self.wake: datetime | None = None
        self.next_action: datetime | None = None
        self.returned_done: set[Phase] = set()
        self.actions: list[PlannedAction] = []


class CountyRun:
    """A batch of organisations rehearsed from their carried state (see the module)."""

    def __init__(self, batch: BatchInput) -> None:
        plan = batch.plan.model_copy(update={"ladder": batch.ladder})
        round_plan = plan.round(batch.round_plan_id)
        # The arm's ladder wins over a round's own ladder too.
        round_plan = round_plan.model_copy(update={"ladder": batch.ladder})
        self.batch = batch
        self.ladder = batch.ladder
        self.now = batch.starts_at
        self.windows = {w.phase: (w.opens_at, w.deadline) for w in batch.schedule.windows}
        calendar: WorkingCalendar = batch.schedule.calendar or plan.calendar.build()
        self.calendar = calendar
        self.memo = _MemoCalendar(calendar)
        self.timing = Timing(batch.ladder, self.memo)
        self.horizon = max(d for _, d in self.windows.values()) + HORIZON
        self.notices: Counter[tuple[Phase, str]] = Counter()
        self.instants = 0
        paces = {p.org_id: p for p in batch.paces}
        self.orgs: list[_Org] = []
        for start in batch.organisations:
            org_plan = build_org_plan(
                plan, round_plan, batch.schedule, start.organisation, round_id=batch.round_id
            )
            state = carry_state(org_plan, start, now=self.now, calendar=calendar)
            campaign = Campaign(org_plan, state)
            pace = paces.get(start.organisation.id) or OrgPace(
                org_id=start.organisation.id, aims={}
            )
            self.orgs.append(_Org(org_plan, campaign, pace))
        self._queue: list[tuple[datetime, int]] = []
        for index, org in enumerate(self.orgs):
            change = batch.change
            if (
                change is not None
                and change.phase is not None
                and extends(change, org.plan.organisation)
            ):
                _opens, planned = self.windows[change.phase]
                org.campaign.apply_round_extension(
                    RoundExtension(
                        extension_id="what-if",
                        phase=change.phase,
                        new_deadline=extended_deadline(planned, change, calendar),
                        reason=change.reason or "推演",
                        actor=COUNTY,
                    ),
                    self.now,
                )
            # After the extension (checked against the pinned calendar itself).
            org.campaign.calendar = self.memo
            org.wake = org.campaign.tick(self.now)
            self._count(org)
            self._plan_action(org, self.now)
            self._push(index)

    # ----- time ----------------------------------------------------------------------------
    def _due(self, org: _Org) -> list[datetime]:
        return [
            t
            for t in (
                org.wake + TIMER_LATENCY if org.wake is not None else None,
                org.next_action,
            )
            if t is not None
        ]

    def _push(self, index: int) -> None:
        org = self.orgs[index]
        due = self._due(org)
        if due:
            at = max(min(due), self.now)
            if at <= self.horizon:
                heapq.heappush(self._queue, (at, index))

    def next_instant(self) -> datetime | None:
        """The next instant anything happens, or None when the batch is done."""
        while self._queue:
            at, index = self._queue[0]
            org = self.orgs[index]
            due = self._due(org)
            if not due or max(min(due), self.now) != at:
                heapq.heappop(self._queue)  # stale: the organisation was re-planned
                continue
            return at
        return None

    def advance(self, at: datetime) -> None:
        """Everything due at ``at``: timers first, then actions."""
        self.now = at
        self.instants += 1
        due: list[int] = []
        while self._queue and self._queue[0][0] <= at:
            _, index = heapq.heappop(self._queue)
            due.append(index)
        for index in sorted(set(due)):
            org = self.orgs[index]
            if org.wake is not None and org.wake + TIMER_LATENCY <= at:
                org.wake = org.campaign.tick(at)
                self._count(org)
                self._waiting(org, at)
            if org.next_action is not None and org.next_action <= at:
                org.next_action = None
                before = org.campaign.state.phase
                acted = self._act(org, at)
                org.wake = org.campaign.tick(at)
                self._count(org)
                if acted and org.next_action is None:
                    if org.campaign.state.phase is before:
                        # Still in the phase (nothing settled it): try again a unit later,
                        # a few times at most, so a stuck organisation cannot spin.
                        if len(org.actions) < _MAX_ACTIONS:
                            org.next_action = self.timing.next_unit(at)
                    else:
                        self._plan_action(org, at)
            self._push(index)

    # ----- behaviour -------------------------------------------------------------------------
    def _plan_action(self, org: _Org, entered: datetime) -> None:
        """When the organisation acts next in its current phase (None: nothing to do)."""
        state = org.campaign.state
        if state.closed or state.finished():
            return
        phase = state.current()
        order = phase.rectification
        if order is not None and phase.phase in org.pace.waits_for_order:
            # Carried in under the order it waited for: it acts a unit after it, as it did
            # had the rehearsal run from before the order (``_waiting``).
            after = self.timing.next_unit(order.issued_at)
            org.next_action = self._grid(max(after, entered, self.now))
            return
        opens_at, planned = self.windows[phase.phase]
        aim = org.pace.aims.get(phase.phase, 0.75)
        aimed = opens_at + (planned - opens_at) * aim
        org.next_action = self._grid(max(aimed, entered, self.now))

    def _waiting(self, org: _Org, at: datetime) -> None:
        """A laggard waiting for the rectification order acts one unit after it comes."""
        state = org.campaign.state
        if state.finished() or org.next_action is not None:
            return
        phase = state.current()
        if phase.rectification is not None and phase.phase in org.pace.waits_for_order:
            org.next_action = self._grid(self.timing.next_unit(phase.rectification.issued_at))

    def _grid(self, moment: datetime) -> datetime:
        """The first action instant of the plan's grid at or after ``moment``: 10:00 on a
        working day, or a 20-second step from the round's start in minute plans."""
        if self.timing.in_minutes:
            start = self.batch.schedule.starts_at
            step = MINUTE_STEP.total_seconds()
            steps = -(-(moment - start).total_seconds() // step)
            return start + timedelta(seconds=steps * step)
        day = local_date(moment)
        office = datetime.combine(day, OFFICE_TIME, SHANGHAI)
        if office >= moment and self.memo.is_workday(day):
            return office
        return self.timing.next_unit(moment)

    def _act(self, org: _Org, at: datetime) -> bool:
        """Do what the organisation does at ``at``; False if it waits (for the order)."""
        state = org.campaign.state
        if state.finished() or state.closed:
            return False
        phase = state.current()
        kind: ActionKind
        if phase.status is PhaseStatus.RECTIFYING:
            kind = ActionKind.RECTIFY
        elif phase.status is PhaseStatus.OVERDUE and phase.phase in org.pace.waits_for_order:
            # Does nothing until the rectification order (``_waiting`` plans the action).
            return False
        elif (
            phase.phase in org.pace.returned
            and phase.phase not in org.returned_done
            and self.timing.fits_on_time(self.timing.next_unit(at), phase.deadline)
        ):
            kind = ActionKind.SUBMIT_RETURNED
        else:
            kind = ActionKind.FINISH
        org.actions.append(PlannedAction(at=at, phase=phase.phase, kind=kind))
        if kind is ActionKind.SUBMIT_RETURNED:
            org.returned_done.add(phase.phase)
            self._submit_all(org, at, return_first=True)
            org.next_action = self.timing.next_unit(at)
        elif kind is ActionKind.RECTIFY:
            self._submit_all(org, at)
            campaign = org.campaign
            campaign.report_rectification(
                ReportRectification(
                    actor=_secretary(org),
                    phase=phase.phase,
                    report=f"{org.plan.organisation.name}已补齐{phase.phase.label}阶段全部规定动作。",
                ),
                at,
            )
            campaign.recheck(
                RecheckRectification(actor=_instructor(org), phase=phase.phase, passed=True), at
            )
        else:
            self._submit_all(org, at)
        return True

    def _submit_all(self, org: _Org, at: datetime, *, return_first: bool = False) -> None:
        """Submit every required step still open; accept each (or return the first one a
        supervisor decides, once), as the simulation's player does through Updates."""
        campaign = org.campaign
        phase = campaign.state.current()
        phase_plan = org.plan.phase(phase.phase)
        returned = False
        for step in (s for s in phase_plan.steps if s.required):
            step_state = phase.step(step.id)
            if step_state is None or step_state.settled:
                continue
            submitter, decider = sample_actors(step, org.plan.organisation)
            campaign.submit(
                SubmitEvidence(
                    actor=submitter,
                    step_id=step.id,
                    values=sample_evidence(
                        step,
                        org.plan.organisation,
                        opens_at=phase_plan.opens_at,
                        deadline=phase.deadline,
                        now=at,
                    ),
                ),
                at,
            )
            if decider is None:
                continue
            if return_first and not returned and decider.role is Role.INSTRUCTOR:
                returned = True
                campaign.decide(
                    DecideSubmission(
                        actor=decider,
                        step_id=step.id,
                        accept=False,
                        reason="佐证材料不全，请补充后重新提交",
                    ),
                    at,
                )
                continue
            campaign.decide(DecideSubmission(actor=decider, step_id=step.id, accept=True), at)
            if campaign.state.phase is not phase.phase:
                break  # the phase completed (settle opened the next one)

    def _count(self, org: _Org) -> None:
        _events, notices = org.campaign.take_outbox()
        for notice in notices:
            self.notices[(notice.phase, notice_label(notice.kind, notice.rung, self.ladder))] += 1

    # ----- the end -----------------------------------------------------------------------------
    def result(self) -> BatchResult:
        """The batch's tally and every organisation's outcomes."""
        outcomes = {
            org.plan.organisation.id: {
                p.phase: p.outcome for p in org.campaign.state.phases if p.outcome is not None
            }
            for org in self.orgs
        }
        return BatchResult(
            tally=tally(outcomes, self.notices, label_order=label_order(self.ladder)),
            outcomes=outcomes,
            actions=(
                {org.plan.organisation.id: org.actions for org in self.orgs}
                if self.batch.record_actions
                else {}
            ),
            instants=self.instants,
        )

    def run_to_end(self) -> BatchResult:
        """Every instant in turn, without a server (tests, and the engine's own check)."""
        while (at := self.next_instant()) is not None:
            self.advance(at)
        return self.result()


def label_order(ladder: LadderPlan) -> list[str]:
    """Notice labels in the order the page shows them: the reminder, the rungs in climbing
    order, then the circular, the order and the overdue rectification."""
    from domain.notices import NoticeKind

    return [
        NoticeKind.EARLY_WARNING.label,
        NoticeKind.REMINDER.label,
        *(r.name for r in ladder.rungs),
        NoticeKind.CIRCULAR.label,
        NoticeKind.RECTIFICATION_ORDER.label,
        NoticeKind.RECTIFICATION_OVERDUE.label,
    ]


def _secretary(org: _Org) -> Actor:
    o = org.plan.organisation
    return Actor(user=o.secretary, name=o.secretary, role=Role.SECRETARY)


def _instructor(org: _Org) -> Actor:
    o = org.plan.organisation
    return Actor(user=o.instructor, name=o.instructor, role=Role.INSTRUCTOR)


def run_batches(batches: Sequence[BatchInput]) -> list[BatchResult]:
    """Every batch without a server, in turn (unit tests)."""
    return [CountyRun(b).run_to_end() for b in batches]
