"""The supervisors' toolkit (seed 002 §六(五), 六(一)): discretionary rectification orders,
spot-check draws and their inspections, supervision records (座谈会, 督查) and contact points
(联系点) of leading cadres.

These rows are the record of what supervisors did outside any organisation's workflow; what
an order did to the campaign is in the workflow's history (and its events), keyed by the
order's id as the ``reference`` of ``OrderRectification``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from activities.tables.base import ENUM, ID, LONG_ID, NAME, Base


class RectificationOrderRow(Base):
    """A rectification order a supervisor gave (at discretion, or from a spot check's
    verdict); ``order_id`` is the workflow command's reference, so it applies once."""

    __tablename__ = "rectification_orders"
    __table_args__ = (Index("ix_rectification_orders_round_org", "round_id", "org_id"),)

    order_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    round_id: Mapped[str] = mapped_column(String(ID))
    org_id: Mapped[str] = mapped_column(String(ID))
    # domain.inspection: DISCRETION_SOURCE or INSPECTION_SOURCE
    source: Mapped[str] = mapped_column(String(ENUM))
    # domain.inspection.RectificationGround
    ground: Mapped[str] = mapped_column(String(ENUM))
    reason: Mapped[str] = mapped_column(Text)
    period_working_days: Mapped[int] = mapped_column(Integer)
    # The inspection that gave it (source inspection), else None.
    inspection_id: Mapped[str | None] = mapped_column(String(LONG_ID))
    ordered_by: Mapped[str] = mapped_column(String(ID))
    ordered_by_role: Mapped[str] = mapped_column(String(ENUM))
    ordered_at: Mapped[datetime]
    # The phase it was issued on and the deadline the workflow set.
    detail: Mapped[dict[str, Any]]


class InspectionDrawRow(Base):
    """A spot-check draw: the population it drew from (ids and strata keys), its size,
    stratification and seed, and the sample; enough for anyone to draw again."""

    __tablename__ = "inspection_draws"
    __table_args__ = (Index("ix_inspection_draws_round", "round_id", "drawn_at"),)

    draw_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    round_id: Mapped[str] = mapped_column(String(ID))
    seed: Mapped[str] = mapped_column(String(NAME))
    # domain.sampling.Stratum
    stratify_by: Mapped[str] = mapped_column(String(ENUM))
    # {"count": n} or {"share": "0.25"}
    size: Mapped[dict[str, Any]]
    # {"units": [SampleUnit as JSON, …]}
    population: Mapped[dict[str, Any]]
    # {"org_ids": [...]} sorted
    sample: Mapped[dict[str, Any]]
    drawn_by: Mapped[str] = mapped_column(String(ID))
    drawn_by_role: Mapped[str] = mapped_column(String(ENUM))
    # The scope the draw was made in (a guidance group's system; "" for the county).
    scope_key: Mapped[str] = mapped_column(String(NAME))
    drawn_at: Mapped[datetime]


class InspectionRow(Base):
    """One drawn organisation's inspection: who checked, when, what was found, the verdict
    and the rectification order it gave."""

    __tablename__ = "inspections"
    __table_args__ = (
        Index("ix_inspections_draw", "draw_id"),
        Index("ix_inspections_round_org", "round_id", "org_id"),
    )

    inspection_id: Mapped[str] = mapped_column(String(LONG_ID), primary_key=True)
    draw_id: Mapped[str] = mapped_column(String(ID))
    round_id: Mapped[str] = mapped_column(String(ID))
    org_id: Mapped[str] = mapped_column(String(ID))
    # domain.inspection.InspectionVerdict
    verdict: Mapped[str] = mapped_column(String(ENUM))
    findings: Mapped[str] = mapped_column(Text)
    inspectors: Mapped[str] = mapped_column(String(500))
    inspected_on: Mapped[str | None] = mapped_column(String(10))  # ISO local date
    recorded_by: Mapped[str | None] = mapped_column(String(ID))
    recorded_at: Mapped[datetime | None]
    order_id: Mapped[str | None] = mapped_column(String(ID))


class SupervisionRecordRow(Base):
    """A 座谈会 or 督查 visit of a round: date, supervisors, organisations covered, findings
    and follow-ups."""

    __tablename__ = "supervision_records"
    __table_args__ = (Index("ix_supervision_records_round", "round_id", "held_on"),)

    record_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    round_id: Mapped[str] = mapped_column(String(ID))
    # domain.inspection.SupervisionKind
    kind: Mapped[str] = mapped_column(String(ENUM))
    held_on: Mapped[str] = mapped_column(String(10))  # ISO local date
    title: Mapped[str] = mapped_column(String(NAME))
    supervisors: Mapped[str] = mapped_column(String(500))
    findings: Mapped[str] = mapped_column(Text)
    follow_ups: Mapped[str] = mapped_column(Text)
    recorded_by: Mapped[str] = mapped_column(String(ID))
    recorded_by_role: Mapped[str] = mapped_column(String(ENUM))
    recorded_at: Mapped[datetime]


class SupervisionRecordOrgRow(Base):
    """An organisation a supervision record covers (the timeline's lookup)."""

    __tablename__ = "supervision_record_orgs"
    __table_args__ = (Index("ix_supervision_record_orgs_org", "org_id"),)

    record_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(ID), primary_key=True)


class ContactPointRow(Base):
    """A leading cadre's contact point (联系点): who, in which capacity."""

    __tablename__ = "contact_points"
    __table_args__ = (Index("ix_contact_points_cadre", "cadre_key"),)

    point_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    # The account scope key of the cadre (role leading_cadre) the point belongs to.
    cadre_key: Mapped[str] = mapped_column(String(NAME))
    cadre_name: Mapped[str] = mapped_column(String(NAME))
    title: Mapped[str] = mapped_column(String(NAME))
    created_by: Mapped[str] = mapped_column(String(ID))
    created_at: Mapped[datetime]


class ContactPointOrgRow(Base):
    """An organisation linked to a contact point."""

    __tablename__ = "contact_point_orgs"
    __table_args__ = (Index("ix_contact_point_orgs_org", "org_id"),)

    point_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
