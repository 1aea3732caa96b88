"""The what-if (推演): a draft change to a running round, the state each organisation
carries into the rehearsal, and the tallies of the two arms and their difference.

Pure: no I/O and no clock. The rehearsal itself (the time-skipping server, the
organisations acting at their forecast pace) lives in :mod:`chuangzheng.simulation`; the
reading of the live county in :mod:`chuangzheng.services.what_if`.

**How a live organisation is carried** (:func:`carry_state`): its campaign state is rebuilt
as the organisation workflow would carry it across continue-as-new — every phase it
completed is done with its recorded outcome and completion time, its current phase is open,
overdue or under a rectification order with its current (possibly extended) deadline, the
steps it has settled are accepted, the rungs that fired have fired (matched to the ladder by
name, so a draft that adds a rung keeps the record), and the reminder (and an order's
overdue notice) counts as sent when its moment has passed. What the read model does not
keep (who submitted what, the texts) is not needed by the ladder, the deadlines or the
outcomes, and is left empty.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from domain.calendar import Span, WorkingCalendar, deadline_day
from domain.errors import FieldError, ValidationFailed
from domain.machine import PhaseStatus, StepStatus
from domain.notices import NoticeKind
from domain.organisation import Organisation, Role
from domain.phases import WORKING_PHASES, Phase
from domain.plan import CampaignPlan, LadderPlan, Rung, RungAction
from domain.schedule import OrgPlan
from domain.state import (
    CampaignState,
    Escalation,
    Outcome,
    PhaseState,
    RectificationOrder,
    StepState,
)

_FROZEN = ConfigDict(frozen=True, extra="forbid")

#: The longest extension a draft may give (working days, or minutes in demo plans): beyond
#: it the round's pinned calendar may not reach, and no county grants that much at once.
MAX_EXTENSION = 60


class ChangeKind(StrEnum):
    """What a draft changes."""

    EXTEND_PHASE = "extend_phase"
    ADD_RUNG = "add_rung"
    MOVE_RUNG = "move_rung"
    RECTIFICATION_PERIOD = "rectification_period"

    @property
    def label(self) -> str:
        """Chinese label."""
        return {
            "extend_phase": "延长阶段时限",
            "add_rung": "增加督办层级",
            "move_rung": "调整督办时点",
            "rectification_period": "调整整改期限",
        }[self.value]


class DraftChange(BaseModel):
    """A change the county office drafts and rehearses before applying it.

    - ``extend_phase``: ``phase`` and ``by`` (a span in the plan's unit), for everyone or
      only ``township``'s organisations.
    - ``add_rung``: a new rung ``rung_name`` for ``recipient`` at ``delay`` after the
      deadline (placed by its delay; it notifies).
    - ``move_rung``: the rung named ``rung_name`` moves to ``delay``.
    - ``rectification_period``: the rectification order's own period becomes ``period``.
    """

    model_config = _FROZEN

    kind: ChangeKind
    phase: Phase | None = None
    township: str | None = Field(default=None, max_length=100)
    by: Span | None = None
    rung_name: str | None = Field(default=None, max_length=100)
    recipient: Role | None = None
    delay: Span | None = None
    period: Span | None = None
    reason: str = Field(default="", max_length=2000)

    @model_validator(mode="after")
    def _complete(self) -> DraftChange:
        errors = self.problems()
        if errors:
            raise ValueError("；".join(str(e) for e in errors))
        return self

    def problems(self) -> list[FieldError]:
        """What the draft lacks for its kind (Chinese reasons, by field)."""
        errors: list[FieldError] = []
        kind = self.kind

        def need(field: str, value: object, what: str) -> None:
            if value is None or value == "":
                errors.append(FieldError(field, f"{kind.label}须填写{what}"))

        if kind is ChangeKind.EXTEND_PHASE:
            need("phase", self.phase, "阶段")
            need("by", self.by, "延长的时长")
            if self.phase is Phase.COMPLETED:
                errors.append(FieldError("phase", "只能延长五个阶段之一"))
            amount = _amount(self.by)
            if self.by is not None and not 1 <= amount <= MAX_EXTENSION:
                errors.append(FieldError("by", f"延长的时长须在 1 到 {MAX_EXTENSION} 之间"))
        elif kind is ChangeKind.ADD_RUNG:
            need("rung_name", (self.rung_name or "").strip() or None, "新督办层级的名称")
            need("recipient", self.recipient, "督办对象")
            need("delay", self.delay, "截止后多久督办")
            if self.recipient is Role.SECRETARY:
                errors.append(
                    FieldError("recipient", "督办对象须为上级（指导员、乡镇、指导小组或县委办）")
                )
        elif kind is ChangeKind.MOVE_RUNG:
            need("rung_name", (self.rung_name or "").strip() or None, "要调整的督办层级")
            need("delay", self.delay, "新的督办时点")
        else:
            need("period", self.period, "新的整改期限")
            if self.period is not None and _amount(self.period) < 1:
                errors.append(FieldError("period", "整改期限至少为 1"))
        return errors

    def describe(self) -> str:
        """One line in Chinese, for the page, the export and the audit."""
        if self.kind is ChangeKind.EXTEND_PHASE:
            assert self.phase is not None and self.by is not None
            who = f"{self.township}的组织" if self.township else "全县组织"
            return f"{who}{self.phase.label}阶段截止时间延后{self.by.describe()}"
        if self.kind is ChangeKind.ADD_RUNG:
            assert self.recipient is not None and self.delay is not None
            return (
                f"增加督办层级“{self.rung_name}”：截止后{self.delay.describe()}"
                f"督办{self.recipient.label}"
            )
        if self.kind is ChangeKind.MOVE_RUNG:
            assert self.delay is not None
            return f"督办层级“{self.rung_name}”改为截止后{self.delay.describe()}"
        assert self.period is not None
        return f"整改期限改为{self.period.describe()}"


def _amount(span: Span | None) -> int:
    if span is None:
        return 0
    return span.working_days if span.working_days is not None else span.minutes or 0


def _same_unit(span: Span, ladder: LadderPlan) -> bool:
    in_minutes = ladder.rungs[0].delay.minutes is not None
    return (span.minutes is not None) == in_minutes


def changed_ladder(ladder: LadderPlan, change: DraftChange) -> LadderPlan:
    """The ladder the draft leads to (the same ladder for an extension).

    Raises :class:`ValidationFailed` naming the field when the result would not be a valid
    ladder (a rung that does not exist, a unit the plan does not use, rungs out of order)."""
    for field in ("by", "delay", "period"):
        span = getattr(change, field)
        if span is not None and not _same_unit(span, ladder):
            unit = "分钟" if ladder.rungs[0].delay.minutes is not None else "工作日"
            raise ValidationFailed([FieldError(field, f"须与本轮计划使用同一单位（{unit}）")])
    if change.kind is ChangeKind.EXTEND_PHASE:
        return ladder
    rungs = list(ladder.rungs)
    if change.kind is ChangeKind.ADD_RUNG:
        assert change.rung_name and change.recipient and change.delay
        if any(r.name == change.rung_name for r in rungs):
            raise ValidationFailed(
                [FieldError("rung_name", f"已有名为“{change.rung_name}”的督办层级")]
            )
        new = Rung(name=change.rung_name, recipient=change.recipient, delay=change.delay)
        # Placed by its delay, below the top rung: the top rung must stay the one that
        # orders rectification (LadderPlan's rule).
        at = next(
            (i for i, r in enumerate(rungs) if _amount(r.delay) > _amount(change.delay)),
            len(rungs) - 1,
        )
        if at == len(rungs) - 1 and _amount(change.delay) > _amount(rungs[-1].delay):
            raise ValidationFailed(
                [FieldError("delay", "新层级须在最高一级（下达整改通知的一级）之前督办")]
            )
        rungs.insert(at, new)
    elif change.kind is ChangeKind.MOVE_RUNG:
        assert change.delay is not None
        index = next((i for i, r in enumerate(rungs) if r.name == change.rung_name), None)
        if index is None:
            names = "、".join(r.name for r in rungs)
            raise ValidationFailed(
                [
                    FieldError(
                        "rung_name", f"没有名为“{change.rung_name}”的督办层级（已有：{names}）"
                    )
                ]
            )
        rungs[index] = rungs[index].model_copy(update={"delay": change.delay})
    else:
        assert change.period is not None
        return ladder.model_copy(update={"rectification_period": change.period})
    try:
        return LadderPlan(
            reminder_lead=ladder.reminder_lead,
            blue_within=ladder.blue_within,
            rungs=tuple(rungs),
            rectification_period=ladder.rectification_period,
            # Kept: a rung added or moved must not drop the plan's 预警.
            early_warning=ladder.early_warning,
        )
    except ValidationError as exc:
        reason = "；".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise ValidationFailed([FieldError("delay", reason)]) from None


def extended_deadline(
    deadline: datetime, change: DraftChange, calendar: WorkingCalendar
) -> datetime:
    """Where an extension moves a phase deadline."""
    assert change.by is not None
    return calendar.after(deadline, change.by)


def plan_with_change(
    plan: CampaignPlan,
    round_plan_id: str,
    change: DraftChange,
    *,
    planned_deadline: datetime | None = None,
    calendar: WorkingCalendar | None = None,
) -> CampaignPlan:
    """The plan version a reviewed draft becomes: ``plan`` (the version the what-if ran
    on) with the draft applied to the round ``round_plan_id``, as the rehearsal applied it.

    - A rung added or moved, or a new rectification period: the round's ladder becomes
      :func:`changed_ladder`'s, set on the round itself (other rounds of the plan keep
      theirs).
    - A round-wide extension: only that phase's deadline moves, as the rehearsal's
      round-wide extension moves it (``extended_deadline``), and the next phases keep
      theirs. A phase given as a duration grows by ``by`` and the next one, if a duration
      too, shrinks by as much (working days and minutes both add up exactly); a phase
      given as a date takes the extended deadline's date (``planned_deadline`` and
      ``calendar``: the phase's deadline in force and the round's calendar).

    A township-only extension cannot be a plan version (a plan has one deadline per phase
    for everyone): :class:`ValidationFailed` on ``township`` says what to propose instead.
    So does a draft whose result is no valid plan (named field, Chinese reason)."""
    round_index = next((i for i, r in enumerate(plan.rounds) if r.id == round_plan_id), None)
    if round_index is None:
        raise ValidationFailed([FieldError("round", f"计划中没有本轮（{round_plan_id}）")])
    round_plan = plan.rounds[round_index]
    ladder = plan.ladder_for(round_plan)
    if change.kind is ChangeKind.EXTEND_PHASE and change.township:
        raise ValidationFailed(
            [
                FieldError(
                    "township",
                    f"只延长{change.township}一个乡镇的时限不能写入本轮计划（计划的每个阶段"
                    "对全县只有一个截止时间）：请改为推演并采用全县延长，或在组织页面为"
                    "需要的组织逐个批准延期",
                )
            ]
        )
    if change.kind is not ChangeKind.EXTEND_PHASE:
        round_plan = round_plan.model_copy(update={"ladder": changed_ladder(ladder, change)})
    else:
        changed_ladder(ladder, change)  # the unit check
        assert change.phase is not None and change.by is not None
        phases = list(round_plan.phases)
        at = next((i for i, p in enumerate(phases) if p.phase is change.phase), None)
        if at is None:
            raise ValidationFailed([FieldError("phase", f"本轮没有{change.phase.label}阶段")])
        phase = phases[at]
        if phase.duration is not None:
            phases[at] = phase.model_copy(update={"duration": _plus(phase.duration, change.by)})
            following = phases[at + 1] if at + 1 < len(phases) else None
            if following is not None and following.duration is not None:
                if _amount(following.duration) - _amount(change.by) < 1:
                    raise ValidationFailed(
                        [
                            FieldError(
                                "by",
                                f"延长后{change.phase.label}阶段的截止时间将不早于下一阶段"
                                f"（{following.phase.label}）的截止时间，请缩短延长的时长",
                            )
                        ]
                    )
                shorter = _plus(following.duration, change.by, sign=-1)
                phases[at + 1] = following.model_copy(update={"duration": shorter})
        else:
            if planned_deadline is None or calendar is None or change.by.minutes is not None:
                raise ValidationFailed(
                    [FieldError("by", f"{change.phase.label}阶段按日期截止，只能按工作日延长")]
                )
            moved = extended_deadline(planned_deadline, change, calendar)
            phases[at] = phase.model_copy(update={"deadline": deadline_day(moved)})
        round_plan = round_plan.model_copy(update={"phases": tuple(phases)})
    rounds = list(plan.rounds)
    rounds[round_index] = round_plan
    try:
        # Validated again as a whole (model_copy does not run the validators).
        return CampaignPlan.model_validate(
            plan.model_copy(update={"rounds": tuple(rounds)}).model_dump()
        )
    except ValidationError as exc:
        reason = "；".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise ValidationFailed([FieldError("change", reason)]) from None


def _plus(span: Span, by: Span, *, sign: int = 1) -> Span:
    if span.minutes is not None:
        return Span(minutes=span.minutes + sign * (by.minutes or 0))
    return Span(working_days=(span.working_days or 0) + sign * (by.working_days or 0))


def extends(change: DraftChange, org: Organisation) -> bool:
    """Whether an extension applies to this organisation (everyone, or its township)."""
    return change.kind is ChangeKind.EXTEND_PHASE and (
        change.township is None or change.township == org.township
    )


# ----- the state an organisation carries in ------------------------------------------------


class PhaseStart(BaseModel):
    """One phase of one organisation as the read model shows it at the what-if's start."""

    model_config = _FROZEN

    phase: Phase
    status: PhaseStatus = PhaseStatus.PENDING
    deadline: datetime
    opened_at: datetime | None = None
    completed_at: datetime | None = None
    outcome: Outcome | None = None
    # Required or optional steps already accepted or waived (current phase only).
    settled_steps: tuple[str, ...] = ()
    # Rungs that fired, by name, with when.
    rungs_fired: tuple[tuple[str, datetime], ...] = ()
    rectification_issued_at: datetime | None = None
    rectification_deadline: datetime | None = None


