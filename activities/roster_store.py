"""The county roster in the read model: import a validated :class:`Roster` in one transaction.

Import is all or nothing: the file is parsed and checked completely before anything is
written (``activities.roster_files``), and the write itself is one transaction, so a bad
file or a failure half-way leaves the previous roster untouched. Re-importing updates
organisations in place by id; organisations no longer listed are kept but marked inactive,
because rounds and their events still refer to them.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from activities.db import upsert_insert
from activities.guidance_groups import county_groups, ensure_county_groups
from activities.roster_files import read_roster_file
from activities.tables import OrganisationRow, organisations, person_roles, townships
from domain.organisation import (
    DEFAULT_COUNTY,
    GuidanceGroup,
    Organisation,
    OrgType,
    Role,
    Roster,
)
from domain.roster_import import organisation_row, roster_headers


@dataclass(frozen=True)
class ImportReport:
    """What an import changed: only organisations whose state changed are counted.

    ``added``: new ids; ``updated``: listed before and now, some field differs (its position
    in the file alone is no change); ``deactivated``: active before, missing now;
    ``reactivated``: inactive before, listed again; ``unchanged``: listed, active, identical.
    The id tuples name who was deactivated and reactivated (for the departures and accounts
    that follow from it). Importing the same file twice reports 0 changes the second time.
    """

    added: int
    updated: int
    deactivated: int
    total: int
    reactivated: int = 0
    unchanged: int = 0
    deactivated_ids: tuple[str, ...] = ()
    reactivated_ids: tuple[str, ...] = ()


#: The organisation's fields a roster sets (what "updated" compares).
_COMPARED = (
    "name", "org_type", "township", "system", "member_count", "secretary", "instructor",
    "ethnic_area",
)  # fmt: skip


def _org_values(org: Organisation, row_number: int, now: datetime) -> dict[str, object]:
    return {
        "org_id": org.id,
        "name": org.name,
        "org_type": org.type.value,
        "township": org.township,
        "system": org.system,
        "member_count": org.member_count,
        "secretary": org.secretary,
        "instructor": org.instructor,
        "ethnic_area": org.ethnic_area,
        "active": True,
        "row_number": row_number,
        "updated_at": now,
    }


def store_roster(
    session: Session,
    roster: Roster,
    *,
    now: datetime | None = None,
    county: str = DEFAULT_COUNTY,
) -> ImportReport:
    """Write ``roster`` into the session's transaction (the caller commits or rolls back) as
    the roster of ``county``: only that county's organisations, townships and people are
    compared, deactivated and rebuilt (the caller checks that no listed id belongs to
    another county: ``chuangzheng.services.roster``).

    Rows whose state did not change are left as they are (``updated_at`` included), so the
    report and the rows agree about what an import changed."""
    now = now or datetime.now(UTC)
    stored = {
        row.org_id: row
        for row in session.scalars(select(OrganisationRow).where(OrganisationRow.county == county))
    }
    listed = [o.id for o in roster.organisations]

    # The county's guidance groups are its own data (issue 15): a county importing before
    # it has any gets seed 002's six; the caller checked the roster names only its groups.
    ensure_county_groups(session, county, now)
    for name in roster.townships():
        stmt = upsert_insert(session, townships).values(county=county, name=name, updated_at=now)
        session.execute(
            stmt.on_conflict_do_update(index_elements=["county", "name"], set_={"updated_at": now})
        )
    added: list[dict[str, object]] = []
    updated = reactivated = unchanged = 0
    reactivated_ids: list[str] = []
    for index, org in enumerate(roster.organisations):
        values = _org_values(org, index + 1, now)
        values["county"] = county
        row = stored.get(org.id)
        if row is None:
            added.append(values)
            continue
        differs = any(getattr(row, field) != values[field] for field in _COMPARED)
        if not row.active:
            reactivated += 1
            reactivated_ids.append(org.id)
        elif differs:
            updated += 1
        else:
            unchanged += 1
        if differs or not row.active:
            for field, value in values.items():
                setattr(row, field, value)
        elif row.row_number != values["row_number"]:
            row.row_number = index + 1  # the file's order, not a change of state
    if added:
        session.execute(organisations.insert(), added)
    still_listed = set(listed)
    gone = sorted(o for o, row in stored.items() if row.active and o not in still_listed)
    for org_id in gone:
        stored[org_id].active = False
        stored[org_id].updated_at = now
    session.flush()
    # People and their roles are wholly derived from the roster: rebuild them.
    session.execute(delete(person_roles).where(person_roles.c.county == county))
    people = {(o.secretary, Role.SECRETARY.value, o.id) for o in roster.organisations} | {
        (o.instructor, Role.INSTRUCTOR.value, o.instructor) for o in roster.organisations
    }
    if people:
        session.execute(
            person_roles.insert(),
            [
                {"county": county, "person": p, "role": r, "scope_key": k, "updated_at": now}
                for p, r, k in sorted(people)
            ],
        )
    return ImportReport(
        added=len(added),
        updated=updated,
        deactivated=len(gone),
        total=len(listed),
        reactivated=reactivated,
        unchanged=unchanged,
        deactivated_ids=tuple(gone),
        reactivated_ids=tuple(reactivated_ids),
    )


def import_roster_file(session: Session, path: Path) -> ImportReport:
    """Read, validate and store a CSV/XLSX roster; raises ``ValidationFailed`` (nothing
    written) when any row is bad."""
    roster = read_roster_file(path)  # raises before the first write
    return store_roster(session, roster)


def organisation_from_row(row: OrganisationRow) -> Organisation:
    """The domain's organisation from its ``organisations`` row."""
    return Organisation(
        id=row.org_id,
        name=row.name,
        type=OrgType(row.org_type),
        township=row.township,
        system=row.system,
        instructor=row.instructor,
        secretary=row.secretary,
        member_count=row.member_count,
        ethnic_area=bool(row.ethnic_area),
        county=row.county,
    )


