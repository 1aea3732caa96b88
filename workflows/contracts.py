"""Inputs and outputs of the campaign workflows (single models so they can evolve)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    field_serializer,
    model_serializer,
)

from domain.actions import CloseRound
from domain.cohort import DEFAULT_TOLERANCE
from domain.lights import Light
from domain.machine import StepStatus
from domain.notices import Notice
from domain.phases import Phase
from domain.plan import CampaignPlan
from domain.schedule import OrgPlan
from domain.state import Actor, CampaignEvent, CampaignState, Outcome

_FROZEN = ConfigDict(frozen=True)


class CarriedOutbox(BaseModel):
    """What a run still owed the read model when it continued as new: the events and notices
    produced after its last flush began (an Update landing during it), and the light it last
    recorded. The continued run flushes these before anything else."""

    model_config = _FROZEN

    events: tuple[CampaignEvent, ...] = ()
    notices: tuple[Notice, ...] = ()
    recorded_light: Light | None = None


class OrganisationCampaignInput(BaseModel):
    """Start (``state`` None) or continue (``state`` carried over) one organisation's campaign."""

    model_config = _FROZEN

    plan: OrgPlan
    state: CampaignState | None = None
    round_workflow_id: str | None = None
    # Continue-as-new once history passes this many events (Temporal's hard limit is 51,200).
    history_limit: int = Field(default=10_000, ge=100)
    # Set only on continue-as-new: the outbox the previous run had not flushed yet.
    carried: CarriedOutbox | None = None
    # Report progress to the round by signal: only for the legacy round
    # (``CampaignRoundWorkflow``, kept for rounds in flight), which counts its organisations
    # from these reports. The bounded round reads the read model instead.
    report_to_round: bool = False

    @field_serializer("plan", mode="wrap")
    def _compact_plan(
        self, plan: OrgPlan, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> Any:
        """The plan as the workflow needs it, stored at every organisation's start and
        again at every continue-as-new: in JSON without its None fields (every one a
        default, some 40 % of the bytes) and without the steps' descriptions (text for the
        pages, which read the round's plan; nothing in a workflow reads them)."""
        dumped = handler(plan)
        if not info.mode_is_json():
            return dumped
        compact = _without_none(dumped)
        for phase in compact.get("phases", []):
            for step in phase.get("steps", []):
                step.pop("description", None)
        return compact


def _without_none(value: Any) -> Any:
    """``value`` with every None-valued key of every mapping in it left out."""
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


class ActionResult(BaseModel):
    """What every organisation Update returns. Small on purpose: each result is stored in
    the history of every organisation, for every action; the whole status is the ``status``
    query and the read model's row. ``version`` is the state's event sequence after the
    action: the read model's status row has caught up once its ``event_seq`` reaches it."""

    model_config = _FROZEN

    accepted: bool = True
    # Where the organisation stands after the action (the next phase if it completed one).
    phase: Phase
    light: Light
    # The step acted on and its status now (submit, decide, waive).
    step_id: str | None = None
    step_status: StepStatus | None = None
    # The extension filed or decided (request_extension, decide_extension).
    extension_id: str | None = None
    version: int = 0

    @model_serializer(mode="wrap")
    def _compact(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        """In JSON, no null fields: they read back as None, and this is stored per action."""
        dumped = handler(self)
        if info.mode_is_json() and isinstance(dumped, dict):
            return {k: v for k, v in dumped.items() if v is not None}
        return dumped


class CampaignResult(BaseModel):
    """How one organisation's campaign ended."""

    model_config = _FROZEN

    round_id: str
    org_id: str
    phase: Phase
    closed: bool
    outcomes: dict[Phase, Outcome | None]


class OrgProgress(BaseModel):
    """An organisation's report to its round: where it stands now."""

    model_config = _FROZEN

    org_id: str
    phase: Phase
    light: Light
    overdue: bool
    closed: bool
    outcomes: dict[Phase, Outcome | None] = Field(default_factory=dict)
    # For the round's cohort check (domain.cohort); defaults keep older reports readable.
    township: str = ""
    system: str = ""
    progress: float = Field(default=0.0, ge=0.0, le=1.0)


class RoundKickoff(BaseModel):
    """The county office kicks off a round of a plan over a roster."""

    model_config = _FROZEN

    round_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")
    plan: CampaignPlan
    round_plan_id: str
    roster_source: str
    actor: Actor
    # None: the plan's own start date (for a plan in durations, a later date re-bases it).
    starts_at: datetime | None = None
    batch_size: int = Field(default=200, ge=1, le=1000)
    history_limit: int = Field(default=10_000, ge=100)
    # How often (workflow time) the round compares organisations with their cohorts and the
    # pro-rata schedule to set the yellow light, and the slack allowed (a share of a phase).
    cohort_check_every: timedelta = Field(default=timedelta(hours=24), gt=timedelta(0))
    behind_tolerance: float = Field(default=DEFAULT_TOLERANCE, ge=0.0, le=1.0)


class RoundExtensionRequest(BaseModel):
    """Move a phase's deadline for every organisation in the round."""

    model_config = _FROZEN

    actor: Actor
    phase: Phase
    new_deadline: datetime
    reason: str
    # The county office's idempotency key: a retried request (same id) adds no second
    # extension. None only in histories of the legacy round, which did not dedupe.
    request_id: str | None = Field(default=None, min_length=1, max_length=200)


class RoundProgress(BaseModel):
    """Aggregate progress of a round, from its organisations' reports."""

    model_config = _FROZEN

    round_id: str
    total: int | None
    started: int
    starting_done: bool
    closed: bool
    by_phase: dict[Phase, int]
    by_light: dict[Light, int]
    overdue: int
    outcomes: dict[Phase, dict[Outcome, int]]
    # The bounded round (``CampaignRound``) fills these from the read model; the legacy
    # round leaves the defaults.
    reported: int = 0
    behind: int = 0
    as_of: datetime | None = None


class RoundWorkflowState(BaseModel):
    """The round workflow's state, carried across continue-as-new."""

    kickoff: RoundKickoff
    starts_at: datetime
    offset: int = 0
    total: int | None = None
    started_ids: list[str] = Field(default_factory=list)
    starting_done: bool = False
    progress: dict[str, OrgProgress] = Field(default_factory=dict)
    extensions: list[RoundExtensionRequest] = Field(default_factory=list)
    extensions_sent: int = 0
    close: CloseRound | None = None
    close_sent: bool = False
    # The cohort check: when it runs next, and who was last told they are behind (sorted).
    next_cohort_check: datetime | None = None
    behind: list[str] = Field(default_factory=list)


class RoundInput(BaseModel):
    """Start a round (``state`` None) or continue it."""

    model_config = _FROZEN

    kickoff: RoundKickoff
    state: RoundWorkflowState | None = None
