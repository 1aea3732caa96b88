"""Account administration, the county office's (and, for their own organisations'
secretaries, a township committee's) use cases: list and search, create, deactivate,
reactivate, reset, change role and scope. A person's own activation with their code and a
township's printed activation list are :mod:`chuangzheng.services.activation`'s; they build
on this module's scope rules, audit and code issuing.

Who may manage whom is ``domain.accounts.manages``; an account outside the caller's scope is
:class:`NotFound`, exactly like one that does not exist, so nothing leaks. Nobody gets a
default password: a new or reset account has no password hash until its person activates
it with the one-time code, of which only an argon2 hash is kept (issuing one lives here:
creating and resetting an account issue it in their own transaction). Every change is
audited (``account.create``, ``account.update``, ``account.deactivate``,
``account.reactivate``, ``account.reset``). Synchronous SQLAlchemy: callers run these
functions in worker threads, never on an event loop.

Where the caller hands in a :class:`~chuangzheng.services.code_mail.CodeMailer` and the
channels file gives the person their own e-mail address, each issued code is also mailed to
them, after the transaction commits (a mail never carries a code that was rolled back); the
outcome is returned with the code and audited as ``account.code_mail`` (never the code).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import ColumnElement, and_, false, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from activities.db import upsert_insert
from activities.guidance_groups import county_groups
from activities.tables import (
    ActivationCodeRow,
    AuditRow,
    OrganisationRow,
    TownshipRow,
    UserRow,
    metadata,
)
from activities.tables.base import NAME
from activities.tables.roster import CountyRow
from chuangzheng.services.code_mail import CodeMail, CodeMailer, IssueReason, MailOutcome
from chuangzheng.services.errors import Conflict, InvalidInput, NotFound, Refused
from chuangzheng.services.roster import ROSTER_USERNAME_STEMS, secretary_username
from chuangzheng.services.sign_in import hash_password
from domain.accounts import (
    CODE_LIFETIME,
    SCOPE_KINDS,
    AccountScope,
    AccountSource,
    Administrator,
    ScopeKind,
    check_scope_shape,
    check_username,
    manages,
    may_administer,
    new_activation_code,
    normalise_code,
)
from domain.errors import FieldError
from domain.organisation import ABOVE_COUNTY_ROLES, DEFAULT_COUNTY, Role
from domain.text import BLANK_REASON, clean_name, free_text_problem

_FORBIDDEN = "当前角色无权管理账号"
_NO_ACCOUNT = "账号不存在或不在管理范围内"
MAX_PAGE = 200

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Admin:
    """Who administers: account, role, the key of what the role covers, where from, and
    the county the account works in (it manages and creates accounts of that county only)."""

    user: str
    role: Role
    scope_key: str = ""
    ip: str | None = None
    county: str = DEFAULT_COUNTY

    def administrator(self) -> Administrator:
        """The domain's view of the caller, for the scope rules."""
        return Administrator(role=self.role, scope_key=self.scope_key)


@dataclass(frozen=True)
class Account:
    """An account as administrators see it (never its hashes)."""

    username: str
    display_name: str
    role: Role
    scope_key: str
    active: bool
    activated: bool
    source: str
    township: str | None
    org_name: str | None
    created_at: datetime
    updated_at: datetime | None
    password_changed_at: datetime | None
    code_expires_at: datetime | None
    code_used_at: datetime | None


@dataclass(frozen=True)
class IssuedCode:
    """A code just issued for ``account``: shown once, never stored in clear."""

    account: Account
    code: str
    expires_at: datetime
    #: Whether the code was also mailed to the person (see ``code_mail``).
    mail: MailOutcome = MailOutcome.NONE

    @property
    def mailed(self) -> bool:
        """The person's own mailbox got the code."""
        return self.mail is MailOutcome.SENT


