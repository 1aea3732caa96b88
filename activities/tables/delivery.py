"""The channels' delivery ledger: one row per (notice, channel); see
``activities.channels.deliveries`` for how it is claimed and closed."""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, String, Table, Text

from activities.tables.base import ENUM, LONG_ID, Base, UTCDateTime

#: An address's column: RFC 5321's longest path, and far beyond any robot's name. The channels
#: file is checked against it at start-up (PostgreSQL would refuse the ledger row at the first
#: escalation, and the delivery would be retried for ever).
ADDRESS_MAX_CHARS = 320

notice_deliveries: Table = Table(
    "notice_deliveries",
    Base.metadata,
    Column("notice_id", String(LONG_ID), primary_key=True),
    Column("channel", String(ENUM), primary_key=True),
    # An e-mail address or a robot's configured name, never a webhook URL (it holds a token).
    Column("address", String(ADDRESS_MAX_CHARS), nullable=False),
    Column("status", String(ENUM), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("sent_at", UTCDateTime(), nullable=True),
    # The "failed deliveries" list for operators and :meth:`ChannelRouter.retry_failed`.
    Index("ix_notice_deliveries_status", "status", "updated_at"),
)
