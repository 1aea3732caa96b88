"""Inputs and outputs of the bounded round workflow's activities (``CampaignRound``).

Every model here is small and independent of the number of organisations: the round hands
activities a cursor or a round id, never a list of organisations, and gets counts back.
Pure pydantic and domain imports only: workflows import this module.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from domain.lights import Light
from domain.phases import Phase
from domain.schedule import RoundSchedule
from domain.state import Outcome

_FROZEN = ConfigDict(frozen=True)


class RoundStatus(StrEnum):
    """A round's status in the read model (``rounds.status``), following its workflow."""

    CREATED = "created"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CLOSED = "closed"


#: Statuses a round never leaves: a late or retried "running" must not overwrite them.
FINAL_STATUSES = frozenset({RoundStatus.COMPLETED, RoundStatus.FAILED, RoundStatus.CLOSED})


class RoundSignalKind(StrEnum):
    """The signals a round sends to its organisation workflows (their handler names)."""

    APPLY_ROUND_EXTENSION = "apply_round_extension"
    APPLY_CALENDAR = "apply_calendar"
    APPLY_PLAN_VERSION = "apply_plan_version"
    CLOSE_ROUND = "close_round"
    SET_BEHIND_SCHEDULE = "set_behind_schedule"


class RoundSignal(BaseModel):
    """One round-wide signal and its payload (the JSON of the organisation's signal model)."""

    model_config = _FROZEN

    kind: RoundSignalKind
    payload: dict[str, Any]


class RoundScope(BaseModel):
    """Where a round's organisations come from: the plan (by content address, for the round
    plan's scope and the organisations' plans) and the round's roster snapshot."""

    model_config = _FROZEN

    round_id: str
    round_workflow_id: str
    plan_ref: str
    round_plan_id: str
    roster_source: str


class ScheduleRequest(BaseModel):
    """Resolve a round's schedule from its stored plan (``starts_at`` is the round's)."""

    model_config = _FROZEN

    plan_ref: str
    round_plan_id: str
    starts_at: datetime


class StartRange(BaseModel):
    """Start the organisation workflows of roster positions ``offset`` to ``offset + limit``
    (in the round plan's scope), pipelined page by page, then send each one the round-wide
    signals issued so far (extensions, calendar updates), so a late starter misses none."""

    model_config = _FROZEN

    scope: RoundScope
    schedule: RoundSchedule
    offset: int = Field(ge=0)
    limit: int = Field(ge=1)
    page_size: int = Field(default=200, ge=1, le=1000)
    concurrency: int = Field(default=50, ge=1, le=500)
    history_limit: int = 10_000
    signals: tuple[RoundSignal, ...] = ()


class StartRangeReport(BaseModel):
    """What a start range did; ``next_offset`` is the cursor after it."""

    model_config = _FROZEN

    started: int
    existing: int
    next_offset: int
    total: int


class RoundFanOut(BaseModel):
    """Send one signal to the organisations at roster positions ``[0, upto)`` (the ones the
    kick-off has started), page by page; a retry resumes at its last heartbeat page."""

    model_config = _FROZEN

    scope: RoundScope
    signal: RoundSignal
    upto: int = Field(ge=0)
    page_size: int = Field(default=200, ge=1, le=1000)
    concurrency: int = Field(default=50, ge=1, le=500)


class FanOutReport(BaseModel):
    """How many organisations took the signal, and how many were not (or no longer) there."""

    model_config = _FROZEN

    signalled: int
    missing: int


class AggregateRequest(BaseModel):
    """Count a round's organisations in the read model."""

    model_config = _FROZEN

    round_id: str


class RoundAggregate(BaseModel):
    """A round's organisations counted from ``campaign_status`` and ``phase_status``: small
    and bounded by the enums, whatever the county's size."""

    model_config = _FROZEN

    round_id: str
    reported: int = 0
    finished: int = 0  # completed or closed
    by_phase: dict[Phase, int] = Field(default_factory=dict)
    by_light: dict[Light, int] = Field(default_factory=dict)
    overdue: int = 0
    behind: int = 0
    outcomes: dict[Phase, dict[Outcome, int]] = Field(default_factory=dict)
    as_of: datetime | None = None


class CohortCheck(BaseModel):
    """Compare the round's open organisations with the pro-rata schedule and their cohorts
    (``domain.cohort``); signal those whose stored verdict changed."""

    model_config = _FROZEN

    round_id: str
    pro_rata: dict[Phase, float]
    tolerance: float
    as_of: datetime
    concurrency: int = Field(default=50, ge=1, le=500)


class CohortReport(BaseModel):
    """The check's result in counts."""

    model_config = _FROZEN

    behind: int
    newly_behind: int
    no_longer_behind: int


class RoundCheckResult(BaseModel):
    """What one check of the round returns (``check_round``): the cohort check's counts and
    the aggregate read in the same pass, ``behind`` already counting the new verdicts."""

    model_config = _FROZEN

    aggregate: RoundAggregate
    cohorts: CohortReport


class RoundStatusRecord(BaseModel):
    """The round's status row, written by the round workflow as it moves on.

    The naming fields fill the row of a round that was not created through the API (tests,
    benchmarks, the simulation); an existing row keeps its own.
    """

    model_config = _FROZEN

    round_id: str
    status: RoundStatus
    reason: str = ""
    started: int | None = None
    total: int | None = None
    starting_done: bool = False
    at: datetime
    round_plan_id: str = ""
    kicked_off_by: str = ""
    starts_at: datetime | None = None