class OrgStart(BaseModel):
    """An organisation's state at the what-if's start: its phases, as carried."""

    model_config = _FROZEN

    organisation: Organisation
    phases: tuple[PhaseStart, ...]

    def phase(self, phase: Phase) -> PhaseStart:
        """One phase's start."""
        return next(p for p in self.phases if p.phase is phase)

    @property
    def current(self) -> Phase:
        """The phase it is in (COMPLETED once all five are done)."""
        return next((p.phase for p in self.phases if p.completed_at is None), Phase.COMPLETED)


def carry_state(
    plan: OrgPlan, start: OrgStart, *, now: datetime, calendar: WorkingCalendar
) -> CampaignState:
    """The campaign state the organisation continues from at ``now`` (see the module's
    docstring). ``plan.ladder`` is the arm's ladder: fired rungs are matched by name."""
    index = {r.name: i for i, r in enumerate(plan.ladder.rungs)}
    current = start.current
    phases: list[PhaseState] = []
    for phase_plan in plan.phases:
        carried = start.phase(phase_plan.phase)
        steps = [
            StepState(
                step_id=s.id,
                name=s.name,
                required=s.required,
                status=(
                    StepStatus.ACCEPTED
                    if s.id in carried.settled_steps or carried.completed_at is not None
                    else StepStatus.OPEN
                ),
            )
            for s in phase_plan.steps
        ]
        state = PhaseState(
            phase=phase_plan.phase,
            opens_at=phase_plan.opens_at,
            deadline=carried.deadline,
            planned_deadline=phase_plan.deadline,
            steps=steps,
        )
        if carried.completed_at is not None:
            state.status = PhaseStatus.DONE
            state.opened_at = carried.opened_at or phase_plan.opens_at
            state.completed_at = carried.completed_at
            state.outcome = carried.outcome or Outcome.ON_TIME
            state.reminder_sent = True
        elif phase_plan.phase is current:
            state.opened_at = carried.opened_at or phase_plan.opens_at
            state.reminder_sent = (
                calendar.before(carried.deadline, plan.ladder.reminder_lead) <= now
            )
            state.escalations = [
                Escalation(
                    rung=index[name],
                    name=name,
                    recipient=plan.ladder.rungs[index[name]].recipient,
                    recipient_key="",
                    fired_at=at,
                    working_days_overdue=0,
                )
                for name, at in carried.rungs_fired
                if name in index
            ]
            if carried.rectification_issued_at is not None:
                order_deadline = carried.rectification_deadline or calendar.deadline_after(
                    carried.rectification_issued_at, plan.ladder.rectification_period
                )
                # Its overdue notice went out on the workflow's timer, if that has passed.
                state.rectification = RectificationOrder(
                    issued_at=carried.rectification_issued_at,
                    deadline=order_deadline,
                    overdue_notified=order_deadline <= now,
                )
                state.status = PhaseStatus.RECTIFYING
            elif carried.deadline < now:
                state.status = PhaseStatus.OVERDUE
            else:
                state.status = PhaseStatus.OPEN
        phases.append(state)
    return CampaignState(
        round_id=plan.round_id,
        org_id=plan.organisation.id,
        phase=current,
        phases=phases,
    )


