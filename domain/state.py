"""The durable state of one organisation's campaign: what the workflow carries and queries.

These are mutable pydantic models because the workflow updates them in place; they are
serialised whole across continue-as-new, so every field must have a default or be set at
start, and new fields must get defaults (running workflows carry the old shape).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import (
    BaseModel,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from domain.calendar import PinnedCalendar
from domain.events import EventKind
from domain.lights import Light
from domain.machine import PhaseStatus, StepStatus
from domain.organisation import Role
from domain.phases import Phase
from domain.plan import LadderPlan


class Actor(BaseModel):
    """Who performs a human action: an account, a display name and the role acted in."""

    model_config = {"frozen": True}

    user: str = Field(min_length=1)
    name: str = ""
    role: Role
    ip: str | None = None


class Decision(StrEnum):
    """A supervisor's verdict on a submission."""

    ACCEPTED = "accepted"
    RETURNED = "returned"


class Submission(BaseModel):
    """Evidence submitted for a step, and the verdict on it."""

    seq: int
    values: dict[str, Any]
    submitted_by: Actor
    submitted_at: datetime
    decision: Decision | None = None
    reason: str = ""
    decided_by: Actor | None = None
    decided_at: datetime | None = None


class StepState(BaseModel):
    """One step's status and its submissions."""

    step_id: str
    name: str
    required: bool
    status: StepStatus = StepStatus.OPEN
    submissions: list[Submission] = Field(default_factory=list)
    waiver_reason: str = ""
    waived_by: Actor | None = None

    @property
    def settled(self) -> bool:
        """Accepted, or waived with a reason."""
        return self.status in (StepStatus.ACCEPTED, StepStatus.WAIVED)


class Escalation(BaseModel):
    """A rung of the ladder that fired for a phase."""

    rung: int
    name: str
    recipient: Role
    recipient_key: str
    fired_at: datetime
    working_days_overdue: int
    acknowledged_by: Actor | None = None
    acknowledged_at: datetime | None = None


class RectificationStatus(StrEnum):
    """Where a rectification order (整改通知) stands."""

    ISSUED = "issued"
    REPORTED = "reported"
    PASSED = "passed"


class RectificationOrder(BaseModel):
    """整改通知: issued by the top rung, with its own deadline, a report and a re-check."""

    issued_at: datetime
    deadline: datetime
    status: RectificationStatus = RectificationStatus.ISSUED
    report: str = ""
    reported_by: Actor | None = None
    reported_at: datetime | None = None
    recheck_notes: list[str] = Field(default_factory=list)
    overdue_notified: bool = False


class ExtensionStatus(StrEnum):
    """Where an extension request stands."""

    REQUESTED = "requested"
    APPROVED = "approved"
    REJECTED = "rejected"


class Extension(BaseModel):
    """A request to move a phase's deadline."""

    id: str
    phase: Phase
    new_deadline: datetime
    reason: str
    requested_by: Actor
    requested_at: datetime
    status: ExtensionStatus = ExtensionStatus.REQUESTED
    decided_by: Actor | None = None
    decided_at: datetime | None = None


class Outcome(StrEnum):
    """How a phase ended for an organisation (the simulation and reports count these)."""

    ON_TIME = "on_time"
    LATE = "late"
    AFTER_RECTIFICATION = "after_rectification"


class PhaseState(BaseModel):
    """One phase for one organisation."""

    phase: Phase
    status: PhaseStatus = PhaseStatus.PENDING
    opens_at: datetime
    deadline: datetime
    planned_deadline: datetime
    steps: list[StepState]
    reminder_sent: bool = False
    escalations: list[Escalation] = Field(default_factory=list)
    rectification: RectificationOrder | None = None
    opened_at: datetime | None = None
    completed_at: datetime | None = None
    outcome: Outcome | None = None

    def is_settled(self) -> bool:
        """The phase's exit guard: every required step accepted or waived with a reason, and
        no rectification order still waiting for its re-check."""
        steps_ok = all(s.settled for s in self.steps if s.required)
        order_ok = self.rectification is None or (
            self.rectification.status is RectificationStatus.PASSED
        )
        return steps_ok and order_ok

    def step(self, step_id: str) -> StepState | None:
        """A step by id."""
        return next((s for s in self.steps if s.step_id == step_id), None)


class CampaignEvent(BaseModel):
    """A state change to record in the read model; ``event_id`` makes the write idempotent."""

    event_id: str
    round_id: str
    org_id: str
    kind: EventKind
    at: datetime
    phase: Phase | None = None
    step_id: str | None = None
    actor: Actor | None = None
    detail: dict[str, Any] = Field(default_factory=dict)

    @model_serializer(mode="wrap")
    def _without_absent_parts(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> Any:
        """In JSON, leave out what the event does not have (phase, step, actor): each reads
        back as None, and every recorded batch in every history carries these events."""
        dumped = handler(self)
        if info.mode_is_json() and isinstance(dumped, dict):
            return {k: v for k, v in dumped.items() if v is not None}
        return dumped


class CampaignState(BaseModel):
    """Everything one organisation's workflow knows; carried intact across continue-as-new."""

    round_id: str
    org_id: str
    phase: Phase = Phase.MOBILISATION
    phases: list[PhaseState]
    extensions: list[Extension] = Field(default_factory=list)
    applied_round_extensions: list[str] = Field(default_factory=list)
    # The round's calendar after a calendar update (``domain.actions.CalendarUpdate``),
    # replacing the one pinned in the plan; None until the first update.
    calendar: PinnedCalendar | None = None
    applied_calendar_updates: list[str] = Field(default_factory=list)
    # The round's plan version (``domain.plan_version``): its ladder, replacing the plan's
    # (None until the first version after kick-off), and the version applied by id. A phase
    # whose ladder had already started climbing when a version came finishes on the ladder
    # it started (``climbing_phase``, ``climbing_ladder``): its fired rungs keep their place.
    plan_version: int = 1
    applied_plan_versions: list[str] = Field(default_factory=list)
    ladder: LadderPlan | None = None
    climbing_phase: Phase | None = None
    climbing_ladder: LadderPlan | None = None
    light: Light = Light.GREEN
    # Set by the round's periodic cohort check (domain.cohort); the light shows it as yellow.
    behind_schedule: bool = False
    closed: bool = False
    event_seq: int = 0
    idempotency_keys: list[str] = Field(default_factory=list)

    def finished(self) -> bool:
        """Whether every phase is done (the campaign machine reached COMPLETED)."""
        return self.phase is Phase.COMPLETED

    def current_phase_done(self) -> bool:
        """Guard of the campaign machine's ``advance``."""
        return self.phase is not Phase.COMPLETED and self.current().status is PhaseStatus.DONE

    def current(self) -> PhaseState:
        """The phase the organisation is in (the last one once completed)."""
        if self.phase is Phase.COMPLETED:
            return self.phases[-1]
        return next(p for p in self.phases if p.phase is self.phase)

    def phase_state(self, phase: Phase) -> PhaseState:
        """A phase's state by phase."""
        return next(p for p in self.phases if p.phase is phase)

    @property
    def overdue(self) -> bool:
        """Whether the current phase is past its deadline."""
        return self.phase is not Phase.COMPLETED and self.current().status in (
            PhaseStatus.OVERDUE,
            PhaseStatus.RECTIFYING,
        )
