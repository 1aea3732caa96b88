"""Inputs and outputs of ``EvaluationWorkflow`` and its activities (single models so they
can evolve). Nothing here carries a ballot token or a ballot: casting never passes through
workflow history."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from domain.actions import SubmitEvidence
from domain.campaign_rules import OrderRectification
from domain.evaluation import EvaluationResult, EvaluationTarget
from domain.evaluation_rules import EvaluationRules
from domain.phases import Phase
from domain.plan import CalendarPlan
from domain.state import Actor

_FROZEN = ConfigDict(frozen=True)


class EvaluationStage(StrEnum):
    """Where an evaluation stands (also the ``evaluations.status`` column)."""

    OPENING = "opening"
    OPEN = "open"
    CLOSED = "closed"
    PUBLISHED = "published"
    INVALID = "invalid"  # below the quorum: tallied, not published, no verdict

    @property
    def label(self) -> str:
        """Chinese label."""
        return {
            "opening": "正在开启",
            "open": "投票中",
            "closed": "已截止，正在计票",
            "published": "结果已公布",
            "invalid": "投票率不足，结果无效",
        }[self.value]


class EvaluationInput(BaseModel):
    """One evaluation of one organisation or member, opened by ``opened_by``."""

    model_config = _FROZEN

    evaluation_id: str
    round_id: str
    org_id: str
    org_workflow_id: str
    target: EvaluationTarget
    subject: str
    opened_by: Actor
    rules: EvaluationRules
    calendar: CalendarPlan
    # The organisation's step its published result settles (the plan's ``ballot`` step);
    # None: no such step (a member's evaluation, a plan without one, an older run).
    step_id: str | None = None
    # The organisation's phase when the evaluation was opened (群众评议): a 整改通知 from its
    # result holds that phase and is refused once it has ended. None: an older run, whose
    # order goes to whatever phase is open, as it always did.
    phase: Phase | None = None


class EvaluationWindow(BaseModel):
    """When the ballot opens and closes."""

    model_config = _FROZEN

    evaluation_id: str
    opens_at: datetime
    closes_at: datetime


class CloseEvaluation(BaseModel):
    """Close the window and tally."""

    model_config = _FROZEN

    evaluation_id: str
    closed_at: datetime


class PublishEvaluation(BaseModel):
    """Publish a valid result (or mark an invalid one) and record the rectification outcome."""

    model_config = _FROZEN

    evaluation_id: str
    published_at: datetime
    rectification: str | None


class RectificationRequest(BaseModel):
    """Ask the organisation's campaign workflow for a 整改通知."""

    model_config = _FROZEN

    org_workflow_id: str
    order: OrderRectification


class StepSettlement(BaseModel):
    """Settle the organisation's 群众评议 step with a published result: the evaluation's
    ``submit_evidence`` on the organisation's campaign workflow (patch
    ``evaluation-settles-step``)."""

    model_config = _FROZEN

    org_workflow_id: str
    submission: SubmitEvidence


class CloseNow(BaseModel):
    """The organiser closes the ballot before its deadline (the meeting is over)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    actor: Actor


class EvaluationStatus(BaseModel):
    """The workflow's ``status`` query and result."""

    model_config = _FROZEN

    evaluation_id: str
    stage: EvaluationStage
    window: EvaluationWindow | None = None
    closed_early_by: Actor | None = None
    result: EvaluationResult | None = None
    rectification: str | None = None
    # What became of the organisation's 群众评议 step: "settled", or why not (None: not
    # tried: no quorum, a member's evaluation, or a run from before the patch).
    step: str | None = None
