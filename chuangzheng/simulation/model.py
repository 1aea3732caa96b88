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


class Pacing(StrEnum):
    """How organisations spread their work over a phase."""

    #: ``chuangzheng simulate`` and its benchmark: nothing until the last working days of a
    #: phase, then every step at once; slips drawn afresh per phase and per round.
    DEADLINE = "deadline"
    #: The forecast's training and evaluation rounds: a persistent character per
    #: organisation and steps spread over the phase at its pace (序时进度, :class:`PaceModel`).
    SPREAD = "spread"


class Character(StrEnum):
    """An organisation's lasting way of working (drawn once, kept across phases and rounds)."""

    DILIGENT = "diligent"
    AVERAGE = "average"
    LAGGARD = "laggard"

    @property
    def label(self) -> str:
        """Chinese label."""
        return {"diligent": "先进", "average": "一般", "laggard": "后进"}[self.value]


class CharacterMix(BaseModel):
    """Shares of diligent and laggard organisations (the rest are average), the chance that
    an on-time phase has one submission returned, and how many extensions are granted."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    diligent: float = Field(default=0.30, ge=0, le=1)
    laggard: float = Field(default=0.20, ge=0, le=1)
    returned: float = Field(default=0.05, ge=0, le=1)
    extensions: int = Field(default=1, ge=0)

    @model_validator(mode="after")
    def _fits(self) -> CharacterMix:
        if self.diligent + self.laggard > 1:
            raise ValueError("先进、后进组织的比例之和不能超过 1")
        return self

    def counts(self, total: int) -> dict[Character, int]:
        """How many organisations of ``total`` have each character."""
        diligent = round(total * self.diligent)
        laggard = min(round(total * self.laggard), total - diligent)
        return {
            Character.DILIGENT: diligent,
            Character.LAGGARD: laggard,
            Character.AVERAGE: total - diligent - laggard,
        }


class PaceModel(BaseModel):
    """The pace of :attr:`Pacing.SPREAD` rounds, as log-multiples of a phase's window.

    An organisation's pace ``T`` is the share of the window by which it would finish the
    phase (0.6: at 60 % of it; 1.2: a fifth of a window late). ``log T`` is its
    character's mean, plus the organisation's own deviation (drawn once, ``org_sd``), plus
    a little noise per round (``round_sd``) and per phase (``phase_sd``). It works through
    the phase's required steps at that pace (step ``i`` of ``n`` at about ``i/n·T``); the
    last step lands at ``T·exp(ε)``, ``ε ~ N(0, finish_sd)``: a rush or a stall nobody saw
    coming. Finishing past the deadline is late; past ``rectify_at`` windows, the
    organisation moves only after the rectification order. Set before any evaluation and
    not tuned on it (docs/forecast.md).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    log_pace: dict[Character, float] = Field(
        default_factory=lambda: {
            Character.DILIGENT: -0.6,  # about 55 % of the window
            Character.AVERAGE: -0.3,  # about 75 %
            Character.LAGGARD: 0.05,  # about 105 %
        }
    )
    org_sd: float = Field(default=0.15, ge=0)
    round_sd: float = Field(default=0.05, ge=0)
    phase_sd: float = Field(default=0.15, ge=0)
    finish_sd: float = Field(default=0.15, ge=0)
    step_jitter: float = Field(default=0.2, ge=0, lt=1)
    rectify_at: float = Field(default=1.35, gt=1)


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


class StepProgress(BaseModel):
    """Required steps of a phase accepted by an instant (:attr:`Pacing.SPREAD` only)."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    phase: Phase
    done: int
    of: int


class OrgScript(BaseModel):
    """What one organisation will do in the round, decided before it starts."""

    model_config = ConfigDict(frozen=True)

    org_id: str
    behaviour: Behaviour
    conduct: dict[Phase, Conduct]
    # Rungs expected to fire per phase (late: those passed before finishing; laggard: all).
    rungs_expected: dict[Phase, int]
    actions: tuple[PlannedAction, ...]
    # Pacing.SPREAD: the character and the steps done before the phase's finishing action.
    # The player does not send these partial submissions (it plays ``actions``); the
    # forecast's simulated rounds read them as the read model's progress.
    character: Character | None = None
    progress: tuple[StepProgress, ...] = ()

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
