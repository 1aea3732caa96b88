"""Human actions on an organisation's campaign: the inputs of the workflow's updates.

Each is one frozen model so it can gain fields without breaking running workflows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from domain.calendar import PinnedCalendar
from domain.phases import Phase
from domain.schedule import PhaseWindow
from domain.state import Actor

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class SubmitEvidence(BaseModel):
    """The secretary submits evidence for a step of the current phase."""

    model_config = _FROZEN

    actor: Actor
    step_id: str
    values: dict[str, Any]
    idempotency_key: str | None = None


class DecideSubmission(BaseModel):
    """A supervisor accepts a submission or returns it (退回) with a reason."""

    model_config = _FROZEN

    actor: Actor
    step_id: str
    accept: bool
    reason: str = ""
    idempotency_key: str | None = None


class WaiveStep(BaseModel):
    """A supervisor waives a step with a reason."""

    model_config = _FROZEN

    actor: Actor
    step_id: str
    reason: str
    idempotency_key: str | None = None


class RequestExtension(BaseModel):
    """The secretary asks to move the current phase's deadline."""

    model_config = _FROZEN

    actor: Actor
    new_deadline: datetime
    reason: str
    idempotency_key: str | None = None


class DecideExtension(BaseModel):
    """A supervisor approves or rejects an extension request."""

    model_config = _FROZEN

    actor: Actor
    extension_id: str
    approve: bool
    reason: str = ""
    idempotency_key: str | None = None


class AcknowledgeEscalation(BaseModel):
    """The addressee of a rung signs for it (签收)."""

    model_config = _FROZEN

    actor: Actor
    phase: Phase
    rung: int = Field(ge=0)
    idempotency_key: str | None = None


class ReportRectification(BaseModel):
    """The secretary reports what was rectified, with evidence."""

    model_config = _FROZEN

    actor: Actor
    phase: Phase
    report: str
    idempotency_key: str | None = None


class RecheckRectification(BaseModel):
    """A supervisor re-checks a rectification report: passed, or sent back with notes."""

    model_config = _FROZEN

    actor: Actor
    phase: Phase
    passed: bool
    notes: str = ""
    idempotency_key: str | None = None


class RoundExtension(BaseModel):
    """The county office moves a phase's deadline for everyone in the round."""

    model_config = _FROZEN

    extension_id: str
    phase: Phase
    new_deadline: datetime
    reason: str
    actor: Actor


class CloseRound(BaseModel):
    """The county office closes the round; open campaigns stop where they are."""

    model_config = _FROZEN

    actor: Actor
    reason: str = ""


class CalendarUpdate(BaseModel):
    """The county office applies newly published calendar data (e.g. the State Council's
    holiday notice for a new year) to a running round: an explicit, audited round action.

    ``calendar`` replaces the organisation's pinned calendar and ``windows`` are the round's
    phase windows re-resolved with it from the same kick-off date
    (``domain.schedule.reresolve_round``). Every phase not yet completed moves to its new
    deadline (an extension already granted beyond it is kept); completed phases are left
    alone. Applied once per ``update_id``.
    """

    model_config = _FROZEN

    update_id: str = Field(min_length=1, max_length=120)
    calendar: PinnedCalendar
    windows: tuple[PhaseWindow, ...]
    actor: Actor
    reason: str
