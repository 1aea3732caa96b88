"""评选表彰: declarations, score sheets, the 审定 and its decisions, the published honours.

Unlike the campaign tables these rows are not a projection of Temporal history: the
commendation procedure is a county-level process written by the API itself, one
transaction per action. Primary keys carry its rules: one sheet per assessor and
declaration, one approval and one publication per round, one decision per declaration.
Scores are kept as decimal strings so totals are exact on both databases.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from activities.tables.base import ENUM, ID, NAME, Base


class CommendationDeclarationRow(Base):
    """A 申报: an organisation (``nominee`` = its name) or a person it nominates."""

    __tablename__ = "commendation_declarations"
    __table_args__ = (
        UniqueConstraint("round_id", "category", "org_id", "nominee"),
        Index("ix_commendation_declarations_round", "round_id", "declared_at"),
    )

    declaration_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    round_id: Mapped[str] = mapped_column(String(ID))
    category: Mapped[str] = mapped_column(String(ENUM))
    org_id: Mapped[str] = mapped_column(String(ID))
    org_name: Mapped[str] = mapped_column(String(NAME))
    system: Mapped[str] = mapped_column(String(ENUM))
    township: Mapped[str] = mapped_column(String(NAME))
    nominee: Mapped[str] = mapped_column(String(NAME))
    deeds: Mapped[str] = mapped_column(Text)
    declared_by: Mapped[str] = mapped_column(String(ID))
    declared_role: Mapped[str] = mapped_column(String(ENUM))
    declared_at: Mapped[datetime]


class CommendationScoreSheetRow(Base):
    """One assessor's sheet for one declaration; editable until ``submitted_at`` is set."""

    __tablename__ = "commendation_score_sheets"
    __table_args__ = (Index("ix_commendation_score_sheets_round", "round_id"),)

    declaration_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    assessor: Mapped[str] = mapped_column(String(ID), primary_key=True)
    round_id: Mapped[str] = mapped_column(String(ID))
    # {item id: "17.5"}: decimal strings, exact.
    scores: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]
    submitted_at: Mapped[datetime | None]


class CommendationApprovalRow(Base):
    """The standing committee's 审定 of a round's list (recorded by the county office);
    ``proposal`` keeps the ranking it decided on."""

    __tablename__ = "commendation_approvals"

    round_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    meeting: Mapped[str] = mapped_column(String(NAME))
    approved_by: Mapped[str] = mapped_column(String(ID))
    approved_at: Mapped[datetime]
    proposal: Mapped[dict[str, Any]]
    # [declaration ids] of the approved list, in the order of the honours list.
    approved: Mapped[dict[str, Any]]


class CommendationDecisionRow(Base):
    """A strike (取消入选) or an addition (增补) at 审定, with its reason."""

    __tablename__ = "commendation_decisions"

    round_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    declaration_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    kind: Mapped[str] = mapped_column(String(ENUM))
    reason: Mapped[str] = mapped_column(Text)
    decided_by: Mapped[str] = mapped_column(String(ID))
    decided_at: Mapped[datetime]


class CommendationPublicationRow(Base):
    """The honours list of a round was published (once; nothing changes afterwards)."""

    __tablename__ = "commendation_publications"

    round_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    round_name: Mapped[str] = mapped_column(String(NAME))
    published_by: Mapped[str] = mapped_column(String(ID))
    published_at: Mapped[datetime]


class CommendationHonourRow(Base):
    """One published honour; the certificate is generated from this row."""

    __tablename__ = "commendation_honours"
    __table_args__ = (
        UniqueConstraint("certificate_no"),
        Index("ix_commendation_honours_round", "round_id", "position"),
    )

    declaration_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    round_id: Mapped[str] = mapped_column(String(ID))
    position: Mapped[int] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(String(ENUM))
    title: Mapped[str] = mapped_column(String(NAME))
    nominee: Mapped[str] = mapped_column(String(NAME))
    org_id: Mapped[str] = mapped_column(String(ID))
    org_name: Mapped[str] = mapped_column(String(NAME))
    system: Mapped[str] = mapped_column(String(ENUM))
    rank: Mapped[int | None] = mapped_column(Integer)
    score: Mapped[str | None] = mapped_column(String(ENUM))
    added: Mapped[bool]
    certificate_no: Mapped[str] = mapped_column(String(NAME))
    published_at: Mapped[datetime]
