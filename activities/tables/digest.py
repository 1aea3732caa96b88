"""Messages computed from the read model (daily digests, circular notices) and circulars.

They live apart from ``notices`` because a notice belongs to one organisation's phase and
ladder rung, while a digest or a circular covers a whole round; the inbox shows both.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from activities.tables.base import ENUM, ID, LONG_ID, NAME, Base


class DigestRow(Base):
    """One inbox message of kind ``digest`` (a supervisor's daily digest) or ``circular``
    (the notice of a circular); ``message_id`` makes sending idempotent."""

    __tablename__ = "digests"
    __table_args__ = (
        # The inbox query: a recipient's messages, newest first.
        Index("ix_digests_recipient", "recipient_role", "recipient_key", "created_at"),
        Index("ix_digests_round_day", "round_id", "local_date"),
    )

    message_id: Mapped[str] = mapped_column(String(LONG_ID), primary_key=True)
    kind: Mapped[str] = mapped_column(String(ENUM))
    round_id: Mapped[str] = mapped_column(String(ID))
    # ISO date in Asia/Shanghai: the day the digest is for (not an instant).
    local_date: Mapped[str] = mapped_column(String(10))
    recipient_role: Mapped[str] = mapped_column(String(ENUM))
    recipient_key: Mapped[str] = mapped_column(String(NAME))
    recipient_label: Mapped[str] = mapped_column(String(NAME))
    title: Mapped[str] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text)
    link_path: Mapped[str] = mapped_column(String(500))
    # {"laggards": [org ids], "counts": {light: n}} for dashboards; the body is for people.
    detail: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime]
    read_at: Mapped[datetime | None]


class CircularRow(Base):
    """A circular (通报) document of a round: where its files are and their SHA-256."""

    __tablename__ = "circulars"
    __table_args__ = (Index("ix_circulars_round", "round_id", "created_at"),)

    circular_id: Mapped[str] = mapped_column(String(LONG_ID), primary_key=True)
    round_id: Mapped[str] = mapped_column(String(ID))
    key: Mapped[str] = mapped_column(String(ID))
    title: Mapped[str] = mapped_column(String(500))
    xlsx_path: Mapped[str] = mapped_column(String(1000))
    xlsx_sha256: Mapped[str] = mapped_column(String(64))
    text_path: Mapped[str] = mapped_column(String(1000))
    text_sha256: Mapped[str] = mapped_column(String(64))
    summary: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
