"""``EvaluationWorkflow``: one 群众评议 ballot of one organisation (or one member) in a round.

It opens the window, holds it on a durable timer until the deadline the plan sets (working
days) or until the organiser closes it early, closes and tallies through an activity,
publishes a result that met the quorum, and, when satisfaction falls below the plan's
threshold, asks the organisation's campaign workflow for a 整改通知 (its
``order_rectification`` update). A published result of the organisation's evaluation then
settles its 群众评议 step (``submit_evidence`` with the evaluation as actor and one
idempotency key per evaluation; patch ``evaluation-settles-step``). Ballots never pass
through here: the API checks and burns a token and stores its ballot in one database
transaction, so history cannot link them.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain.actions import SubmitEvidence
    from domain.campaign_rules import OrderRectification
    from domain.evaluation import (
        EvaluationResult,
        EvaluationTarget,
        Verdict,
        evaluation_actor,
        rectification_reason,
        step_key,
        step_values,
    )
    from domain.organisation import SUPERVISOR_ROLES, Role
    from workflows.activity_refs import (
        CLOSE_EVALUATION,
        OPEN_EVALUATION,
        ORDER_EVALUATION_RECTIFICATION,
        PUBLISH_EVALUATION,
        SETTLE_EVALUATION_STEP,
        execute,
    )
    from workflows.common import ACTIVITY_RETRY, ACTIVITY_TIMEOUT
    from workflows.evaluation_contracts import (
        CloseEvaluation,
        CloseNow,
        EvaluationInput,
        EvaluationStage,
        EvaluationStatus,
        EvaluationWindow,
        PublishEvaluation,
        RectificationRequest,
        StepSettlement,
    )

# Runs started before this patch publish without settling the organisation's step.
SETTLES_STEP_PATCH = "evaluation-settles-step"


def evaluation_workflow_id(round_id: str, org_id: str, target: str, seq: int) -> str:
    """``evaluation/<round>/<org>/<target>/<n>``: the n-th evaluation of one target (a
    member evaluation's target names the member)."""
    return f"evaluation/{round_id}/{org_id}/{target}/{seq}"


@workflow.defn
class EvaluationWorkflow:
    """One evaluation: open → (timer or early close) → tally → publish → rectification."""

    @workflow.init
    def __init__(self, input: EvaluationInput) -> None:
        self._input = input
        self._stage = EvaluationStage.OPENING
        self._window: EvaluationWindow | None = None
        self._closed_by: CloseNow | None = None
        self._result: EvaluationResult | None = None
        self._rectification: str | None = None
        self._step: str | None = None

    @workflow.run
    async def run(self, input: EvaluationInput) -> EvaluationStatus:
        opens_at = workflow.now()
        closes_at = input.calendar.build().deadline_after(opens_at, input.rules.window)
        self._window = await execute(
            OPEN_EVALUATION,
            EvaluationWindow(
                evaluation_id=input.evaluation_id, opens_at=opens_at, closes_at=closes_at
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=ACTIVITY_RETRY,
        )
        self._stage = EvaluationStage.OPEN
        remaining = self._window.closes_at - workflow.now()
        if remaining > timedelta(0):
            with contextlib.suppress(TimeoutError):  # the deadline: close by timer
                await workflow.wait_condition(
                    lambda: self._closed_by is not None, timeout=remaining
                )
        self._stage = EvaluationStage.CLOSED
        result = await execute(
            CLOSE_EVALUATION,
            CloseEvaluation(evaluation_id=input.evaluation_id, closed_at=workflow.now()),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=ACTIVITY_RETRY,
        )
        self._result = result
        if result.verdict is Verdict.BELOW_THRESHOLD:
            self._rectification = await self._order_rectification(result)
        stage = await execute(
            PUBLISH_EVALUATION,
            PublishEvaluation(
                evaluation_id=input.evaluation_id,
                published_at=workflow.now(),
                rectification=self._rectification,
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=ACTIVITY_RETRY,
        )
        self._stage = EvaluationStage(stage)
        if (
            result.valid
            and input.target is EvaluationTarget.ORGANISATION
            and input.step_id is not None
            and workflow.patched(SETTLES_STEP_PATCH)
        ):
            # After any 整改通知: the order must block the phase before the settled step
            # could complete it.
            self._step = await self._settle_step(result)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.status()

    async def _order_rectification(self, result: EvaluationResult) -> str:
        """Ask for a 整改通知 on the phase the evaluation was opened in; "ordered", or the
        organisation workflow's refusal (e.g. that phase has ended while the ballot was open)."""
        input = self._input
        order = OrderRectification(
            actor=input.opened_by,
            source="evaluation",
            reference=input.evaluation_id,
            reason=rectification_reason(result, input.subject),
            period=input.rules.rectification_period,
            phase=input.phase,
        )
        try:
            return await execute(
                ORDER_EVALUATION_RECTIFICATION,
                RectificationRequest(org_workflow_id=input.org_workflow_id, order=order),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=ACTIVITY_RETRY,
            )
        except ActivityError as exc:
            cause = exc.cause
            reason = cause.message if isinstance(cause, ApplicationError) else str(exc)
            workflow.logger.warning("rectification not ordered: %s", reason)
            return f"未能下达整改通知：{reason}"

    async def _settle_step(self, result: EvaluationResult) -> str:
        """Settle the organisation's 群众评议 step with the result; "settled", or the
        organisation workflow's refusal (e.g. the phase is not open yet)."""
        input = self._input
        assert input.step_id is not None
        submission = SubmitEvidence(
            actor=evaluation_actor(input.evaluation_id, input.opened_by),
            step_id=input.step_id,
            values=step_values(input.evaluation_id, result),
            idempotency_key=step_key(input.evaluation_id),
        )
        try:
            return await execute(
                SETTLE_EVALUATION_STEP,
                StepSettlement(org_workflow_id=input.org_workflow_id, submission=submission),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=ACTIVITY_RETRY,
            )
        except ActivityError as exc:
            cause = exc.cause
            reason = cause.message if isinstance(cause, ApplicationError) else str(exc)
            workflow.logger.warning("evaluation step not settled: %s", reason)
            return f"未能完成群众评议步骤：{reason}"

    @workflow.query
    def status(self) -> EvaluationStatus:
        """Stage, window, result and what became of a rectification."""
        return EvaluationStatus(
            evaluation_id=self._input.evaluation_id,
            stage=self._stage,
            window=self._window,
            closed_early_by=self._closed_by.actor if self._closed_by else None,
            result=self._result,
            rectification=self._rectification,
            step=self._step,
        )

    @workflow.update
    async def opened(self) -> EvaluationStatus:
        """Wait until the window is open (the API answers the opener with its deadline)."""
        await workflow.wait_condition(lambda: self._window is not None)
        return self.status()

    @workflow.update
    def close_now(self, cmd: CloseNow) -> EvaluationStatus:
        """The organiser closes the ballot before its deadline."""
        if self._closed_by is None:
            self._closed_by = cmd
        return self.status()

    @close_now.validator
    def _validate_close_now(self, cmd: CloseNow) -> None:
        allowed = SUPERVISOR_ROLES | {Role.SECRETARY}
        if cmd.actor.role not in allowed:
            raise ApplicationError(
                "当前角色无权结束评议",
                {"code": "forbidden", "errors": []},
                type="forbidden",
                non_retryable=True,
            )
        if self._stage is not EvaluationStage.OPEN or self._closed_by is not None:
            raise ApplicationError(
                "评议不在投票中，不能结束",
                {"code": "invalid_transition", "errors": []},
                type="invalid_transition",
                non_retryable=True,
            )
