"""The supervisors' toolkit (issue 15, seed 002 §六(五), 六(一)): discretionary
rectification orders, spot-check draws and their inspections, supervision records (座谈会,
督查) with the organisations they cover, and leading cadres' contact points (联系点).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# JSONB on PostgreSQL, JSON elsewhere: the same variant as ``activities.tables.base``.
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "contact_point_orgs",
        sa.Column("point_id", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("point_id", "org_id", name=op.f("pk_contact_point_orgs")),
    )
    with op.batch_alter_table("contact_point_orgs", schema=None) as batch_op:
        batch_op.create_index("ix_contact_point_orgs_org", ["org_id"], unique=False)

    op.create_table(
        "contact_points",
        sa.Column("point_id", sa.String(length=64), nullable=False),
        sa.Column("cadre_key", sa.String(length=200), nullable=False),
        sa.Column("cadre_name", sa.String(length=200), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("point_id", name=op.f("pk_contact_points")),
    )
    with op.batch_alter_table("contact_points", schema=None) as batch_op:
        batch_op.create_index("ix_contact_points_cadre", ["cadre_key"], unique=False)

    op.create_table(
        "inspection_draws",
        sa.Column("draw_id", sa.String(length=64), nullable=False),
        sa.Column("round_id", sa.String(length=64), nullable=False),
        sa.Column("seed", sa.String(length=200), nullable=False),
        sa.Column("stratify_by", sa.String(length=32), nullable=False),
        sa.Column("size", _JSON, nullable=False),
        sa.Column("population", _JSON, nullable=False),
        sa.Column("sample", _JSON, nullable=False),
        sa.Column("drawn_by", sa.String(length=64), nullable=False),
        sa.Column("drawn_by_role", sa.String(length=32), nullable=False),
        sa.Column("scope_key", sa.String(length=200), nullable=False),
        sa.Column("drawn_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("draw_id", name=op.f("pk_inspection_draws")),
    )
    with op.batch_alter_table("inspection_draws", schema=None) as batch_op:
        batch_op.create_index("ix_inspection_draws_round", ["round_id", "drawn_at"], unique=False)

    op.create_table(
        "inspections",
        sa.Column("inspection_id", sa.String(length=255), nullable=False),
        sa.Column("draw_id", sa.String(length=64), nullable=False),
        sa.Column("round_id", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("verdict", sa.String(length=32), nullable=False),
        sa.Column("findings", sa.Text(), nullable=False),
        sa.Column("inspectors", sa.String(length=500), nullable=False),
        sa.Column("inspected_on", sa.String(length=10), nullable=True),
        sa.Column("recorded_by", sa.String(length=64), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("order_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("inspection_id", name=op.f("pk_inspections")),
    )
    with op.batch_alter_table("inspections", schema=None) as batch_op:
        batch_op.create_index("ix_inspections_draw", ["draw_id"], unique=False)
        batch_op.create_index("ix_inspections_round_org", ["round_id", "org_id"], unique=False)

    op.create_table(
        "rectification_orders",
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("round_id", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("ground", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("period_working_days", sa.Integer(), nullable=False),
        sa.Column("inspection_id", sa.String(length=255), nullable=True),
        sa.Column("ordered_by", sa.String(length=64), nullable=False),
        sa.Column("ordered_by_role", sa.String(length=32), nullable=False),
        sa.Column("ordered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detail", _JSON, nullable=False),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_rectification_orders")),
    )
    with op.batch_alter_table("rectification_orders", schema=None) as batch_op:
        batch_op.create_index(
            "ix_rectification_orders_round_org", ["round_id", "org_id"], unique=False
        )

    op.create_table(
        "supervision_record_orgs",
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("record_id", "org_id", name=op.f("pk_supervision_record_orgs")),
    )
    with op.batch_alter_table("supervision_record_orgs", schema=None) as batch_op:
        batch_op.create_index("ix_supervision_record_orgs_org", ["org_id"], unique=False)

    op.create_table(
        "supervision_records",
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("round_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("held_on", sa.String(length=10), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("supervisors", sa.String(length=500), nullable=False),
        sa.Column("findings", sa.Text(), nullable=False),
        sa.Column("follow_ups", sa.Text(), nullable=False),
        sa.Column("recorded_by", sa.String(length=64), nullable=False),
        sa.Column("recorded_by_role", sa.String(length=32), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("record_id", name=op.f("pk_supervision_records")),
    )
    with op.batch_alter_table("supervision_records", schema=None) as batch_op:
        batch_op.create_index("ix_supervision_records_round", ["round_id", "held_on"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("supervision_records", schema=None) as batch_op:
        batch_op.drop_index("ix_supervision_records_round")

    op.drop_table("supervision_records")
    with op.batch_alter_table("supervision_record_orgs", schema=None) as batch_op:
        batch_op.drop_index("ix_supervision_record_orgs_org")

    op.drop_table("supervision_record_orgs")
    with op.batch_alter_table("rectification_orders", schema=None) as batch_op:
        batch_op.drop_index("ix_rectification_orders_round_org")

    op.drop_table("rectification_orders")
    with op.batch_alter_table("inspections", schema=None) as batch_op:
        batch_op.drop_index("ix_inspections_round_org")
        batch_op.drop_index("ix_inspections_draw")

    op.drop_table("inspections")
    with op.batch_alter_table("inspection_draws", schema=None) as batch_op:
        batch_op.drop_index("ix_inspection_draws_round")

    op.drop_table("inspection_draws")
    with op.batch_alter_table("contact_points", schema=None) as batch_op:
        batch_op.drop_index("ix_contact_points_cadre")

    op.drop_table("contact_points")
    with op.batch_alter_table("contact_point_orgs", schema=None) as batch_op:
        batch_op.drop_index("ix_contact_point_orgs_org")

    op.drop_table("contact_point_orgs")
