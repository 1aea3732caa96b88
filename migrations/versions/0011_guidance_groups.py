"""A county's guidance groups as data (issue 15, seed 002 §六(二)): the ``systems`` table
becomes per county, keyed by (county, key), with the group's Chinese name and leading
department. Every county gets the six groups seed 002 names; its office renames them and
adds its own (an organisation's ``system`` names one of its county's keys).

The old rows only ever mirrored the six-value enum (full labels, no county), so they are
replaced, not converted.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out rather than imported: a migration must keep meaning what it meant when written.
DEFAULT_COUNTY = "default"
SEED_002 = (
    ("rural", "农村基层组织指导小组", "县农委"),
    ("organs", "县直机关指导小组", "县直机关工委"),
    ("education", "教育系统指导小组", "县教育局"),
    ("non_public", "非公有制经济组织指导小组", "县委统战部"),
    ("social", "社会组织指导小组", "县民政局"),
    ("health", "医疗卫生指导小组", "县卫生局"),
)


def upgrade() -> None:
    """Apply this revision."""
    op.drop_table("systems")
    systems = op.create_table(
        "systems",
        sa.Column("county", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("department", sa.String(length=200), server_default="", nullable=False),
        sa.Column("position", sa.Integer(), server_default="0", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("county", "key", name=op.f("pk_systems")),
    )
    counties = {DEFAULT_COUNTY} | set(
        op.get_bind().execute(sa.text("SELECT code FROM counties")).scalars()
    )
    now = datetime.now(UTC)
    op.bulk_insert(
        systems,
        [
            {
                "county": county,
                "key": key,
                "name": name,
                "department": department,
                "position": position,
                "updated_at": now,
            }
            for county in sorted(counties)
            for position, (key, name, department) in enumerate(SEED_002)
        ],
    )


def downgrade() -> None:
    """Revert this revision (the counties' own groups are lost; the six seed rows stay)."""
    op.drop_table("systems")
    systems = op.create_table(
        "systems",
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_systems")),
    )
    op.bulk_insert(
        systems,
        [{"key": key, "label": f"{name}（{department}）"} for key, name, department in SEED_002],
    )
