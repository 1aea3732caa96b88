"""Importing the county roster, the county office's use case: organisations, the accounts
that follow from them, and the departures a running round must decide, in one transaction.

The import is all or nothing: the file is parsed and checked completely first
(``activities.roster_files``), then the organisations, the accounts, the departures and
the audit rows are written in ONE transaction (:func:`import_roster_in` takes the caller's
session; :func:`import_roster` opens and commits it), so a failure half-way leaves the
previous roster, accounts and departures as they were.

Accounts follow the roster
--------------------------
One account per person or body the roster names, each with ``source="roster"``, no
password (``password_hash`` None until the person activates it with a one-time code) and
the role and scope ``api.scope`` checks:

=====================  ======================================  ==========================
who                    username                                role / scope_key
=====================  ======================================  ==========================
an organisation's 书记  ``secretary-<org_id>-<姓名>``             secretary / the org id
a 指导员                ``instructor-<姓名>``                    instructor / the name
a township committee   ``township-<乡镇>``                      township / the township
a guidance group       ``guidance-<system>``                    guidance_group / system
=====================  ======================================  ==========================

In a county other than the default one (many counties on one deployment) every username
is prefixed with the county's code and a dot (``<county>.township-<乡镇>``): township
names, instructors and systems repeat across counties, accounts must not.

The secretary's username names the organisation and the person, so a replaced secretary
is a different account from the new one: the new secretary's account is created, and the
old one is kept (its audit trail refers to it) but loses the organisation: its scope
becomes empty, which ``api.scope`` matches to no organisation (404 on it), and its
``session_version`` is bumped so open sessions end. The same happens to an instructor no
longer named in any 指导员 cell, a township with no organisation left and a guidance group
whose system the roster no longer names; named again, the account gets its scope back.
Accounts kept by the county office (``source="admin"``) or the demo (``"demo"``) are never
touched, even when their username is one of the above (the demo county's accounts keep
their password and scope). Activation, deactivation and passwords are not the import's
business: an account the county office deactivated stays deactivated.

A name the import would create that is already held by an account it may not take over
(one of another county or of none, or one of the county's own kept by the office with
another role or scope) is left as it is and reported: ``accounts_taken`` and one
:class:`TakenAccount` each, with a Chinese reason that names the account and whom it was
for, never the holder (another county's accounts are its own business). Nobody but the
county can create a name in its namespace any more (``services.accounts``), so these are
names squatted before that, or by an account created before its county was.

Every account created or changed is audited (``account.roster_sync``, the change in
``detail``), and so is the import itself (``roster.import``, with the report).

Imports of one county run one after the other
---------------------------------------------
Each import locks its county first (:func:`_lock_county`), so identical imports at once do
not all insert the same new organisations (one succeeded, the others failed on the unique
key): the later ones see the first one's rows and report them unchanged. An import that
still meets a unique key (another county adding the same new id at the same moment, an
account created meanwhile) is run again from the start, in a new transaction.

Organisations leaving the roster
--------------------------------
An organisation the import deactivates that still takes part in a running round (its
campaign neither closed nor completed) gets a pending :class:`RosterDepartureRow` per such
round; the county office decides each (``chuangzheng.services.departures``). An
organisation listed again before the decision withdraws its pending departures.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import Table, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from activities.db import upsert_insert, write_lock
from activities.guidance_groups import county_groups
from activities.roster_files import read_roster_file
from activities.roster_store import ImportReport, store_roster
from activities.round_contracts import RoundStatus
from activities.tables import (
    AuditRow,
    CampaignStatusRow,
    OrganisationRow,
    RosterDepartureRow,
    RoundRow,
    UserRow,
)
from activities.tables.base import ID, NAME
from chuangzheng.services.callers import account_county
from chuangzheng.services.errors import InvalidInput, Refused
from chuangzheng.services.guidance_groups import check_roster_groups
from domain.accounts import AccountSource
from domain.organisation import (
    DEFAULT_COUNTY,
    SEED_002_SYSTEMS,
    GuidanceGroup,
    Role,
    Roster,
    system_label,
)
from domain.phases import Phase
from domain.roster_import import HEADER_ID, sheet_rows
from domain.state import Actor

#: The audit actions of an import.
IMPORT_ACTION = "roster.import"
ACCOUNT_ACTION = "account.roster_sync"
#: ``users.source`` of the accounts this module keeps.
ROSTER_SOURCE = AccountSource.ROSTER.value
#: The roles whose accounts the roster keeps.
ROSTER_ROLES = frozenset({Role.SECRETARY, Role.INSTRUCTOR, Role.TOWNSHIP, Role.GUIDANCE_GROUP})
#: How the usernames of the roster's accounts start (after the county's prefix, if any).
ROSTER_USERNAME_STEMS = ("secretary-", "instructor-", "township-", "guidance-")
#: How many times an import meeting a unique key is tried in all (see the module's doc).
IMPORT_ATTEMPTS = 3
_DEPARTURES: Table = RosterDepartureRow.__table__  # type: ignore[assignment]


class AccountChange(StrEnum):
    """What an import did to one account."""

    CREATED = "created"
    RESCOPED = "rescoped"  # role or scope follow the roster (sessions end)
    RENAMED = "renamed"  # only the display name follows the roster (an organisation renamed)
    UNSCOPED = "unscoped"  # no longer named: the scope is emptied, sessions end


class DepartureDecision(StrEnum):
    """The county office's choice for an organisation that left the roster mid-round."""

    PENDING = "pending"
    CLOSE = "close"
    KEEP = "keep"

    @property
    def label(self) -> str:
        """Chinese label."""
        return {"pending": "待定", "close": "关闭", "keep": "保留"}[self.value]


