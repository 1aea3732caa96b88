"""The state machines of steps, phases and the campaign, declared as data.

One ``transitions.Machine`` per kind is shared by every organisation (the transitions FAQ:
a machine per model does not scale to thousands); models are plain state objects that the
machine drives through :func:`fire`. ``auto_transitions`` is off so only the declared moves
exist, and guards are pure methods on the models.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from transitions import Machine, MachineError

from domain.errors import DomainError
from domain.phases import Phase


class StepStatus(StrEnum):
    """Where a step stands."""

    OPEN = "open"
    SUBMITTED = "submitted"
    RETURNED = "returned"
    ACCEPTED = "accepted"
    WAIVED = "waived"

    @property
    def label(self) -> str:
        """Chinese label."""
        return {
            "open": "待提交",
            "submitted": "待审核",
            "returned": "已退回",
            "accepted": "已通过",
            "waived": "已免除",
        }[self.value]


class PhaseStatus(StrEnum):
    """Where a phase stands for one organisation."""

    PENDING = "pending"
    OPEN = "open"
    OVERDUE = "overdue"
    RECTIFYING = "rectifying"
    DONE = "done"

    @property
    def label(self) -> str:
        """Chinese label."""
        return {
            "pending": "未开始",
            "open": "进行中",
            "overdue": "已逾期",
            "rectifying": "整改中",
            "done": "已完成",
        }[self.value]


STEP_TRANSITIONS: list[dict[str, Any]] = [
    {
        "trigger": "submit",
        "source": [StepStatus.OPEN, StepStatus.RETURNED],
        "dest": StepStatus.SUBMITTED,
    },
    {"trigger": "accept", "source": StepStatus.SUBMITTED, "dest": StepStatus.ACCEPTED},
    {"trigger": "return_submission", "source": StepStatus.SUBMITTED, "dest": StepStatus.RETURNED},
    {
        "trigger": "waive",
        "source": [StepStatus.OPEN, StepStatus.SUBMITTED, StepStatus.RETURNED],
        "dest": StepStatus.WAIVED,
    },
]

PHASE_TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "open", "source": PhaseStatus.PENDING, "dest": PhaseStatus.OPEN},
    {"trigger": "deadline_passed", "source": PhaseStatus.OPEN, "dest": PhaseStatus.OVERDUE},
    {
        "trigger": "order_rectification",
        "source": PhaseStatus.OVERDUE,
        "dest": PhaseStatus.RECTIFYING,
    },
    # An approved extension reopens an overdue phase; a rectification order stands.
    {
        "trigger": "extend",
        "source": [PhaseStatus.OPEN, PhaseStatus.OVERDUE],
        "dest": PhaseStatus.OPEN,
    },
    {
        "trigger": "complete",
        "source": [PhaseStatus.OPEN, PhaseStatus.OVERDUE, PhaseStatus.RECTIFYING],
        "dest": PhaseStatus.DONE,
        "conditions": "is_settled",
    },
]

CAMPAIGN_TRANSITIONS: list[dict[str, Any]] = [
    {
        "trigger": "advance",
        "source": Phase.MOBILISATION,
        "dest": Phase.PUBLIC_COMMITMENT,
        "conditions": "current_phase_done",
    },
    {
        "trigger": "advance",
        "source": Phase.PUBLIC_COMMITMENT,
        "dest": Phase.LEADERSHIP_REVIEW,
        "conditions": "current_phase_done",
    },
    {
        "trigger": "advance",
        "source": Phase.LEADERSHIP_REVIEW,
        "dest": Phase.PUBLIC_EVALUATION,
        "conditions": "current_phase_done",
    },
    {
        "trigger": "advance",
        "source": Phase.PUBLIC_EVALUATION,
        "dest": Phase.COMMENDATION,
        "conditions": "current_phase_done",
    },
    {
        "trigger": "advance",
        "source": Phase.COMMENDATION,
        "dest": Phase.COMPLETED,
        "conditions": "current_phase_done",
    },
]


def _machine(states: type[StrEnum], transitions: list[dict[str, Any]], attribute: str) -> Machine:
    return Machine(
        model=None,
        states=list(states),
        transitions=transitions,
        initial=None,
        auto_transitions=False,
        model_attribute=attribute,
    )


STEP_MACHINE = _machine(StepStatus, STEP_TRANSITIONS, "status")
PHASE_MACHINE = _machine(PhaseStatus, PHASE_TRANSITIONS, "status")
CAMPAIGN_MACHINE = _machine(Phase, CAMPAIGN_TRANSITIONS, "phase")


def fire(machine: Machine, model: object, trigger: str, refusal: str) -> None:
    """Fire ``trigger`` on ``model``; a move the machine forbids, or a failed guard, raises a
    :class:`DomainError` with the Chinese ``refusal``."""
    try:
        moved = machine.events[trigger].trigger(model)
    except MachineError as exc:
        raise DomainError(refusal, code="invalid_transition") from exc
    if not moved:
        raise DomainError(refusal, code="guard_failed")


def can_fire(machine: Machine, model: object, trigger: str) -> bool:
    """Whether ``trigger`` is declared from the model's current state (guards not checked)."""
    state = getattr(model, machine.model_attribute)
    return bool(machine.get_transitions(trigger, source=state))


def mermaid() -> str:
    """A mermaid diagram of the three machines, generated from the same data (for the docs)."""
    lines = ["stateDiagram-v2"]
    for title, transitions in (
        ("campaign", CAMPAIGN_TRANSITIONS),
        ("phase", PHASE_TRANSITIONS),
        ("step", STEP_TRANSITIONS),
    ):
        lines.append(f"    state {title} {{")
        for t in transitions:
            sources = t["source"] if isinstance(t["source"], list) else [t["source"]]
            for source in sources:
                guard = f" [{t['conditions']}]" if "conditions" in t else ""
                lines.append(
                    f"        {title}_{source} --> {title}_{t['dest']}: {t['trigger']}{guard}"
                )
        lines.append("    }")
    return "\n".join(lines)
