"""Many counties on one deployment: the counties themselves, the accounts above them, and
the side-by-side view a city or province office (市委/省委组织部) reads.

A county (``counties`` row) is the tenant: its organisations, townships, accounts and
rounds carry its code, and everything keyed by a round or an organisation belongs to that
round's or organisation's county. The embedded default county
(``domain.organisation.DEFAULT_COUNTY``) needs no set-up; every other county is created by
the deployment's operator (``chuangzheng accounts create-county``) with its first county
office account, in one transaction (both or neither), which then imports the county's
roster and runs its rounds. Its code is the county's 6-digit 行政区划代码
(:func:`check_division_code`). Further county office accounts of an existing county:
``chuangzheng accounts create-county-office --county`` (:func:`create_county_office`).

A city or province office's account names the counties it supervises
(``account_counties``); it reads them side by side here and drills down into their
read-only pages, and acts inside none (``api.tenancy``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from activities.guidance_groups import ensure_county_groups
from activities.tables import CampaignStatusRow, OrganisationRow, RoundRow, UserRow
from activities.tables.access import AccountCountyRow
from activities.tables.base import NAME
from activities.tables.roster import CountyRow
from chuangzheng.services import accounts
from chuangzheng.services.code_mail import CodeMailer, IssueReason, MailOutcome
from chuangzheng.services.errors import Conflict, InvalidInput, Refused
from domain.accounts import AccountSource, check_username
from domain.lights import Light
from domain.organisation import (
    ABOVE_COUNTY_ROLES,
    DEFAULT_COUNTY,
    DEFAULT_COUNTY_NAME,
    Role,
)
from domain.phases import Phase
from domain.text import free_text_problem

#: A county's code as the read model stores it: what its rows carry and its accounts'
#: usernames start with, so letters, digits, ``_`` and ``-`` only. The operator's path
#: (:func:`create_county_with_office`) takes 行政区划代码 only (:data:`DIVISION_CODE`).
CODE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")

#: A county-level division's code (县级行政区划代码, GB/T 2260): 6 digits, the first two a
#: province's, the last two not ``00`` (``xx0000`` is a province, ``xxxx00`` a city).
DIVISION_CODE = re.compile(r"[0-9]{6}")

#: The provinces' two-digit codes (GB/T 2260): the first two digits of every division code.
PROVINCE_CODES = frozenset(
    {"11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37",
     "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64",
     "65", "71", "81", "82"}
)  # fmt: skip

#: A running round's status (``activities.round_contracts.RoundStatus.RUNNING``).
_RUNNING = "running"


@dataclass(frozen=True)
class County:
    """A county: its code and name."""

    code: str
    name: str


@dataclass(frozen=True)
class CountyView:
    """One county as the office above it sees it: organisations on the roster, the round
    shown (the newest running round, else the newest round), its organisations by light,
    by phase and light, the laggards (not green, campaign still open) and the overdue."""

    code: str
    name: str
    organisations: int
    round_id: str | None = None
    round_name: str | None = None
    round_status: str | None = None
    lights: dict[str, int] = field(default_factory=dict)
    phases: dict[str, dict[str, int]] = field(default_factory=dict)
    laggards: int = 0
    overdue: int = 0

    @property
    def in_round(self) -> int:
        """Organisations taking part in the round shown."""
        return sum(self.lights.values())


def _invalid(field_name: str, reason: str) -> InvalidInput:
    return InvalidInput("invalid", "请求参数有误", [{"field": field_name, "reason": reason}])


def check_county(code: str, name: str) -> None:
    """:class:`InvalidInput` naming the field unless ``code`` and ``name`` are acceptable."""
    if not CODE_PATTERN.fullmatch(code):
        raise _invalid("code", "县（区）代码应为 1–32 个字母、数字、_ 或 -，以字母或数字开头")
    wrong = f"县（区）名称应为 1–{NAME} 个字符"
    if problem := free_text_problem(name, short=wrong):
        raise _invalid("name", problem)
    if len(name) > NAME:
        raise _invalid("name", wrong)


def check_division_code(code: str) -> None:
    """:class:`InvalidInput` on ``code`` unless it is a county-level division's 6-digit code
    (行政区划代码, e.g. 360781 瑞金市): what a county created by the operator is named by."""
    if not DIVISION_CODE.fullmatch(code):
        raise _invalid("code", "县（区）代码应为 6 位数字的县级行政区划代码，如 360781（瑞金市）")
    if code[:2] not in PROVINCE_CODES:
        raise _invalid("code", f"县（区）代码的前两位 {code[:2]} 不是省级行政区划代码")
    if code.endswith("00"):
        raise _invalid(
            "code", "县（区）代码不能以 00 结尾（那是市、省的代码），应为县级行政区划代码"
        )


def list_counties(session: Session, codes: Collection[str] | None = None) -> list[County]:
    """The counties (of ``codes``; None: every one) by code; the default county is always
    there, with or without its row (a database created before migration 0009's row)."""
    rows = {
        r.code: r.name
        for r in session.scalars(
            select(CountyRow).where(CountyRow.code.in_(sorted(codes)))
            if codes is not None
            else select(CountyRow)
        )
    }
    if codes is None or DEFAULT_COUNTY in codes:
        rows.setdefault(DEFAULT_COUNTY, DEFAULT_COUNTY_NAME)
    return [County(code, name) for code, name in sorted(rows.items())]


def create_county(session: Session, *, code: str, name: str, now: datetime) -> County:
    """A new county in the caller's transaction; :class:`Conflict` if the code is taken."""
    check_county(code, name)
    if code == DEFAULT_COUNTY or session.get(CountyRow, code) is not None:
        raise Conflict(
            "county_exists", "县（区）代码已存在", [{"field": "code", "reason": "已被使用"}]
        )
    session.add(CountyRow(code=code, name=name.strip(), created_at=now))
    session.flush()
    # A new county starts with seed 002's six guidance groups; its office edits them.
    ensure_county_groups(session, code, now)
    return County(code, name.strip())


@contextlib.contextmanager
def _one_transaction(sessions: sessionmaker[Session]) -> Iterator[sessionmaker[Session]]:
    """A session factory whose sessions all take part in one transaction, committed when the
    block ends and rolled back if it raises: a service that opens its own transactions
    (:func:`accounts.create_account`) then writes nothing unless everything else is written
    too. (``rollback_only``: a session's commit leaves the transaction to this block, its
    rollback rolls the whole of it back.)"""
    bind = sessions.kw.get("bind")
    if not isinstance(bind, Engine):
        raise TypeError("the session factory must be bound to an engine")
    with bind.connect() as connection, connection.begin():
        yield sessionmaker(
            bind=connection, expire_on_commit=False, join_transaction_mode="rollback_only"
        )


def _county_exists(session: Session, code: str) -> bool:
    return bool(list_counties(session, [code]))


def _mail_after_commit(
    sessions: sessionmaker[Session],
    admin: accounts.Admin,
    issued: accounts.IssuedCode,
    now: datetime,
    mailer: CodeMailer | None,
) -> accounts.IssuedCode:
    """Mail a committed account's first code to the person's own address, as
    :func:`accounts.create_account` does after its transaction (audited the same way)."""
    if mailer is None:
        return issued
    username = issued.account.username
    with sessions() as session:
        row = session.get(UserRow, username)
        pending = (
            accounts.pending_mail(
                session, mailer, row, issued.code, issued.expires_at, IssueReason.CREATED
            )
            if row is not None
            else None
        )
    outcomes = accounts.send_codes(sessions, admin, mailer, [pending] if pending else [], now)
    return dataclasses.replace(issued, mail=outcomes.get(username, MailOutcome.NONE))


def create_county_with_office(
    sessions: sessionmaker[Session],
    operator: str,
    *,
    code: str,
    name: str,
    username: str,
    display_name: str,
    now: datetime,
    mailer: CodeMailer | None = None,
) -> accounts.IssuedCode:
    """Create county ``code`` (a 6-digit 行政区划代码, :func:`check_division_code`) and its
    first county office account (no password; the one-time code returned, as
    ``create-county-office`` prints it), in one transaction: a refused account (a taken
    username, a bad display name) leaves no county behind, and a taken code creates no
    account. The code is mailed only once both are committed."""
    check_division_code(code)
    check_county(code, name)
    admin = accounts.Admin(user=operator, role=Role.COUNTY_OFFICE, county=code)
    try:
        with _one_transaction(sessions) as joined:
            with joined.begin() as session:
                create_county(session, code=code, name=name, now=now)
            issued = accounts.create_account(
                joined,
                admin,
                username=username,
                display_name=display_name,
                role=Role.COUNTY_OFFICE,
                now=now,
                mailer=None,
            )
    except IntegrityError:
        # The same code created at the same moment by another operator.
        raise Conflict(
            "county_exists", "县（区）代码已存在", [{"field": "code", "reason": "已被使用"}]
        ) from None
    return _mail_after_commit(sessions, admin, issued, now, mailer)


def create_county_office(
    sessions: sessionmaker[Session],
    operator: str,
    *,
    county: str,
    username: str,
    display_name: str,
    now: datetime,
    mailer: CodeMailer | None = None,
) -> accounts.IssuedCode:
    """A county office account (no password) of an existing county (the embedded default
    county, or one created by :func:`create_county_with_office`) and its one-time code;
    an unknown county is :class:`InvalidInput` on ``county`` (``unknown_county``) and
    creates nothing. Checked and created in one transaction."""
    admin = accounts.Admin(user=operator, role=Role.COUNTY_OFFICE, county=county)
    with _one_transaction(sessions) as joined:
        with joined.begin() as session:
            if not _county_exists(session, county):
                raise InvalidInput(
                    "unknown_county",
                    "没有该县（区）",
                    [{"field": "county", "reason": f"没有代码为 {county} 的县（区）"}],
                )
        issued = accounts.create_account(
            joined,
            admin,
            username=username,
            display_name=display_name,
            role=Role.COUNTY_OFFICE,
            now=now,
            mailer=None,
        )
    return _mail_after_commit(sessions, admin, issued, now, mailer)


def create_supervisor(
    sessions: sessionmaker[Session],
    operator: str,
    *,
    username: str,
    display_name: str,
    role: Role,
    counties: Iterable[str],
    now: datetime,
    mailer: CodeMailer | None = None,
) -> accounts.IssuedCode:
    """A city or province office's account (no password) that supervises ``counties``
    (every one must exist), and its one-time activation code."""
    if role not in ABOVE_COUNTY_ROLES:
        raise Refused("forbidden", "只能创建市委组织部或省委组织部的账号")
    problems = check_username(username)
    if problems:
        raise _invalid(problems[0].field, problems[0].reason)
    wrong = f"姓名应为 1–{NAME} 个字符"
    if problem := free_text_problem(display_name, short=wrong):
        raise _invalid("display_name", problem)
    if len(display_name) > NAME:
        raise _invalid("display_name", wrong)
    wanted = sorted(set(counties))
    if not wanted:
        raise _invalid("counties", "至少指定一个所辖县（区）")
    try:
        with sessions.begin() as session:
            known = {c.code for c in list_counties(session, wanted)}
            unknown = [c for c in wanted if c not in known]
            if unknown:
                raise _invalid("counties", f"没有这些县（区）：{'、'.join(unknown)}")
            if session.get(UserRow, username) is not None:
                raise Conflict(
                    "account_exists",
                    "账号已存在",
                    [{"field": "username", "reason": "账号已被使用"}],
                )
            # No county of its own (""): no county office manages it, it sees its counties.
            session.add(
                UserRow(
                    username=username,
                    display_name=display_name.strip(),
                    password_hash=None,
                    role=role.value,
                    scope_key="",
                    active=True,
                    created_at=now,
                    source=AccountSource.ADMIN.value,
                    session_version=0,
                    updated_at=now,
                    password_changed_at=None,
                    county="",
                )
            )
            session.add_all(AccountCountyRow(username=username, county=c) for c in wanted)
    except IntegrityError:
        raise Conflict(
            "account_exists", "账号已存在", [{"field": "username", "reason": "账号已被使用"}]
        ) from None
    # The activation code as a reset issues it (audited, mailed where an address is known).
    return accounts.reset(
        sessions,
        accounts.Admin(user=operator, role=Role.COUNTY_OFFICE, county=""),
        username,
        now=now,
        mailer=mailer,
    )


def _shown_rounds(session: Session, codes: Collection[str]) -> dict[str, RoundRow]:
    """Per county, the round its view shows: the newest running round, else the newest."""
    shown: dict[str, RoundRow] = {}
    rows = session.scalars(
        select(RoundRow)
        .where(RoundRow.county.in_(sorted(codes)))
        .order_by(RoundRow.county, RoundRow.starts_at.desc())
    )
    for row in rows:
        current = shown.get(row.county)
        if current is None or (current.status != _RUNNING and row.status == _RUNNING):
            shown[row.county] = row
    return shown


def counties_view(session: Session, codes: Collection[str]) -> list[CountyView]:
    """The counties of ``codes`` side by side: a handful of grouped queries whatever the
    number of organisations (counts per county and per round, phase and light)."""
    counties = list_counties(session, codes)
    if not counties:
        return []
    listed = [c.code for c in counties]
    organisations = dict(
        session.execute(
            select(OrganisationRow.county, func.count())
            .where(OrganisationRow.county.in_(listed), OrganisationRow.active.is_(True))
            .group_by(OrganisationRow.county)
        ).all()
    )
    shown = _shown_rounds(session, listed)
    by_round = {row.round_id: code for code, row in shown.items()}
    phases: dict[str, dict[str, dict[str, int]]] = {code: {} for code in listed}
    lights: dict[str, dict[str, int]] = {
        code: {light.value: 0 for light in Light} for code in listed
    }
    laggards: dict[str, int] = dict.fromkeys(listed, 0)
    overdue: dict[str, int] = dict.fromkeys(listed, 0)
    if by_round:
        s = CampaignStatusRow
        grouped = session.execute(
            select(s.round_id, s.phase, s.light, s.closed, s.overdue, func.count())
            .where(s.round_id.in_(sorted(by_round)))
            .group_by(s.round_id, s.phase, s.light, s.closed, s.overdue)
        )
        for round_id, phase, light, closed, late, count in grouped:
            code = by_round[round_id]
            cells = phases[code].setdefault(phase, {})
            cells[light] = cells.get(light, 0) + count
            lights[code][light] = lights[code].get(light, 0) + count
            open_campaign = not closed and phase != Phase.COMPLETED.value
            if open_campaign and light != Light.GREEN.value:
                laggards[code] += count
            if open_campaign and late:
                overdue[code] += count
    views = []
    for county in counties:
        row = shown.get(county.code)
        views.append(
            CountyView(
                code=county.code,
                name=county.name,
                organisations=int(organisations.get(county.code, 0)),
                round_id=row.round_id if row else None,
                round_name=row.name if row else None,
                round_status=row.status if row else None,
                lights=lights[county.code],
                phases={
                    phase.value: phases[county.code][phase.value]
                    for phase in Phase
                    if phase.value in phases[county.code]
                },
                laggards=laggards[county.code],
                overdue=overdue[county.code],
            )
        )
    return views


__all__ = [
    "CODE_PATTERN",
    "DIVISION_CODE",
    "County",
    "CountyView",
    "check_county",
    "check_division_code",
    "counties_view",
    "create_county",
    "create_county_office",
    "create_county_with_office",
    "create_supervisor",
    "list_counties",
]
