"""Input, state and results of the bounded round workflow (``CampaignRound``).

Nothing here grows with the number of organisations: the round carries its terms, a
content-addressed reference to its plan (the plan itself is stored once in the read model),
its pinned schedule, the kick-off cursor, the round-wide actions with their idempotency keys,
and the last aggregate it fetched (counts by enum). See docs/workflows.md.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from activities.round_contracts import RoundAggregate, RoundStatus
from domain.actions import CalendarUpdate, CloseRound
from domain.cohort import DEFAULT_TOLERANCE
from domain.plan_version import PlanVersionChange
from domain.schedule import RoundSchedule
from domain.state import Actor
from workflows.contracts import RoundExtensionRequest

_FROZEN = ConfigDict(frozen=True)

#: The bounded round's workflow type: what every new kick-off starts. Rounds kicked off
#: before it run on as the legacy type, ``CampaignRoundWorkflow``.
ROUND_WORKFLOW_TYPE = "CampaignRound"


class RoundTerms(BaseModel):
    """What the county office fixed at kick-off, without the plan (see ``plan_ref``)."""

    model_config = _FROZEN

    round_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")
    round_plan_id: str
    roster_source: str
    actor: Actor
    # None: the plan's own start date, or the moment of the first run.
    starts_at: datetime | None = None
    # Roster positions per start activity and per page inside it; start RPCs in flight.
    start_chunk: int = Field(default=1000, ge=1, le=100_000)
    page_size: int = Field(default=200, ge=1, le=1000)
    concurrency: int = Field(default=50, ge=1, le=500)
    history_limit: int = Field(default=10_000, ge=100)
    # Organisation workflows continue-as-new past this many events.
    org_history_limit: int = Field(default=10_000, ge=100)
    # How often (workflow time) the round fetches its aggregate, checks cohorts (yellow) and
    # checks for completion, and the slack allowed behind the pro-rata schedule.
    cohort_check_every: timedelta = Field(default=timedelta(hours=24), gt=timedelta(0))
    behind_tolerance: float = Field(default=DEFAULT_TOLERANCE, ge=0.0, le=1.0)


class RoundCursor(BaseModel):
    """How far the kick-off has come through the roster scope."""

    offset: int = 0
    total: int | None = None
    done: bool = False


class RoundActionKind(StrEnum):
    """The round-wide actions a round fans out to its organisations."""

    EXTENSION = "extension"
    CALENDAR = "calendar"
    PLAN_VERSION = "plan_version"


class RoundAction(BaseModel):
    """One round-wide action as the round keeps it: its kind, its idempotency key, and the
    county office's request (exactly one of ``extension``, ``calendar`` and
    ``plan_version``)."""

    model_config = _FROZEN

    kind: RoundActionKind
    request_id: str
    extension: RoundExtensionRequest | None = None
    calendar: CalendarUpdate | None = None
    plan_version: PlanVersionChange | None = None


class RoundState(BaseModel):
    """Everything the round still owes, carried across continue-as-new (bounded)."""

    # Resolved by the API at kick-off, or once by the round itself (then pinned here).
    schedule: RoundSchedule | None = None
    starts_at: datetime
    cursor: RoundCursor = Field(default_factory=RoundCursor)
    # Round-wide actions in the order issued, each once per request id, and how many every
    # started organisation has been sent (later starters get them all at start).
    actions: list[RoundAction] = Field(default_factory=list)
    actions_sent: int = 0
    close: CloseRound | None = None
    close_sent: bool = False
    # The plan version in force (``domain.plan_version``): 1 and the input's ``plan_ref``
    # until the county office applies a new version; later starters get its plan.
    plan_version: int = 1
    plan_ref: str | None = None
    next_check: datetime | None = None
    # The last aggregate fetched from the read model (what the ``progress`` query answers).
    last: RoundAggregate | None = None
    recorded: RoundStatus | None = None


class CampaignRoundInput(BaseModel):
    """Start a round (``state`` None) or continue it.

    ``plan_ref`` is the plan's content address in the read model (``round_plans``), stored
    by whoever kicks off (``activities.round_progress.store_plan``). ``schedule`` is the
    round's schedule as the API resolved it at kick-off, with its pinned calendar; without
    it the round resolves it once in an activity, so the result is pinned in history.
    """

    model_config = _FROZEN

    terms: RoundTerms
    plan_ref: str
    schedule: RoundSchedule | None = None
    state: RoundState | None = None


class RoundActionResult(BaseModel):
    """What a round-wide action's Update returns: small, it is stored in history."""

    model_config = _FROZEN

    action_id: str
    # False: the same request id was applied before; nothing new was added.
    applied: bool
    # A plan version's number (``apply_plan_version``); None for the other actions.
    version: int | None = None


class RoundPlanState(BaseModel):
    """The ``plan_state`` query: the plan version in force, its plan's content address and
    the round's schedule as it stands (what a new version is resolved against)."""

    model_config = _FROZEN

    version: int
    plan_ref: str
    schedule: RoundSchedule | None
    closed: bool
    # Every version applied after kick-off, by its idempotency key (a handful per round).
    version_ids: dict[str, int] = Field(default_factory=dict)
