"""``chuangzheng check-names``: stored ids and names that read differently once cleaned.

Since session 18 the roster and member imports clean what they read (``domain.text``):
invisible characters removed, full-width letters and digits folded, ids in NFKC. Values an
older import wrote are as they were typed or pasted (``org-1\\u200b``, ``Ｍ００１``,
``instructor-王二\\u200d``), so the next import would take such an organisation for one
leaving the roster and a new one arriving, and create a look-alike account beside the old.
This command lists every stored value whose cleaned form differs:

==================  ================  =====================================================
table               field             cleaned with
==================  ================  =====================================================
``organisations``   ``org_id``        :func:`~domain.text.clean_id` (as the roster import)
``users``           ``username``      :func:`~domain.text.clean_name`; a current secretary's
                                      ``secretary-<org_id>-<姓名>`` is rebuilt from the
                                      cleaned id and name, as the import derives it
``users``           ``display_name``  :func:`~domain.text.clean_text` (width kept)
``party_members``   ``name``          :func:`~domain.text.clean_name` (as the member import)
==================  ================  =====================================================

It exits 1 when any value differs (0 when none does). ``--fix`` rewrites them in ONE
transaction, and only when no two ids or usernames clean to the same value: a collision
(``org-1`` stored beside ``org-1\\u200b``) is listed and nothing is written, since which of
the two is meant is the county office's call. A value that cannot be cleaned is listed and
left as stored, and so the exit status stays 1:

* one holding a direction override or a control character (the imports refuse it too);
* one that cleans to nothing, or to more than its column holds;
* an organisation id that rounds, commitments, supervision records or other records
  already name (any table with an ``org_id`` column but the audit log): the organisation's
  workflows are named after the stored id (``campaign/<round>/<org_id>``) and cannot be
  renamed, so its records would no longer find it.

What ``--fix`` rewrites with a value: an organisation id in ``organisations``,
``party_members`` and its secretary accounts' scope; a username in ``users`` and where the
account's own state is keyed by it (its counties, activation code, sign-in sessions —
revoked, since their tokens name the old username —, idempotency keys, commendation score
sheets, briefings it submitted). Records of what was done (the audit log, ``*_by``
columns, events) keep the name it was done under. Run it with the API and the workers
stopped, as for a migration.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

#: Exit status when a stored value differs from its cleaned form (and is left as stored).
EXIT_UNCLEAN = 1

#: Tables with an ``org_id`` column that ``--fix`` rewrites, or that do not pin the id.
_ORG_TABLES_REWRITTEN = frozenset({"organisations", "party_members"})
_ORG_TABLES_IGNORED = frozenset({"audit_log"})

#: Where an account's own state is keyed by its username: (table, column).
_USERNAME_COLUMNS: tuple[tuple[str, str], ...] = (
    ("account_counties", "username"),
    ("activation_codes", "username"),
    ("sign_in_sessions", "username"),
    ("idempotency_keys", "username"),
    ("commendation_score_sheets", "assessor"),
    ("briefings", "submitted_by"),
)


@dataclass(frozen=True)
class Unclean:
    """A stored value whose cleaned form differs: where it is (``table``, ``field``, the
    row's key ``row``), what is stored, what it cleans to (``""`` when it cannot be
    cleaned) and, when ``--fix`` leaves it as stored, why (``blocked``)."""

    table: str
    field: str
    row: str
    stored: str
    cleaned: str
    blocked: str = ""


@dataclass(frozen=True)
class Collision:
    """Stored ids or usernames (``stored``) that clean to the same ``cleaned`` value."""

    table: str
    field: str
    cleaned: str
    stored: tuple[str, ...]


@dataclass(frozen=True)
class NamesReport:
    """Every stored value that differs from its cleaned form, and the collisions."""

    unclean: tuple[Unclean, ...]
    collisions: tuple[Collision, ...]

    @property
    def fixable(self) -> tuple[Unclean, ...]:
        """What ``--fix`` would rewrite (none at all while there is a collision)."""
        if self.collisions:
            return ()
        return tuple(u for u in self.unclean if not u.blocked)


def _cleaned(clean: Callable[[str], str], value: str, limit: int) -> tuple[str, str]:
    """``(cleaned, why it cannot be)``: the cleaner's refusal, nothing left, or too long."""
    from domain.text import TextRefused

    try:
        cleaned = clean(value)
    except TextRefused as exc:
        return "", exc.reason
    if not cleaned:
        return "", "清理后为空"
    if len(cleaned) > limit:
        return cleaned, f"清理后超过 {limit} 个字符"
    return cleaned, ""


