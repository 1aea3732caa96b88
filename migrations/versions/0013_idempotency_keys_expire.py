"""Stored answers expire: an index on ``idempotency_keys.created_at``, so the sweep that
deletes keys past their retention (``chuangzheng.services.idempotency.expire_keys``) finds
them without reading the whole table. Bodies written from now on are compressed by the
column's type (``activities.tables.base.PackedBytes``); rows already there still read.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.create_index("ix_idempotency_keys_created_at", ["created_at"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_idempotency_keys_created_at")
