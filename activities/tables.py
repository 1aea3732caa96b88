"""The SQL read model: every table in one place, so Alembic can autogenerate from ``metadata``.

The read model is a projection of Temporal history for dashboards and reports; rows are
written only by idempotent activities, keyed by stable ids (event id, notice id, round id,
(round, organisation)). Enum-valued columns hold the enum's string value, so a value stored
today keeps its meaning when the enum grows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, Boolean, DateTime, Index, Integer, MetaData, String, Table, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Deterministic constraint and index names: Alembic can only alter or drop what it can name,
# and database-generated names differ between SQLite and PostgreSQL.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Lengths: ids are built from round, organisation, phase, kind, rung and recipient (see
# ``domain.notices.notice_id``), so they get generous room; names are Chinese and short.
ID = 64
LONG_ID = 255
NAME = 200
ENUM = 32


class NaiveDatetimeError(ValueError):
    """A datetime without a time zone reached the database layer (a programming error)."""


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime, stored in UTC and always read back aware in UTC.

    PostgreSQL's ``timestamptz`` keeps the instant but SQLite has no time zone type: it would
    store the wall-clock digits and return a naive value. Converting to UTC before writing and
    attaching UTC after reading makes both databases behave the same. Naive values are refused
    because their meaning (Beijing time? UTC?) cannot be known here.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive datetimes; normalise aware ones to UTC."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise NaiveDatetimeError(f"naive datetime {value.isoformat()} refused: attach a tz")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Attach UTC to SQLite's naive values; convert PostgreSQL's session-zone values."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# JSONB on PostgreSQL so dashboards can index and query event details; plain JSON elsewhere.
JSONDocument = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    """Declarative base of the read model; its metadata is what Alembic compares against."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSONDocument,
    }


class CampaignEventRow(Base):
    """One recorded state change of one organisation's campaign (append-only)."""

    __tablename__ = "campaign_events"
    __table_args__ = (
        Index("ix_campaign_events_round_org", "round_id", "org_id"),
        Index("ix_campaign_events_round_kind", "round_id", "kind"),
    )

    event_id: Mapped[str] = mapped_column(String(LONG_ID), primary_key=True)
    round_id: Mapped[str] = mapped_column(String(ID))
    org_id: Mapped[str] = mapped_column(String(ID))
    kind: Mapped[str] = mapped_column(String(ID))
    phase: Mapped[str | None] = mapped_column(String(ENUM))
    step_id: Mapped[str | None] = mapped_column(String(ID))
    actor_user: Mapped[str | None] = mapped_column(String(ID))
    actor_role: Mapped[str | None] = mapped_column(String(ENUM))
    actor_name: Mapped[str | None] = mapped_column(String(NAME))
    at: Mapped[datetime]
    detail: Mapped[dict[str, Any]]
    recorded_at: Mapped[datetime]


class CampaignStatusRow(Base):
    """Where one organisation stands in one round: the dashboards' main table.

    ``event_seq`` is the ordering guard: a snapshot is written only if it is not older than
    the stored one, so a retried or delayed activity never moves the status backwards.
    """

    __tablename__ = "campaign_status"
    __table_args__ = (
        Index("ix_campaign_status_round_township", "round_id", "township"),
        Index("ix_campaign_status_round_phase", "round_id", "phase"),
        Index("ix_campaign_status_round_light", "round_id", "light"),
    )

    round_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    org_name: Mapped[str] = mapped_column(String(NAME))
    township: Mapped[str] = mapped_column(String(NAME))
    system: Mapped[str] = mapped_column(String(ENUM))
    org_type: Mapped[str] = mapped_column(String(ENUM))
    phase: Mapped[str] = mapped_column(String(ENUM))
    phase_status: Mapped[str | None] = mapped_column(String(ENUM))
    light: Mapped[str] = mapped_column(String(ENUM))
    overdue: Mapped[bool] = mapped_column(Boolean)
    deadline: Mapped[datetime | None]
    top_rung: Mapped[int | None] = mapped_column(Integer)
    closed: Mapped[bool] = mapped_column(Boolean)
    event_seq: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime]


class NoticeRow(Base):
    """A notice in the in-app inbox; ``notice_id`` makes delivery idempotent."""

    __tablename__ = "notices"
    __table_args__ = (
        # The inbox query: a recipient's notices, newest first.
        Index("ix_notices_recipient", "recipient_role", "recipient_key", "created_at"),
    )

    notice_id: Mapped[str] = mapped_column(String(LONG_ID), primary_key=True)
    round_id: Mapped[str] = mapped_column(String(ID))
    org_id: Mapped[str] = mapped_column(String(ID))
    org_name: Mapped[str] = mapped_column(String(NAME))
    phase: Mapped[str] = mapped_column(String(ENUM))
    kind: Mapped[str] = mapped_column(String(ENUM))
    rung: Mapped[int | None] = mapped_column(Integer)
    recipient_role: Mapped[str] = mapped_column(String(ENUM))
    recipient_key: Mapped[str] = mapped_column(String(NAME))
    recipient_label: Mapped[str] = mapped_column(String(NAME))
    title: Mapped[str] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text)
    link_path: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime]
    read_at: Mapped[datetime | None]


class RoundRow(Base):
    """A campaign round (one run of the plan over the county's organisations)."""

    __tablename__ = "rounds"

    round_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME))
    campaign_id: Mapped[str] = mapped_column(String(ID))
    round_plan_id: Mapped[str] = mapped_column(String(ID))
    starts_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(ENUM))
    kicked_off_by: Mapped[str] = mapped_column(String(ID))
    updated_at: Mapped[datetime]


#: The read model's metadata: ``create_schema`` and Alembic's ``target_metadata``.
metadata: MetaData = Base.metadata

# The tables as Core ``Table`` objects, for the dialect-specific upserts of the activities.
campaign_events: Table = metadata.tables[CampaignEventRow.__tablename__]
campaign_status: Table = metadata.tables[CampaignStatusRow.__tablename__]
notices: Table = metadata.tables[NoticeRow.__tablename__]
rounds: Table = metadata.tables[RoundRow.__tablename__]