@dataclass(frozen=True)
class AccountFilter:
    """What to list: text in the username or display name, role, scope key, township (the
    committee, its organisations' secretaries and the instructors serving there), active,
    activated."""

    q: str | None = None
    role: Role | None = None
    scope_key: str | None = None
    township: str | None = None
    active: bool | None = None
    activated: bool | None = None


@dataclass(frozen=True)
class AccountPage:
    """One page of accounts and how many match in all."""

    items: list[Account]
    total: int
    offset: int
    limit: int


# ----- reading --------------------------------------------------------------------------------


def _township_orgs(township: str, county: str) -> Any:
    return select(OrganisationRow.org_id).where(
        OrganisationRow.county == county, OrganisationRow.township == township
    )


def _township_instructors(township: str, county: str) -> Any:
    return select(OrganisationRow.instructor).where(
        OrganisationRow.county == county, OrganisationRow.township == township
    )


def in_township(township: str, county: str) -> ColumnElement[bool]:
    """Accounts that belong to ``county``'s ``township`` (township names repeat across
    counties): its committee, its organisations' secretaries and their instructors."""
    return and_(
        UserRow.county == county,
        or_(
            and_(UserRow.role == Role.TOWNSHIP.value, UserRow.scope_key == township),
            and_(
                UserRow.role == Role.SECRETARY.value,
                UserRow.scope_key.in_(_township_orgs(township, county)),
            ),
            and_(
                UserRow.role == Role.INSTRUCTOR.value,
                UserRow.scope_key.in_(_township_instructors(township, county)),
            ),
        ),
    )


def visible(admin: Admin) -> ColumnElement[bool]:
    """The SQL form of :func:`domain.accounts.manages` for listing, inside the admin's
    county."""
    if admin.role is Role.COUNTY_OFFICE:
        return UserRow.county == admin.county
    if admin.role is Role.TOWNSHIP:
        return and_(
            UserRow.county == admin.county,
            UserRow.role == Role.SECRETARY.value,
            UserRow.scope_key.in_(_township_orgs(admin.scope_key, admin.county)),
        )
    return false()


def _conditions(admin: Admin, wanted: AccountFilter) -> list[ColumnElement[bool]]:
    conditions = [visible(admin)]
    if wanted.q:
        text = wanted.q.strip()
        conditions.append(
            or_(
                UserRow.username.contains(text, autoescape=True),
                UserRow.display_name.contains(text, autoescape=True),
            )
        )
    if wanted.role is not None:
        conditions.append(UserRow.role == wanted.role.value)
    if wanted.scope_key is not None:
        conditions.append(UserRow.scope_key == wanted.scope_key)
    if wanted.township:
        conditions.append(in_township(wanted.township, admin.county))
    if wanted.active is not None:
        conditions.append(UserRow.active.is_(wanted.active))
    if wanted.activated is not None:
        conditions.append(
            UserRow.password_hash.is_not(None)
            if wanted.activated
            else UserRow.password_hash.is_(None)
        )
    return conditions


def _account(row: UserRow, org: OrganisationRow | None, code: ActivationCodeRow | None) -> Account:
    role = Role(row.role)
    township: str | None = None
    if role is Role.TOWNSHIP:
        township = row.scope_key
    elif role is Role.SECRETARY and org is not None:
        township = org.township
    return Account(
        username=row.username,
        display_name=row.display_name,
        role=role,
        scope_key=row.scope_key,
        active=row.active,
        activated=row.password_hash is not None,
        source=row.source,
        township=township,
        org_name=org.name if org is not None and role is Role.SECRETARY else None,
        created_at=row.created_at,
        updated_at=row.updated_at,
        password_changed_at=row.password_changed_at,
        code_expires_at=code.expires_at if code is not None else None,
        code_used_at=code.used_at if code is not None else None,
    )


def load_account(session: Session, row: UserRow) -> Account:
    org = session.get(OrganisationRow, row.scope_key) if row.role == Role.SECRETARY else None
    return _account(row, org, session.get(ActivationCodeRow, row.username))


