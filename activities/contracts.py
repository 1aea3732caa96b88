"""Inputs and outputs of activities: one model each, so they can grow without breaking
running workflows. Pure pydantic and domain imports only: workflows import this module.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

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


#: ``record_events`` refuses a :class:`StatusChange` for an organisation with no status row
#: (nothing to apply the change to); the workflow then sends the whole snapshot.
STATUS_ROW_MISSING = "StatusRowMissing"
#: ``deliver_notices`` refuses ``notice_ids`` that are not in the inbox (they were to be
#: recorded by ``record_events`` first); the workflow then sends the notices themselves.
NOTICES_NOT_RECORDED = "NoticesNotRecorded"

#: The status row's columns a :class:`StatusChange` may carry besides its keys.
STATUS_CHANGE_FIELDS = (
    "phase",
    "phase_status",
    "light",
    "overdue",
    "deadline",
    "top_rung",
    "closed",
    "progress",
)


class StatusChange(BaseModel):
    """The status row's fields that changed since the snapshot the workflow last recorded,
    with the keys, ``event_seq`` and ``updated_at`` always.

    Only the fields given are written (``model_fields_set``; in JSON only they are sent):
    the organisation's name, township, system and type, and whatever did not change, stay
    as the stored row has them. The ordering guard is the snapshot's (``event_seq``).
    """

    model_config = _FROZEN

    round_id: str
    org_id: str
    event_seq: int
    updated_at: datetime
    phase: Phase | None = None
    phase_status: PhaseStatus | None = None
    light: Light | None = None
    overdue: bool | None = None
    deadline: datetime | None = None
    top_rung: int | None = None
    closed: bool | None = None
    progress: float | None = Field(default=None, ge=0.0, le=1.0)

    @classmethod
    def between(cls, before: CampaignSnapshot, after: CampaignSnapshot) -> StatusChange:
        """What changed from ``before`` (recorded) to ``after`` (to record)."""
        changed = {
            name: getattr(after, name)
            for name in STATUS_CHANGE_FIELDS
            if getattr(after, name) != getattr(before, name)
        }
        return cls(
            round_id=after.round_id,
            org_id=after.org_id,
            event_seq=after.event_seq,
            updated_at=after.updated_at,
            **changed,
        )

    def changes(self) -> dict[str, Any]:
        """The changed fields (not the keys, ``event_seq`` or ``updated_at``)."""
        return {
            name: getattr(self, name)
            for name in STATUS_CHANGE_FIELDS
            if name in self.model_fields_set
        }

    @model_serializer(mode="wrap")
    def _only_given(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        """In JSON, only the keys and the fields given (an absent field is unchanged; a
        field given as None, a deadline gone, is sent as null)."""
        dumped = handler(self)
        if not info.mode_is_json() or not isinstance(dumped, dict):
            return dumped
        given = self.model_fields_set
        return {k: v for k, v in dumped.items() if k not in STATUS_CHANGE_FIELDS or k in given}


class EventBatch(BaseModel):
    """State changes to record, with where the organisation stands after the last of them,
    and the notices they gave rise to (recorded in the same transaction: the outbox).

    Where it stands is either the whole ``snapshot`` (every run's first batch; every batch of
    workflows from before ``status``) or ``status``, what changed since the snapshot last
    recorded. In JSON, the one not given and empty notices are left out: a worker from
    before ``status`` cannot read a batch without a snapshot, so it fails and Temporal
    retries it on one that can, instead of writing it wrong.
    """

    model_config = _FROZEN

    events: list[CampaignEvent]
    snapshot: CampaignSnapshot | None = None
    notices: list[Notice] = Field(default_factory=list)
    status: StatusChange | None = None

    @model_validator(mode="after")
    def _one_standing(self) -> EventBatch:
        if (self.snapshot is None) == (self.status is None):
            raise ValueError("an event batch carries either a snapshot or a status change")
        return self

    @property
    def where(self) -> CampaignSnapshot | StatusChange:
        """The snapshot or the status change, whichever the batch carries."""
        standing = self.snapshot if self.snapshot is not None else self.status
        assert standing is not None
        return standing

    @model_serializer(mode="wrap")
    def _compact(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        dumped = handler(self)
        if not info.mode_is_json() or not isinstance(dumped, dict):
            return dumped
        return {
            k: v
            for k, v in dumped.items()
            if not (k in ("snapshot", "status") and v is None) and not (k == "notices" and not v)
        }


class NoticeBatch(BaseModel):
    """Notices to deliver; each is delivered at most once per recipient (by notice id).

    ``notices`` are filed in the inbox if not there yet, then sent; ``notice_ids`` name
    notices already in the inbox (the workflow's outbox recorded them with their events
    just before), which are loaded from it and sent. In JSON an empty ``notices`` is left
    out when ``notice_ids`` are given: a worker from before ``notice_ids`` then fails to read
    the batch (and Temporal retries it elsewhere) instead of delivering nothing.
    """

    model_config = _FROZEN

    notices: list[Notice] = Field(default_factory=list)
    notice_ids: list[str] = Field(default_factory=list)

    @model_serializer(mode="wrap")
    def _compact(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        dumped = handler(self)
        if not info.mode_is_json() or not isinstance(dumped, dict):
            return dumped
        if not self.notice_ids:
            dumped.pop("notice_ids", None)
        elif not self.notices:
            dumped.pop("notices", None)
        return dumped


class RecordReceipt(BaseModel):
    """What ``record_outbox`` wrote, and which of the batch's notices still have to go out:
    those a configured external channel (mail, a group robot) carries for their recipient's
    role. The inbox row is the delivery for every other notice, so the workflow schedules
    ``deliver_notices`` only for these (none on an inbox-only deployment, the default)."""

    model_config = _FROZEN

    inserted: int
    to_send: list[str] = Field(default_factory=list)


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
