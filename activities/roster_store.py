"""The county roster in the read model: import a validated :class:`Roster` in one transaction.

Import is all or nothing: the file is parsed and checked completely before anything is
written (``activities.roster_files``), and the write itself is one transaction, so a bad
file or a failure half-way leaves the previous roster untouched. Re-importing updates
organisations in place by id; organisations no longer listed are kept but marked inactive,
because rounds and their events still refer to them.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from activities.db import upsert_insert
from activities.roster_files import read_roster_file
from activities.spreadsheets import csv_text
from activities.tables import OrganisationRow, organisations, person_roles, systems, townships
from domain.organisation import SYSTEM_LABELS, Organisation, OrgType, Role, Roster, System
from domain.roster_import import ROSTER_HEADERS, organisation_row


@dataclass(frozen=True)
class ImportReport:
    """What an import changed."""

    added: int
    updated: int
    deactivated: int
    total: int


def _org_values(org: Organisation, row_number: int, now: datetime) -> dict[str, object]:
    return {
        "org_id": org.id,
        "name": org.name,
        "org_type": org.type.value,
        "township": org.township,
        "system": org.system.value,
        "member_count": org.member_count,
        "secretary": org.secretary,
        "instructor": org.instructor,
        "active": True,
        "row_number": row_number,
        "updated_at": now,
    }


def store_roster(session: Session, roster: Roster, *, now: datetime | None = None) -> ImportReport:
    """Write ``roster`` into the session's transaction (the caller commits or rolls back)."""
    now = now or datetime.now(UTC)
    existing = set(session.scalars(select(OrganisationRow.org_id)))
    listed = [o.id for o in roster.organisations]

    for system, label in SYSTEM_LABELS.items():
        stmt = upsert_insert(session, systems).values(key=system.value, label=label)
        session.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"label": label}))
    for name in roster.townships():
        stmt = upsert_insert(session, townships).values(name=name, updated_at=now)
        session.execute(
            stmt.on_conflict_do_update(index_elements=["name"], set_={"updated_at": now})
        )
    for index, org in enumerate(roster.organisations):
        values = _org_values(org, index + 1, now)
        stmt = upsert_insert(session, organisations).values(values)
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=["org_id"],
                set_={k: stmt.excluded[k] for k in values if k != "org_id"},
            )
        )
    gone = existing - set(listed)
    if gone:
        session.execute(
            update(organisations)
            .where(organisations.c.org_id.in_(sorted(gone)))
            .values(active=False, updated_at=now)
        )
    # People and their roles are wholly derived from the roster: rebuild them.
    session.execute(delete(person_roles))
    people = {(o.secretary, Role.SECRETARY.value, o.id) for o in roster.organisations} | {
        (o.instructor, Role.INSTRUCTOR.value, o.instructor) for o in roster.organisations
    }
    if people:
        session.execute(
            person_roles.insert(),
            [
                {"person": p, "role": r, "scope_key": k, "updated_at": now}
                for p, r, k in sorted(people)
            ],
        )
    return ImportReport(
        added=len(set(listed) - existing),
        updated=len(set(listed) & existing),
        deactivated=len(gone),
        total=len(listed),
    )


def import_roster_file(session: Session, path: Path) -> ImportReport:
    """Read, validate and store a CSV/XLSX roster; raises ``ValidationFailed`` (nothing
    written) when any row is bad."""
    roster = read_roster_file(path)  # raises before the first write
    return store_roster(session, roster)


def _to_organisation(row: OrganisationRow) -> Organisation:
    return Organisation(
        id=row.org_id,
        name=row.name,
        type=OrgType(row.org_type),
        township=row.township,
        system=System(row.system),
        instructor=row.instructor,
        secretary=row.secretary,
        member_count=row.member_count,
    )


def load_roster(session: Session, *, include_inactive: bool = False) -> Roster:
    """The stored roster in import order (active organisations unless asked otherwise)."""
    query = select(OrganisationRow).order_by(OrganisationRow.row_number, OrganisationRow.org_id)
    if not include_inactive:
        query = query.where(OrganisationRow.active.is_(True))
    return Roster(organisations=tuple(_to_organisation(r) for r in session.scalars(query)))


def load_organisation(session: Session, org_id: str) -> Organisation | None:
    """One stored organisation (active or not), or None."""
    row = session.get(OrganisationRow, org_id)
    return _to_organisation(row) if row is not None else None


def roster_csv(roster: Roster) -> str:
    """The roster as CSV text with the Chinese headers (what ``read_roster_text`` reads)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(ROSTER_HEADERS), lineterminator="\n")
    writer.writeheader()
    for org in roster.organisations:
        # Opened in a spreadsheet program, no name may start a formula.
        writer.writerow({k: csv_text(v) for k, v in organisation_row(org).items()})
    return buffer.getvalue()


def write_roster_snapshot(session: Session, path: Path) -> Path:
    """Write the active roster to ``path`` as CSV (the round workflow's roster source).

    A snapshot, not a live view: a round keeps the organisations it was kicked off with
    even if the roster changes later, and the content is deterministic for a given roster.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(roster_csv(load_roster(session)), encoding="utf-8")
    temporary.replace(path)  # atomic: a reader never sees half a file
    return path


__all__ = [
    "ImportReport",
    "import_roster_file",
    "load_organisation",
    "load_roster",
    "roster_csv",
    "store_roster",
    "write_roster_snapshot",
]