def authorise(admin: Admin) -> None:
    """Only the county office and township committees administer accounts: :class:`Refused`
    (``forbidden``, 403) for anyone else."""
    if not may_administer(admin.administrator()):
        raise Refused("forbidden", _FORBIDDEN)


def list_accounts(
    session: Session, admin: Admin, wanted: AccountFilter, *, offset: int = 0, limit: int = 50
) -> AccountPage:
    """The accounts ``admin`` manages that match ``wanted``, by username, one page."""
    authorise(admin)
    offset = max(offset, 0)
    limit = min(max(limit, 1), MAX_PAGE)
    conditions = _conditions(admin, wanted)
    total = session.scalar(select(func.count()).select_from(UserRow).where(*conditions)) or 0
    stmt = (
        select(UserRow, OrganisationRow, ActivationCodeRow)
        .outerjoin(
            OrganisationRow,
            and_(UserRow.role == Role.SECRETARY.value, OrganisationRow.org_id == UserRow.scope_key),
        )
        .outerjoin(ActivationCodeRow, ActivationCodeRow.username == UserRow.username)
        .where(*conditions)
        .order_by(UserRow.username)
        .offset(offset)
        .limit(limit)
    )
    items = [_account(u, o, c) for u, o, c in session.execute(stmt).all()]
    return AccountPage(items=items, total=total, offset=offset, limit=limit)


def _scope_of(session: Session, role: Role, scope_key: str) -> AccountScope:
    township: str | None = None
    if role is Role.TOWNSHIP:
        township = scope_key
    elif role is Role.SECRETARY:
        org = session.get(OrganisationRow, scope_key)
        township = org.township if org is not None else None
    return AccountScope(role=role, scope_key=scope_key, township=township)


def _managed(session: Session, admin: Admin, username: str) -> UserRow:
    """The account, if ``admin`` manages it; :class:`NotFound` otherwise (same as absent)."""
    authorise(admin)
    row = session.get(UserRow, username)
    # Another county's account is as absent as an unknown one.
    if (
        row is None
        or row.county != admin.county
        or not manages(admin.administrator(), _scope_of(session, Role(row.role), row.scope_key))
    ):
        raise NotFound(_NO_ACCOUNT)
    return row


def get_account(session: Session, admin: Admin, username: str) -> Account:
    """One account ``admin`` manages."""
    return load_account(session, _managed(session, admin, username))


# ----- writing --------------------------------------------------------------------------------


def account_audit(
    session: Session,
    admin: Admin,
    action: str,
    row: UserRow,
    now: datetime,
    detail: dict[str, Any],
) -> None:
    """Record ``action`` on the account ``row`` by ``admin`` (``detail`` names the account)."""
    session.add(
        AuditRow(
            audit_id=f"{action}/{row.username}/{now.isoformat()}/{uuid.uuid4().hex[:8]}",
            user=admin.user,
            role=admin.role.value,
            action=action,
            round_id=None,
            # A secretary's account is about their organisation: the audit log filters by it.
            org_id=row.scope_key if row.role == Role.SECRETARY else None,
            ip=admin.ip,
            at=now,
            detail={"username": row.username, **detail},
        )
    )


def issue_code(session: Session, admin: Admin, row: UserRow, now: datetime) -> tuple[str, datetime]:
    """A new code for ``row``, replacing any earlier one; only its hash is stored."""
    code = new_activation_code()
    expires_at = now + CODE_LIFETIME
    # Codes are hashed like passwords (argon2id, ``services.sign_in``: one hasher).
    code_hash = hash_password(normalise_code(code))
    existing = session.get(ActivationCodeRow, row.username)
    if existing is None:
        session.add(
            ActivationCodeRow(
                username=row.username,
                code_hash=code_hash,
                expires_at=expires_at,
                created_at=now,
                created_by=admin.user,
                used_at=None,
            )
        )
    else:
        existing.code_hash = code_hash
        existing.expires_at = expires_at
        existing.created_at = now
        existing.created_by = admin.user
        existing.used_at = None
    return code, expires_at


