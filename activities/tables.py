"""The SQL read model: every table in one place, so Alembic can autogenerate from ``metadata``.

The read model is a projection of Temporal history for dashboards and reports; rows are
written only by idempotent activities, keyed by stable ids (event id, notice id, round id,
(round, organisation)). Enum-valued columns hold the enum's string value, so a value stored
today keeps its meaning when the enum grows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)
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


# ----- the roster (written by ``activities.roster_store``) ----------------------------------
class TownshipRow(Base):
    """A township or street office (乡镇/街道) named in the roster."""

    __tablename__ = "townships"

    name: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    updated_at: Mapped[datetime]


class SystemRow(Base):
    """A guidance group's system (分系统); the six rows mirror ``domain.organisation.System``."""

    __tablename__ = "systems"

    key: Mapped[str] = mapped_column(String(ENUM), primary_key=True)
    label: Mapped[str] = mapped_column(String(NAME))


class OrganisationRow(Base):
    """A grassroots organisation from the roster; ``active`` is False once it left the roster
    (kept, not deleted, because rounds and events still refer to it)."""

    __tablename__ = "organisations"
    __table_args__ = (
        Index("ix_organisations_township", "township"),
        Index("ix_organisations_system", "system"),
        Index("ix_organisations_instructor", "instructor"),
    )

    org_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME))
    org_type: Mapped[str] = mapped_column(String(ENUM))
    township: Mapped[str] = mapped_column(String(NAME))
    system: Mapped[str] = mapped_column(String(ENUM))
    member_count: Mapped[int] = mapped_column(Integer)
    secretary: Mapped[str] = mapped_column(String(NAME))
    instructor: Mapped[str] = mapped_column(String(NAME))
    active: Mapped[bool] = mapped_column(Boolean)
    row_number: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime]


class PersonRoleRow(Base):
    """A person named in the roster and the role they hold there (书记 of an organisation,
    指导员 of the organisations that name them); ``scope_key`` is what the role covers."""

    __tablename__ = "person_roles"

    person: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    role: Mapped[str] = mapped_column(String(ENUM), primary_key=True)
    scope_key: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    updated_at: Mapped[datetime]


# ----- rounds as the county office defines them (written by the API) ------------------------
class RoundDefinitionRow(Base):
    """The plan a round was created from, kept verbatim so a kick-off is reproducible."""

    __tablename__ = "round_definitions"

    round_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    plan_source: Mapped[str] = mapped_column(String(NAME))
    plan_yaml: Mapped[str] = mapped_column(Text)
    round_plan_id: Mapped[str] = mapped_column(String(ID))
    starts_at: Mapped[datetime | None]
    roster_snapshot: Mapped[str | None] = mapped_column(String(500))
    created_by: Mapped[str] = mapped_column(String(ID))
    created_at: Mapped[datetime]
    kicked_off_at: Mapped[datetime | None]


# ----- projections of campaign events (written by ``activities.projection``) ----------------
class PhaseStatusRow(Base):
    """One phase of one organisation in one round."""

    __tablename__ = "phase_status"

    round_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    phase: Mapped[str] = mapped_column(String(ENUM), primary_key=True)
    status: Mapped[str] = mapped_column(String(ENUM))
    deadline: Mapped[datetime | None]
    opened_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(ENUM))
    event_seq: Mapped[int] = mapped_column(Integer)


class StepStatusRow(Base):
    """One step of one phase: open, submitted, returned, accepted or waived."""

    __tablename__ = "step_status"

    round_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    phase: Mapped[str] = mapped_column(String(ENUM), primary_key=True)
    step_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    status: Mapped[str] = mapped_column(String(ENUM))
    reason: Mapped[str] = mapped_column(Text)
    event_seq: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime]


class SubmissionRow(Base):
    """Evidence submitted for a step (keyed by the ``submitted`` event) and its verdict."""

    __tablename__ = "submissions"
    __table_args__ = (Index("ix_submissions_round_org", "round_id", "org_id"),)

    event_id: Mapped[str] = mapped_column(String(LONG_ID), primary_key=True)
    round_id: Mapped[str] = mapped_column(String(ID))
    org_id: Mapped[str] = mapped_column(String(ID))
    phase: Mapped[str] = mapped_column(String(ENUM))
    step_id: Mapped[str] = mapped_column(String(ID))
    seq: Mapped[int] = mapped_column(Integer)
    evidence: Mapped[dict[str, Any]]
    submitted_by: Mapped[str] = mapped_column(String(ID))
    submitted_at: Mapped[datetime]
    decision: Mapped[str | None] = mapped_column(String(ENUM))
    reason: Mapped[str] = mapped_column(Text)
    decided_by: Mapped[str | None] = mapped_column(String(ID))
    decided_at: Mapped[datetime | None]