@dataclass(frozen=True)
class RosterAccount:
    """An account the roster calls for: username, display name, role, scope key."""

    username: str
    display_name: str
    role: Role
    scope_key: str
    org_id: str | None = None  # a secretary's organisation (the audit row's org_id)


@dataclass(frozen=True)
class AccountSync:
    """One account the import created or changed."""

    username: str
    change: AccountChange
    role: Role
    scope_key: str
    previous_scope_key: str | None
    org_id: str | None


@dataclass(frozen=True)
class TakenAccount:
    """An account the roster calls for whose username another account holds: not created
    (or not brought to the roster's role and scope); ``reason`` says so in Chinese."""

    username: str
    role: Role
    scope_key: str
    reason: str


@dataclass(frozen=True)
class RosterImportResult:
    """The organisations' report, the accounts created and changed, the new departures,
    the accounts the roster calls for that could not be made (their names are taken)."""

    report: ImportReport
    accounts: tuple[AccountSync, ...] = ()
    taken: tuple[TakenAccount, ...] = ()
    departures: tuple[tuple[str, str], ...] = ()  # (round_id, org_id), newly pending
    departures_withdrawn: int = 0
    import_id: str = ""
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, change: AccountChange) -> int:
        """How many accounts the import changed this way."""
        return sum(1 for a in self.accounts if a.change is change)


def county_username(county: str, username: str) -> str:
    """``username`` as ``county`` has it: unchanged in the default county (a single-county
    deployment's accounts keep their names), ``<county>.<username>`` in any other."""
    return username if county == DEFAULT_COUNTY else f"{county}.{username}"


def secretary_username(org_id: str, name: str, county: str = DEFAULT_COUNTY) -> str:
    """``secretary-<org_id>-<姓名>``: a replaced secretary is a different account. Past the
    column's length (very long ids and names), ``secretary-<16 hex digits of
    sha256("<org_id>/<姓名>")>``: still one account per organisation and person."""
    username = county_username(county, f"secretary-{org_id}-{name}")
    if len(username) <= ID:
        return username
    digest = hashlib.sha256(f"{org_id}/{name}".encode()).hexdigest()[:16]
    return county_username(county, "secretary-" + digest)


def roster_accounts(
    roster: Roster,
    county: str = DEFAULT_COUNTY,
    groups: Sequence[GuidanceGroup] = SEED_002_SYSTEMS,
) -> list[RosterAccount]:
    """Every account ``county``'s ``roster`` calls for, in a stable order; a guidance
    group's account is named by its label from ``groups`` (the county's groups)."""
    accounts = [
        RosterAccount(
            secretary_username(o.id, o.secretary, county),
            # A 200-character name and its secretary's would overflow the column.
            f"{o.name}书记{o.secretary}"[:NAME],
            Role.SECRETARY,
            o.id,
            o.id,
        )
        for o in roster.organisations
    ]
    instructors = dict.fromkeys(o.instructor for o in roster.organisations)
    accounts += [
        RosterAccount(
            county_username(county, f"instructor-{name}"), f"指导员{name}", Role.INSTRUCTOR, name
        )
        for name in instructors
    ]
    accounts += [
        RosterAccount(
            county_username(county, f"township-{name}"), f"{name}党委", Role.TOWNSHIP, name
        )
        for name in roster.townships()
    ]
    # Every group in use, whether seed 002 names it or the county defined it (issue 15).
    systems = dict.fromkeys(o.system for o in roster.organisations)
    by_key = {g.key: g for g in groups}
    accounts += [
        RosterAccount(
            county_username(county, f"guidance-{s}"),
            system_label(s, by_key),
            Role.GUIDANCE_GROUP,
            s,
        )
        for s in systems
    ]
    return accounts


