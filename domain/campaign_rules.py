"""The rules of one organisation's campaign: bookkeeping and the checks behind validators.

:class:`CampaignRules` never changes state in its ``check_*`` methods, so update validators
can call them (a rejected update writes nothing to history). :class:`domain.campaign.Campaign`
adds the actions and the passage of time.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from domain.actions import (
    AcknowledgeEscalation,
    DecideExtension,
    DecideSubmission,
    RecheckRectification,
    ReportRectification,
    RequestExtension,
    SubmitEvidence,
    WaiveStep,
)
from domain.calendar import Span, WorkingCalendar, local_date
from domain.errors import DomainError, FieldError, ValidationFailed
from domain.events import EventKind
from domain.evidence import invisible_text_problems, validate_evidence
from domain.machine import PhaseStatus
from domain.notices import Notice
from domain.organisation import SUPERVISOR_ROLES, Organisation, Role
from domain.phases import Phase
from domain.plan import DEFAULT_SUBMITTERS, LadderPlan, StepPlan, StepProcedure
from domain.schedule import OrgPlan, check_deadline_in_calendar, check_extended_deadline
from domain.state import (
    Actor,
    CampaignEvent,
    CampaignState,
    Extension,
    ExtensionStatus,
    PhaseState,
    RectificationStatus,
    StepState,
)
from domain.text import free_text_problem, visible_length

# Who submits a step whose plan names nobody else (StepPlan.submitted_by), and who asks for
# an extension or reports a rectification.
SUBMITTER_ROLES = DEFAULT_SUBMITTERS
# How many idempotency keys to remember; retries come within minutes, not thousands of actions.
_KEYS_KEPT = 500


class OrderRectification(BaseModel):
    """A rectification order (整改通知) from outside the ladder, e.g. a 群众评议 whose
    satisfaction fell below the plan's threshold. ``reference`` (the evaluation id) makes it
    apply once; the actor is the one who opened the evaluation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    actor: Actor
    source: str = Field(pattern=r"^[a-z_]+$")
    reference: str = Field(min_length=1, max_length=120)
    reason: str
    # The order's own deadline; None: the ladder's rectification_period.
    period: Span | None = None
    # The phase the evaluation was opened in: the order holds that phase only, and is refused
    # once it has ended (``CampaignRules.check_order_phase``). None: an order from before the
    # field (an evaluation started before it), applied to the open phase as it always was.
    phase: Phase | None = None

    @property
    def key(self) -> str:
        """The idempotency key: one order per source and reference."""
        return f"{self.source}:{self.reference}"


# Who may stand behind an order from an evaluation: supervisors, and the secretary for the
# evaluation of the organisation's own members.
ORDERING_ROLES = SUPERVISOR_ROLES | {Role.SECRETARY}


class CampaignStatus(BaseModel):
    """What the status query and every update return."""

    organisation: Organisation
    round_name: str
    state: CampaignState


def new_state(plan: OrgPlan) -> CampaignState:
    """The state of a campaign before its first phase opens."""
    return CampaignState(
        round_id=plan.round_id,
        org_id=plan.organisation.id,
        phases=[
            PhaseState(
                phase=p.phase,
                opens_at=p.opens_at,
                deadline=p.deadline,
                planned_deadline=p.deadline,
                steps=[StepState(step_id=s.id, name=s.name, required=s.required) for s in p.steps],
            )
            for p in plan.phases
        ],
    )


# The procedures that settle steps (StepPlan.procedure): a ballot's published result, a
# declaration, the county's approval.
PROCEDURES = frozenset({"evaluation", *(p.value for p in StepProcedure)})


def procedure_of(actor: Actor) -> str | None:
    """The procedure an actor stands for (``<procedure>/<reference>``), or None for a
    person: no account's username holds "/" (domain.accounts.USERNAME_PATTERN), and the
    roster's generated ones start with ``secretary-``."""
    procedure, slash, _ = actor.user.partition("/")
    return procedure if slash and procedure in PROCEDURES else None