# ----- the tallies ---------------------------------------------------------------------------


class PhaseTally(BaseModel):
    """How the organisations ended one phase in one arm."""

    model_config = _FROZEN

    phase: Phase
    on_time: int = 0
    late: int = 0
    after_rectification: int = 0
    unfinished: int = 0


class NoticeTally(BaseModel):
    """Notices of one label (a rung's name, or the notice kind's) in one phase."""

    model_config = _FROZEN

    phase: Phase
    label: str
    count: int


class ArmTally(BaseModel):
    """What one arm of the what-if ended with, for the whole county."""

    model_config = _FROZEN

    organisations: int
    phases: tuple[PhaseTally, ...]
    notices: tuple[NoticeTally, ...]

    def phase(self, phase: Phase) -> PhaseTally:
        """One phase's tally."""
        return next(p for p in self.phases if p.phase is phase)

    @property
    def late_total(self) -> int:
        """Phases finished late or after rectification, over all phases."""
        return sum(p.late + p.after_rectification for p in self.phases)

    def notice_count(self, label: str, phase: Phase | None = None) -> int:
        """Notices under ``label`` (in ``phase``, or all phases)."""
        return sum(
            n.count
            for n in self.notices
            if n.label == label and (phase is None or n.phase is phase)
        )

    def labels(self) -> list[str]:
        """The notice labels, in first-seen order."""
        return list(dict.fromkeys(n.label for n in self.notices))


