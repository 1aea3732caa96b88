"""Loading and showing commitments for the commitment routes (and the public page)."""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from activities.member_store import active_members
from activities.tables import (
    CommitmentAbsenceRow,
    CommitmentItemRow,
    CommitmentReviewRow,
    CommitmentRow,
    FulfilmentEntryRow,
    RoundDefinitionRow,
)
from api.errors import not_found
from api.plans import parse_plan
from api.responses import Timestamp
from domain.commitments import (
    CommitmentKind,
    CommitmentStatus,
    ReviewOccasion,
    RosteredCommitment,
    Verdict,
    coverage,
    step_evidence,
)
from domain.plan import CampaignPlan, RoundPlan

ORGANISATION_KEY = ""  # member_key of the organisation's own commitment


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


def commitment_id(round_id: str, org_id: str, member_key: str) -> str:
    """Deterministic: recording the same member's commitment twice lands on the same row."""
    digest = hashlib.sha1(f"{round_id}\n{org_id}\n{member_key}".encode()).hexdigest()
    return f"c-{digest[:24]}"


def round_plan(session: Session, round_id: str) -> tuple[CampaignPlan, RoundPlan]:
    """The plan a round was created from (404 when the round does not exist)."""
    definition = session.get(RoundDefinitionRow, round_id)
    if definition is None:
        raise not_found("轮次不存在")
    plan = parse_plan(definition.plan_yaml)
    return plan, plan.round(definition.round_plan_id)


def load_commitment(
    session: Session, round_id: str, org_id: str, commitment_id: str
) -> CommitmentRow:
    """A commitment of this organisation and round, or 404."""
    row = session.get(CommitmentRow, commitment_id)
    if row is None or row.round_id != round_id or row.org_id != org_id:
        raise not_found("承诺不存在")
    return row


def org_commitments(session: Session, round_id: str, org_id: str) -> list[CommitmentRow]:
    """The organisation's commitment first, then members' by name."""
    rows = session.scalars(
        select(CommitmentRow).where(
            CommitmentRow.round_id == round_id, CommitmentRow.org_id == org_id
        )
    ).all()
    return sorted(rows, key=lambda r: (r.kind != CommitmentKind.ORGANISATION, r.member_name))


def absences(session: Session, round_id: str, org_id: str) -> list[CommitmentAbsenceRow]:
    """Recorded absences of the organisation in the round."""
    return list(
        session.scalars(
            select(CommitmentAbsenceRow)
            .where(CommitmentAbsenceRow.round_id == round_id, CommitmentAbsenceRow.org_id == org_id)
            .order_by(CommitmentAbsenceRow.member_id)
        )
    )


def items_of(session: Session, commitment_id: str) -> list[CommitmentItemRow]:
    """A commitment's items in order."""
    return list(
        session.scalars(
            select(CommitmentItemRow)
            .where(CommitmentItemRow.commitment_id == commitment_id)
            .order_by(CommitmentItemRow.position)
        )
    )


def ledger_of(session: Session, commitment_id: str) -> list[FulfilmentEntryRow]:
    """A commitment's fulfilment entries, oldest first."""
    return list(
        session.scalars(
            select(FulfilmentEntryRow)
            .where(FulfilmentEntryRow.commitment_id == commitment_id)
            .order_by(FulfilmentEntryRow.fulfilled_on, FulfilmentEntryRow.recorded_at)
        )
    )


def commitment_view(session: Session, row: CommitmentRow) -> dict[str, Any]:
    """A commitment with its items, ledger and reviews, labels in Chinese."""
    reviews = session.scalars(
        select(CommitmentReviewRow)
        .where(CommitmentReviewRow.commitment_id == row.commitment_id)
        .order_by(CommitmentReviewRow.reviewed_at)
    ).all()
    return {
        "commitment_id": row.commitment_id,
        "kind": row.kind,
        "kind_label": CommitmentKind(row.kind).label,
        "member_id": row.member_key or None,
        "member_name": row.member_name,
        "content": row.content,
        "status": row.status,
        "status_label": CommitmentStatus(row.status).label,
        "return_reason": row.return_reason,
        "decided_by": row.decided_by,
        "decided_at": row.decided_at,
        "published_at": row.published_at,
        "notice_ends_at": row.notice_ends_at,
        "items": [
            {"item_id": i.item_id, "content": i.content, "due": i.due}
            for i in items_of(session, row.commitment_id)
        ],
        "ledger": [
            {
                "entry_id": e.entry_id,
                "item_id": e.item_id,
                "fulfilled_on": e.fulfilled_on,
                "description": e.description,
                "evidence": e.evidence,
                "recorded_by": e.recorded_by,
            }
            for e in ledger_of(session, row.commitment_id)
        ],
        "reviews": [
            {
                "occasion": r.occasion,
                "occasion_label": ReviewOccasion(r.occasion).label,
                "verdict": r.verdict,
                "verdict_label": Verdict(r.verdict).label,
                "comment": r.comment,
                "reviewer": r.reviewer,
                "reviewed_at": r.reviewed_at,
            }
            for r in reviews
        ],
    }


def counted_member_commitments(
    session: Session, rows: list[CommitmentRow]
) -> list[RosteredCommitment]:
    """Members' commitments that count for coverage, with their latest due date."""
    counted = []
    for row in rows:
        if (
            row.kind != CommitmentKind.MEMBER
            or not CommitmentStatus(row.status).counts_for_coverage
        ):
            continue
        due = max(i.due for i in items_of(session, row.commitment_id))
        counted.append(RosteredCommitment(row.member_key, row.member_name, row.content, due))
    return counted


def ledger_evidence(session: Session, round_id: str, org_id: str) -> dict[str, Any]:
    """Roster, counted commitments and absences: what the ``member_commitments`` step gets."""
    members = [(m.member_id, m.name) for m in active_members(session, org_id)]
    # Members who left the roster since they committed are out of the snapshot and its count.
    current = {member_id for member_id, _ in members}
    counted = counted_member_commitments(session, org_commitments(session, round_id, org_id))
    excused = [(a.member_id, a.reason) for a in absences(session, round_id, org_id)]
    return step_evidence(
        members,
        [c for c in counted if c.member_id in current],
        [(m, reason) for m, reason in excused if m in current],
    )


def coverage_view(session: Session, round_id: str, org_id: str) -> dict[str, Any]:
    """Who is covered, excused, or neither (for the secretary's to-do list)."""
    members = active_members(session, org_id)
    names = {m.member_id: m.name for m in members}
    counted = counted_member_commitments(session, org_commitments(session, round_id, org_id))
    excused = absences(session, round_id, org_id)
    result = coverage(
        names,
        (c.member_id for c in counted if c.member_id in names),
        (a.member_id for a in excused if a.member_id in names),
    )
    return {
        "members": len(members),
        "covered": result.covered,
        "uncovered": [{"member_id": m, "name": names[m]} for m in result.uncovered],
        "absences": [
            {"member_id": a.member_id, "name": names.get(a.member_id, ""), "reason": a.reason}
            for a in excused
        ],
    }
