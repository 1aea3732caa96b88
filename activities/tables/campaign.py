"""Rounds and their campaigns: events, status, steps, submissions, escalations, notices."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Float,
    Index,
    Integer,
    String,
    Text,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from activities.tables.base import ENUM, ID, LONG_ID, NAME, Base
from domain.organisation import DEFAULT_COUNTY


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
        # Each also covers what its page groups by, read from the index alone (0012): the
        # overview's matrix, the province view's counts, the laggard list's days overdue.
        Index(
            "ix_campaign_status_round_township",
            "round_id",
            "township",
            "phase",
            "light",
            "overdue",
        ),
        Index("ix_campaign_status_round_phase", "round_id", "phase", "light", "closed", "overdue"),
        Index("ix_campaign_status_round_light", "round_id", "light", "overdue", "deadline"),
        # The overdue list's keyset order and the overview cache's key (migration 0008).
        Index(
            "ix_campaign_status_round_overdue_deadline", "round_id", "overdue", "deadline", "org_id"
        ),
        Index("ix_campaign_status_round_updated", "round_id", "updated_at"),
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
    # Share of the current phase's required steps settled (domain.lights.phase_progress):
    # the round's cohort check reads it here instead of keeping it per organisation.
    progress: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")


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
    # A county's rounds, newest first (the round lists and the province view; 0009).
    __table_args__ = (Index("ix_rounds_county_starts_at", "county", "starts_at"),)

    round_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    # The county whose organisations the round runs over (a round never spans counties, so
    # its status, events, notices and files belong to this county through ``round_id``).
    county: Mapped[str] = mapped_column(
        String(ID), default=DEFAULT_COUNTY, server_default=DEFAULT_COUNTY
    )
    name: Mapped[str] = mapped_column(String(NAME))
    campaign_id: Mapped[str] = mapped_column(String(ID))
    round_plan_id: Mapped[str] = mapped_column(String(ID))
    starts_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(ENUM))
    kicked_off_by: Mapped[str] = mapped_column(String(ID))
    updated_at: Mapped[datetime]
    # Written by the round workflow (activities.round_progress): why it failed, and its
    # kick-off cursor, so the round's status page needs no query to Temporal.
    status_reason: Mapped[str | None] = mapped_column(Text)
    started: Mapped[int | None] = mapped_column(Integer)
    total: Mapped[int | None] = mapped_column(Integer)
    starting_done: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


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


class PhaseStatusRow(Base):
    """One phase of one organisation in one round."""

    __tablename__ = "phase_status"
    # The overview's completion chart: the round's completion times (migration 0008).
    __table_args__ = (
        Index("ix_phase_status_round_completed", "round_id", "completed_at", "phase"),
    )

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