def notice_label(kind: NoticeKind, rung: int | None, ladder: LadderPlan) -> str:
    """Escalations count under their rung's name; every other notice under its kind."""
    if kind is NoticeKind.ESCALATION and rung is not None and rung < len(ladder.rungs):
        return ladder.rungs[rung].name
    return kind.label


def tally(
    outcomes: Mapping[str, Mapping[Phase, Outcome]],
    notices: Mapping[tuple[Phase, str], int],
    *,
    label_order: Sequence[str] = (),
) -> ArmTally:
    """Count an arm: every organisation's outcome per phase (absent: unfinished) and the
    notices by (phase, label)."""
    total = len(outcomes)
    phases = []
    for phase in WORKING_PHASES:
        counts = Counter(o.get(phase) for o in outcomes.values())
        on_time = counts[Outcome.ON_TIME]
        late = counts[Outcome.LATE]
        after = counts[Outcome.AFTER_RECTIFICATION]
        phases.append(
            PhaseTally(
                phase=phase,
                on_time=on_time,
                late=late,
                after_rectification=after,
                unfinished=total - on_time - late - after,
            )
        )
    order = {label: i for i, label in enumerate(label_order)}
    phase_order = {p: i for i, p in enumerate(WORKING_PHASES)}
    rows = sorted(
        (
            NoticeTally(phase=phase, label=label, count=count)
            for (phase, label), count in notices.items()
        ),
        key=lambda n: (order.get(n.label, len(order)), n.label, phase_order.get(n.phase, 9)),
    )
    return ArmTally(organisations=total, phases=tuple(phases), notices=tuple(rows))


