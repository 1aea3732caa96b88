"""The roster: townships, systems, organisations and the people in their roles."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    Index,
    Integer,
    String,
    Text,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from activities.tables.base import ENUM, ID, NAME, Base
from domain.organisation import DEFAULT_COUNTY


class CountyRow(Base):
    """A county (县), the tenant: its organisations, townships, accounts and rounds carry its
    ``code``; rows keyed by round or organisation (events, status, notices, files…) belong
    to the county of their round or organisation. A single-county deployment is the one row
    ``domain.organisation.DEFAULT_COUNTY`` (migration 0009 and ``create_schema`` write it)."""

    __tablename__ = "counties"

    code: Mapped[str] = mapped_column(String(ID), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME))
    created_at: Mapped[datetime]


class TownshipRow(Base):
    """A township or street office (乡镇/街道) named in the roster; names repeat across
    counties (城关镇), so the key is (county, name)."""

    __tablename__ = "townships"

    county: Mapped[str] = mapped_column(
        String(ID), primary_key=True, default=DEFAULT_COUNTY, server_default=DEFAULT_COUNTY
    )
    name: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    updated_at: Mapped[datetime]


class SystemRow(Base):
    """A county's guidance group (分系统指导小组, seed 002 §六(二)) as data (issue 15): key,
    Chinese name and leading department, per county. Migration 0011 and
    :func:`activities.guidance_groups.ensure_county_groups` give a county the seed's six
    (``domain.organisation.SEED_002_SYSTEMS``); its office renames them and adds its own.
    ``position`` orders them in lists and filters."""

    __tablename__ = "systems"

    county: Mapped[str] = mapped_column(String(ID), primary_key=True)
    key: Mapped[str] = mapped_column(String(ENUM), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME))
    department: Mapped[str] = mapped_column(String(NAME), default="", server_default="")
    position: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    updated_at: Mapped[datetime]


class OrganisationRow(Base):
    """A grassroots organisation from the roster; ``active`` is False once it left the roster
    (kept, not deleted, because rounds and events still refer to it)."""

    __tablename__ = "organisations"
    __table_args__ = (
        # Every scope is inside one county: the scope conditions lead with it (0009).
        Index("ix_organisations_county_township", "county", "township"),
        Index("ix_organisations_county_system", "county", "system"),
        Index("ix_organisations_county_instructor", "county", "instructor"),
        # Organisations on each county's roster, counted from the index alone (0012).
        Index("ix_organisations_county_active", "county", "active"),
    )

    org_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    # The organisation's county; an id never moves to another county (the import refuses).
    county: Mapped[str] = mapped_column(
        String(ID), default=DEFAULT_COUNTY, server_default=DEFAULT_COUNTY
    )
    name: Mapped[str] = mapped_column(String(NAME))
    org_type: Mapped[str] = mapped_column(String(ENUM))
    township: Mapped[str] = mapped_column(String(NAME))
    system: Mapped[str] = mapped_column(String(ENUM))
    member_count: Mapped[int] = mapped_column(Integer)
    secretary: Mapped[str] = mapped_column(String(NAME))
    instructor: Mapped[str] = mapped_column(String(NAME))
    # 少数民族聚居地区 (migration 0010; optional roster column).
    ethnic_area: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    active: Mapped[bool] = mapped_column(Boolean)
    row_number: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime]


class PersonRoleRow(Base):
    """A person named in the roster and the role they hold there (书记 of an organisation,
    指导员 of the organisations that name them); ``scope_key`` is what the role covers."""

    __tablename__ = "person_roles"

    county: Mapped[str] = mapped_column(
        String(ID), primary_key=True, default=DEFAULT_COUNTY, server_default=DEFAULT_COUNTY
    )
    person: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    role: Mapped[str] = mapped_column(String(ENUM), primary_key=True)
    scope_key: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    updated_at: Mapped[datetime]


class RosterDepartureRow(Base):
    """An organisation that left the roster while one of its rounds was running, and what
    the county office chose: ``pending`` until decided, then ``close`` (its workflow closed
    with ``reason``) or ``keep`` (it runs on). Keyed by round and organisation, so importing
    the same roster again does not ask twice."""

    __tablename__ = "roster_departures"

    round_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    detected_at: Mapped[datetime]
    decision: Mapped[str] = mapped_column(String(ENUM))
    reason: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[str | None] = mapped_column(String(ID))
    decided_at: Mapped[datetime | None]
