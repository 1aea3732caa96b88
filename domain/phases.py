"""The five phases of a campaign round (seed 002 §五) and their order."""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    """A phase an organisation moves through; ``completed`` closes the round for it."""

    MOBILISATION = "mobilisation"
    PUBLIC_COMMITMENT = "public_commitment"
    LEADERSHIP_REVIEW = "leadership_review"
    PUBLIC_EVALUATION = "public_evaluation"
    COMMENDATION = "commendation"
    COMPLETED = "completed"

    @property
    def label(self) -> str:
        """The Chinese name shown to users."""
        return PHASE_LABELS[self]


PHASE_LABELS: dict[Phase, str] = {
    Phase.MOBILISATION: "动员部署",
    Phase.PUBLIC_COMMITMENT: "公开承诺",
    Phase.LEADERSHIP_REVIEW: "领导点评",
    Phase.PUBLIC_EVALUATION: "群众评议",
    Phase.COMMENDATION: "评选表彰",
    Phase.COMPLETED: "完成",
}

# The working phases in the order seed 002 prescribes; COMPLETED is not one of them.
WORKING_PHASES: tuple[Phase, ...] = (
    Phase.MOBILISATION,
    Phase.PUBLIC_COMMITMENT,
    Phase.LEADERSHIP_REVIEW,
    Phase.PUBLIC_EVALUATION,
    Phase.COMMENDATION,
)


def next_phase(phase: Phase) -> Phase:
    """The phase after ``phase``; the last working phase leads to COMPLETED."""
    if phase is Phase.COMPLETED:
        raise ValueError("已完成的活动没有下一阶段")
    index = WORKING_PHASES.index(phase)
    return WORKING_PHASES[index + 1] if index + 1 < len(WORKING_PHASES) else Phase.COMPLETED
