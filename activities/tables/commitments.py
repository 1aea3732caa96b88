"""公开承诺: the party-member roster and the commitment ledger of each organisation and round.

Written by the API (the secretary and the upper level act on them directly; the workflow
only sees the evidence built from them). Ids are deterministic where a retry must land on
the same row: a commitment is keyed by (round, organisation, member) and a ledger entry by
the request's idempotency key.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from activities.tables.base import ENUM, ID, NAME, Base


class PartyMemberRow(Base):
    """A party member of an organisation (党员名册); ``active`` is False once a later import
    left them out (kept, because their commitments still name them)."""

    __tablename__ = "party_members"

    org_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    member_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME))
    active: Mapped[bool] = mapped_column(Boolean)
    row_number: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime]


class CommitmentRow(Base):
    """One commitment: the organisation's own (``member_key`` "") or one member's."""

    __tablename__ = "commitments"
    __table_args__ = (
        UniqueConstraint("round_id", "org_id", "member_key"),
        Index("ix_commitments_round_org", "round_id", "org_id"),
        Index("ix_commitments_published_at", "published_at"),
    )

    commitment_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    round_id: Mapped[str] = mapped_column(String(ID))
    org_id: Mapped[str] = mapped_column(String(ID))
    kind: Mapped[str] = mapped_column(String(ENUM))
    member_key: Mapped[str] = mapped_column(String(ID))
    member_name: Mapped[str] = mapped_column(String(NAME))
    content: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(ENUM))
    return_reason: Mapped[str] = mapped_column(Text, default="")
    decided_by: Mapped[str | None] = mapped_column(String(ID))
    decided_at: Mapped[datetime | None]
    published_by: Mapped[str | None] = mapped_column(String(ID))
    published_at: Mapped[datetime | None]
    notice_ends_at: Mapped[datetime | None]
    recorded_by: Mapped[str] = mapped_column(String(ID))
    updated_at: Mapped[datetime]


class CommitmentItemRow(Base):
    """A concrete item of a commitment (承诺事项) with its fulfilment date."""

    __tablename__ = "commitment_items"

    item_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    commitment_id: Mapped[str] = mapped_column(
        String(ID), ForeignKey("commitments.commitment_id"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text)
    due: Mapped[date] = mapped_column(Date)


class CommitmentAbsenceRow(Base):
    """A member who makes no commitment this round, and why (病休、外出务工……)."""

    __tablename__ = "commitment_absences"

    round_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    member_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    recorded_by: Mapped[str] = mapped_column(String(ID))
    recorded_at: Mapped[datetime]


class FulfilmentEntryRow(Base):
    """践诺: one ledger entry of fulfilment with its evidence file ``{name, sha256}``."""

    __tablename__ = "commitment_ledger"

    entry_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    commitment_id: Mapped[str] = mapped_column(
        String(ID), ForeignKey("commitments.commitment_id"), index=True
    )
    item_id: Mapped[str | None] = mapped_column(String(ID))
    fulfilled_on: Mapped[date] = mapped_column(Date)
    description: Mapped[str] = mapped_column(Text)
    evidence: Mapped[dict[str, Any]]
    recorded_by: Mapped[str] = mapped_column(String(ID))
    recorded_at: Mapped[datetime]


class CommitmentReviewRow(Base):
    """评诺: a verdict on a commitment at the leadership review or the evaluation."""

    __tablename__ = "commitment_reviews"

    review_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    commitment_id: Mapped[str] = mapped_column(
        String(ID), ForeignKey("commitments.commitment_id"), index=True
    )
    occasion: Mapped[str] = mapped_column(String(ENUM))
    verdict: Mapped[str] = mapped_column(String(ENUM))
    comment: Mapped[str] = mapped_column(Text)
    reviewer: Mapped[str] = mapped_column(String(ID))
    reviewed_at: Mapped[datetime]
