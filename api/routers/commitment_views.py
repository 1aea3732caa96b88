"""The response models of the commitment routes. The documents they describe are built by
``chuangzheng.services.commitments`` (which also feeds the public 公示 page)."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel

from api.responses import Timestamp


class ItemView(BaseModel):
    """One item of a commitment and the day it is to be kept."""

    item_id: str
    content: str
    due: date


class FulfilmentView(BaseModel):
    """A 践诺 ledger entry with its evidence ``{name, sha256}``."""

    entry_id: str
    item_id: str | None
    fulfilled_on: date
    description: str
    evidence: dict[str, Any]
    recorded_by: str


class ReviewView(BaseModel):
    """A 评诺 verdict."""

    occasion: str
    occasion_label: str
    verdict: str
    verdict_label: str
    comment: str
    reviewer: str
    reviewed_at: Timestamp


class CommitmentView(BaseModel):
    """A commitment with its items, ledger and reviews (``member_id`` null for the
    organisation's own)."""

    commitment_id: str
    kind: str
    kind_label: str
    member_id: str | None
    member_name: str
    content: str
    status: str
    status_label: str
    return_reason: str
    decided_by: str | None
    decided_at: Timestamp | None
    published_at: Timestamp | None
    notice_ends_at: Timestamp | None
    items: list[ItemView]
    ledger: list[FulfilmentView]
    reviews: list[ReviewView]


class RosterMember(BaseModel):
    """A member not yet covered."""

    member_id: str
    name: str


class AbsenceView(BaseModel):
    """A member excused with a reason."""

    member_id: str
    name: str
    reason: str


class CoverageView(BaseModel):
    """Who is covered, excused, or neither."""

    members: int
    covered: int
    uncovered: list[RosterMember]
    absences: list[AbsenceView]


class LedgerView(BaseModel):
    """Every commitment of the organisation in the round, and the coverage."""

    commitments: list[CommitmentView]
    coverage: CoverageView
