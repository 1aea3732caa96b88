"""A round plan as data: phases, steps, evidence rules, the ladder and the calendar.

Plans are written in YAML (see ``plans/``) and validated into these frozen models by
:mod:`domain.plan_loader`. Every model forbids unknown keys so a misspelt key is an error
that names its field, not a silently ignored setting.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from domain.calendar import Span, WorkingCalendar
from domain.evaluation_rules import EvaluationRules, EvaluationTarget, require_valid_ballot_step
from domain.organisation import SUPERVISOR_ROLES, OrgType, Role
from domain.phases import WORKING_PHASES, Phase
from domain.rubric import CommendationRules

_FROZEN = ConfigDict(frozen=True, extra="forbid")
_ID_PATTERN = r"^[a-z0-9][a-z0-9_\-]*$"


class FieldKind(StrEnum):
    """The kinds of evidence a step can ask for."""

    DATE = "date"
    INTEGER = "integer"
    TEXT = "text"
    DOCUMENT = "document"  # an uploaded file: {"name": ..., "sha256": ...}
    PEOPLE = "people"  # a list of names, e.g. a leading-group roster
    MEMBER_COMMITMENTS = "member_commitments"  # [{"member", "content", "due"}]
    BALLOTS = "ballots"  # {"satisfied", "fairly_satisfied", "basically_satisfied", "unsatisfied"}
    SCORES = "scores"  # {"item": number}
    CHOICE = "choice"


class EvidenceField(BaseModel):
    """One field of evidence and its rules."""

    model_config = _FROZEN

    name: str = Field(pattern=_ID_PATTERN)
    label: str
    kind: FieldKind
    required: bool = True
    min: float | None = None
    max: float | None = None
    min_length: int | None = Field(default=None, ge=1)
    min_items: int | None = Field(default=None, ge=1)
    # Attendance and similar counts are checked against the organisation's member count.
    min_share_of_members: float | None = Field(default=None, gt=0, le=1)
    max_share_of_members: float | None = Field(default=None, gt=0)
    # Member commitments must cover this share of members (1.0 = everyone).
    coverage_of_members: float | None = Field(default=None, gt=0, le=1)
    choices: tuple[str, ...] | None = None
    # For dates: not later than the phase's deadline / not before the phase opened.
    within_phase: bool = False

    @model_validator(mode="after")
    def _choices_for_choice(self) -> EvidenceField:
        if self.kind is FieldKind.CHOICE and not self.choices:
            raise ValueError("choice 类型的字段必须给出 choices")
        return self


class StepProcedure(StrEnum):
    """A procedure outside the step form whose outcome settles a step (``settled_by``)."""

    DECLARATION = "declaration"  # 评选表彰 申报 (seed 002 §五(五) "由各级党委自行申报")
    APPROVAL = "approval"  # 评选表彰 审定 ("报县委常委会审定")

    @property
    def label(self) -> str:
        """Chinese label, as the refusal of a typed-in submission names it."""
        return {"declaration": "评选表彰申报", "approval": "县委常委会审定"}[self.value]


#: Who submits a step when the plan does not say: the organisation's secretary (the 第一责任人,
#: seed 002 §六(一)), and the county office entering on its behalf.
DEFAULT_SUBMITTERS: frozenset[Role] = frozenset({Role.SECRETARY, Role.COUNTY_OFFICE})


class StepPlan(BaseModel):
    """A step of a phase: 规定动作 (required) or 自选动作 (optional).

    By default the secretary submits and a supervisor decides. ``submitted_by`` and
    ``decided_by`` name other roles where the rulebook does (领导点评 is written by the upper
    level's leader and acknowledged by the organisation, seed 002 §五(三)); ``ballot`` makes
    the step one that the 群众评议 procedure itself settles with its published result (§五(四)),
    so nobody types it in. Plans from before these keys behave as they always did.
    """

    model_config = _FROZEN

    id: str = Field(pattern=_ID_PATTERN)
    name: str
    required: bool = True
    description: str = ""
    evidence: tuple[EvidenceField, ...] = ()
    # None: every type; otherwise only these types have the step (分类指导).
    applies_to: tuple[OrgType, ...] | None = None
    # Who may submit; None: DEFAULT_SUBMITTERS.
    submitted_by: tuple[Role, ...] | None = None
    # Who accepts (or returns) a submission; None: the supervisors. The organisation's own
    # secretary deciding is an acknowledgement (签收, with an optional answer), never a return.
    decided_by: tuple[Role, ...] | None = None
    # Settled by the published result of this target's 群众评议 (EvaluationWorkflow).
    ballot: EvaluationTarget | None = None
    # Settled by a 评选表彰 procedure (the declaration, the county's approval).
    settled_by: StepProcedure | None = None

    @model_validator(mode="after")
    def _unique_fields(self) -> StepPlan:
        names = [f.name for f in self.evidence]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"证据字段重复：{', '.join(duplicates)}")
        if self.ballot is not None and (self.submitted_by or self.decided_by):
            raise ValueError(
                "由群众评议结果完成的步骤（ballot）不能再指定 submitted_by 或 decided_by"
            )
        if self.submitted_by is not None and not self.submitted_by:
            raise ValueError("submitted_by 至少需要一个角色")
        if self.decided_by is not None and not self.decided_by:
            raise ValueError("decided_by 至少需要一个角色")
        if self.submitted_by and self.decided_by and set(self.submitted_by) & set(self.decided_by):
            raise ValueError("提交与审核（签收）不能是同一角色")
        # A ballot step the published result could never settle would hold the organisation
        # until someone waived it (an outside tester's plan).
        require_valid_ballot_step(self)
        return self

    @property
    def submitters(self) -> frozenset[Role]:
        """The roles that may submit evidence for this step (none for a step a procedure
        settles: a ballot, a declaration, an approval)."""
        if self.procedure is not None:
            return frozenset()
        return frozenset(self.submitted_by) if self.submitted_by else DEFAULT_SUBMITTERS

    @property
    def procedure(self) -> str | None:
        """The procedure that settles this step ("evaluation", "declaration", "approval"), the
        first part of its actor's ``user`` (``<procedure>/<reference>``); None: typed in."""
        if self.ballot is not None:
            return "evaluation"
        return self.settled_by.value if self.settled_by is not None else None

    @property
    def deciders(self) -> frozenset[Role]:
        """The roles that may accept (or return) a submission for this step."""
        return frozenset(self.decided_by) if self.decided_by else SUPERVISOR_ROLES


class PhasePlan(BaseModel):
    """A phase's window and steps. The deadline is an absolute date or a span after the
    previous phase's deadline (or the round's start for the first phase)."""

    model_config = _FROZEN

    phase: Phase
    deadline: date | None = None
    duration: Span | None = None
    steps: tuple[StepPlan, ...]
    # Extra steps per organisation type, e.g. a 设岗定责 step only for rural branches.
    extra_steps: dict[OrgType, tuple[StepPlan, ...]] = Field(default_factory=dict)
    # Extra steps of organisations in 少数民族聚居地区 (``Organisation.ethnic_area``), on top
    # of their type's: seed 002 §四 "少数民族聚居地区党组织还要…维护民族团结和社会稳定".
    # A step here may still be limited to some types (``applies_to``).
    ethnic_area_steps: tuple[StepPlan, ...] = ()

    @model_validator(mode="after")
    def _window(self) -> PhasePlan:
        if (self.deadline is None) == (self.duration is None):
            raise ValueError("deadline 与 duration 必须且只能给出其一")
        for org_type in OrgType:
            ids = [s.id for s in self.steps_for(org_type, ethnic_area=True)]
            if len(ids) != len(set(ids)):
                raise ValueError(f"步骤编号重复（{org_type.label}）")
        return self

    def steps_for(self, org_type: OrgType, *, ethnic_area: bool = False) -> tuple[StepPlan, ...]:
        """The steps an organisation of ``org_type`` must or may do in this phase;
        ``ethnic_area``: the organisation is in a 少数民族聚居地区 and has those steps too."""
        base = tuple(s for s in self.steps if s.applies_to is None or org_type in s.applies_to)
        steps = base + self.extra_steps.get(org_type, ())
        if ethnic_area:
            steps += tuple(
                s
                for s in self.ethnic_area_steps
                if s.applies_to is None or org_type in s.applies_to
            )
        return steps


class RungAction(StrEnum):
    """What a rung of the ladder does when it fires."""

    NOTIFY = "notify"
    CIRCULAR = "circular"  # 通报
    RECTIFICATION_ORDER = "rectification_order"  # 整改通知


class Rung(BaseModel):
    """One rung of the escalation ladder, relative to the phase deadline."""

    model_config = _FROZEN

    name: str
    recipient: Role
    delay: Span
    actions: tuple[RungAction, ...] = (RungAction.NOTIFY,)


class EarlyWarningKind(StrEnum):
    """The kind of the ladder's rung before the deadline (the only one so far)."""

    EARLY_WARNING = "early_warning"


class EarlyWarningRung(BaseModel):
    """预警: the ladder's rung *before* the deadline. The round's daily check warns the
    rung's recipient (the instructor) once per organisation and phase when the forecast's
    probability of missing the deadline reaches ``threshold``, from ``not_before`` of the
    phase's window on. Kept apart from ``rungs`` (which climb after the deadline and are
    counted by index in every running workflow); the county office may change the
    threshold of a running round, audited (``chuangzheng.services.forecast_warning``)."""

    model_config = _FROZEN

    kind: EarlyWarningKind = EarlyWarningKind.EARLY_WARNING
    name: str = Field(default="预警", min_length=1, max_length=40)
    recipient: Role = Role.INSTRUCTOR
    threshold: float = Field(gt=0.0, lt=1.0)
    not_before: float = Field(default=0.25, ge=0.0, lt=1.0)
    # The notice's request to the recipient (its last sentence).
    text: str = Field(
        default="请在截止前督促其按序时进度完成规定动作。", min_length=1, max_length=500
    )

    @model_validator(mode="after")
    def _supervisor(self) -> EarlyWarningRung:
        if self.recipient not in SUPERVISOR_ROLES:
            raise ValueError("预警须发给上级督导方（指导员、乡镇、指导小组或县委办），不能发给书记")
        return self


class LadderPlan(BaseModel):
    """Reminder, rungs, rectification and light thresholds (seed 002 §六(五))."""

    model_config = _FROZEN

    reminder_lead: Span
    blue_within: Span
    rungs: tuple[Rung, ...]
    rectification_period: Span
    # The 预警 rung before the deadline; None: the plan sends no 预警.
    early_warning: EarlyWarningRung | None = None

    @model_validator(mode="after")
    def _rungs_climb(self) -> LadderPlan:
        # Checked here, not with Field(min_length=1): pydantic adds a spurious "too short"
        # error to the list whenever one item inside it is invalid.
        if not self.rungs:
            raise ValueError("至少需要一级督办")
        kinds = {("m" if r.delay.minutes is not None else "w") for r in self.rungs}
        if len(kinds) > 1:
            raise ValueError("各级督办的 delay 必须使用同一种单位")
        delays = [r.delay.minutes or r.delay.working_days or 0 for r in self.rungs]
        if delays != sorted(delays):
            raise ValueError("各级督办的 delay 必须逐级不减")
        if RungAction.RECTIFICATION_ORDER not in self.rungs[-1].actions:
            raise ValueError("最高一级督办必须下达整改通知（rectification_order）")
        return self


class CalendarPlan(BaseModel):
    """The plan's additions to the PRC calendar.

    Nothing is added behind the plan's back: a supplementary calendar file (``plans/
    calendars/<name>.yaml``) counts only when the plan names it in ``include``; the loader
    merges the named files' days and years in (``domain.plan_loader.load_plan``).
    """

    model_config = _FROZEN

    holidays: tuple[date, ...] = ()
    workdays: tuple[date, ...] = ()
    # Years the plan vouches for (weekends plus its listed holidays and make-up days).
    supplied_years: tuple[int, ...] = ()
    # Supplementary calendar files the plan chooses explicitly, by name (file stem).
    include: tuple[str, ...] = ()

    def build(self) -> WorkingCalendar:
        """The working calendar this plan implies."""
        return WorkingCalendar(
            extra_holidays=self.holidays,
            extra_workdays=self.workdays,
            supplied_years=self.supplied_years,
        )

    def merged(self, other: CalendarPlan) -> CalendarPlan:
        """This calendar with another's additions (e.g. a supplementary year file)."""
        return CalendarPlan(
            holidays=tuple(sorted(set(self.holidays) | set(other.holidays))),
            workdays=tuple(sorted(set(self.workdays) | set(other.workdays))),
            supplied_years=tuple(sorted(set(self.supplied_years) | set(other.supplied_years))),
            include=tuple(dict.fromkeys((*self.include, *other.include))),
        )


class Scope(BaseModel):
    """Which organisations a round covers; None means all."""

    model_config = _FROZEN

    types: tuple[OrgType, ...] | None = None
    townships: tuple[str, ...] | None = None


class RoundPlan(BaseModel):
    """One round: its theme, scope, the five phases and (optionally) its own ladder."""

    model_config = _FROZEN

    id: str = Field(pattern=_ID_PATTERN)
    name: str
    theme: str = ""
    starts_on: date
    ends_on: date | None = None
    scope: Scope = Scope()
    phases: tuple[PhasePlan, ...]
    ladder: LadderPlan | None = None

    @model_validator(mode="after")
    def _five_phases_in_order(self) -> RoundPlan:
        if tuple(p.phase for p in self.phases) != WORKING_PHASES:
            order = " → ".join(p.label for p in WORKING_PHASES)
            raise ValueError(f"阶段必须依次为：{order}")
        return self

    def phase(self, phase: Phase) -> PhasePlan:
        """The plan of one phase."""
        return next(p for p in self.phases if p.phase is phase)

    def procedure_step(self, procedure: StepProcedure, org_type: OrgType) -> StepPlan | None:
        """The step an organisation of ``org_type`` settles by ``procedure``, or None."""
        for phase in self.phases:
            for step in phase.steps_for(org_type):
                if step.settled_by is procedure:
                    return step
        return None

    def ballot_step(self, target: EvaluationTarget, org_type: OrgType) -> StepPlan | None:
        """The step an organisation of ``org_type`` settles with the published result of a
        ``target`` 群众评议 (the first ``ballot`` step for it), or None."""
        for phase in self.phases:
            for step in phase.steps_for(org_type):
                if step.ballot is target:
                    return step
        return None


class CampaignPlan(BaseModel):
    """A plan file: the campaign, its default ladder and calendar, and its rounds."""

    model_config = _FROZEN

    id: str = Field(pattern=_ID_PATTERN)
    name: str
    ladder: LadderPlan
    calendar: CalendarPlan = CalendarPlan()
    rounds: tuple[RoundPlan, ...]
    # 评选表彰: rubrics, quotas, outlier rule; None means seed 002's (domain.rubric).
    commendation: CommendationRules | None = None
    # 群众评议: rater composition, quorum, satisfaction threshold, window (domain.evaluation).
    evaluation: EvaluationRules = EvaluationRules()

    @model_validator(mode="after")
    def _unique_rounds(self) -> CampaignPlan:
        if not self.rounds:
            raise ValueError("至少需要一个轮次")
        ids = [r.id for r in self.rounds]
        if len(ids) != len(set(ids)):
            raise ValueError("轮次编号重复")
        return self

    def round(self, round_plan_id: str) -> RoundPlan:
        """A round by id; raises KeyError with the known ids."""
        for r in self.rounds:
            if r.id == round_plan_id:
                return r
        raise KeyError(
            f"计划中没有轮次 {round_plan_id}（已有：{', '.join(r.id for r in self.rounds)}）"
        )

    def ladder_for(self, round_plan: RoundPlan) -> LadderPlan:
        """The round's own ladder, else the campaign's."""
        return round_plan.ladder or self.ladder
