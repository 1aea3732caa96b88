"""总结交流经验 and 少数民族聚居地区 (issue 15, seed 002 §六(五), §四): good-practice
briefings (简报) with their circulation, and the roster's optional flag for organisations in
a 少数民族聚居地区 (existing organisations are not flagged).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "briefings",
        sa.Column("briefing_id", sa.String(length=64), nullable=False),
        sa.Column("round_id", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.String(length=64), nullable=True),
        sa.Column("township", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("file_name", sa.String(length=200), nullable=True),
        sa.Column("file_sha256", sa.String(length=64), nullable=True),
        sa.Column("file_type", sa.String(length=200), nullable=True),
        sa.Column("file_size", sa.Integer(), nullable=True),
        sa.Column("submitted_by", sa.String(length=64), nullable=False),
        sa.Column("submitted_by_role", sa.String(length=32), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("circulated_by", sa.String(length=64), nullable=True),
        sa.Column("circulated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recipients", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("briefing_id", name=op.f("pk_briefings")),
    )
    with op.batch_alter_table("briefings", schema=None) as batch_op:
        batch_op.create_index("ix_briefings_round", ["round_id", "submitted_at"], unique=False)

    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("ethnic_area", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.drop_column("ethnic_area")
    with op.batch_alter_table("briefings", schema=None) as batch_op:
        batch_op.drop_index("ix_briefings_round")
    op.drop_table("briefings")
