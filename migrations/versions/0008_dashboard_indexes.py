"""Indexes of the dashboard at province scale (issue 14), each leading with the round: the
overdue list's keyset order (deadline, organisation), the round's newest status write (the
overview cache's key) and the phase completion times (the overview's chart).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_index(
        "ix_campaign_status_round_overdue_deadline",
        "campaign_status",
        ["round_id", "overdue", "deadline", "org_id"],
    )
    op.create_index(
        "ix_campaign_status_round_updated", "campaign_status", ["round_id", "updated_at"]
    )
    op.create_index(
        "ix_phase_status_round_completed", "phase_status", ["round_id", "completed_at", "phase"]
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_phase_status_round_completed", table_name="phase_status")
    op.drop_index("ix_campaign_status_round_updated", table_name="campaign_status")
    op.drop_index("ix_campaign_status_round_overdue_deadline", table_name="campaign_status")
