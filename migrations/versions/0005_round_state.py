"""The bounded round workflow's read-model state: the round's plan stored once by content
address (``round_plans``), each organisation's last cohort verdict (``round_verdicts``),
each organisation's progress through its phase (``campaign_status.progress``, for the cohort
check), and the round's failure reason and kick-off cursor on ``rounds``.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "round_plans",
        sa.Column("plan_ref", sa.String(length=64), nullable=False),
        sa.Column("campaign_id", sa.String(length=64), nullable=False),
        sa.Column("plan_json", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("plan_ref", name=op.f("pk_round_plans")),
    )
    op.create_table(
        "round_verdicts",
        sa.Column("round_id", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("behind", sa.Boolean(), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("round_id", "org_id", name=op.f("pk_round_verdicts")),
    )
    with op.batch_alter_table("campaign_status", schema=None) as batch_op:
        batch_op.add_column(sa.Column("progress", sa.Float(), server_default="0", nullable=False))
    with op.batch_alter_table("rounds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("started", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("total", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("starting_done", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("rounds", schema=None) as batch_op:
        batch_op.drop_column("starting_done")
        batch_op.drop_column("total")
        batch_op.drop_column("started")
        batch_op.drop_column("status_reason")
    with op.batch_alter_table("campaign_status", schema=None) as batch_op:
        batch_op.drop_column("progress")
    op.drop_table("round_verdicts")
    op.drop_table("round_plans")
