"""群众评议: evaluations, ballot tokens, ballots and item tallies.

Secrecy is a property of these tables, so they are deliberately poor:

* ``ballot_tokens`` keeps only a token's SHA-256, its rater kind and whether it was used:
  no holder, no name, no time of use;
* ``ballots`` keeps a random id, the evaluation and the ratings: no token, no rater kind, no
  time, and (on SQLite) no rowid, so even the physical order is the random id's, not the
  order of casting.

A ballot and the burning of its token are written in one transaction by the API
(``activities.evaluations.cast_ballot``), never through workflow history.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from activities.tables.base import ENUM, ID, LONG_ID, NAME, Base


class EvaluationRow(Base):
    """One evaluation (评议) of an organisation or a member in one round."""

    __tablename__ = "evaluations"
    __table_args__ = (
        UniqueConstraint("round_id", "org_id", "target", "subject", "seq"),
        Index("ix_evaluations_round_org", "round_id", "org_id"),
    )

    evaluation_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    round_id: Mapped[str] = mapped_column(String(ID))
    org_id: Mapped[str] = mapped_column(String(ID))
    target: Mapped[str] = mapped_column(String(ENUM))
    # The organisation's name, or the member's name for a member evaluation.
    subject: Mapped[str] = mapped_column(String(NAME))
    # 1, 2, …: a re-run after an invalid (no quorum) evaluation gets the next number.
    seq: Mapped[int] = mapped_column(Integer)
    workflow_id: Mapped[str] = mapped_column(String(LONG_ID))
    # opening → open → closed → published | invalid
    status: Mapped[str] = mapped_column(String(ENUM))
    # The plan's evaluation rules and ballot items as they were when it opened.
    rules: Mapped[dict[str, Any]]
    issued_members: Mapped[int] = mapped_column(Integer)
    issued_non_members: Mapped[int] = mapped_column(Integer)
    opened_by: Mapped[str] = mapped_column(String(ID))
    opened_by_role: Mapped[str] = mapped_column(String(ENUM))
    created_at: Mapped[datetime]
    opens_at: Mapped[datetime | None]
    closes_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    published_at: Mapped[datetime | None]
    cast: Mapped[int | None] = mapped_column(Integer)
    satisfaction: Mapped[float | None] = mapped_column(Float)
    verdict: Mapped[str | None] = mapped_column(String(ENUM))
    # domain.evaluation.EvaluationResult as JSON, once tallied.
    result: Mapped[dict[str, Any] | None]
    # What became of a verdict below the threshold: "ordered", or the refusal's reason.
    rectification: Mapped[str | None] = mapped_column(Text)


class BallotTokenRow(Base):
    """A one-time ballot token, known only by its hash."""

    __tablename__ = "ballot_tokens"
    __table_args__ = (Index("ix_ballot_tokens_evaluation", "evaluation_id"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    evaluation_id: Mapped[str] = mapped_column(String(ID))
    rater_kind: Mapped[str] = mapped_column(String(ENUM))
    used: Mapped[bool] = mapped_column(Boolean, default=False)


class BallotRow(Base):
    """One cast ballot: ratings per item, and nothing that points to who cast it."""

    __tablename__ = "ballots"
    __table_args__ = (
        Index("ix_ballots_evaluation", "evaluation_id"),
        {"sqlite_with_rowid": False},
    )

    ballot_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    evaluation_id: Mapped[str] = mapped_column(String(ID))
    # {item_id: rating value}
    ratings: Mapped[dict[str, Any]]


class EvaluationItemRow(Base):
    """The tally of one ballot item, written when the window closes."""

    __tablename__ = "evaluation_items"

    evaluation_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    item_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(NAME))
    satisfied: Mapped[int] = mapped_column(Integer)
    fairly_satisfied: Mapped[int] = mapped_column(Integer)
    basically_satisfied: Mapped[int] = mapped_column(Integer)
    unsatisfied: Mapped[int] = mapped_column(Integer)
    ballots: Mapped[int] = mapped_column(Integer)
    satisfaction: Mapped[float | None] = mapped_column(Float)
