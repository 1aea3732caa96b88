"""Activation: a person's own activation with their one-time code, and a township's printed
activation list (the county office's, or a township committee's for its own township),
which issues a code to every account there not yet activated.

Issuing one code and mailing it are :mod:`chuangzheng.services.accounts`' (creating and
resetting an account issue one in the same transaction); this module builds on them and on
that module's scope rules and audit. A person's activation is audited as ``account.activate``, each
code on a printed list as ``account.issue_code`` (and its mail as ``account.code_mail``).
Synchronous SQLAlchemy: callers run these functions in worker threads, never on an event
loop.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session, sessionmaker

from activities.tables import ActivationCodeRow, OrganisationRow, TownshipRow, UserRow
from chuangzheng.services.accounts import (
    Account,
    Admin,
    PendingMail,
    account_audit,
    authorise,
    in_township,
    invalid,
    issue_code,
    load_account,
    pending_mail,
    send_codes,
    visible,
)
from chuangzheng.services.code_mail import CodeMailer, IssueReason, MailOutcome
from chuangzheng.services.errors import InvalidInput, NotFound
from chuangzheng.services.sign_in import (
    hash_password,
    name_of_county,
    personal_words,
    place_words,
    verify_password,
)
from domain.accounts import normalise_code, password_problems
from domain.organisation import Role

#: The one refusal for every bad activation (unknown account, inactive account, wrong,
#: used or expired code): saying which would help someone guessing.
BAD_CODE = "账号或激活码不正确，或激活码已使用、已过期"

# The order accounts are printed in on a township's list: the committee, instructors, then
# the secretaries by organisation.
_PRINT_ORDER = {Role.TOWNSHIP: 0, Role.INSTRUCTOR: 1, Role.SECRETARY: 2}


@dataclass(frozen=True)
class ActivationEntry:
    """One line of a printed activation list."""

    township: str
    org_name: str
    role: Role
    display_name: str
    username: str
    code: str
    expires_at: datetime
    #: Whether the code was also mailed to the person (see ``code_mail``).
    mail: MailOutcome = MailOutcome.NONE

    @property
    def mailed(self) -> bool:
        """The person's own mailbox got the code."""
        return self.mail is MailOutcome.SENT


@dataclass(frozen=True)
class ActivationSheet:
    """A township's printed activation list: every account there not yet activated, each
    with a code issued now (printing again replaces these codes)."""

    township: str
    issued_at: datetime
    issued_by: str
    entries: list[ActivationEntry] = field(default_factory=list)


# ----- a person's activation ------------------------------------------------------------------