def _procedure_only(step: StepPlan) -> str:
    """Why a step a procedure settles refuses anything else (Chinese)."""
    if step.ballot is not None:
        return (
            f"步骤“{step.name}”由群众评议投票结果自动完成，不能手工填报；"
            "请由上级党组织在“群众评议”中发起投票"
        )
    assert step.settled_by is not None
    return f"步骤“{step.name}”由{step.settled_by.label}完成，不能手工填报"


#: The most an organisation's record (its campaign state, as JSON) may hold before actions
#: that add free text or evidence are refused: half of Temporal's 2 MB payload limit, which
#: the record meets whole at every continue-as-new.
STATE_BUDGET_BYTES = 1024 * 1024
#: The shortest rectification report (整改报告), in characters a reader sees.
REPORT_MIN_CHARS = 10


def _require_role(actor: Actor, allowed: frozenset[Role], what: str) -> None:
    if actor.role not in allowed:
        raise DomainError(f"当前角色无权{what}", code="forbidden")


def _require_reason(reason: str, what: str) -> None:
    if not reason.strip():
        raise DomainError(f"{what}必须填写理由", code="reason_required", field="reason")


class CampaignRules:
    """Applies actions and time to a :class:`CampaignState` for one organisation."""

    def __init__(self, plan: OrgPlan, state: CampaignState) -> None:
        self.plan = plan
        self.state = state
        self.org = plan.organisation
        # The calendar a calendar update installed, else the one pinned at kick-off; plans
        # from before pinning compute from the plan's calendar and the installed package.
        self.calendar: WorkingCalendar = (
            state.calendar or plan.pinned_calendar or plan.calendar.build()
        )
        self.pending_events: list[CampaignEvent] = []
        self.pending_notices: list[Notice] = []

    @property
    def ladder(self) -> LadderPlan:
        """The ladder the current phase climbs: the plan version's (``state.ladder``, else
        the plan's), except in a phase that had started climbing before the version came,
        which finishes on the ladder it started (``domain.plan_version``)."""
        state = self.state
        if state.climbing_ladder is not None and state.climbing_phase is state.phase:
            return state.climbing_ladder
        return state.ladder or self.plan.ladder

    # ----- bookkeeping -------------------------------------------------------------------
    def emit(self, kind: EventKind, now: datetime, **fields: object) -> None:
        """Record a state change; its id is stable across replays (a per-campaign sequence)."""
        self.state.event_seq += 1
        self.pending_events.append(
            CampaignEvent.model_validate(
                {
                    "event_id": f"{self.state.round_id}/{self.state.org_id}/{self.state.event_seq}",
                    "round_id": self.state.round_id,
                    "org_id": self.state.org_id,
                    "kind": kind,
                    "at": now,
                    **fields,
                }
            )
        )

    def take_outbox(self) -> tuple[list[CampaignEvent], list[Notice]]:
        """Hand the pending events and notices to the caller and clear them."""
        events, notices = self.pending_events, self.pending_notices
        self.pending_events, self.pending_notices = [], []
        return events, notices

    def restore_outbox(self, events: Iterable[CampaignEvent], notices: Iterable[Notice]) -> None:
        """Put back what a previous run still owed (carried across continue-as-new), ahead
        of anything emitted since, so it is written first and in order."""
        self.pending_events = [*events, *self.pending_events]
        self.pending_notices = [*notices, *self.pending_notices]

    def seen(self, key: str | None) -> bool:
        """Whether an action with this idempotency key was already applied."""
        return key is not None and key in self.state.idempotency_keys

    def _remember(self, key: str | None) -> None:
        if key is not None:
            self.state.idempotency_keys = [*self.state.idempotency_keys[-(_KEYS_KEPT - 1) :], key]

    def status(self) -> CampaignStatus:
        """The status sharing the live state, not a copy: for a caller that serializes it
        before the state can change again, as the workflow's ``status`` query does (the SDK
        turns a synchronous query's result into a payload at once). A deep copy grew with
        everything the organisation ever submitted; for a busy organisation it was the
        largest item of the worker's CPU in a deadline storm (docs/performance.md, "Storm at
        2,000, session 7"). Never mutate what it returns."""
        # Pydantic keeps a model instance given for a field as it is (no revalidation).
        return CampaignStatus(
            organisation=self.org, round_name=self.plan.round_name, state=self.state
        )

    def _open_phase(self) -> PhaseState:
        if self.state.closed:
            raise DomainError("本轮活动已结束", code="round_closed")
        if self.state.phase is Phase.COMPLETED:
            raise DomainError("本组织已完成全部阶段", code="completed")
        return self.state.current()

    def _step(self, step_id: str) -> tuple[PhaseState, StepState, StepPlan]:
        phase = self._open_phase()
        step = phase.step(step_id)
        if step is None:
            raise DomainError(
                f"当前阶段（{phase.phase.label}）没有步骤 {step_id}",
                code="unknown_step",
                field="step_id",
            )
        plan = next(s for s in self.plan.phase(phase.phase).steps if s.id == step_id)
        return phase, step, plan

    # ----- checks: used by update validators; they never change anything ----------------
    def _step_plan(self, step_id: str) -> StepPlan | None:
        """The plan of ``step_id`` in the current phase, or None (no open phase, no such
        step): the checks that follow name those cases themselves."""
        state = self.state
        if state.closed or state.phase is Phase.COMPLETED:
            return None
        phase = self.plan.phase(state.phase)
        return next((s for s in phase.steps if s.id == step_id), None)

    def check_submit(self, cmd: SubmitEvidence, now: datetime | None = None) -> None:
        """Refuse a submission the rules do not allow, naming the field and the reason.

        Who may submit is the step's (``StepPlan.submitted_by``: 领导点评 by the upper level's
        leader). A ``ballot`` step takes only its evaluation's published result: a typed-in
        submission is refused, and the result is not held to the typed-in field rules (the
        ballot's own composition and quorum stand for them).

        Dates, an admission rule: with ``now`` (the Update's validator, at the workflow's
        time) a ``within_phase`` date falls between the day the organisation actually
        entered the phase and its deadline, and no date is later than today (Asia/Shanghai).
        Without it (the handler's re-check, which also runs on replay) the window starts at
        the earlier of the planned and the actual opening and the future is not checked: what
        the validator accepts now, and what it accepted before the rule (the planned window),
        both still pass, so recorded histories replay as they ran."""
        if self.seen(cmd.idempotency_key):
            return
        step_plan = self._step_plan(cmd.step_id)
        procedure = procedure_of(cmd.actor)
        if step_plan is not None and step_plan.procedure is not None:
            if procedure != step_plan.procedure:
                raise DomainError(_procedure_only(step_plan), code="ballot_step")
        elif procedure is not None:
            if step_plan is not None:
                raise DomainError("该程序的结果只能用于它所完成的步骤", code="forbidden")
            # Not a step of the open phase: _step below says so, naming the phase.
        else:
            allowed = step_plan.submitters if step_plan is not None else SUBMITTER_ROLES
            _require_role(cmd.actor, allowed, "提交该步骤的材料")
        phase, step, plan = self._step(cmd.step_id)
        if step.status not in (step.status.OPEN, step.status.RETURNED):
            raise DomainError(
                f"步骤“{step.name}”当前为{step.status.label}，不能提交", code="invalid_transition"
            )
        if procedure is not None:
            unknown = sorted(set(cmd.values) - {f.name for f in plan.evidence})
            if unknown:
                raise ValidationFailed(
                    [FieldError(f"evidence.{name}", "本步骤不需要此项") for name in unknown],
                    code="invalid_evidence",
                )
            return
        if now is not None:  # the validator: the actual window, nothing after today
            opens_at, opened_at, today = phase.opens_at, phase.opened_at, local_date(now)
        else:  # the handler: the earlier opening, no today (see above)
            opens_at = min(phase.opens_at, phase.opened_at or phase.opens_at)
            opened_at, today = None, None
        errors = validate_evidence(
            plan,
            cmd.values,
            member_count=self.org.member_count,
            opens_at=opens_at,
            deadline=phase.deadline,
            opened_at=opened_at,
            today=today,
        )
        if errors:
            raise ValidationFailed(errors, code="invalid_evidence")

    def check_decide(self, cmd: DecideSubmission) -> None:
        """Only the step's deciders (the supervisors, unless the plan names others), only a
        submitted step, and a return needs a reason. The organisation's own secretary, where
        the plan makes it decide (领导点评), acknowledges: it cannot return the review."""
        if self.seen(cmd.idempotency_key):
            return
        step_plan = self._step_plan(cmd.step_id)
        allowed = step_plan.deciders if step_plan is not None else SUPERVISOR_ROLES
        _require_role(cmd.actor, allowed, "审核（签收）该步骤")
        _, step, _ = self._step(cmd.step_id)
        if step.status is not step.status.SUBMITTED:
            raise DomainError(
                f"步骤“{step.name}”当前为{step.status.label}，没有待审核的材料",
                code="invalid_transition",
            )
        if not cmd.accept:
            if cmd.actor.role is Role.SECRETARY:
                raise DomainError(
                    f"“{step.name}”由上级作出，本组织只能签收并回复，不能退回",
                    code="forbidden",
                )
            _require_reason(cmd.reason, "退回")

    # ----- admission rules ---------------------------------------------------------------
    # Rules added after workflows had already run: the Updates' validators apply them to new
    # actions only. The handlers do not re-check them, so an action accepted before a rule
    # existed replays as it ran (validators do not run on replay).

    def check_state_budget(
        self, cmd: SubmitEvidence | RequestExtension | ReportRectification
    ) -> None:
        """Refuse an action that would grow the organisation's record past
        :data:`STATE_BUDGET_BYTES`: each returned submission, refused extension or rejected
        report stays in the record, which Temporal carries whole into every continued run
        (2 MB at most) and every status query (4 MB), so repeated large submissions once left
        a workflow that could no longer run a task."""
        if self.seen(cmd.idempotency_key):
            return
        size = len(self.state.model_dump_json().encode()) + len(cmd.model_dump_json().encode())
        if size > STATE_BUDGET_BYTES:
            raise DomainError(
                f"本组织本轮已提交的材料累计已达上限（{STATE_BUDGET_BYTES // 1024}KB），"
                "请精简文字，或把材料作为附件上传后再提交",
                code="record_full",
            )

    def check_visible_text(self, cmd: SubmitEvidence | ReportRectification) -> None:
        """Text counted as a reader sees it: zero-width and other invisible characters once
        passed every "non-empty" and minimum-length rule (a blank 组长, a list of invisible
        names, a report of nothing)."""
        if self.seen(cmd.idempotency_key):
            return
        if isinstance(cmd, ReportRectification):
            if visible_length(cmd.report) < REPORT_MIN_CHARS:
                raise DomainError(
                    f"整改报告过短，至少 {REPORT_MIN_CHARS} 字", code="invalid", field="report"
                )
            return
        step_plan = self._step_plan(cmd.step_id)
        if step_plan is None:
            return
        errors = invisible_text_problems(step_plan, cmd.values)
        if errors:
            raise ValidationFailed(errors, code="invalid_evidence")

    def check_visible_reason(
        self,
        cmd: DecideSubmission
        | WaiveStep
        | RequestExtension
        | DecideExtension
        | RecheckRectification
        | OrderRectification,
    ) -> None:
        """Reasons and notes counted as a reader sees them: a reason of zero-width spaces
        passed every "必须填写理由" (``_require_reason`` strips only whitespace) and a
        direction override could hide what a 退回 or 驳回 really said. A blank reason is left
        to the command's own rule, which knows whether one is needed."""
        key = cmd.key if isinstance(cmd, OrderRectification) else cmd.idempotency_key
        if self.seen(key):
            return
        text, field = (
            (cmd.notes, "notes")
            if isinstance(cmd, RecheckRectification)
            else (
                cmd.reason,
                "reason",
            )
        )
        if not text.strip():
            return
        problem = free_text_problem(text)
        if problem is not None:
            label = "说明" if field == "notes" else "理由"
            raise DomainError(f"{label}{problem}", code="invalid", field=field)

    def check_extension_reach(self, cmd: RequestExtension | DecideExtension) -> None:
        """An extension moves the open phase's deadline by a year at most and not to or past
        the next phase's deadline: asked for, or approved (a request made before this rule may
        ask for more)."""
        if self.seen(cmd.idempotency_key):
            return
        if isinstance(cmd, DecideExtension):
            if not cmd.approve:
                return
            new_deadline = self._extension(cmd.extension_id).new_deadline
        else:
            new_deadline = cmd.new_deadline
        phase = self._open_phase()
        deadlines = [(p.phase, p.deadline) for p in self.state.phases]
        check_extended_deadline(deadlines, phase.phase, new_deadline, field="new_deadline")

    def check_independent_decision(self, cmd: DecideSubmission) -> None:
        """Nobody decides on what their own role entered: the county office may enter a step
        on an organisation's behalf, but another supervisor (its instructor or guidance group)
        then accepts or returns it, as with the secretary's own submissions.

        An admission rule: the Update's validator applies it to new decisions only. The
        handler does not re-check it, so the histories of decisions accepted before the rule
        replay as they ran (validators do not run on replay)."""
        if self.seen(cmd.idempotency_key):
            return
        _, step, _ = self._step(cmd.step_id)
        if not step.submissions:
            return
        submitter = step.submissions[-1].submitted_by.role
        if submitter is cmd.actor.role:
            step_plan = self._step_plan(cmd.step_id)
            deciders = step_plan.deciders if step_plan is not None else SUPERVISOR_ROLES
            others = [role.label for role in Role if role in deciders and role is not submitter]
            raise DomainError(
                f"“{step.name}”的材料由{submitter.label}代为提交，不能由{submitter.label}自行审核"
                + (f"，请由{'、'.join(others)}审核" if others else ""),
                code="forbidden",
            )

    def check_waive(self, cmd: WaiveStep) -> None:
        """Only a supervisor waives, with a reason, a step not yet settled."""
        if self.seen(cmd.idempotency_key):
            return
        _require_role(cmd.actor, SUPERVISOR_ROLES, "免除步骤")
        _require_reason(cmd.reason, "免除步骤")
        _, step, _ = self._step(cmd.step_id)
        if step.settled:
            raise DomainError(f"步骤“{step.name}”已{step.status.label}", code="invalid_transition")

    def check_request_extension(self, cmd: RequestExtension, now: datetime) -> None:
        """The secretary asks for a later deadline, with a reason, before rectification."""
        if self.seen(cmd.idempotency_key):
            return
        _require_role(cmd.actor, SUBMITTER_ROLES, "申请延期")
        _require_reason(cmd.reason, "申请延期")
        phase = self._open_phase()
        if phase.status is PhaseStatus.RECTIFYING:
            raise DomainError("已下达整改通知，不能再申请延期", code="invalid_transition")
        if cmd.new_deadline <= max(phase.deadline, now):
            raise DomainError(
                "新的截止时间必须晚于当前截止时间", code="invalid_deadline", field="new_deadline"
            )
        # Past the round's pinned calendar the timers could not be computed.
        check_deadline_in_calendar(
            self.calendar, self.ladder, cmd.new_deadline, field="new_deadline"
        )
        if any(
            e.status is ExtensionStatus.REQUESTED and e.phase is phase.phase
            for e in self.state.extensions
        ):
            raise DomainError("已有待审批的延期申请", code="duplicate_request")

    def check_decide_extension(self, cmd: DecideExtension, now: datetime) -> None:
        """A supervisor decides a pending request; approval must still move the deadline later."""
        if self.seen(cmd.idempotency_key):
            return
        _require_role(cmd.actor, SUPERVISOR_ROLES, "审批延期")
        extension = self._extension(cmd.extension_id)
        if extension.status is not ExtensionStatus.REQUESTED:
            raise DomainError("该延期申请已处理", code="invalid_transition")
        phase = self._open_phase()
        if extension.phase is not phase.phase:
            raise DomainError("该延期申请所属阶段已结束", code="invalid_transition")
        if cmd.approve and phase.status is PhaseStatus.RECTIFYING:
            raise DomainError("已下达整改通知，不能批准延期", code="invalid_transition")
        if cmd.approve and extension.new_deadline <= now:
            raise DomainError("申请的截止时间已过，请重新申请", code="invalid_deadline")
        if not cmd.approve:
            _require_reason(cmd.reason, "驳回延期")

    def _extension(self, extension_id: str) -> Extension:
        for extension in self.state.extensions:
            if extension.id == extension_id:
                return extension
        raise DomainError(f"没有延期申请 {extension_id}", code="not_found", field="extension_id")

    def check_acknowledge(self, cmd: AcknowledgeEscalation) -> None:
        """The rung's addressee (or the county office) signs for it once."""
        if self.seen(cmd.idempotency_key):
            return
        escalation = next(
            (e for e in self.state.phase_state(cmd.phase).escalations if e.rung == cmd.rung), None
        )
        if escalation is None:
            raise DomainError("没有该级督办通知", code="not_found", field="rung")
        if cmd.actor.role not in (escalation.recipient, Role.COUNTY_OFFICE):
            raise DomainError("只有督办对象可以签收", code="forbidden")
        if escalation.acknowledged_by is not None:
            raise DomainError("该督办通知已签收", code="invalid_transition")

    def check_report_rectification(self, cmd: ReportRectification) -> None:
        """The secretary reports on an issued order, in words."""
        if self.seen(cmd.idempotency_key):
            return
        _require_role(cmd.actor, SUBMITTER_ROLES, "提交整改报告")
        order = self.state.phase_state(cmd.phase).rectification
        if order is None or order.status is not RectificationStatus.ISSUED:
            raise DomainError("没有待提交报告的整改通知", code="invalid_transition")
        if len(cmd.report.strip()) < REPORT_MIN_CHARS:
            raise DomainError(
                f"整改报告过短，至少 {REPORT_MIN_CHARS} 字", code="invalid", field="report"
            )

    def check_recheck(self, cmd: RecheckRectification) -> None:
        """A supervisor re-checks a reported order; sending it back needs notes."""
        if self.seen(cmd.idempotency_key):
            return
        _require_role(cmd.actor, SUPERVISOR_ROLES, "复查整改")
        order = self.state.phase_state(cmd.phase).rectification
        if order is None or order.status is not RectificationStatus.REPORTED:
            raise DomainError("没有待复查的整改报告", code="invalid_transition")
        if not cmd.passed:
            _require_reason(cmd.notes, "复查不通过")

    def check_order_rectification(self, cmd: OrderRectification) -> None:
        """An order from an evaluation needs a reason and a campaign still under way."""
        if self.seen(cmd.key):
            return
        _require_role(cmd.actor, ORDERING_ROLES, "下达整改通知")
        _require_reason(cmd.reason, "下达整改通知")
        self._open_phase()

    def check_order_phase(self, cmd: OrderRectification) -> None:
        """An order from an evaluation lands on the phase the evaluation was opened in
        (``cmd.phase``), and only while the organisation is still in it: a ballot held open
        past the end of its phase once ordered 整改 on the next phase, which had nothing to do
        with the result. Refused, naming the phase and the day it ended, so the evaluation
        records why no 整改通知 came of it.

        An admission rule: the Update's validator applies it, the handler does not, so the
        orders accepted before it replay as they ran; an order without a phase (an
        evaluation started before the field) is not checked."""
        if cmd.phase is None or self.seen(cmd.key):
            return
        state = self.state
        if state.phase is cmd.phase:
            return
        ordered = next((p for p in state.phases if p.phase is cmd.phase), None)
        now_in = (
            "本组织已完成全部阶段"
            if state.phase is Phase.COMPLETED
            else f"本组织现处于“{state.phase.label}”阶段"
        )
        if ordered is not None and ordered.completed_at is not None:
            ended = local_date(ordered.completed_at).isoformat()
            reason = f"评议所属的“{cmd.phase.label}”阶段已于{ended}结束（{now_in}）"
        else:
            reason = f"评议所属的“{cmd.phase.label}”阶段不是本组织当前阶段（{now_in}）"
        raise DomainError(
            f"{reason}，整改通知只能下达到该阶段，不能转到其他阶段",
            code="invalid_transition",
            field="phase",
        )
