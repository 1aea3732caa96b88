"""The dashboard at province scale, continued (issue 14): three indexes of the status table
widened so the grouped counts the pages show are read from the index alone, in the order
they are grouped, and one on the roster for the province view's count per county.

* ``ix_campaign_status_round_light``: ``(round_id, light)`` → ``(round_id, light, overdue,
  deadline)``: the laggard list's counts by working days overdue (37,000 of 100,000 rows);
* ``ix_campaign_status_round_township``: ``(round_id, township)`` → ``(round_id, township,
  phase, light, overdue)``: the overview's township × phase matrix;
* ``ix_campaign_status_round_phase``: ``(round_id, phase)`` → ``(round_id, phase, light,
  closed, overdue)``: the province view's counts per county, phase and light;
* ``ix_organisations_county_active`` (new): organisations on each county's roster.

Widened rather than added: each keeps leading with the same columns (every query that used
it still can), and every index of the status table is written on each status change (a
light or phase change already rewrites them all), so wider ones cost little more.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WIDENED = {
    "ix_campaign_status_round_light": (
        ["round_id", "light"],
        ["round_id", "light", "overdue", "deadline"],
    ),
    "ix_campaign_status_round_township": (
        ["round_id", "township"],
        ["round_id", "township", "phase", "light", "overdue"],
    ),
    "ix_campaign_status_round_phase": (
        ["round_id", "phase"],
        ["round_id", "phase", "light", "closed", "overdue"],
    ),
}


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("campaign_status", schema=None) as batch_op:
        for name, (_, wide) in _WIDENED.items():
            batch_op.drop_index(name)
            batch_op.create_index(name, wide, unique=False)
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.create_index("ix_organisations_county_active", ["county", "active"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.drop_index("ix_organisations_county_active")
    with op.batch_alter_table("campaign_status", schema=None) as batch_op:
        for name, (narrow, _) in _WIDENED.items():
            batch_op.drop_index(name)
            batch_op.create_index(name, narrow, unique=False)