def activate(
    sessions: sessionmaker[Session],
    *,
    username: str,
    code: str,
    new_password: str,
    ip: str | None,
    now: datetime,
) -> Account:
    """Set the first (or, after a reset, a new) password with a one-time code: the code is
    spent, every earlier session ends. A weak password is :class:`InvalidInput` with every
    reason (a password of the person's own name or its pinyin only once the code is
    checked); any problem with the account or code is one :class:`InvalidInput` (``code``)
    that does not say which (see :data:`BAD_CODE`)."""
    problems = password_problems(new_password, username)
    if problems:
        raise invalid(problems, "新密码不符合要求")
    refusal = InvalidInput(
        "invalid_activation_code", BAD_CODE, [{"field": "code", "reason": BAD_CODE}]
    )
    with sessions.begin() as session:
        row = session.get(UserRow, username)
        pending = session.get(ActivationCodeRow, username)
        # Without a code the dummy hash is checked, so the answer takes as long: the form
        # cannot tell which usernames have a code waiting.
        if not verify_password(pending.code_hash if pending else None, normalise_code(code)):
            raise refusal
        if row is None or pending is None or not row.active:
            raise refusal
        if pending.used_at is not None or pending.expires_at <= now:
            raise refusal
        # The person's name (and its pinyin) only now, with the code checked: refused before,
        # it would tell anyone guessing that the account exists, and whose it is.
        named = password_problems(
            new_password,
            username,
            personal_words(row.display_name),
            place_words(name_of_county(session, row.county)),
        )
        if named:
            raise invalid(named, "新密码不符合要求")
        # Spend the code only if nobody spent it meanwhile: two concurrent activations, one
        # password.
        spent = session.execute(
            update(ActivationCodeRow)
            .where(ActivationCodeRow.username == username, ActivationCodeRow.used_at.is_(None))
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        if getattr(spent, "rowcount", 0) != 1:
            raise refusal
        row.password_hash = hash_password(new_password)
        row.password_changed_at = now
        row.updated_at = now
        row.session_version += 1
        person = Admin(
            user=row.username,
            role=Role(row.role),
            scope_key=row.scope_key,
            ip=ip,
            county=row.county,
        )
        account_audit(session, person, "account.activate", row, now, {})
        session.flush()
        session.expire(pending)
        return load_account(session, row)


# ----- a township's printed list ----------------------------------------------------------------


def _home_townships(session: Session, instructors: Iterable[str], county: str) -> dict[str, str]:
    """Each instructor's township for the printed lists: where most of their organisations
    are (ties: the first by name), so every instructor is on exactly one list and printing
    another township's list does not replace their code."""
    names = list(instructors)
    if not names:
        return {}
    counts: dict[str, Counter[str]] = {}
    stmt = select(OrganisationRow.instructor, OrganisationRow.township).where(
        OrganisationRow.county == county,
        OrganisationRow.instructor.in_(names),
        OrganisationRow.active.is_(True),
    )
    for instructor, township in session.execute(stmt).all():
        counts.setdefault(instructor, Counter())[township] += 1
    return {name: min(counter, key=lambda t: (-counter[t], t)) for name, counter in counts.items()}


def issue_township_codes(
    sessions: sessionmaker[Session],
    admin: Admin,
    township: str,
    *,
    now: datetime,
    mailer: CodeMailer | None = None,
) -> ActivationSheet:
    """Issue a code to every active account of ``township`` not yet activated that
    ``admin`` manages (the committee, its organisations' secretaries, the instructors whose
    organisations are mostly there) and return them for printing. Only hashes are kept, so
    printing IS issuing: printing again replaces the earlier codes of these accounts. Each
    person with an address of their own in ``mailer``'s file is also mailed their code (the
    list marks who)."""
    authorise(admin)
    with sessions.begin() as session:
        if session.get(TownshipRow, (admin.county, township)) is None or (
            admin.role is Role.TOWNSHIP and admin.scope_key != township
        ):
            raise NotFound("乡镇（街道）不存在或不在管理范围内")
        stmt = (
            select(UserRow, OrganisationRow)
            .outerjoin(
                OrganisationRow,
                and_(
                    UserRow.role == Role.SECRETARY.value,
                    OrganisationRow.org_id == UserRow.scope_key,
                ),
            )
            .where(
                in_township(township, admin.county),
                visible(admin),
                UserRow.active.is_(True),
                UserRow.password_hash.is_(None),
            )
        )
        candidates = list(session.execute(stmt).all())
        homes = _home_townships(
            session,
            (u.scope_key for u, _ in candidates if u.role == Role.INSTRUCTOR),
            admin.county,
        )
        entries: list[ActivationEntry] = []
        pending: list[PendingMail] = []
        for row, org in candidates:
            role = Role(row.role)
            if role is Role.INSTRUCTOR and homes.get(row.scope_key) != township:
                continue
            if role is Role.SECRETARY and (org is None or not org.active):
                continue  # the organisation left the roster
            code, expires_at = issue_code(session, admin, row, now)
            mail = pending_mail(session, mailer, row, code, expires_at, IssueReason.ACTIVATION_LIST)
            if mail is not None:
                pending.append(mail)
            account_audit(
                session,
                admin,
                "account.issue_code",
                row,
                now,
                {
                    "via": "activation_list",
                    "township": township,
                    "code_expires_at": expires_at.isoformat(),
                },
            )
            entries.append(
                ActivationEntry(
                    township=township,
                    org_name=org.name if org is not None else "",
                    role=role,
                    display_name=row.display_name,
                    username=row.username,
                    code=code,
                    expires_at=expires_at,
                )
            )
    mailed = send_codes(sessions, admin, mailer, pending, now)
    entries = [replace(e, mail=mailed[e.username]) if e.username in mailed else e for e in entries]
    entries.sort(key=lambda e: (_PRINT_ORDER.get(e.role, 9), e.org_name, e.username))
    return ActivationSheet(township=township, issued_at=now, issued_by=admin.user, entries=entries)


def townships(session: Session, admin: Admin) -> list[str]:
    """The townships whose lists ``admin`` may print: all for the county office, its own
    for a township committee."""
    authorise(admin)
    if admin.role is Role.TOWNSHIP:
        return [admin.scope_key]
    return list(
        session.scalars(
            select(TownshipRow.name)
            .where(TownshipRow.county == admin.county)
            .order_by(TownshipRow.name)
        )
    )