def merge_tallies(parts: Iterable[ArmTally], *, label_order: Sequence[str] = ()) -> ArmTally:
    """One county's tally from its batches'."""
    parts = list(parts)
    phases = []
    for phase in WORKING_PHASES:
        of = [p.phase(phase) for p in parts]
        phases.append(
            PhaseTally(
                phase=phase,
                on_time=sum(t.on_time for t in of),
                late=sum(t.late for t in of),
                after_rectification=sum(t.after_rectification for t in of),
                unfinished=sum(t.unfinished for t in of),
            )
        )
    notices: Counter[tuple[Phase, str]] = Counter()
    for part in parts:
        for n in part.notices:
            notices[(n.phase, n.label)] += n.count
    merged = tally({}, notices, label_order=label_order)
    return ArmTally(
        organisations=sum(p.organisations for p in parts),
        phases=tuple(phases),
        notices=merged.notices,
    )


class PhaseDifference(BaseModel):
    """Changed minus unchanged, for one phase."""

    model_config = _FROZEN

    phase: Phase
    on_time: int
    late: int
    after_rectification: int
    unfinished: int


class NoticeDifference(BaseModel):
    """Changed minus unchanged notices of one label (all phases)."""

    model_config = _FROZEN

    label: str
    unchanged: int
    changed: int

    @property
    def difference(self) -> int:
        """Changed minus unchanged."""
        return self.changed - self.unchanged


