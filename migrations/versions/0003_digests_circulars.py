"""Daily digests and circular notices (``digests``) and circular documents (``circulars``).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# JSONB on PostgreSQL, JSON elsewhere: the same variant as ``activities.tables.base``.
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "digests",
        sa.Column("message_id", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("round_id", sa.String(64), nullable=False),
        sa.Column("local_date", sa.String(10), nullable=False),
        sa.Column("recipient_role", sa.String(32), nullable=False),
        sa.Column("recipient_key", sa.String(200), nullable=False),
        sa.Column("recipient_label", sa.String(200), nullable=False),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("link_path", sa.String(500), nullable=False),
        sa.Column("detail", _JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_digests")),
    )
    op.create_index(
        "ix_digests_recipient", "digests", ["recipient_role", "recipient_key", "created_at"]
    )
    op.create_index("ix_digests_round_day", "digests", ["round_id", "local_date"])
    op.create_table(
        "circulars",
        sa.Column("circular_id", sa.String(255), nullable=False),
        sa.Column("round_id", sa.String(64), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("xlsx_path", sa.String(1000), nullable=False),
        sa.Column("xlsx_sha256", sa.String(64), nullable=False),
        sa.Column("text_path", sa.String(1000), nullable=False),
        sa.Column("text_sha256", sa.String(64), nullable=False),
        sa.Column("summary", _JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("circular_id", name=op.f("pk_circulars")),
    )
    op.create_index("ix_circulars_round", "circulars", ["round_id", "created_at"])


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_circulars_round", table_name="circulars")
    op.drop_table("circulars")
    op.drop_index("ix_digests_round_day", table_name="digests")
    op.drop_index("ix_digests_recipient", table_name="digests")
    op.drop_table("digests")