@dataclass(frozen=True)
class PendingMail:
    """A code to mail once its transaction has committed, and what its audit row needs."""

    mail: CodeMail
    org_id: str | None


def _mail_keys(session: Session, row: UserRow) -> list[str]:
    """The keys the channels file may list this person under: the account's scope key, and
    for a secretary also their name (notices address secretaries by name), but only when the
    account is the roster's own for the organisation's current secretary and no other
    organisation has a secretary of that name: a namesake must never get someone's code."""
    keys = [row.scope_key] if row.scope_key else []
    if row.role == Role.SECRETARY.value:
        org = session.get(OrganisationRow, row.scope_key)
        if (
            org is not None
            and org.active
            and row.username == secretary_username(org.org_id, org.secretary)
        ):
            namesakes = session.scalar(
                select(func.count())
                .select_from(OrganisationRow)
                .where(OrganisationRow.secretary == org.secretary, OrganisationRow.active.is_(True))
            )
            if namesakes == 1:
                keys.append(org.secretary)
    return keys


def pending_mail(
    session: Session,
    mailer: CodeMailer | None,
    row: UserRow,
    code: str,
    expires_at: datetime,
    reason: IssueReason,
) -> PendingMail | None:
    """The mail for a code just issued to ``row``, if the person has an address of their own
    (an inactive account cannot activate: it gets no mail)."""
    if mailer is None or not row.active:
        return None
    # Keys repeat across counties (an instructor's name): the own county's entry only.
    address = mailer.personal_address(
        Role(row.role), _mail_keys(session, row), row.county or DEFAULT_COUNTY
    )
    if address is None:
        return None
    mail = CodeMail(
        username=row.username,
        display_name=row.display_name,
        address=address,
        code=code,
        expires_at=expires_at,
        reason=reason,
    )
    return PendingMail(mail=mail, org_id=row.scope_key if row.role == Role.SECRETARY else None)


def send_codes(
    sessions: sessionmaker[Session],
    admin: Admin,
    mailer: CodeMailer | None,
    pending: Sequence[PendingMail],
    now: datetime,
) -> dict[str, MailOutcome]:
    """Mail the committed codes of ``pending`` and audit each outcome (``account.code_mail``:
    to whom and whether it went out, never the code). Outcomes by username."""
    if mailer is None or not pending:
        return {}
    sent = mailer.send([p.mail for p in pending])
    outcomes = {
        p.mail.username: MailOutcome.SENT if p.mail.username in sent else MailOutcome.FAILED
        for p in pending
    }
    try:
        with sessions.begin() as session:
            for p in pending:
                session.add(
                    AuditRow(
                        audit_id=(
                            f"account.code_mail/{p.mail.username}/{now.isoformat()}/"
                            f"{uuid.uuid4().hex[:8]}"
                        ),
                        user=admin.user,
                        role=admin.role.value,
                        action="account.code_mail",
                        round_id=None,
                        org_id=p.org_id,
                        ip=admin.ip,
                        at=now,
                        detail={
                            "username": p.mail.username,
                            "channel": "email",
                            "to": p.mail.address,
                            "via": p.mail.reason.value,
                            "mailed": outcomes[p.mail.username] is MailOutcome.SENT,
                        },
                    )
                )
    except Exception:
        # The codes are committed (and maybe mailed): losing them to a failed audit write
        # would leave the administrator with nothing to hand out.
        log.exception("activation code mail audit failed", usernames=list(outcomes))
    return outcomes


def invalid(problems: Sequence[FieldError], message: str = "请求参数有误") -> InvalidInput:
    """The 422 for ``problems``, one entry per field."""
    return InvalidInput(
        "invalid", message, [{"field": p.field, "reason": p.reason} for p in problems]
    )