class TallyDifference(BaseModel):
    """The effect of the draft: the changed arm minus the unchanged arm."""

    model_config = _FROZEN

    phases: tuple[PhaseDifference, ...]
    notices: tuple[NoticeDifference, ...]
    # Organisations whose outcome in some phase differs between the arms.
    organisations_affected: int = 0


def difference(
    unchanged: ArmTally, changed: ArmTally, *, organisations_affected: int = 0
) -> TallyDifference:
    """Changed minus unchanged, per phase and per notice label."""
    phases = tuple(
        PhaseDifference(
            phase=phase,
            on_time=changed.phase(phase).on_time - unchanged.phase(phase).on_time,
            late=changed.phase(phase).late - unchanged.phase(phase).late,
            after_rectification=changed.phase(phase).after_rectification
            - unchanged.phase(phase).after_rectification,
            unfinished=changed.phase(phase).unfinished - unchanged.phase(phase).unfinished,
        )
        for phase in WORKING_PHASES
    )
    labels = list(dict.fromkeys([*unchanged.labels(), *changed.labels()]))
    notices = tuple(
        NoticeDifference(
            label=label,
            unchanged=unchanged.notice_count(label),
            changed=changed.notice_count(label),
        )
        for label in labels
    )
    return TallyDifference(
        phases=phases, notices=notices, organisations_affected=organisations_affected
    )


__all__ = [
    "MAX_EXTENSION",
    "ArmTally",
    "ChangeKind",
    "DraftChange",
    "NoticeDifference",
    "NoticeTally",
    "OrgStart",
    "PhaseDifference",
    "PhaseStart",
    "PhaseTally",
    "RungAction",
    "TallyDifference",
    "carry_state",
    "changed_ladder",
    "difference",
    "extended_deadline",
    "extends",
    "merge_tallies",
    "notice_label",
    "plan_with_change",
    "tally",
]
