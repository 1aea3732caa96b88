"""Read a party-member roster file (CSV/XLSX) and store it per organisation.

The file half reuses the county roster's readers (same encodings, same row numbers a clerk
sees); :func:`domain.members.parse_members` does the checking. Storing replaces the member
list of every organisation the file names and leaves other organisations alone, so a
secretary can import just their own branch.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

# The county roster's readers: one place decides how CSV/XLSX cells become text.
from activities.roster_files import MIB, FileLimits, read_table, unsupported
from activities.tables import OrganisationRow, PartyMemberRow
from domain.members import MemberRoster, parse_members


@dataclass(frozen=True)
class OrganisationMembers:
    """What an import did to one organisation's member list."""

    org_id: str
    imported: int
    deactivated: int
    roster_member_count: int


#: A member list (党员名册): one file may cover a whole county's members (tens of thousands).
MEMBER_LIMITS = FileLimits(
    max_bytes=5 * MIB,
    max_uncompressed_bytes=20 * MIB,
    max_rows=50_000,
    max_columns=20,
    max_cells=300_000,
)


def read_member_bytes(
    data: bytes,
    suffix: str,
    *,
    known_orgs: Collection[str],
    limits: FileLimits | None = MEMBER_LIMITS,
) -> MemberRoster:
    """Read an uploaded ``.csv`` (UTF-8 or GBK) or ``.xlsx`` within ``limits`` and validate
    it; raises ``ValidationFailed`` (``FileTooLarge`` for sizes)."""
    return parse_members(read_table(data, suffix.lower(), limits), known_orgs=known_orgs)


def read_member_file(
    path: Path, *, known_orgs: Collection[str], limits: FileLimits | None = MEMBER_LIMITS
) -> MemberRoster:
    """Read ``.csv`` (UTF-8 or GBK) or ``.xlsx`` and validate it; raises ``ValidationFailed``."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        raise unsupported(path.suffix or path.name)
    return read_member_bytes(path.read_bytes(), suffix, known_orgs=known_orgs, limits=limits)


def store_members(
    session: Session, roster: MemberRoster, *, now: datetime | None = None
) -> list[OrganisationMembers]:
    """Replace the member lists of the organisations ``roster`` names (in the caller's
    transaction); members left out are deactivated, not deleted."""
    now = now or datetime.now(UTC)
    report: list[OrganisationMembers] = []
    for org_id, members in roster.by_organisation().items():
        stored = {
            row.member_id: row
            for row in session.scalars(
                select(PartyMemberRow).where(PartyMemberRow.org_id == org_id)
            )
        }
        listed = set()
        for position, member in enumerate(members):
            listed.add(member.member_id)
            row = stored.get(member.member_id)
            if row is None:
                row = PartyMemberRow(org_id=org_id, member_id=member.member_id)
                session.add(row)
            row.name, row.active, row.row_number, row.updated_at = member.name, True, position, now
        gone = [row for key, row in stored.items() if key not in listed and row.active]
        for row in gone:
            row.active, row.updated_at = False, now
        organisation = session.get(OrganisationRow, org_id)
        report.append(
            OrganisationMembers(
                org_id=org_id,
                imported=len(members),
                deactivated=len(gone),
                roster_member_count=organisation.member_count if organisation else 0,
            )
        )
    session.flush()
    return report


def active_members(session: Session, org_id: str) -> list[PartyMemberRow]:
    """An organisation's current members in import order."""
    return list(
        session.scalars(
            select(PartyMemberRow)
            .where(PartyMemberRow.org_id == org_id, PartyMemberRow.active.is_(True))
            .order_by(PartyMemberRow.row_number, PartyMemberRow.member_id)
        )
    )


__all__ = [
    "MEMBER_LIMITS",
    "OrganisationMembers",
    "active_members",
    "read_member_bytes",
    "read_member_file",
    "store_members",
]