def _pinned_org_ids(session: Session, org_ids: Iterable[str]) -> dict[str, list[str]]:
    """Of ``org_ids``, those other records name: id -> the tables naming it."""
    from sqlalchemy import select

    from activities.tables import metadata

    wanted = sorted(set(org_ids))
    pinned: dict[str, list[str]] = defaultdict(list)
    if not wanted:
        return pinned
    for table in metadata.sorted_tables:
        if "org_id" not in table.c or table.name in _ORG_TABLES_REWRITTEN | _ORG_TABLES_IGNORED:
            continue
        column = table.c.org_id
        found = session.scalars(select(column).where(column.in_(wanted)).distinct())
        for org_id in found:
            pinned[org_id].append(table.name)
    return pinned


def _collisions(
    table: str, field: str, stored: Iterable[str], unclean: Iterable[Unclean]
) -> list[Collision]:
    """Values ``--fix`` would rewrite to another stored value or to another's cleaned value
    (a value left as stored is listed with its reason, not as a collision)."""
    by_value: dict[str, set[str]] = defaultdict(set)
    changed = {u.stored: u.cleaned for u in unclean if u.cleaned and not u.blocked}
    for value in stored:
        by_value[changed.get(value, value)].add(value)
    return [
        Collision(table, field, cleaned, tuple(sorted(values)))
        for cleaned, values in sorted(by_value.items())
        if len(values) > 1 and any(v in changed for v in values)
    ]


def check_names(session: Session) -> NamesReport:
    """Every stored organisation id, username, display name and member name whose cleaned
    form differs from what is stored, and the ids and usernames that would collide."""
    from sqlalchemy import select

    from activities.tables import OrganisationRow, PartyMemberRow, UserRow
    from activities.tables.base import ID, NAME
    from chuangzheng.services.roster import secretary_username
    from domain.organisation import Role
    from domain.text import clean_id, clean_name, clean_text

    organisations = {
        row.org_id: row.secretary
        for row in session.execute(select(OrganisationRow.org_id, OrganisationRow.secretary))
    }
    orgs: list[Unclean] = []
    for org_id in sorted(organisations):
        cleaned, why = _cleaned(clean_id, org_id, ID)
        if cleaned != org_id or why:
            orgs.append(Unclean("organisations", "org_id", org_id, org_id, cleaned, why))
    pinned = _pinned_org_ids(session, (u.stored for u in orgs if not u.blocked))
    orgs = [
        dataclasses.replace(u, blocked=f"已被 {'、'.join(pinned[u.stored])} 引用，不能改名")
        if u.stored in pinned
        else u
        for u in orgs
    ]

    def clean_username(username: str, *, role: str, scope: str, county: str) -> str:
        secretary = organisations.get(scope)
        if (
            role == Role.SECRETARY.value
            and secretary is not None
            and username == secretary_username(scope, secretary, county)
        ):
            # The import derives it from the cleaned id and name (hashed when too long).
            return secretary_username(clean_id(scope), clean_name(secretary), county)
        return clean_name(username)

    users: list[Unclean] = []
    names: list[Unclean] = []
    stored_usernames: list[str] = []
    rows = session.execute(
        select(
            UserRow.username, UserRow.display_name, UserRow.role, UserRow.scope_key, UserRow.county
        ).order_by(UserRow.username)
    )
    for username, display_name, role, scope, county in rows:
        stored_usernames.append(username)
        this_account = functools.partial(clean_username, role=role, scope=scope, county=county)
        cleaned, why = _cleaned(this_account, username, ID)
        if cleaned != username or why:
            users.append(Unclean("users", "username", username, username, cleaned, why))
        cleaned, why = _cleaned(clean_text, display_name, NAME)
        if cleaned != display_name or why:
            names.append(Unclean("users", "display_name", username, display_name, cleaned, why))

    members: list[Unclean] = []
    member_rows = session.execute(
        select(PartyMemberRow.org_id, PartyMemberRow.member_id, PartyMemberRow.name).order_by(
            PartyMemberRow.org_id, PartyMemberRow.member_id
        )
    )
    for org_id, member_id, name in member_rows:
        cleaned, why = _cleaned(clean_name, name, NAME)
        if cleaned != name or why:
            key = f"{org_id}/{member_id}"
            members.append(Unclean("party_members", "name", key, name, cleaned, why))

    collisions = _collisions("organisations", "org_id", organisations, orgs)
    collisions += _collisions("users", "username", stored_usernames, users)
    return NamesReport(tuple(orgs + users + names + members), tuple(collisions))