def _taken_elsewhere(account: RosterAccount) -> TakenAccount:
    return TakenAccount(
        account.username,
        account.role,
        account.scope_key,
        f"账号名“{account.username}”已被其他账号占用，未能为“{account.display_name}”创建账号；"
        "请联系上级组织部处理",
    )


def _taken_here(account: RosterAccount) -> TakenAccount:
    return TakenAccount(
        account.username,
        account.role,
        account.scope_key,
        f"账号名“{account.username}”已是本县（区）手工创建的账号，角色或范围与名册不符，"
        f"未能为“{account.display_name}”设置账号；请在账号管理中核对该账号",
    )


def _sync_accounts(
    session: Session, roster: Roster, now: datetime, county: str
) -> tuple[list[AccountSync], list[TakenAccount]]:
    groups = county_groups(session, county)
    wanted = {a.username: a for a in roster_accounts(roster, county, groups)}
    # The county's own accounts only: another county's are never the import's to touch.
    stored = {
        row.username: row
        for row in session.scalars(select(UserRow).where(UserRow.county == county))
    }
    # Names another county's accounts already use (one query per 500 names, not per name).
    missing = [name for name in wanted if name not in stored]
    taken: set[str] = set()
    for start in range(0, len(missing), 500):
        taken.update(
            session.scalars(
                select(UserRow.username).where(UserRow.username.in_(missing[start : start + 500]))
            )
        )
    changes: list[AccountSync] = []
    refused: list[TakenAccount] = []
    for account in wanted.values():
        row = stored.get(account.username)
        if row is None and account.username in taken:
            # Held by an account of another county (or of none): never the import's to
            # touch, and the one it is for has no account: said, not skipped in silence.
            refused.append(_taken_elsewhere(account))
            continue
        if row is None:
            session.add(
                UserRow(
                    username=account.username,
                    display_name=account.display_name,
                    password_hash=None,
                    role=account.role.value,
                    scope_key=account.scope_key,
                    active=True,
                    created_at=now,
                    source=ROSTER_SOURCE,
                    session_version=0,
                    updated_at=now,
                    county=county,
                )
            )
            changes.append(
                AccountSync(
                    account.username,
                    AccountChange.CREATED,
                    account.role,
                    account.scope_key,
                    None,
                    account.org_id,
                )
            )
            continue
        if row.source != ROSTER_SOURCE:
            # The county office's or the demo's: never the roster's to change. One with the
            # roster's role and scope serves; one with another is not the account wanted.
            if (row.role, row.scope_key) != (account.role.value, account.scope_key):
                refused.append(_taken_here(account))
            continue
        if (row.role, row.scope_key, row.display_name) == (
            account.role.value,
            account.scope_key,
            account.display_name,
        ):
            continue
        previous = row.scope_key
        change = AccountChange.RENAMED
        if (row.role, row.scope_key) != (account.role.value, account.scope_key):
            change = AccountChange.RESCOPED
            row.session_version += 1  # what the account covers changed: sessions end
        row.role, row.scope_key = account.role.value, account.scope_key
        row.display_name, row.updated_at = account.display_name, now
        changes.append(
            AccountSync(
                row.username,
                change,
                account.role,
                account.scope_key,
                previous,
                account.org_id,
            )
        )
    for username, row in sorted(stored.items()):
        if username in wanted or row.source != ROSTER_SOURCE or row.scope_key == "":
            continue
        if Role(row.role) not in ROSTER_ROLES:
            continue
        previous = row.scope_key
        row.scope_key, row.updated_at = "", now
        row.session_version += 1
        org_id = previous if row.role == Role.SECRETARY.value else None
        changes.append(
            AccountSync(username, AccountChange.UNSCOPED, Role(row.role), "", previous, org_id)
        )
    return changes, refused