def _check_scope(session: Session, role: Role, scope_key: str, county: str) -> None:
    """The scope names something ``county``'s roster has (a township, an organisation, an
    instructor); its shape is the domain's rule."""
    problems = check_scope_shape(role, scope_key)
    kind = SCOPE_KINDS[role]
    if (
        not problems
        and kind is ScopeKind.TOWNSHIP
        and session.get(TownshipRow, (county, scope_key)) is None
    ):
        problems = [FieldError("scope_key", "名册中没有这个乡镇（街道）")]
    if not problems and kind is ScopeKind.ORGANISATION:
        org = session.get(OrganisationRow, scope_key)
        if org is None or not org.active or org.county != county:
            problems = [FieldError("scope_key", "名册中没有这个组织（或它已不在名册中）")]
    if not problems and kind is ScopeKind.INSTRUCTOR:
        named = session.scalar(
            select(OrganisationRow.org_id)
            .where(OrganisationRow.county == county, OrganisationRow.instructor == scope_key)
            .limit(1)
        )
        if named is None:
            problems = [FieldError("scope_key", "名册中没有组织以此人为指导员")]
    if not problems and kind is ScopeKind.SYSTEM:
        keys = [g.key for g in county_groups(session, county)]
        if scope_key not in keys:
            problems = [FieldError("scope_key", f"本县没有这个指导小组，应为：{'、'.join(keys)}")]
    if problems:
        raise invalid(problems)


#: A 6-digit 行政区划代码: a county's code as deployments name them, whether or not that
#: county exists yet (its namespace is kept for it from the start).
_DIVISION_CODE = re.compile(r"[0-9]{6}")


def check_namespace(session: Session, username: str, county: str) -> None:
    """:class:`InvalidInput` naming ``username`` when the name is in another county's
    namespace, so an account of ``county`` may not have it.

    The roster names a county's accounts ``<county code>.<name>`` (the default county's
    without a prefix: ``services.roster.county_username``) and skips a name another county
    holds: an account named into another county's namespace took that county's township or
    secretary account away from it. So a name whose part before the first dot is another
    county's code (compared without case; the default county's code; any 6-digit code, a
    county that may come later) is refused, and so, in a county other than the default
    one, is an unprefixed name of the roster's shape (``township-…`` and the like: the
    default county's). The reason is the same whether or not such a county exists."""
    prefix, dot, _ = username.partition(".")
    if dot and prefix.casefold() != county.casefold():
        known = session.scalar(
            select(CountyRow.code).where(func.lower(CountyRow.code) == prefix.lower()).limit(1)
        )
        if (
            known is not None
            or prefix.casefold() == DEFAULT_COUNTY.casefold()
            or _DIVISION_CODE.fullmatch(prefix)
        ):
            own = "" if county == DEFAULT_COUNTY else f"，本县（区）的账号名可以“{county}.”开头"
            raise invalid([FieldError("username", f"账号名不能以其他县（区）的代码加“.”开头{own}")])
    if not dot and county != DEFAULT_COUNTY and username.startswith(ROSTER_USERNAME_STEMS):
        stems = "、".join(ROSTER_USERNAME_STEMS)
        raise invalid(
            [
                FieldError(
                    "username",
                    f"以 {stems} 开头的账号名在本县（区）应以“{county}.”开头",
                )
            ]
        )


def _check_display_name(display_name: str) -> None:
    """A name a reader sees (zero-width characters are not a name; a direction override
    could make one account look like another), stored as the roster import stores names
    (:func:`domain.text.clean_name`)."""
    problem = free_text_problem(display_name)
    if problem is not None and problem != BLANK_REASON:
        raise invalid([FieldError("display_name", f"姓名{problem}")])
    if problem is not None or len(display_name) > NAME:
        raise invalid([FieldError("display_name", f"姓名应为 1–{NAME} 个字符")])


