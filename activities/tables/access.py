"""Accounts and how people sign in, the audit log of human actions, and stored idempotent
responses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Index,
    Integer,
    MetaData,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from activities.tables.base import ENUM, ID, LONG_ID, NAME, Base, PackedBytes
from domain.organisation import DEFAULT_COUNTY


class AuditRow(Base):
    """Every human action: who, acting as what, did what to which object, when, from where.

    Workflow actions are keyed by their event id; API-only actions (login, round creation)
    by a request-scoped id, so a retried write never logs twice.
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_user_at", "user", "at"),
        Index("ix_audit_log_org_id", "org_id"),
        Index("ix_audit_log_round_id", "round_id"),
        Index("ix_audit_log_at", "at"),
    )

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
    """An account: one role, the key of what it covers (a system, township, instructor name
    or organisation id; empty for county-wide roles) and an argon2 password hash.

    ``password_hash`` is None until the person activates the account with their one-time
    code: nobody gets a default password. ``source`` says who keeps the account: ``roster``
    (created and re-scoped by roster imports), ``admin`` (the county office's own staff,
    created on the admin page) or ``demo``. ``session_version`` is carried in every token
    and bumped by deactivation, reset and a password change, so those end every session.
    """

    __tablename__ = "users"
    # Scope keys repeat across counties (城关镇), so the lookup leads with the county (0009).
    __table_args__ = (Index("ix_users_county_role_scope", "county", "role", "scope_key"),)

    username: Mapped[str] = mapped_column(String(ID), primary_key=True)
    # The county the account works in; for a city or province office (``Role.CITY_OFFICE``,
    # ``Role.PROVINCE_OFFICE``) the counties it supervises are ``account_counties`` rows.
    county: Mapped[str] = mapped_column(
        String(ID), default=DEFAULT_COUNTY, server_default=DEFAULT_COUNTY
    )
    display_name: Mapped[str] = mapped_column(String(NAME))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(ENUM))
    scope_key: Mapped[str] = mapped_column(String(NAME))
    active: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(ENUM), server_default="admin")
    session_version: Mapped[int] = mapped_column(Integer, server_default="0")
    updated_at: Mapped[datetime | None]
    password_changed_at: Mapped[datetime | None]


class AccountCountyRow(Base):
    """A county a city or province office's account supervises (reads, never acts in)."""

    __tablename__ = "account_counties"

    username: Mapped[str] = mapped_column(String(ID), primary_key=True)
    county: Mapped[str] = mapped_column(String(ID), primary_key=True)


class ActivationCodeRow(Base):
    """The one-time code that lets a person set their first password (or a new one after a
    reset): only its hash is kept, it expires, and using it stamps ``used_at``. One per
    account: issuing a new code replaces the old one."""

    __tablename__ = "activation_codes"

    username: Mapped[str] = mapped_column(String(ID), primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(ID))
    used_at: Mapped[datetime | None]


class SignInSessionRow(Base):
    """One signed-in session: every token names its ``session_id``; signing out stamps
    ``revoked_at`` and the token stops working at once. Renewal moves ``expires_at``."""

    __tablename__ = "sign_in_sessions"
    __table_args__ = (Index("ix_sign_in_sessions_username", "username"),)

    session_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    username: Mapped[str] = mapped_column(String(ID))
    via: Mapped[str] = mapped_column(String(ENUM))
    ip: Mapped[str | None] = mapped_column(String(ID))
    issued_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    renewed_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class SignInThrottleRow(Base):
    """Failed sign-ins counted per key (``account:<username>`` or ``address:<ip>``): after
    too many, attempts are refused until ``blocked_until``, which backs off as failures
    continue. A successful sign-in clears the account's row."""

    __tablename__ = "sign_in_throttle"

    key: Mapped[str] = mapped_column(String(LONG_ID), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    first_failure_at: Mapped[datetime]
    last_failure_at: Mapped[datetime]
    blocked_until: Mapped[datetime | None]


class IdempotencyRow(Base):
    """A write's stored response, so a retry with the same Idempotency-Key replays it."""

    __tablename__ = "idempotency_keys"
    # Keys expire (chuangzheng.services.idempotency.expire_keys): found by age.
    __table_args__ = (Index("ix_idempotency_keys_created_at", "created_at"),)

    username: Mapped[str] = mapped_column(String(ID), primary_key=True)
    key: Mapped[str] = mapped_column(String(LONG_ID), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(ID))
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[bytes] = mapped_column(PackedBytes)
    created_at: Mapped[datetime]


#: The read model's metadata: ``create_schema`` and Alembic's ``target_metadata``.
metadata: MetaData = Base.metadata