def _record_departures(
    session: Session, report: ImportReport, now: datetime
) -> tuple[list[tuple[str, str]], int]:
    """Pending departures for the organisations that just left the roster while a running
    round still runs their campaign; pending ones of organisations listed again go."""
    withdrawn = 0
    if report.reactivated_ids:
        result = session.execute(
            delete(_DEPARTURES).where(
                _DEPARTURES.c.org_id.in_(report.reactivated_ids),
                _DEPARTURES.c.decision == DepartureDecision.PENDING.value,
            )
        )
        withdrawn = int(getattr(result, "rowcount", 0) or 0)
    if not report.deactivated_ids:
        return [], withdrawn
    running = session.execute(
        select(CampaignStatusRow.round_id, CampaignStatusRow.org_id)
        .join(RoundRow, RoundRow.round_id == CampaignStatusRow.round_id)
        .where(
            RoundRow.status == RoundStatus.RUNNING.value,
            CampaignStatusRow.org_id.in_(report.deactivated_ids),
            CampaignStatusRow.closed.is_(False),
            CampaignStatusRow.phase != Phase.COMPLETED.value,
        )
        .order_by(CampaignStatusRow.round_id, CampaignStatusRow.org_id)
    ).all()
    created: list[tuple[str, str]] = []
    for round_id, org_id in running:
        stmt = upsert_insert(session, _DEPARTURES).values(
            round_id=round_id,
            org_id=org_id,
            detected_at=now,
            decision=DepartureDecision.PENDING.value,
            reason=None,
            decided_by=None,
            decided_at=None,
        )
        # Keyed by round and organisation: a second import never asks twice.
        result = session.execute(stmt.on_conflict_do_nothing(index_elements=["round_id", "org_id"]))
        if getattr(result, "rowcount", 0):
            created.append((round_id, org_id))
    return created, withdrawn


def _audit_rows(
    actor: Actor, import_id: str, result: RosterImportResult, now: datetime
) -> list[AuditRow]:
    rows = [
        AuditRow(
            audit_id=f"roster/{import_id}",
            user=actor.user,
            role=actor.role.value,
            action=IMPORT_ACTION,
            round_id=None,
            org_id=None,
            ip=actor.ip,
            at=now,
            detail=dict(result.counts)
            | ({"taken": [t.username for t in result.taken]} if result.taken else {}),
        )
    ]
    for sync in result.accounts:
        detail: dict[str, Any] = {
            "username": sync.username,
            "change": sync.change.value,
            "role": sync.role.value,
            "scope_key": sync.scope_key,
        }
        if sync.previous_scope_key is not None:
            detail["previous_scope_key"] = sync.previous_scope_key
        rows.append(
            AuditRow(
                audit_id=f"roster/{import_id}/account/{sync.username}",
                user=actor.user,
                role=actor.role.value,
                action=ACCOUNT_ACTION,
                round_id=None,
                org_id=sync.org_id,
                ip=actor.ip,
                at=now,
                detail=detail,
            )
        )
    return rows


def _refuse_foreign_ids(session: Session, roster: Roster, county: str) -> None:
    """:class:`InvalidInput` naming the organisation ids that belong to another county
    (which county is not said: that is the other county's business)."""
    ids = [o.id for o in roster.organisations]
    foreign: set[str] = set()
    for start in range(0, len(ids), 500):  # bounded IN lists
        foreign.update(
            session.scalars(
                select(OrganisationRow.org_id).where(
                    OrganisationRow.org_id.in_(ids[start : start + 500]),
                    OrganisationRow.county != county,
                )
            )
        )
    if foreign:
        # The row the clerk sees in the sheet (the header is row 1, blank rows count), named
        # like the parser's own errors ("第n行·组织编号"), not the organisation's position.
        # Worded so as not to confirm that another county uses the id (which ids another
        # county has is its own business): the id cannot be used here, that is all.
        rows = sheet_rows(roster)
        raise InvalidInput(
            "invalid",
            "组织编号不能与其他县（区）的重复；名册中有不可用的组织编号，未导入任何内容",
            [
                {
                    "field": f"第{rows[o.id]}行·{HEADER_ID}",
                    "reason": f"组织编号“{o.id}”不可用，请核对或联系上级组织部",
                }
                for o in roster.organisations
                if o.id in foreign
            ][:50],
        )


