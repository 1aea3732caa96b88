"""What the bounded round workflow keeps in the read model instead of its own state: the
round's plan (stored once, by content address) and each organisation's last cohort verdict
(the yellow light the round last told it)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from activities.tables.base import ID, Base


class RoundPlanRow(Base):
    """A campaign plan as a round runs it, keyed by the sha256 of its canonical JSON, so the
    plan is stored once and every activity of the round reads the same bytes."""

    __tablename__ = "round_plans"

    plan_ref: Mapped[str] = mapped_column(String(ID), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(String(ID))
    plan_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class RoundVerdictRow(Base):
    """The cohort check's last verdict for one organisation (behind schedule or not): the
    round signals only organisations whose verdict changes."""

    __tablename__ = "round_verdicts"

    round_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    behind: Mapped[bool] = mapped_column(Boolean)
    as_of: Mapped[datetime]


round_plans: Table = Base.metadata.tables[RoundPlanRow.__tablename__]
round_verdicts: Table = Base.metadata.tables[RoundVerdictRow.__tablename__]
