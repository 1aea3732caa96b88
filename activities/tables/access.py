"""Accounts, the audit log of human actions, and stored idempotent responses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from activities.tables.base import ENUM, ID, LONG_ID, NAME, Base


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
