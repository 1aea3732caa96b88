"""One organisation's campaign: human actions and the passage of time applied to its state.

The workflow holds a :class:`Campaign`: validators call the ``check_*`` rules, handlers call
the actions below, and the main loop calls :meth:`Campaign.tick` when a timer fires. Every
change lands in the event outbox and every message in the notice outbox; the workflow
drains both through activities.
"""

from __future__ import annotations

from datetime import datetime

from domain.actions import (
    AcknowledgeEscalation,
    CloseRound,
    DecideExtension,
    DecideSubmission,
    RecheckRectification,
    ReportRectification,
    RequestExtension,
    RoundExtension,
    SubmitEvidence,
    WaiveStep,
)
from domain.campaign_orders import CampaignOrders
from domain.campaign_rules import CampaignStatus, OrderRectification, new_state
from domain.cohort import BehindSchedule
from domain.events import EventKind
from domain.machine import STEP_MACHINE, PhaseStatus, fire
from domain.state import (
    Actor,
    Decision,
    Extension,
    ExtensionStatus,
    PhaseState,
    RectificationStatus,
    StepState,
    Submission,
)

__all__ = ["Campaign", "CampaignStatus", "OrderRectification", "new_state"]

# The decision recorded on a step its procedure settles.
_SETTLED = {
    "evaluation": "群众评议结果已公布",
    "declaration": "已申报",
    "approval": "县委常委会已审定",
}