class UploadedFileRow(Base):
    """A file uploaded as evidence; the bytes live on disk under the data directory, named
    by their sha256, so the same file uploaded twice is stored once."""

    __tablename__ = "uploaded_files"

    file_id: Mapped[str] = mapped_column(String(LONG_ID), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(ID))
    filename: Mapped[str] = mapped_column(String(NAME))
    content_type: Mapped[str] = mapped_column(String(NAME))
    size: Mapped[int] = mapped_column(Integer)
    round_id: Mapped[str] = mapped_column(String(ID))
    org_id: Mapped[str] = mapped_column(String(ID))
    uploaded_by: Mapped[str] = mapped_column(String(ID))
    uploaded_at: Mapped[datetime]


class EscalationRow(Base):
    """A rung of the ladder that fired for an organisation's phase, and who signed for it."""

    __tablename__ = "escalations"
    __table_args__ = (Index("ix_escalations_recipient", "recipient_role", "recipient_key"),)

    round_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    phase: Mapped[str] = mapped_column(String(ENUM), primary_key=True)
    rung: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME))
    recipient_role: Mapped[str] = mapped_column(String(ENUM))
    recipient_key: Mapped[str] = mapped_column(String(NAME))
    fired_at: Mapped[datetime]
    working_days_overdue: Mapped[int] = mapped_column(Integer)
    acknowledged_by: Mapped[str | None] = mapped_column(String(ID))
    acknowledged_at: Mapped[datetime | None]


class AuditRow(Base):
    """Every human action: who, acting as what, did what to which object, when, from where.

    Workflow actions are keyed by their event id; API-only actions (login, round creation)
    by a request-scoped id, so a retried write never logs twice.
    """

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_user_at", "user", "at"),)

    audit_id: Mapped[str] = mapped_column(String(LONG_ID), primary_key=True)
    user: Mapped[str] = mapped_column(String(ID))
    role: Mapped[str | None] = mapped_column(String(ENUM))
    action: Mapped[str] = mapped_column(String(ID))
    round_id: Mapped[str | None] = mapped_column(String(ID))
    org_id: Mapped[str | None] = mapped_column(String(ID))
    ip: Mapped[str | None] = mapped_column(String(ID))
    at: Mapped[datetime]
    detail: Mapped[dict[str, Any]]


# ----- the API's own tables -----------------------------------------------------------------
class UserRow(Base):
    """A local account: argon2 password hash, one role, and the key of what it covers
    (a system, township, instructor name or organisation id; empty for county-wide roles)."""

    __tablename__ = "users"

    username: Mapped[str] = mapped_column(String(ID), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(NAME))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(ENUM))
    scope_key: Mapped[str] = mapped_column(String(NAME))
    active: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime]


class IdempotencyRow(Base):
    """A write's stored response, so a retry with the same Idempotency-Key replays it."""

    __tablename__ = "idempotency_keys"

    username: Mapped[str] = mapped_column(String(ID), primary_key=True)
    key: Mapped[str] = mapped_column(String(LONG_ID), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(ID))
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]


#: The read model's metadata: ``create_schema`` and Alembic's ``target_metadata``.
metadata: MetaData = Base.metadata

# The tables as Core ``Table`` objects, for the dialect-specific upserts of the activities.
campaign_events: Table = metadata.tables[CampaignEventRow.__tablename__]
campaign_status: Table = metadata.tables[CampaignStatusRow.__tablename__]
notices: Table = metadata.tables[NoticeRow.__tablename__]
rounds: Table = metadata.tables[RoundRow.__tablename__]
townships: Table = metadata.tables[TownshipRow.__tablename__]
systems: Table = metadata.tables[SystemRow.__tablename__]
organisations: Table = metadata.tables[OrganisationRow.__tablename__]
person_roles: Table = metadata.tables[PersonRoleRow.__tablename__]
phase_status: Table = metadata.tables[PhaseStatusRow.__tablename__]
step_status: Table = metadata.tables[StepStatusRow.__tablename__]
submissions: Table = metadata.tables[SubmissionRow.__tablename__]
escalations: Table = metadata.tables[EscalationRow.__tablename__]
audit_log: Table = metadata.tables[AuditRow.__tablename__]