def fix_names(session: Session, report: NamesReport, *, now: datetime) -> int:
    """Rewrite what ``report`` says may be rewritten (:attr:`NamesReport.fixable`), in the
    caller's transaction; returns how many values were rewritten."""
    from sqlalchemy import func, update

    from activities.tables import PartyMemberRow, UserRow, metadata
    from domain.organisation import Role

    fixable = report.fixable
    # Names first, found by the row's stored key; then ids, then usernames.
    for u in fixable:
        if (u.table, u.field) == ("users", "display_name"):
            session.execute(
                update(UserRow)
                .where(UserRow.username == u.row, UserRow.display_name == u.stored)
                .values(display_name=u.cleaned, updated_at=now)
            )
        elif (u.table, u.field) == ("party_members", "name"):
            org_id, member_id = u.row.split("/", 1)
            session.execute(
                update(PartyMemberRow)
                .where(
                    PartyMemberRow.org_id == org_id,
                    PartyMemberRow.member_id == member_id,
                    PartyMemberRow.name == u.stored,
                )
                .values(name=u.cleaned, updated_at=now)
            )
    for u in fixable:
        if (u.table, u.field) == ("organisations", "org_id"):
            for name in sorted(_ORG_TABLES_REWRITTEN):
                table = metadata.tables[name]
                session.execute(
                    update(table).where(table.c.org_id == u.stored).values(org_id=u.cleaned)
                )
            session.execute(
                update(UserRow)
                .where(UserRow.role == Role.SECRETARY.value, UserRow.scope_key == u.stored)
                .values(scope_key=u.cleaned)
            )
    for u in fixable:
        if (u.table, u.field) == ("users", "username"):
            for name, column in _USERNAME_COLUMNS:
                table = metadata.tables[name]
                values: dict[str, object] = {column: u.cleaned}
                if name == "sign_in_sessions":
                    values["revoked_at"] = func.coalesce(table.c.revoked_at, now)
                session.execute(update(table).where(table.c[column] == u.stored).values(**values))
            session.execute(
                update(UserRow)
                .where(UserRow.username == u.stored)
                .values(
                    username=u.cleaned,
                    session_version=UserRow.session_version + 1,
                    updated_at=now,
                )
            )
    return len(fixable)


def _echo_report(report: NamesReport) -> None:
    typer.echo("表\t字段\t行\t原值\t清理后\t说明")
    for u in report.unclean:
        cleaned = repr(u.cleaned) if u.cleaned else "-"
        typer.echo(f"{u.table}\t{u.field}\t{u.row!r}\t{u.stored!r}\t{cleaned}\t{u.blocked}")
    if report.collisions:
        typer.echo("清理后相同（不会改写，请先人工处理）：", err=True)
        for c in report.collisions:
            stored = "、".join(repr(s) for s in c.stored)
            typer.echo(f"  {c.table}.{c.field}：{stored} 清理后都是 {c.cleaned!r}", err=True)


def check_names_command(
    fix: Annotated[
        bool,
        typer.Option(
            "--fix",
            help="在一个事务中改写为清理后的值（有两个值清理后相同时一个也不改写）",
        ),
    ] = False,
) -> None:
    """列出清理后（去除不可见字符、全角转半角）与所存不同的组织编号、账号、姓名、党员姓名。"""
    from chuangzheng.bootstrap import open_database
    from chuangzheng.logging import configure_logging
    from chuangzheng.settings import get_settings

    settings = get_settings()
    configure_logging(settings.model_copy(update={"log_level": "WARNING"}))
    with open_database(settings) as database:
        with database.sessions() as session:
            report = check_names(session)
        if not report.unclean:
            typer.echo("所存组织编号、账号、姓名和党员姓名都已是清理后的形式。")
            return
        _echo_report(report)
        if not fix:
            typer.echo(f"共 {len(report.unclean)} 处与清理后不同；加 --fix 改写。", err=True)
            raise typer.Exit(code=EXIT_UNCLEAN)
        if report.collisions:
            typer.echo("有值清理后相同：未改写任何值。", err=True)
            raise typer.Exit(code=EXIT_UNCLEAN)
        with database.sessions.begin() as session:
            # Read again inside the transaction that writes: what is rewritten is what
            # is stored now.
            report = check_names(session)
            if report.collisions:
                _echo_report(report)
                typer.echo("有值清理后相同：未改写任何值。", err=True)
                raise typer.Exit(code=EXIT_UNCLEAN)
            written = fix_names(session, report, now=datetime.now(UTC))
    left = len(report.unclean) - written
    typer.echo(f"已改写 {written} 处。")
    if left:
        typer.echo(f"另有 {left} 处无法改写（见“说明”），保持原值。", err=True)
        raise typer.Exit(code=EXIT_UNCLEAN)