def authorise(actor: Actor) -> None:
    """Only the county office imports the roster."""
    if actor.role is not Role.COUNTY_OFFICE:
        raise Refused("forbidden", "当前角色无权执行此操作")


def _lock_county(session: Session, county: str) -> None:
    """Serialise the imports of ``county`` for the rest of the session's transaction, first
    thing in it: on SQLite the database's write lock (``activities.db.write_lock``), on
    PostgreSQL a transaction-level advisory lock keyed by the county (its default county
    may have no ``counties`` row to lock). The reads after it see the latest commit."""
    write_lock(session, OrganisationRow)
    if session.get_bind().dialect.name == "postgresql":
        key = func.hashtext(f"chuangzheng.roster_import/{county}")
        session.execute(select(func.pg_advisory_xact_lock(key)))


def import_roster_in(
    session: Session, actor: Actor, roster: Roster, *, now: datetime | None = None
) -> RosterImportResult:
    """Import ``roster`` in the caller's transaction (the caller commits or rolls back):
    organisations, accounts, departures and audit rows. Imports of one county wait for one
    another (see the module's doc)."""
    authorise(actor)
    now = now or datetime.now(UTC)
    # The county office imports into its own county; an id of another county is refused
    # (an organisation never moves between counties, so its county can be relied on).
    county = account_county(session, actor.user)
    _lock_county(session, county)
    _refuse_foreign_ids(session, roster, county)
    # Only the county's own guidance groups (a roster never creates one: guidance_groups).
    check_roster_groups(session, roster, county)
    report = store_roster(session, roster, now=now, county=county)
    accounts, taken = _sync_accounts(session, roster, now, county)
    departures, withdrawn = _record_departures(session, report, now)
    counts = {
        "added": report.added,
        "updated": report.updated,
        "deactivated": report.deactivated,
        "reactivated": report.reactivated,
        "unchanged": report.unchanged,
        "total": report.total,
        "accounts_created": sum(a.change is AccountChange.CREATED for a in accounts),
        "accounts_rescoped": sum(a.change is AccountChange.RESCOPED for a in accounts),
        "accounts_unscoped": sum(a.change is AccountChange.UNSCOPED for a in accounts),
        "accounts_renamed": sum(a.change is AccountChange.RENAMED for a in accounts),
        "accounts_taken": len(taken),
        "departures_pending": len(departures),
        "departures_withdrawn": withdrawn,
    }
    import_id = uuid.uuid4().hex
    result = RosterImportResult(
        report=report,
        accounts=tuple(accounts),
        taken=tuple(taken),
        departures=tuple(departures),
        departures_withdrawn=withdrawn,
        import_id=import_id,
        counts=counts,
    )
    session.add_all(_audit_rows(actor, import_id, result, now))
    session.flush()
    return result


def import_roster(
    sessions: sessionmaker[Session], actor: Actor, roster: Roster, *, now: datetime | None = None
) -> RosterImportResult:
    """:func:`import_roster_in` in a transaction of its own (committed on success), run
    again in a new one if it meets a unique key (see the module's doc), up to
    :data:`IMPORT_ATTEMPTS` times in all (one that keeps meeting it is a bug: raised)."""
    for attempt in range(1, IMPORT_ATTEMPTS + 1):
        try:
            with sessions.begin() as session:
                return import_roster_in(session, actor, roster, now=now)
        except IntegrityError:
            if attempt == IMPORT_ATTEMPTS:
                raise
            # Rolled back: the next try compares with what the other writer committed.
    raise AssertionError("unreachable")


def import_roster_file(
    sessions: sessionmaker[Session], actor: Actor, path: Path
) -> RosterImportResult:
    """Read, check and import a CSV/XLSX roster; raises ``ValidationFailed`` (nothing
    written) when any row is bad."""
    with sessions() as session:
        groups = county_groups(session, account_county(session, actor.user))
    roster = read_roster_file(path, groups=groups)  # raises before the first write
    return import_roster(sessions, actor, roster)


__all__ = [
    "ACCOUNT_ACTION",
    "IMPORT_ACTION",
    "ROSTER_USERNAME_STEMS",
    "AccountChange",
    "AccountSync",
    "DepartureDecision",
    "RosterAccount",
    "RosterImportResult",
    "TakenAccount",
    "county_username",
    "import_roster",
    "import_roster_file",
    "import_roster_in",
    "roster_accounts",
    "secretary_username",
]
