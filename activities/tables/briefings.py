"""总结交流经验 (seed 002 §六(五)): good-practice briefings (简报) an organisation or a township
submits and the county office selects and circulates."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from activities.tables.base import ENUM, ID, NAME, Base


class BriefingRow(Base):
    """One 简报 of a round: who submitted it, its text and optional file, and whether (and
    when, by whom, to how many recipients) the county office circulated it."""

    __tablename__ = "briefings"
    __table_args__ = (Index("ix_briefings_round", "round_id", "submitted_at"),)

    briefing_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    round_id: Mapped[str] = mapped_column(String(ID))
    # The organisation a secretary submitted for; None when a township submitted.
    org_id: Mapped[str | None] = mapped_column(String(ID))
    # The township the briefing comes from (the organisation's, or the submitting township).
    township: Mapped[str] = mapped_column(String(NAME))
    # Who it is from as the circular names it ("XX村党支部", "XX镇党委").
    source: Mapped[str] = mapped_column(String(NAME))
    title: Mapped[str] = mapped_column(String(NAME))
    text: Mapped[str] = mapped_column(Text)
    # The optional attachment, stored under the data directory by its sha256.
    file_name: Mapped[str | None] = mapped_column(String(NAME))
    file_sha256: Mapped[str | None] = mapped_column(String(64))
    file_type: Mapped[str | None] = mapped_column(String(NAME))
    file_size: Mapped[int | None] = mapped_column(Integer)
    submitted_by: Mapped[str] = mapped_column(String(ID))
    submitted_by_role: Mapped[str] = mapped_column(String(ENUM))
    submitted_at: Mapped[datetime]
    # domain.briefing.BriefingStatus
    status: Mapped[str] = mapped_column(String(ENUM))
    # The county office's note when circulating (编者按), may be empty.
    note: Mapped[str] = mapped_column(Text, default="")
    circulated_by: Mapped[str | None] = mapped_column(String(ID))
    circulated_at: Mapped[datetime | None]
    recipients: Mapped[int | None] = mapped_column(Integer)