def create_account(
    sessions: sessionmaker[Session],
    admin: Admin,
    *,
    username: str,
    display_name: str,
    role: Role,
    scope_key: str = "",
    now: datetime,
    mailer: CodeMailer | None = None,
) -> IssuedCode:
    """A new account without a password and its first activation code. The county office
    creates any account; a township committee only secretaries of its own organisations
    (anything else: :class:`Refused`, 403). A username in another county's namespace
    (:func:`check_namespace`) is :class:`InvalidInput` on ``username``; a taken one is
    :class:`Conflict`. The code is also mailed to the person's own address if ``mailer``
    knows one."""
    authorise(admin)
    if role in ABOVE_COUNTY_ROLES:
        # Their counties are the deployment's business: ``chuangzheng accounts create-supervisor``.
        raise Refused("forbidden", "市委、省委组织部的账号由部署管理员用命令行创建")
    problems = check_username(username)
    if problems:
        raise invalid(problems)
    _check_display_name(display_name)
    try:
        with sessions.begin() as session:
            if not manages(admin.administrator(), _scope_of(session, role, scope_key)):
                raise Refused("forbidden", "无权创建该角色或该范围的账号")
            # Another county's namespace is not this county's to fill (its roster then
            # found the name taken): refused before the scope, naming the username.
            check_namespace(session, username, admin.county)
            _check_scope(session, role, scope_key, admin.county)
            if session.get(UserRow, username) is not None:
                raise _taken()
            row = UserRow(
                username=username,
                display_name=clean_name(display_name),
                password_hash=None,
                role=role.value,
                scope_key=scope_key,
                active=True,
                created_at=now,
                source=AccountSource.ADMIN.value,
                session_version=0,
                updated_at=now,
                password_changed_at=None,
                county=admin.county,
            )
            session.add(row)
            session.flush()
            code, expires_at = issue_code(session, admin, row, now)
            pending = pending_mail(session, mailer, row, code, expires_at, IssueReason.CREATED)
            account_audit(
                session,
                admin,
                "account.create",
                row,
                now,
                {
                    "role": role.value,
                    "scope_key": scope_key,
                    "display_name": row.display_name,
                    "code_expires_at": expires_at.isoformat(),
                },
            )
            account = load_account(session, row)
    except IntegrityError:
        raise _taken() from None  # created concurrently by a retry of the same request
    mailed = send_codes(sessions, admin, mailer, [pending] if pending else [], now)
    return IssuedCode(
        account=account,
        code=code,
        expires_at=expires_at,
        mail=mailed.get(account.username, MailOutcome.NONE),
    )


def _taken() -> Conflict:
    return Conflict(
        "account_exists", "账号已存在", [{"field": "username", "reason": "账号已被使用"}]
    )


def _not_self(admin: Admin, row: UserRow, what: str) -> None:
    # The county office locking itself out would leave nobody to undo it.
    if row.username == admin.user:
        raise Conflict("own_account", f"不能{what}自己的账号")


def deactivate(
    sessions: sessionmaker[Session], admin: Admin, username: str, *, now: datetime
) -> Account:
    """Stop the account: it can no longer sign in or activate, and every session it holds
    ends (``session_version`` moves on). Deactivating an inactive account changes nothing."""
    with sessions.begin() as session:
        row = _managed(session, admin, username)
        _not_self(admin, row, "停用")
        if row.active:
            row.active = False
            row.session_version += 1
            row.updated_at = now
            account_audit(session, admin, "account.deactivate", row, now, {})
        return load_account(session, row)


def reactivate(
    sessions: sessionmaker[Session], admin: Admin, username: str, *, now: datetime
) -> Account:
    """Let the account sign in again (with the password it had, or activate if it has none).
    Reactivating an active account changes nothing."""
    with sessions.begin() as session:
        row = _managed(session, admin, username)
        if not row.active:
            row.active = True
            row.updated_at = now
            account_audit(session, admin, "account.reactivate", row, now, {})
        return load_account(session, row)


