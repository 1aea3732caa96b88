"""Inputs and outputs of activities: one model each, so they can grow without breaking
running workflows. Pure pydantic and domain imports only: workflows import this module.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from domain.lights import Light
from domain.machine import PhaseStatus
from domain.notices import Notice
from domain.organisation import Organisation, OrgType
from domain.phases import Phase
from domain.plan import CampaignPlan
from domain.schedule import RoundSchedule
from domain.state import Actor, CampaignEvent

_FROZEN = ConfigDict(frozen=True)


class CampaignSnapshot(BaseModel):
    """Where one organisation stands, for the read model's status row.

    ``event_seq`` orders snapshots: a retried, older write never overwrites a newer one.
    """

    model_config = _FROZEN

    round_id: str
    org_id: str
    org_name: str
    township: str
    system: str
    org_type: OrgType
    phase: Phase
    phase_status: PhaseStatus | None
    light: Light
    overdue: bool
    deadline: datetime | None
    top_rung: int | None
    closed: bool
    event_seq: int
    updated_at: datetime
    # Share of the current phase's required steps settled, for the round's cohort check.
    progress: float = Field(default=0.0, ge=0.0, le=1.0)


class EventBatch(BaseModel):
    """State changes to record, with the snapshot after the last of them, and the notices
    they gave rise to (recorded in the same transaction: the outbox)."""

    model_config = _FROZEN

    events: list[CampaignEvent]
    snapshot: CampaignSnapshot
    notices: list[Notice] = Field(default_factory=list)


class NoticeBatch(BaseModel):
    """Notices to deliver; each is delivered at most once per recipient (by notice id)."""

    model_config = _FROZEN

    notices: list[Notice]


class DeliveryReport(BaseModel):
    """How many notices were newly delivered and how many had been delivered before."""

    model_config = _FROZEN

    delivered: int
    already_delivered: int


class RosterPageRequest(BaseModel):
    """One page of the organisations a round covers."""

    model_config = _FROZEN

    source: str
    types: tuple[OrgType, ...] | None = None
    townships: tuple[str, ...] | None = None
    offset: int = Field(ge=0)
    limit: int = Field(ge=1, le=1000)


class RosterPage(BaseModel):
    """A page of organisations and the total in scope."""

    model_config = _FROZEN

    organisations: list[Organisation]
    total: int


class StartBatch(BaseModel):
    """Start one organisation workflow per organisation, idempotently."""

    model_config = _FROZEN

    round_id: str
    round_workflow_id: str
    plan: CampaignPlan
    round_plan_id: str
    schedule: RoundSchedule
    organisations: list[Organisation]
    history_limit: int = 10_000


class StartReport(BaseModel):
    """How many workflows the batch started and how many already existed."""

    model_config = _FROZEN

    started: int
    existing: int
    workflow_ids: list[str]


class SignalBatch(BaseModel):
    """Send one signal with one payload to many organisation workflows."""

    model_config = _FROZEN

    workflow_ids: list[str]
    signal: str
    payload: dict[str, object]


class SignalReport(BaseModel):
    """How many workflows got the signal and how many had already finished."""

    model_config = _FROZEN

    signalled: int
    finished: int


class RoundRecord(BaseModel):
    """A round's row in the read model."""

    model_config = _FROZEN

    round_id: str
    name: str
    campaign_id: str
    round_plan_id: str
    starts_at: datetime
    status: str
    kicked_off_by: Actor
    updated_at: datetime
