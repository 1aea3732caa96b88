"""Many counties on one deployment (issue 14): the ``counties`` table (the tenant), the
county of organisations, townships, people's roles, accounts and rounds, and the counties
a city or province office's account supervises.

Every existing row gets the embedded default county (``domain.organisation.DEFAULT_COUNTY``)
and that county's row is written, so a single-county deployment runs on with no set-up.
Round- and organisation-keyed rows (events, status, notices, files…) carry no county of
their own: they belong to the county of their round or organisation. Townships and people's
roles are keyed by (county, name) because names repeat across counties (城关镇); the scope
indexes of organisations and accounts lead with the county.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out rather than imported: a migration must keep meaning what it meant when written.
DEFAULT_COUNTY = "default"
DEFAULT_COUNTY_NAME = "本县"


def _county_column(primary_key: bool = False) -> sa.Column[str]:
    return sa.Column(
        "county",
        sa.String(length=64),
        nullable=False,
        server_default=DEFAULT_COUNTY,
        primary_key=primary_key,
    )


def upgrade() -> None:
    """Apply this revision."""
    counties = op.create_table(
        "counties",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_counties")),
    )
    op.bulk_insert(
        counties,
        [{"code": DEFAULT_COUNTY, "name": DEFAULT_COUNTY_NAME, "created_at": datetime.now(UTC)}],
    )
    op.create_table(
        "account_counties",
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("county", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("username", "county", name=op.f("pk_account_counties")),
    )
    # Batch mode: SQLite rebuilds the table (it cannot alter a primary key in place).
    for table, key in (("townships", ["name"]), ("person_roles", ["person", "role", "scope_key"])):
        with op.batch_alter_table(table, recreate="always") as batch:
            batch.add_column(_county_column())
            batch.drop_constraint(f"pk_{table}", type_="primary")
            batch.create_primary_key(f"pk_{table}", ["county", *key])
    with op.batch_alter_table("organisations") as batch:
        batch.add_column(_county_column())
        batch.drop_index("ix_organisations_township")
        batch.drop_index("ix_organisations_system")
        batch.drop_index("ix_organisations_instructor")
        batch.create_index("ix_organisations_county_township", ["county", "township"])
        batch.create_index("ix_organisations_county_system", ["county", "system"])
        batch.create_index("ix_organisations_county_instructor", ["county", "instructor"])
    with op.batch_alter_table("users") as batch:
        batch.add_column(_county_column())
        batch.drop_index("ix_users_role_scope")
        batch.create_index("ix_users_county_role_scope", ["county", "role", "scope_key"])
    with op.batch_alter_table("rounds") as batch:
        batch.add_column(_county_column())
        batch.create_index("ix_rounds_county_starts_at", ["county", "starts_at"])


def downgrade() -> None:
    """Revert this revision (rows of other counties than the default lose their county)."""
    with op.batch_alter_table("rounds") as batch:
        batch.drop_index("ix_rounds_county_starts_at")
        batch.drop_column("county")
    with op.batch_alter_table("users") as batch:
        batch.drop_index("ix_users_county_role_scope")
        batch.create_index("ix_users_role_scope", ["role", "scope_key"])
        batch.drop_column("county")
    with op.batch_alter_table("organisations") as batch:
        batch.drop_index("ix_organisations_county_township")
        batch.drop_index("ix_organisations_county_system")
        batch.drop_index("ix_organisations_county_instructor")
        batch.create_index("ix_organisations_township", ["township"])
        batch.create_index("ix_organisations_system", ["system"])
        batch.create_index("ix_organisations_instructor", ["instructor"])
        batch.drop_column("county")
    for table, key in (("townships", ["name"]), ("person_roles", ["person", "role", "scope_key"])):
        # Names that repeat across counties would collide: keep the default county's.
        op.execute(sa.text(f"DELETE FROM {table} WHERE county <> :c").bindparams(c=DEFAULT_COUNTY))
        with op.batch_alter_table(table, recreate="always") as batch:
            batch.drop_constraint(f"pk_{table}", type_="primary")
            batch.create_primary_key(f"pk_{table}", key)
            batch.drop_column("county")
    op.drop_table("account_counties")
    op.drop_table("counties")
