"""A county's guidance groups (分系统指导小组) in the read model: read, seed and write the
``systems`` rows of one county (issue 15). The rules (who may change them, what a valid
group is, the audit) are ``chuangzheng.services.guidance_groups``'."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from activities.db import upsert_insert
from activities.tables import OrganisationRow, SystemRow, systems
from domain.organisation import (
    DEFAULT_COUNTY,
    SEED_002_SYSTEMS,
    UNNAMED_GROUP_LABEL,
    GuidanceGroup,
    Role,
)


def _group(row: SystemRow) -> GuidanceGroup:
    return GuidanceGroup(key=row.key, name=row.name, department=row.department)


def stored_groups(session: Session, county: str) -> tuple[GuidanceGroup, ...]:
    """``county``'s own rows, in their order (empty if it has none yet)."""
    rows = session.scalars(
        select(SystemRow)
        .where(SystemRow.county == county)
        .order_by(SystemRow.position, SystemRow.key)
    )
    return tuple(_group(r) for r in rows)


def county_groups(session: Session, county: str) -> tuple[GuidanceGroup, ...]:
    """``county``'s guidance groups in order. A county without rows of its own (a database
    built by ``create_schema`` before its first import or edit) has seed 002's six, which
    is what migration 0011 and a new county are given."""
    return stored_groups(session, county) or SEED_002_SYSTEMS


def group_map(session: Session, counties: Collection[str]) -> dict[str, GuidanceGroup]:
    """The groups of ``counties`` by key, for labels (a key two counties share keeps the
    first county's, in code order; within one county keys are unique)."""
    found: dict[str, GuidanceGroup] = {}
    for county in sorted(counties):
        for group in county_groups(session, county):
            found.setdefault(group.key, group)
    return found


def ensure_county_groups(session: Session, county: str, now: datetime | None = None) -> None:
    """Give ``county`` seed 002's six groups as rows unless it has rows already (idempotent;
    a row another transaction wrote first is left as it is)."""
    if stored_groups(session, county):
        return
    now = now or datetime.now(UTC)
    for position, group in enumerate(SEED_002_SYSTEMS):
        stmt = upsert_insert(session, systems).values(
            county=county,
            key=group.key,
            name=group.name,
            department=group.department,
            position=position,
            updated_at=now,
        )
        session.execute(stmt.on_conflict_do_nothing(index_elements=["county", "key"]))


def save_group(
    session: Session, county: str, group: GuidanceGroup, now: datetime
) -> GuidanceGroup | None:
    """Create or rename ``group`` in ``county`` (seeding the county first); returns what
    it was before (None when new). New groups go after the county's others."""
    ensure_county_groups(session, county, now)
    row = session.get(SystemRow, (county, group.key))
    if row is None:
        last = session.scalars(
            select(SystemRow.position)
            .where(SystemRow.county == county)
            .order_by(SystemRow.position.desc())
            .limit(1)
        ).first()
        session.add(
            SystemRow(
                county=county,
                key=group.key,
                name=group.name,
                department=group.department,
                position=(last or 0) + 1,
                updated_at=now,
            )
        )
        session.flush()
        return None
    before = _group(row)
    row.name, row.department, row.updated_at = group.name, group.department, now
    session.flush()
    return before


def name_groups_in_notices(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Give the ``notices`` rows addressed to a county-defined guidance group the group's
    label from its organisation's county, in place: the workflow that wrote the notice
    reads no database and named it :data:`UNNAMED_GROUP_LABEL` (recipient and salutation).
    Rows of other recipients (nearly all) cost one comparison each."""
    unnamed = [
        r
        for r in rows
        if r["recipient_role"] == Role.GUIDANCE_GROUP.value
        and r["recipient_label"] == UNNAMED_GROUP_LABEL
    ]
    if not unnamed:
        return
    counties = dict(
        session.execute(
            select(OrganisationRow.org_id, OrganisationRow.county).where(
                OrganisationRow.org_id.in_({r["org_id"] for r in unnamed})
            )
        ).all()
    )
    groups: dict[str, dict[str, GuidanceGroup]] = {}
    for row in unnamed:
        county = counties.get(row["org_id"], DEFAULT_COUNTY)
        if county not in groups:
            groups[county] = {g.key: g for g in county_groups(session, county)}
        group = groups[county].get(row["recipient_key"])
        if group is None:
            continue
        row["recipient_label"] = group.label
        salutation = f"{UNNAMED_GROUP_LABEL}："
        if row["body"].startswith(salutation):
            row["body"] = f"{group.label}：{row['body'].removeprefix(salutation)}"


__all__ = [
    "county_groups",
    "ensure_county_groups",
    "group_map",
    "name_groups_in_notices",
    "save_group",
    "stored_groups",
]