class Campaign(CampaignOrders):
    """Applies actions and time to one organisation's campaign state."""

    # ----- human actions (each re-checks, then changes state and settles) ----------------
    def submit(self, cmd: SubmitEvidence, now: datetime) -> None:
        """Record evidence for a step; it waits for a supervisor's decision."""
        if self.seen(cmd.idempotency_key):
            return
        self.check_submit(cmd)
        phase, step, plan = self._step(cmd.step_id)
        fire(STEP_MACHINE, step, "submit", "该步骤当前不能提交")
        step.submissions.append(
            Submission(
                seq=len(step.submissions) + 1,
                values=cmd.values,
                submitted_by=cmd.actor,
                submitted_at=now,
            )
        )
        self._remember(cmd.idempotency_key)
        self.emit(
            EventKind.SUBMITTED,
            now,
            phase=phase.phase,
            step_id=step.step_id,
            actor=cmd.actor,
            detail={"values": cmd.values, "seq": len(step.submissions)},
        )
        if plan.procedure is not None:
            # A step a procedure settles (a ballot's published result, a declaration, the
            # county's approval; check_submit lets nothing else submit it) is accepted as
            # it comes: nobody decides on the voters' or the standing committee's verdict.
            self._accept(phase, step, cmd.actor, _SETTLED[plan.procedure], now)
        self.settle(now)

    def _accept(
        self, phase: PhaseState, step: StepState, actor: Actor, reason: str, now: datetime
    ) -> None:
        fire(STEP_MACHINE, step, "accept", "该步骤当前不能通过")
        latest = step.submissions[-1]
        latest.decision, latest.reason = Decision.ACCEPTED, reason
        latest.decided_by, latest.decided_at = actor, now
        self.emit(
            EventKind.ACCEPTED,
            now,
            phase=phase.phase,
            step_id=step.step_id,
            actor=actor,
            detail={"reason": reason, "seq": latest.seq},
        )

    def decide(self, cmd: DecideSubmission, now: datetime) -> None:
        """Accept the latest submission, or return it with a reason."""
        if self.seen(cmd.idempotency_key):
            return
        self.check_decide(cmd)
        phase, step, _ = self._step(cmd.step_id)
        latest = step.submissions[-1]
        if cmd.accept:
            fire(STEP_MACHINE, step, "accept", "该步骤当前不能通过")
        else:
            fire(STEP_MACHINE, step, "return_submission", "该步骤当前不能退回")
        latest.decision = Decision.ACCEPTED if cmd.accept else Decision.RETURNED
        latest.reason, latest.decided_by, latest.decided_at = cmd.reason, cmd.actor, now
        self._remember(cmd.idempotency_key)
        self.emit(
            EventKind.ACCEPTED if cmd.accept else EventKind.RETURNED,
            now,
            phase=phase.phase,
            step_id=step.step_id,
            actor=cmd.actor,
            detail={"reason": cmd.reason, "seq": latest.seq},
        )
        self.settle(now)

    def waive(self, cmd: WaiveStep, now: datetime) -> None:
        """Waive a step with the supervisor's reason."""
        if self.seen(cmd.idempotency_key):
            return
        self.check_waive(cmd)
        phase, step, _ = self._step(cmd.step_id)
        fire(STEP_MACHINE, step, "waive", "该步骤当前不能免除")
        step.waiver_reason, step.waived_by = cmd.reason, cmd.actor
        self._remember(cmd.idempotency_key)
        self.emit(
            EventKind.WAIVED,
            now,
            phase=phase.phase,
            step_id=step.step_id,
            actor=cmd.actor,
            detail={"reason": cmd.reason},
        )
        self.settle(now)

    def request_extension(self, cmd: RequestExtension, now: datetime) -> str:
        """File an extension request; returns its id."""
        if self.seen(cmd.idempotency_key):
            return self.state.extensions[-1].id
        self.check_request_extension(cmd, now)
        phase = self._open_phase()
        extension = Extension(
            id=f"ext-{len(self.state.extensions) + 1}",
            phase=phase.phase,
            new_deadline=cmd.new_deadline,
            reason=cmd.reason,
            requested_by=cmd.actor,
            requested_at=now,
        )
        self.state.extensions.append(extension)
        self._remember(cmd.idempotency_key)
        self.emit(
            EventKind.EXTENSION_REQUESTED,
            now,
            phase=phase.phase,
            actor=cmd.actor,
            detail={
                "extension_id": extension.id,
                "new_deadline": cmd.new_deadline.isoformat(),
                "reason": cmd.reason,
            },
        )
        return extension.id

    def decide_extension(self, cmd: DecideExtension, now: datetime) -> None:
        """Approve (the deadline moves, and every pending timer with it) or reject."""
        if self.seen(cmd.idempotency_key):
            return
        self.check_decide_extension(cmd, now)
        extension = self._extension(cmd.extension_id)
        extension.decided_by, extension.decided_at = cmd.actor, now
        extension.status = ExtensionStatus.APPROVED if cmd.approve else ExtensionStatus.REJECTED
        if cmd.approve:
            self._move_deadline(self.state.current(), extension.new_deadline, now)
        self._remember(cmd.idempotency_key)
        self.emit(
            EventKind.EXTENSION_APPROVED if cmd.approve else EventKind.EXTENSION_REJECTED,
            now,
            phase=extension.phase,
            actor=cmd.actor,
            detail={
                "extension_id": extension.id,
                "reason": cmd.reason,
                "new_deadline": extension.new_deadline.isoformat(),
            },
        )
        self._refresh_light(now)

    def apply_round_extension(self, cmd: RoundExtension, now: datetime) -> bool:
        """A county-wide extension of one phase; applied once per extension id."""
        if cmd.extension_id in self.state.applied_round_extensions:
            return False
        self.state.applied_round_extensions.append(cmd.extension_id)
        phase = self.state.phase_state(cmd.phase)
        if (
            phase.status in (PhaseStatus.DONE, PhaseStatus.RECTIFYING)
            or cmd.new_deadline <= phase.deadline
            # Beyond the pinned calendar: the round's validator refuses it; never crash here.
            or not self.deadline_fits_calendar(cmd.new_deadline)
        ):
            return False
        self._move_deadline(phase, cmd.new_deadline, now)
        self.emit(
            EventKind.ROUND_EXTENSION_APPLIED,
            now,
            phase=cmd.phase,
            actor=cmd.actor,
            detail={
                "extension_id": cmd.extension_id,
                "reason": cmd.reason,
                "new_deadline": cmd.new_deadline.isoformat(),
            },
        )
        self._refresh_light(now)
        return True

    def acknowledge(self, cmd: AcknowledgeEscalation, now: datetime) -> None:
        """Sign for a rung's notice (签收)."""
        if self.seen(cmd.idempotency_key):
            return
        self.check_acknowledge(cmd)
        escalation = next(
            e for e in self.state.phase_state(cmd.phase).escalations if e.rung == cmd.rung
        )
        escalation.acknowledged_by, escalation.acknowledged_at = cmd.actor, now
        self._remember(cmd.idempotency_key)
        self.emit(
            EventKind.ACKNOWLEDGED, now, phase=cmd.phase, actor=cmd.actor, detail={"rung": cmd.rung}
        )

    def report_rectification(self, cmd: ReportRectification, now: datetime) -> None:
        """Record the secretary's rectification report; it waits for a re-check."""
        if self.seen(cmd.idempotency_key):
            return
        self.check_report_rectification(cmd)
        order = self.state.phase_state(cmd.phase).rectification
        assert order is not None
        order.status, order.report = RectificationStatus.REPORTED, cmd.report
        order.reported_by, order.reported_at = cmd.actor, now
        self._remember(cmd.idempotency_key)
        self.emit(
            EventKind.RECTIFICATION_REPORTED,
            now,
            phase=cmd.phase,
            actor=cmd.actor,
            detail={"report": cmd.report},
        )

    def recheck(self, cmd: RecheckRectification, now: datetime) -> None:
        """Pass the rectification (the phase may then complete) or send it back with notes."""
        if self.seen(cmd.idempotency_key):
            return
        self.check_recheck(cmd)
        order = self.state.phase_state(cmd.phase).rectification
        assert order is not None
        order.status = RectificationStatus.PASSED if cmd.passed else RectificationStatus.ISSUED
        if cmd.notes:
            order.recheck_notes.append(cmd.notes)
        self._remember(cmd.idempotency_key)
        self.emit(
            EventKind.RECHECKED,
            now,
            phase=cmd.phase,
            actor=cmd.actor,
            detail={"passed": cmd.passed, "notes": cmd.notes},
        )
        self.settle(now)

    def set_behind_schedule(self, cmd: BehindSchedule, now: datetime) -> bool:
        """The round's cohort check says whether this organisation is behind (yellow);
        returns whether anything changed. A finished or closed campaign keeps its light."""
        state = self.state
        if state.closed or state.finished() or state.behind_schedule == cmd.behind:
            return False
        state.behind_schedule = cmd.behind
        self.emit(
            EventKind.BEHIND_SCHEDULE if cmd.behind else EventKind.BACK_ON_SCHEDULE,
            now,
            phase=state.phase,
            detail={"as_of": cmd.as_of.isoformat()},
        )
        self._refresh_light(now)
        return True

    def close(self, cmd: CloseRound, now: datetime) -> None:
        """Stop where the campaign stands; nothing fires after this."""
        if self.state.closed:
            return
        self.state.closed = True
        self.emit(
            EventKind.ROUND_CLOSED,
            now,
            phase=self.state.phase,
            actor=cmd.actor,
            detail={"reason": cmd.reason},
        )
