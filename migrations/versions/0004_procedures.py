"""The three procedures: commitments (party members, commitments, items, absences, the 践诺
ledger, 评诺), ballots (evaluations, items, one-time token hashes, ballots) and commendation
(declarations, score sheets, 审定, publication, honours).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# JSONB on PostgreSQL, JSON elsewhere: the same variant as ``activities.tables.base``.
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "ballot_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("evaluation_id", sa.String(length=64), nullable=False),
        sa.Column("rater_kind", sa.String(length=32), nullable=False),
        sa.Column("used", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_ballot_tokens")),
    )
    with op.batch_alter_table("ballot_tokens", schema=None) as batch_op:
        batch_op.create_index("ix_ballot_tokens_evaluation", ["evaluation_id"], unique=False)

    op.create_table(
        "ballots",
        sa.Column("ballot_id", sa.String(length=64), nullable=False),
        sa.Column("evaluation_id", sa.String(length=64), nullable=False),
        sa.Column("ratings", _JSON, nullable=False),
        sa.PrimaryKeyConstraint("ballot_id", name=op.f("pk_ballots")),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("ballots", schema=None) as batch_op:
        batch_op.create_index("ix_ballots_evaluation", ["evaluation_id"], unique=False)

    op.create_table(
        "commendation_approvals",
        sa.Column("round_id", sa.String(length=64), nullable=False),
        sa.Column("meeting", sa.String(length=200), nullable=False),
        sa.Column("approved_by", sa.String(length=64), nullable=False),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("proposal", _JSON, nullable=False),
        sa.Column("approved", _JSON, nullable=False),
        sa.PrimaryKeyConstraint("round_id", name=op.f("pk_commendation_approvals")),
    )
    op.create_table(
        "commendation_decisions",
        sa.Column("round_id", sa.String(length=64), nullable=False),
        sa.Column("declaration_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("decided_by", sa.String(length=64), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "round_id", "declaration_id", name=op.f("pk_commendation_decisions")
        ),
    )
    op.create_table(
        "commendation_declarations",
        sa.Column("declaration_id", sa.String(length=64), nullable=False),
        sa.Column("round_id", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("org_name", sa.String(length=200), nullable=False),
        sa.Column("system", sa.String(length=32), nullable=False),
        sa.Column("township", sa.String(length=200), nullable=False),
        sa.Column("nominee", sa.String(length=200), nullable=False),
        sa.Column("deeds", sa.Text(), nullable=False),
        sa.Column("declared_by", sa.String(length=64), nullable=False),
        sa.Column("declared_role", sa.String(length=32), nullable=False),
        sa.Column("declared_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("declaration_id", name=op.f("pk_commendation_declarations")),
        sa.UniqueConstraint(
            "round_id",
            "category",
            "org_id",
            "nominee",
            name=op.f("uq_commendation_declarations_round_id"),
        ),
    )
    with op.batch_alter_table("commendation_declarations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_commendation_declarations_round", ["round_id", "declared_at"], unique=False
        )

    op.create_table(
        "commendation_honours",
        sa.Column("declaration_id", sa.String(length=64), nullable=False),
        sa.Column("round_id", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("nominee", sa.String(length=200), nullable=False),
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("org_name", sa.String(length=200), nullable=False),
        sa.Column("system", sa.String(length=32), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=True),
        sa.Column("score", sa.String(length=32), nullable=True),
        sa.Column("added", sa.Boolean(), nullable=False),
        sa.Column("certificate_no", sa.String(length=200), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("declaration_id", name=op.f("pk_commendation_honours")),
        sa.UniqueConstraint("certificate_no", name=op.f("uq_commendation_honours_certificate_no")),
    )
    with op.batch_alter_table("commendation_honours", schema=None) as batch_op:
        batch_op.create_index(
            "ix_commendation_honours_round", ["round_id", "position"], unique=False
        )

    op.create_table(
        "commendation_publications",
        sa.Column("round_id", sa.String(length=64), nullable=False),
        sa.Column("round_name", sa.String(length=200), nullable=False),
        sa.Column("published_by", sa.String(length=64), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("round_id", name=op.f("pk_commendation_publications")),
    )
    op.create_table(
        "commendation_score_sheets",
        sa.Column("declaration_id", sa.String(length=64), nullable=False),
        sa.Column("assessor", sa.String(length=64), nullable=False),
        sa.Column("round_id", sa.String(length=64), nullable=False),
        sa.Column("scores", _JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint(
            "declaration_id", "assessor", name=op.f("pk_commendation_score_sheets")
        ),
    )
    with op.batch_alter_table("commendation_score_sheets", schema=None) as batch_op:
        batch_op.create_index("ix_commendation_score_sheets_round", ["round_id"], unique=False)

    op.create_table(
        "commitment_absences",
        sa.Column("round_id", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("recorded_by", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "round_id", "org_id", "member_id", name=op.f("pk_commitment_absences")
        ),
    )
    op.create_table(
        "commitments",
        sa.Column("commitment_id", sa.String(length=64), nullable=False),
        sa.Column("round_id", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("member_key", sa.String(length=64), nullable=False),
        sa.Column("member_name", sa.String(length=200), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("return_reason", sa.Text(), nullable=False),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("published_by", sa.String(length=64), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notice_ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recorded_by", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("commitment_id", name=op.f("pk_commitments")),
        sa.UniqueConstraint(
            "round_id", "org_id", "member_key", name=op.f("uq_commitments_round_id")
        ),
    )
    with op.batch_alter_table("commitments", schema=None) as batch_op:
        batch_op.create_index("ix_commitments_published_at", ["published_at"], unique=False)
        batch_op.create_index("ix_commitments_round_org", ["round_id", "org_id"], unique=False)

    op.create_table(
        "evaluation_items",
        sa.Column("evaluation_id", sa.String(length=64), nullable=False),
        sa.Column("item_id", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("satisfied", sa.Integer(), nullable=False),
        sa.Column("fairly_satisfied", sa.Integer(), nullable=False),
        sa.Column("basically_satisfied", sa.Integer(), nullable=False),
        sa.Column("unsatisfied", sa.Integer(), nullable=False),
        sa.Column("ballots", sa.Integer(), nullable=False),
        sa.Column("satisfaction", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("evaluation_id", "item_id", name=op.f("pk_evaluation_items")),
    )
    op.create_table(
        "evaluations",
        sa.Column("evaluation_id", sa.String(length=64), nullable=False),
        sa.Column("round_id", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("workflow_id", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("rules", _JSON, nullable=False),
        sa.Column("issued_members", sa.Integer(), nullable=False),
        sa.Column("issued_non_members", sa.Integer(), nullable=False),
        sa.Column("opened_by", sa.String(length=64), nullable=False),
        sa.Column("opened_by_role", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opens_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closes_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cast", sa.Integer(), nullable=True),
        sa.Column("satisfaction", sa.Float(), nullable=True),
        sa.Column("verdict", sa.String(length=32), nullable=True),
        sa.Column("result", _JSON, nullable=True),
        sa.Column("rectification", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("evaluation_id", name=op.f("pk_evaluations")),
        sa.UniqueConstraint(
            "round_id", "org_id", "target", "subject", "seq", name=op.f("uq_evaluations_round_id")
        ),
    )
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.create_index("ix_evaluations_round_org", ["round_id", "org_id"], unique=False)

    op.create_table(
        "party_members",
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("row_number", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "member_id", name=op.f("pk_party_members")),
    )
    op.create_table(
        "commitment_items",
        sa.Column("item_id", sa.String(length=64), nullable=False),
        sa.Column("commitment_id", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("due", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["commitment_id"],
            ["commitments.commitment_id"],
            name=op.f("fk_commitment_items_commitment_id_commitments"),
        ),
        sa.PrimaryKeyConstraint("item_id", name=op.f("pk_commitment_items")),
    )
    with op.batch_alter_table("commitment_items", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_commitment_items_commitment_id"), ["commitment_id"], unique=False
        )

    op.create_table(
        "commitment_ledger",
        sa.Column("entry_id", sa.String(length=64), nullable=False),
        sa.Column("commitment_id", sa.String(length=64), nullable=False),
        sa.Column("item_id", sa.String(length=64), nullable=True),
        sa.Column("fulfilled_on", sa.Date(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("evidence", _JSON, nullable=False),
        sa.Column("recorded_by", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["commitment_id"],
            ["commitments.commitment_id"],
            name=op.f("fk_commitment_ledger_commitment_id_commitments"),
        ),
        sa.PrimaryKeyConstraint("entry_id", name=op.f("pk_commitment_ledger")),
    )
    with op.batch_alter_table("commitment_ledger", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_commitment_ledger_commitment_id"), ["commitment_id"], unique=False
        )

    op.create_table(
        "commitment_reviews",
        sa.Column("review_id", sa.String(length=64), nullable=False),
        sa.Column("commitment_id", sa.String(length=64), nullable=False),
        sa.Column("occasion", sa.String(length=32), nullable=False),
        sa.Column("verdict", sa.String(length=32), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("reviewer", sa.String(length=64), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["commitment_id"],
            ["commitments.commitment_id"],
            name=op.f("fk_commitment_reviews_commitment_id_commitments"),
        ),
        sa.PrimaryKeyConstraint("review_id", name=op.f("pk_commitment_reviews")),
    )
    with op.batch_alter_table("commitment_reviews", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_commitment_reviews_commitment_id"), ["commitment_id"], unique=False
        )


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("commitment_reviews", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_commitment_reviews_commitment_id"))

    op.drop_table("commitment_reviews")
    with op.batch_alter_table("commitment_ledger", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_commitment_ledger_commitment_id"))

    op.drop_table("commitment_ledger")
    with op.batch_alter_table("commitment_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_commitment_items_commitment_id"))

    op.drop_table("commitment_items")
    op.drop_table("party_members")
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.drop_index("ix_evaluations_round_org")

    op.drop_table("evaluations")
    op.drop_table("evaluation_items")
    with op.batch_alter_table("commitments", schema=None) as batch_op:
        batch_op.drop_index("ix_commitments_round_org")
        batch_op.drop_index("ix_commitments_published_at")

    op.drop_table("commitments")
    op.drop_table("commitment_absences")
    with op.batch_alter_table("commendation_score_sheets", schema=None) as batch_op:
        batch_op.drop_index("ix_commendation_score_sheets_round")

    op.drop_table("commendation_score_sheets")
    op.drop_table("commendation_publications")
    with op.batch_alter_table("commendation_honours", schema=None) as batch_op:
        batch_op.drop_index("ix_commendation_honours_round")

    op.drop_table("commendation_honours")
    with op.batch_alter_table("commendation_declarations", schema=None) as batch_op:
        batch_op.drop_index("ix_commendation_declarations_round")

    op.drop_table("commendation_declarations")
    op.drop_table("commendation_decisions")
    op.drop_table("commendation_approvals")
    with op.batch_alter_table("ballots", schema=None) as batch_op:
        batch_op.drop_index("ix_ballots_evaluation")

    op.drop_table("ballots")
    with op.batch_alter_table("ballot_tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_ballot_tokens_evaluation")

    op.drop_table("ballot_tokens")
