"""The party-member roster (党员名册): import a member list (CSV/XLSX) and read an
organisation's current members.

The county office imports for any organisation; a secretary only for their own: rows naming
an organisation outside the caller's scope are refused as unknown, so the answer does not
reveal what exists. Any bad row refuses the whole file (every row listed, 第n行·表头) before
anything is written; the limits are ``activities.member_store.MEMBER_LIMITS`` (a size limit
is :class:`~chuangzheng.services.errors.TooLarge`, a bad row
:class:`~chuangzheng.services.errors.InvalidInput`). The import is audited.

Parsing a big sheet is seconds of CPU: the caller says where it runs (``parse``; the API
hands it to its parse processes, ``api.blocking.parse_off_loop``), by default a worker
thread. Database work runs in worker threads, never on an event loop.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from activities.member_store import (
    MEMBER_LIMITS,
    OrganisationMembers,
    active_members,
    read_member_bytes,
    store_members,
)
from activities.tables import OrganisationRow, PartyMemberRow
from chuangzheng.services.callers import Caller, audit_row, require_role, visible_organisation
from chuangzheng.services.errors import domain_refusals
from domain.members import MemberRoster
from domain.organisation import Role

#: Who may import a member list (a secretary for their own organisation only).
IMPORTERS = frozenset({Role.COUNTY_OFFICE, Role.SECRETARY})

#: Runs a picklable parser ``func(*args, **kwargs)`` somewhere other than the event loop and
#: returns its result (its ``ValidationFailed`` raised as is).
ParseRunner = Callable[..., Awaitable[Any]]


async def parse_in_thread(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """The default :data:`ParseRunner`: a worker thread."""
    return await anyio.to_thread.run_sync(functools.partial(func, *args, **kwargs))


@dataclass(frozen=True)
class MemberImport:
    """What an import replaced, per organisation, against the county roster's 党员人数."""

    organisations: tuple[OrganisationMembers, ...]

    @property
    def total(self) -> int:
        """Members imported over all organisations."""
        return sum(o.imported for o in self.organisations)


def matches_roster(report: OrganisationMembers) -> bool:
    """Whether the list imported for an organisation has as many members as the county
    roster says it has (the commitments' coverage guard counts against that number)."""
    return report.imported == report.roster_member_count


def authorise_import(caller: Caller) -> None:
    """:class:`Refused` (``forbidden``) unless ``caller`` may import member lists (a caller
    may check this first, e.g. before reading an upload or replaying a stored answer)."""
    require_role(caller, IMPORTERS)


def _known_organisations(sessions: sessionmaker[Session], caller: Caller) -> set[str]:
    with sessions() as session:
        return set(
            session.scalars(
                select(OrganisationRow.org_id).where(
                    caller.condition, OrganisationRow.active.is_(True)
                )
            )
        )


def _store(
    sessions: sessionmaker[Session], caller: Caller, roster: MemberRoster
) -> list[OrganisationMembers]:
    with sessions.begin() as session:
        report = store_members(session, roster)
        session.add(
            audit_row(
                caller,
                "members_imported",
                round_id=None,
                org_id=report[0].org_id if len(report) == 1 else None,
                detail={
                    "organisations": [r.org_id for r in report],
                    "imported": sum(r.imported for r in report),
                    "deactivated": sum(r.deactivated for r in report),
                },
            )
        )
        return report


async def import_members(
    sessions: sessionmaker[Session],
    caller: Caller,
    data: bytes,
    suffix: str,
    *,
    parse: ParseRunner = parse_in_thread,
) -> MemberImport:
    """Replace the member lists of the organisations the file (``data``, a ``.csv`` or
    ``.xlsx`` by ``suffix``) names, all of them within ``caller``'s scope; members left out
    are deactivated, not deleted."""
    authorise_import(caller)
    known = await anyio.to_thread.run_sync(_known_organisations, sessions, caller)
    with domain_refusals():
        roster: MemberRoster = await parse(
            read_member_bytes, data, suffix, known_orgs=known, limits=MEMBER_LIMITS
        )
    report = await anyio.to_thread.run_sync(_store, sessions, caller, roster)
    return MemberImport(organisations=tuple(report))


def members_of(session: Session, caller: Caller, org_id: str) -> list[PartyMemberRow]:
    """The organisation's current members in import order (:class:`NotFound` outside
    ``caller``'s scope)."""
    visible_organisation(session, caller, org_id)
    return active_members(session, org_id)
