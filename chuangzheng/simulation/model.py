"""What a simulated round is made of: behaviours, the mix, planned actions and scripts."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from domain.phases import Phase
from domain.state import Outcome


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


class SimulationError(RuntimeError):
    """The simulation could not run (bad plan, roster or calendar): the message is Chinese."""


class SimulationStalled(SimulationError):
    """The round's workflows did not end in time (the servers were shut down regardless)."""