def load_roster(
    session: Session, *, include_inactive: bool = False, county: str = DEFAULT_COUNTY
) -> Roster:
    """``county``'s stored roster in import order (active organisations unless asked
    otherwise)."""
    query = (
        select(OrganisationRow)
        .where(OrganisationRow.county == county)
        .order_by(OrganisationRow.row_number, OrganisationRow.org_id)
    )
    if not include_inactive:
        query = query.where(OrganisationRow.active.is_(True))
    return Roster(organisations=tuple(organisation_from_row(r) for r in session.scalars(query)))


def load_organisation(session: Session, org_id: str) -> Organisation | None:
    """One stored organisation (active or not), or None."""
    row = session.get(OrganisationRow, org_id)
    return organisation_from_row(row) if row is not None else None


def roster_csv(roster: Roster, groups: Mapping[str, GuidanceGroup] | None = None) -> str:
    """The roster as CSV text with the Chinese headers (what ``read_roster_text`` reads):
    the round's roster snapshot, read back by machines, so every value is written exactly
    as it is (escaping formula starts here would change the names the workflows get; an
    export for people goes through ``activities.spreadsheets``)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(roster_headers(roster)), lineterminator="\n")
    writer.writeheader()
    for org in roster.organisations:
        writer.writerow(organisation_row(org, groups))
    return buffer.getvalue()


def write_roster_snapshot(session: Session, path: Path, *, county: str = DEFAULT_COUNTY) -> Path:
    """Write the active roster to ``path`` as CSV (the round workflow's roster source).

    A snapshot, not a live view: a round keeps the organisations it was kicked off with
    even if the roster changes later, and the content is deterministic for a given roster.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # 所属系统 by the county's names; its own groups also by key (所属系统编号), which is
    # what the activities reading the snapshot, without the county's data, go by.
    groups = {g.key: g for g in county_groups(session, county)}
    text = roster_csv(load_roster(session, county=county), groups)
    # A temporary file of this writer's own (O_EXCL, the process's umask) in the same
    # directory, then one atomic rename: a reader never sees half a file, and two writers of
    # one snapshot at once (two kick-offs of a round) never share a temporary name (a fixed
    # ``.tmp`` was renamed away under the second writer: FileNotFoundError).
    temporary = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
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