def reset(
    sessions: sessionmaker[Session],
    admin: Admin,
    username: str,
    *,
    now: datetime,
    mailer: CodeMailer | None = None,
) -> IssuedCode:
    """Clear the password, end every session and issue a new activation code (replacing an
    earlier one): the person sets a new password with it. The code is also mailed to the
    person's own address if ``mailer`` knows one."""
    with sessions.begin() as session:
        row = _managed(session, admin, username)
        row.password_hash = None
        row.session_version += 1
        row.updated_at = now
        code, expires_at = issue_code(session, admin, row, now)
        pending = pending_mail(session, mailer, row, code, expires_at, IssueReason.RESET)
        account_audit(
            session, admin, "account.reset", row, now, {"code_expires_at": expires_at.isoformat()}
        )
        account = load_account(session, row)
    mailed = send_codes(sessions, admin, mailer, [pending] if pending else [], now)
    return IssuedCode(
        account=account,
        code=code,
        expires_at=expires_at,
        mail=mailed.get(account.username, MailOutcome.NONE),
    )


def change(
    sessions: sessionmaker[Session],
    admin: Admin,
    username: str,
    *,
    display_name: str | None = None,
    role: Role | None = None,
    scope_key: str | None = None,
    now: datetime,
) -> Account:
    """Change the display name, role or scope. The account must be the caller's to manage
    before and after (a township moves a secretary only between its own organisations:
    otherwise :class:`Refused`, 403). Nothing changed: nothing written, nothing audited."""
    if display_name is not None:
        _check_display_name(display_name)
    with sessions.begin() as session:
        row = _managed(session, admin, username)
        new_role = role if role is not None else Role(row.role)
        if new_role in ABOVE_COUNTY_ROLES and new_role.value != row.role:
            # Their counties are the deployment's business (``create-supervisor``).
            raise Refused("forbidden", "市委、省委组织部的账号由部署管理员用命令行创建")
        if (
            role is not None
            and scope_key is None
            and SCOPE_KINDS[role] is not SCOPE_KINDS[Role(row.role)]
        ):
            raise invalid([FieldError("scope_key", "改变角色时须同时指定新的范围")])
        new_scope = scope_key if scope_key is not None else row.scope_key
        if new_role.value != row.role or new_scope != row.scope_key:
            _not_self(admin, row, "更改角色或范围")
            if not manages(admin.administrator(), _scope_of(session, new_role, new_scope)):
                raise Refused("forbidden", "无权把账号改为该角色或该范围")
            _check_scope(session, new_role, new_scope, row.county)
        before = {"display_name": row.display_name, "role": row.role, "scope_key": row.scope_key}
        after = {
            "display_name": clean_name(display_name)
            if display_name is not None
            else row.display_name,
            "role": new_role.value,
            "scope_key": new_scope,
        }
        if after != before:
            row.display_name = after["display_name"]
            row.role = after["role"]
            row.scope_key = after["scope_key"]
            row.updated_at = now
            changed = {
                k: {"from": before[k], "to": after[k]} for k in after if after[k] != before[k]
            }
            account_audit(session, admin, "account.update", row, now, {"changed": changed})
        return load_account(session, row)


def upsert_user(
    session: Session,
    *,
    username: str,
    display_name: str,
    password: str | None = None,
    password_hash: str | None = None,
    role: Role,
    scope_key: str = "",
    source: AccountSource = AccountSource.ADMIN,
    county: str = DEFAULT_COUNTY,
) -> None:
    """Create or update an account, ready to sign in, from a password (hashed here) or a
    ready argon2 hash: for the demo county's accounts and for tests; people of a real county
    get theirs from the roster or the admin page, activated with a one-time code."""
    if (password is None) == (password_hash is None):
        raise ValueError("give exactly one of password and password_hash")
    table = metadata.tables[UserRow.__tablename__]
    values = {
        "username": username,
        "display_name": display_name,
        "password_hash": password_hash or hash_password(password or ""),
        "role": role.value,
        "scope_key": scope_key,
        "active": True,
        "source": source.value,
        "created_at": datetime.now(UTC),
        "county": county,
    }
    stmt = upsert_insert(session, table).values(values)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["username"],
            set_={k: stmt.excluded[k] for k in values if k not in ("username", "created_at")},
        )
    )
