"""Signing in, the use cases: with a password (the API and the login page), with the county's
identity provider (OpenID Connect, see :mod:`chuangzheng.oidc`), renewing a token, signing
out; and checking a token on every request.

Every sign-in opens a session (a ``sign_in_sessions`` row). Its token is short-lived
(``session_token_minutes``) and names the session (``sid``) and the account's
``session_version`` (``sv``); a request is served only while the session is neither revoked
nor expired and the account is active at the same version (deactivation, a reset or a new
password bump it and so end every session at once). Renewal issues a new token for the same
session, never past ``session_max_hours`` after the sign-in.

Failed password sign-ins are counted per account and per address (``sign_in_throttle``, so
every API process sees the same counts) with the rule of :mod:`domain.throttle`; a blocked
key is refused with :class:`Throttled` before the password is looked at, even a right one.
Every password check is counted as a failure before it runs (a short transaction of its
own, under a lock of the two keys, committed), then the password is checked with no
transaction open, and a right password clears the account's count and gives the address
its attempt back: however many guesses arrive at once, no more are checked than the policy
allows failures before the block, and one slow check never holds up anyone else's.
An unknown account, an account not activated yet (no password) and a wrong password are one
refusal, verified against a dummy hash so they take the same time.

A signed-in person changes their own password (:func:`change_password`) with the current
one: a wrong current password is a failed sign-in (counted, and refused while blocked), the
new one obeys :func:`domain.accounts.password_problems` (their name in pinyin included, see
:func:`personal_words`), and the change ends every other session (the version moves on) while
the caller's own session goes on with a new token.

Sign-ins, refusals, sign-outs and password changes are audited (never the password). Callers
pass a session and the use cases commit what they write, refusals included.
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import jwt
from argon2.exceptions import InvalidHashError, VerificationError
from pypinyin import Style, pinyin
from sqlalchemy import Integer, cast, delete, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from activities.db import delete_in_batches, upsert_insert, write_lock
from activities.tables import AuditRow, UserRow, metadata
from activities.tables.access import AccountCountyRow, SignInSessionRow, SignInThrottleRow
from activities.tables.roster import CountyRow
from chuangzheng.services.contact_points import contact_organisations
from chuangzheng.services.errors import Conflict, InvalidInput, ServiceError
from chuangzheng.services.password_hashing import HASHER
from chuangzheng.settings import Settings
from domain.accounts import password_problems
from domain.organisation import ABOVE_COUNTY_ROLES, DEFAULT_COUNTY, Role
from domain.throttle import (
    ThrottleCounter,
    ThrottlePolicy,
    after_failure,
    remaining_block,
    retry_after_seconds,
)

TOKEN_ALGORITHM = "HS256"
_HASHER = HASHER
# Verifying against a dummy hash when the account does not exist (or has no password yet)
# keeps response times equal, so the login cannot tell which usernames exist.
_DUMMY_HASH = _HASHER.hash("not-a-password")
# Throttle keys are stored whole; what someone types as a username is cut to fit.
_KEY_ROOM = 200
_BAD_CREDENTIALS = "用户名或密码错误"


class SignInVia(StrEnum):
    """How a session was opened."""

    API = "api"
    PAGE = "ui"
    OIDC = "oidc"


class SignInAction(StrEnum):
    """The audit log's actions for signing in and out, and for a person's change of their
    own password."""

    SIGN_IN = "login"
    SIGN_IN_FAILED = "login_failed"
    SIGN_OUT = "logout"
    PASSWORD_CHANGED = "account.change_password"


class FailureReason(StrEnum):
    """Why a sign-in was refused, as the audit log records it (the caller only ever learns
    "wrong username or password" or "too many attempts")."""

    BAD_CREDENTIALS = "bad_credentials"
    THROTTLED = "throttled"
    NO_ACCOUNT_FOR_IDENTITY = "no_account_for_identity"


@dataclass(frozen=True)
class User:
    """The caller: account, display name, role and the key of what the role covers (for a
    leading cadre, also the organisations of their contact points, read with the token),
    and the county the account works in. A city or province office works in no county of
    its own: ``supervised`` names the counties it reads (read with the token)."""

    username: str
    display_name: str
    role: Role
    scope_key: str
    contact_orgs: frozenset[str] = frozenset()
    county: str = DEFAULT_COUNTY
    supervised: frozenset[str] = frozenset()

    @property
    def counties(self) -> frozenset[str]:
        """The counties whose organisations and rounds the account may see at all."""
        return self.supervised if self.role in ABOVE_COUNTY_ROLES else frozenset({self.county})


@dataclass(frozen=True)
class SignedIn:
    """A token for ``user``'s session ``session_id``, valid until ``expires_at``."""

    user: User
    token: str
    session_id: str
    expires_at: datetime


@dataclass(frozen=True)
class Authenticated:
    """A checked token: whose it is, its session and when the token itself expires."""

    user: User
    session_id: str
    expires_at: datetime


class SignInRefused(ServiceError):
    """Not signed in: bad credentials, an expired or revoked token, an inactive account
    (``code`` ``unauthorized``: the API answers 401)."""

    def __init__(self, message: str = "请先登录") -> None:
        super().__init__("unauthorized", message)


class Throttled(ServiceError):
    """Too many failed sign-ins for the account or from the address: try again after
    ``retry_after`` seconds (the API answers 429 with ``Retry-After``)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            "too_many_attempts", f"登录失败次数过多，请 {wait_text(retry_after)}后再试"
        )
        self.retry_after = retry_after


def wait_text(seconds: int) -> str:
    """A wait in Chinese words: ``45 秒``, ``3 分钟``, ``1 小时 5 分钟``."""
    if seconds < 60:
        return f"{seconds} 秒"
    minutes = -(-seconds // 60)
    if minutes < 60:
        return f"{minutes} 分钟"
    hours, rest = divmod(minutes, 60)
    return f"{hours} 小时" + (f" {rest} 分钟" if rest else "")


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``."""
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``password_hash``; no hash (an account not activated)
    is checked against the dummy hash, so it fails in the same time as a wrong password."""
    try:
        _HASHER.verify(password_hash or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    return password_hash is not None


def to_user(row: UserRow, supervised: Iterable[str] = ()) -> User:
    """The caller's view of a stored account (``supervised``: a city or province office's
    counties, see :func:`supervised_counties`)."""
    return User(
        username=row.username,
        display_name=row.display_name,
        role=Role(row.role),
        scope_key=row.scope_key,
        county=row.county or DEFAULT_COUNTY,
        supervised=frozenset(supervised),
    )


def supervised_counties(session: Session, username: str) -> frozenset[str]:
    """The counties a city or province office's account supervises."""
    return frozenset(
        session.scalars(
            select(AccountCountyRow.county).where(AccountCountyRow.username == username)
        )
    )


def token_lifetime(settings: Settings) -> timedelta:
    """How long one token lives."""
    return timedelta(minutes=settings.session_token_minutes)


def session_limit(settings: Settings) -> timedelta:
    """How long after signing in a session can be renewed."""
    return timedelta(hours=settings.session_max_hours)


def policies(settings: Settings) -> tuple[ThrottlePolicy, ThrottlePolicy]:
    """The throttle's rules for accounts and for addresses."""
    window = timedelta(minutes=settings.signin_window_minutes)
    block = timedelta(seconds=settings.signin_block_seconds)
    cap = timedelta(seconds=settings.signin_max_block_seconds)
    return (
        ThrottlePolicy(settings.signin_account_failures, window, block, cap),
        ThrottlePolicy(settings.signin_address_failures, window, block, cap),
    )


def account_key(username: str) -> str:
    """The throttle key of an account (whether or not it exists)."""
    return f"account:{username[:_KEY_ROOM]}"


def address_key(ip: str | None) -> str:
    """The throttle key of a client address."""
    return f"address:{(ip or 'unknown')[:_KEY_ROOM]}"


# ----- tokens -----


def issue_token(
    *, username: str, session_id: str, session_version: int, expires_at: datetime, now: datetime,
    settings: Settings,
) -> str:  # fmt: skip
    """A signed token for one session of ``username``."""
    claims = {
        "sub": username,
        "sid": session_id,
        "sv": session_version,
        "iat": now,
        "exp": expires_at,
        # Two tokens issued in the same second (a renewal right after signing in) differ.
        "jti": uuid.uuid4().hex[:16],
    }
    return jwt.encode(claims, settings.secret_key, algorithm=TOKEN_ALGORITHM)


def _claims(token: str, settings: Settings, *, verify_exp: bool = True) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            settings.secret_key,
            algorithms=[TOKEN_ALGORITHM],
            options={"require": ["sub", "sid", "sv", "exp"], "verify_exp": verify_exp},
        )
    except jwt.ExpiredSignatureError:
        raise SignInRefused("登录已过期，请重新登录") from None
    except jwt.InvalidTokenError:
        raise SignInRefused("登录凭证无效") from None
    if not isinstance(claims["sid"], str) or not isinstance(claims["sv"], int):
        raise SignInRefused("登录凭证无效")
    return claims


_SESSION = SignInSessionRow
# The one query behind every authenticated request: the account and the token's session.
_AUTHENTICATE = select(
    UserRow.username,
    UserRow.display_name,
    UserRow.role,
    UserRow.scope_key,
    UserRow.county,
    UserRow.active,
    UserRow.session_version,
    _SESSION.issued_at,
    _SESSION.expires_at,
    _SESSION.revoked_at,
).join(_SESSION, _SESSION.username == UserRow.username)


def authenticate(
    session: Session, token: str, settings: Settings, *, now: datetime | None = None
) -> Authenticated:
    """The account and session a token names, checked in one query: signature and expiry,
    the session neither revoked nor expired, the account active at the token's version."""
    claims = _claims(token, settings)
    now = now or datetime.now(UTC)
    row = session.execute(
        _AUTHENTICATE.where(_SESSION.session_id == claims["sid"], UserRow.username == claims["sub"])
    ).one_or_none()
    if row is None:
        raise SignInRefused("登录已失效，请重新登录")
    if not row.active:
        raise SignInRefused("账号已停用")
    if row.session_version != claims["sv"] or row.revoked_at is not None:
        raise SignInRefused("已退出登录或账号已变更，请重新登录")
    if row.expires_at <= now:
        raise SignInRefused("登录已过期，请重新登录")
    user = User(row.username, row.display_name, Role(row.role), row.scope_key, county=row.county)
    if user.role is Role.LEADING_CADRE:
        user = replace(user, contact_orgs=contact_organisations(session, user.scope_key))
    elif user.role in ABOVE_COUNTY_ROLES:
        # One more query, for the few accounts above the county only.
        user = replace(user, supervised=supervised_counties(session, user.username))
    expires_at = datetime.fromtimestamp(int(claims["exp"]), UTC)
    return Authenticated(user=user, session_id=claims["sid"], expires_at=expires_at)


# ----- the audit log -----


def _audit(
    session: Session,
    action: SignInAction,
    *,
    username: str,
    role: Role | None,
    ip: str | None,
    now: datetime,
    detail: dict[str, Any],
    org_id: str | None = None,
) -> None:
    session.add(
        AuditRow(
            # The random tail: two attempts in one microsecond (a script) are two rows.
            audit_id=f"{action.value}/{username[:64]}/{now.isoformat()}/{uuid.uuid4().hex[:8]}",
            user=username[:64],
            role=role.value if role else None,
            action=action.value,
            round_id=None,
            org_id=org_id,
            ip=ip,
            at=now,
            detail=detail,
        )
    )


# ----- signing in -----


def _open_session(
    session: Session, row: UserRow, *, via: SignInVia, ip: str | None, now: datetime,
    settings: Settings,
) -> SignedIn:  # fmt: skip
    session_id = uuid.uuid4().hex
    expires_at = min(now + token_lifetime(settings), now + session_limit(settings))
    session.add(
        SignInSessionRow(
            session_id=session_id,
            username=row.username,
            via=via.value,
            ip=ip,
            issued_at=now,
            expires_at=expires_at,
            renewed_at=None,
            revoked_at=None,
        )
    )
    token = issue_token(
        username=row.username,
        session_id=session_id,
        session_version=row.session_version or 0,
        expires_at=expires_at,
        now=now,
        settings=settings,
    )
    supervised = (
        supervised_counties(session, row.username)
        if Role(row.role) in ABOVE_COUNTY_ROLES
        else frozenset[str]()
    )
    return SignedIn(
        user=to_user(row, supervised), token=token, session_id=session_id, expires_at=expires_at
    )


def _counters(session: Session, keys: Iterable[str], *, lock: bool) -> dict[str, ThrottleCounter]:
    query = select(SignInThrottleRow).where(SignInThrottleRow.key.in_(sorted(keys)))
    if lock:
        query = query.order_by(SignInThrottleRow.key).with_for_update()
    return {
        row.key: ThrottleCounter(
            failures=row.failures,
            first_failure_at=row.first_failure_at,
            last_failure_at=row.last_failure_at,
            blocked_until=row.blocked_until,
        )
        for row in session.scalars(query)
    }


#: The first half of the PostgreSQL advisory lock of a throttle key (the second is the
#: key's hash): a namespace of this module's own.
_ADVISORY_LOCK_CLASS = 0x535449  # "STI": sign-in throttle


def _locked_counters(session: Session, keys: Iterable[str]) -> dict[str, ThrottleCounter]:
    """The counters of ``keys``, locked until the transaction ends (keep it short: never
    around a password check). On SQLite: the database's write lock. On PostgreSQL: a
    transaction-scoped advisory lock per key, in the keys' order (no deadlock between two
    attempts), since ``FOR UPDATE`` locks no row that is not there yet, and two first
    failures of a key at once would both write a count of one."""
    write_lock(session, SignInThrottleRow)
    if session.get_bind().dialect.name == "postgresql":
        for key in sorted(keys):
            session.execute(
                select(
                    func.pg_advisory_xact_lock(
                        cast(_ADVISORY_LOCK_CLASS, Integer), func.hashtext(key)
                    )
                )
            )
    return _counters(session, keys, lock=True)


def _store_counter(session: Session, key: str, counter: ThrottleCounter | None) -> None:
    if counter is None:
        session.execute(delete(SignInThrottleRow).where(SignInThrottleRow.key == key))
        return
    values = {
        "key": key,
        "failures": counter.failures,
        "first_failure_at": counter.first_failure_at,
        "last_failure_at": counter.last_failure_at,
        "blocked_until": counter.blocked_until,
    }
    table = SignInThrottleRow.__table__
    stmt = upsert_insert(session, table).values(values)  # type: ignore[arg-type]
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["key"], set_={k: v for k, v in values.items() if k != "key"}
        )
    )


@dataclass(frozen=True)
class _Attempt:
    """A password check, counted as a failure before it runs: its keys (the account's and
    the address's) with their policies, and each key's counter before and after."""

    username: str
    keys: dict[str, ThrottlePolicy]
    before: dict[str, ThrottleCounter | None]
    after: dict[str, ThrottleCounter]


def _count_attempt(
    session: Session,
    settings: Settings,
    username: str,
    ip: str | None,
    now: datetime,
    detail: dict[str, Any],
) -> _Attempt:
    """Count a password check as a failed sign-in of the account and of the address before
    it runs, in a short transaction of its own (committed), unless either key is blocked:
    then :class:`Throttled`, audited and committed, before the password is looked at, even
    a right one. The checks in flight count, so however many arrive at once, no more of
    them run than the policy allows failures before the block."""
    account_policy, address_policy = policies(settings)
    keys = {account_key(username): account_policy, address_key(ip): address_policy}
    counters = _locked_counters(session, keys)
    waits = [
        wait for counter in counters.values() if (wait := remaining_block(counter, now)) is not None
    ]
    if waits:
        retry_after = retry_after_seconds(max(waits))
        _audit(
            session, SignInAction.SIGN_IN_FAILED, username=username, role=None, ip=ip, now=now,
            detail=detail | {"reason": FailureReason.THROTTLED.value, "retry_after": retry_after},
        )  # fmt: skip
        session.commit()
        raise Throttled(retry_after)
    after = {key: after_failure(counters.get(key), policy, now) for key, policy in keys.items()}
    for key, counter in after.items():
        _store_counter(session, key, counter)
    session.commit()
    return _Attempt(
        username=username, keys=keys, before={key: counters.get(key) for key in keys}, after=after
    )


def _given_back(
    current: ThrottleCounter | None,
    policy: ThrottlePolicy,
    before: ThrottleCounter | None,
    counted: ThrottleCounter,
) -> ThrottleCounter | None:
    """The counter ``current`` without one attempt that counted it from ``before`` to
    ``counted`` and turned out to be a right password: as if it had never been counted."""
    if current is None or current.first_failure_at != counted.first_failure_at:
        return current  # forgotten, or started afresh since: the attempt is not in it
    if current == counted:  # nothing counted since
        return before
    failures = current.failures - 1
    blocked_until = current.blocked_until
    if failures < policy.threshold:
        # Below the threshold nothing else in this count blocked the key.
        blocked_until = None
    elif blocked_until == counted.blocked_until and (
        before is None or before.blocked_until != counted.blocked_until
    ):
        blocked_until = before.blocked_until if before is not None else None
    return replace(current, failures=failures, blocked_until=blocked_until)


def _right_password(session: Session, attempt: _Attempt) -> None:
    """Settle an attempt whose password was right, in the caller's transaction (the caller
    commits, soon: the keys stay locked until then): the account's failures are cleared,
    the address gets its attempt back. Not the address's other failures: one good password
    must not reset what a guesser tried against other accounts from the same address."""
    own = account_key(attempt.username)
    counters = _locked_counters(session, attempt.keys)
    for key, policy in attempt.keys.items():
        if key == own:
            _store_counter(session, key, None)
            continue
        current = counters.get(key)
        settled = _given_back(current, policy, attempt.before[key], attempt.after[key])
        if settled != current:
            _store_counter(session, key, settled)


def sign_in(
    session: Session,
    *,
    username: str,
    password: str,
    ip: str | None,
    via: SignInVia,
    settings: Settings,
    now: datetime | None = None,
) -> SignedIn:
    """Check the password and open a session; :class:`Throttled` while the account or the
    address is blocked, :class:`SignInRefused` for any bad credentials (counted)."""
    now = now or datetime.now(UTC)
    row = session.get(UserRow, username)
    password_hash, active = (row.password_hash, row.active) if row else (None, False)
    attempt = _count_attempt(session, settings, username, ip, now, {"via": via.value})
    # No transaction is open here: other sign-ins go on while the password is checked.
    # Verified even for no account (against the dummy hash): the same time for every refusal.
    matches = verify_password(password_hash, password)
    if row is None or not matches or not active:
        # Counted already (see _count_attempt).
        _audit(
            session, SignInAction.SIGN_IN_FAILED, username=username, role=None, ip=ip, now=now,
            detail={"via": via.value, "reason": FailureReason.BAD_CREDENTIALS.value},
        )  # fmt: skip
        session.commit()
        raise SignInRefused(_BAD_CREDENTIALS)
    _right_password(session, attempt)
    signed_in = _open_session(session, row, via=via, ip=ip, now=now, settings=settings)
    _audit(
        session, SignInAction.SIGN_IN, username=row.username, role=signed_in.user.role, ip=ip,
        now=now, detail={"via": via.value, "session_id": signed_in.session_id},
    )  # fmt: skip
    session.commit()
    return signed_in


def sign_in_with_identity(
    session: Session,
    *,
    username: str,
    issuer: str,
    subject: str,
    ip: str | None,
    settings: Settings,
    now: datetime | None = None,
) -> SignedIn:
    """Open a session for the active account named by a verified ID token's claim;
    :class:`SignInRefused` (audited) when no active account has that name."""
    now = now or datetime.now(UTC)
    row = session.get(UserRow, username) if username else None
    if row is None or not row.active:
        _audit(
            session, SignInAction.SIGN_IN_FAILED, username=username or f"oidc:{subject}",
            role=None, ip=ip, now=now,
            detail={"via": SignInVia.OIDC.value,
                    "reason": FailureReason.NO_ACCOUNT_FOR_IDENTITY.value,
                    "issuer": issuer, "subject": subject},
        )  # fmt: skip
        session.commit()
        raise SignInRefused(
            f"统一身份认证账号“{username or subject}”在本系统中没有对应的启用账号，"
            "请联系县委创先争优办公室开通"
        )
    signed_in = _open_session(session, row, via=SignInVia.OIDC, ip=ip, now=now, settings=settings)
    _audit(
        session, SignInAction.SIGN_IN, username=row.username, role=signed_in.user.role, ip=ip,
        now=now, detail={"via": SignInVia.OIDC.value, "session_id": signed_in.session_id,
                         "issuer": issuer, "subject": subject},
    )  # fmt: skip
    session.commit()
    return signed_in


def renew(
    session: Session, token: str, settings: Settings, *, now: datetime | None = None
) -> SignedIn:
    """A new token for the same session, its expiry moved (never past the session's
    maximum); :class:`SignInRefused` for a bad token or a session at its maximum."""
    now = now or datetime.now(UTC)
    current = authenticate(session, token, settings, now=now)
    row = session.get(SignInSessionRow, current.session_id)
    user_row = session.get(UserRow, current.user.username)
    if row is None or user_row is None:  # gone since the check (a concurrent purge)
        raise SignInRefused("登录已过期，请重新登录")
    limit = row.issued_at + session_limit(settings)
    if limit <= now:
        raise SignInRefused("登录已超过最长时限，请重新登录")
    expires_at = min(now + token_lifetime(settings), limit)
    session.execute(
        update(SignInSessionRow)
        .where(SignInSessionRow.session_id == row.session_id)
        .values(expires_at=expires_at, renewed_at=now)
    )
    session.commit()
    token = issue_token(
        username=user_row.username,
        session_id=row.session_id,
        session_version=user_row.session_version or 0,
        expires_at=expires_at,
        now=now,
        settings=settings,
    )
    return SignedIn(
        user=current.user, token=token, session_id=row.session_id, expires_at=expires_at
    )


def sign_out(
    session: Session,
    token: str,
    settings: Settings,
    *,
    ip: str | None,
    now: datetime | None = None,
    strict: bool = True,
) -> bool:
    """Revoke the token's session (its every token stops working at once) and audit it.

    ``strict``: a token that is not valid is :class:`SignInRefused`; otherwise (the page's
    sign-out button, whose cookie may have expired) a well-signed token still revokes its
    session and anything else is ignored. Returns whether a session was revoked now."""
    now = now or datetime.now(UTC)
    if strict:
        current = authenticate(session, token, settings, now=now)
        username, session_id, role = current.user.username, current.session_id, current.user.role
    else:
        try:
            claims = _claims(token, settings, verify_exp=False)
        except SignInRefused:
            return False
        username, session_id, role = str(claims["sub"]), str(claims["sid"]), None
    revoked = session.execute(
        update(SignInSessionRow)
        .where(
            SignInSessionRow.session_id == session_id,
            SignInSessionRow.username == username,
            SignInSessionRow.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    done = bool(getattr(revoked, "rowcount", 0))
    if done:
        if role is None:
            account = session.get(UserRow, username)
            role = Role(account.role) if account else None
        _audit(
            session, SignInAction.SIGN_OUT, username=username, role=role, ip=ip, now=now,
            detail={"session_id": session_id},
        )  # fmt: skip
    session.commit()
    return done


# ----- changing one's own password -----

#: The most spellings of a name checked (a name of characters with several readings).
_MAX_SPELLINGS = 16
_WRONG_PASSWORD = "当前密码不正确"


def personal_words(display_name: str) -> tuple[str, ...]:
    """The person's own words a password of theirs may not be (``password_problems``'
    ``personal``): the display name and its pinyin, family name first and last, and the
    initials (李明: ``liming``, ``mingli``, ``lm``), in every reading of a character that has
    several (单: ``dan``, ``shan``).

    Accounts from a roster are named by office and person (``指导员崔晓``,
    ``胜利社区党支部书记邓峰兰``, ``县委活动办张三``): the last two and three Chinese
    characters of such a name are taken as the person's name too, since a Chinese name is
    two to three characters at the end of it (an outside operator activated
    ``cuixiao1985`` for 指导员崔晓)."""
    name = display_name.strip()
    if not name:
        return ()
    words: set[str] = set()
    for person in _person_names(name):
        words |= _name_words(person)
    return tuple(sorted(words))


def _person_names(name: str) -> list[str]:
    """``name``, and where it is longer than a person's name, its last two and three
    Chinese characters."""
    names = [name]
    tail = re.search(r"[\u4e00-\u9fff]+$", name)
    if tail is not None and len(tail.group()) > 3:
        names += [tail.group()[-2:], tail.group()[-3:]]
    return names


def _name_words(name: str) -> set[str]:
    readings = [
        list(dict.fromkeys(pinyin(c, style=Style.NORMAL, heteronym=True)[0]))
        for c in name
        if "\u4e00" <= c <= "\u9fff"
    ]
    words = {name}
    if readings:
        for spelling in itertools.islice(itertools.product(*readings), _MAX_SPELLINGS):
            words.add("".join(spelling))
            if len(spelling) > 1:
                words.add("".join(spelling[1:] + spelling[:1]))
                words.add("".join(s[:1] for s in spelling))
    return words


#: What a county's name may end with, and the name is said without as well (青石县: 青石).
_PLACE_ENDINGS = ("自治县", "县", "区", "市", "旗")


def place_words(county_name: str) -> tuple[str, ...]:
    """The words of a county a password may not be built on (``password_problems``'
    ``local``): its name with and without 县/区/市, and their pinyin (青石县: ``qingshixian``,
    ``qingshi``). A one-character stem (本县: 本) is not a word of its own."""
    name = county_name.strip()
    if not name:
        return ()
    names = {name}
    for ending in _PLACE_ENDINGS:
        if name.endswith(ending) and len(name) - len(ending) >= 2:
            names.add(name[: -len(ending)])
            break
    words = set(names)
    for word in names:
        spelled = "".join(s[0] for s in pinyin(word, style=Style.NORMAL))
        if spelled.isascii():
            words.add(spelled)
    return tuple(sorted(words))


def name_of_county(session: Session, county: str | None) -> str:
    """The name of an account's county ("" for an office above the counties)."""
    if county is None:
        county = DEFAULT_COUNTY
    if not county:
        return ""
    return session.scalar(select(CountyRow.name).where(CountyRow.code == county)) or ""


def new_password_problems(
    new_password: str,
    new_password_again: str,
    *,
    username: str,
    display_name: str,
    county_name: str = "",
) -> list[dict[str, str]]:
    """Every reason a person's new password is refused, as field errors: the two entries
    differ, or the password breaks the rule (``domain.accounts.password_problems``, with
    the person's name and its pinyin, and their county's name and its pinyin)."""
    problems = [
        {"field": p.field, "reason": p.reason}
        for p in password_problems(
            new_password, username, personal_words(display_name), place_words(county_name)
        )
    ]
    if new_password != new_password_again:
        problems.append({"field": "new_password_again", "reason": "两次输入的新密码不一致"})
    return problems


def change_password(
    session: Session,
    token: str,
    *,
    current_password: str,
    new_password: str,
    new_password_again: str,
    ip: str | None,
    via: SignInVia,
    settings: Settings,
    now: datetime | None = None,
) -> SignedIn:
    """The signed-in person (``token``) changes their own password. Checked in this order:
    the token (:class:`SignInRefused`); the new password, entered twice and obeying the rule
    (:class:`InvalidInput` with every reason, nothing counted); the throttle
    (:class:`Throttled` while the account or the address is blocked, even for the right
    password); the current password (wrong: :class:`InvalidInput` on ``current_password``,
    counted as a failed sign-in and audited as one). An account with no password (it signs
    in through the identity provider) is :class:`Conflict` (``no_password``).

    The change moves the account's session version on, so every other session of it ends at
    once (and is marked revoked); the caller's own session goes on under a new token, the
    answer, renewed as :func:`renew` would. Audited as ``account.change_password``."""
    now = now or datetime.now(UTC)
    current = authenticate(session, token, settings, now=now)
    username = current.user.username
    row = session.get(UserRow, username)
    if row is None:  # gone since the check (a concurrent purge)
        raise SignInRefused("登录已失效，请重新登录")
    problems = new_password_problems(
        new_password,
        new_password_again,
        username=username,
        display_name=row.display_name,
        county_name=name_of_county(session, row.county),
    )
    if problems:
        raise InvalidInput("invalid", "新密码不符合要求", problems)
    if row.password_hash is None:
        raise Conflict(
            "no_password", "该账号通过统一身份认证登录，没有本系统的密码，请在统一身份认证处修改"
        )
    detail = {"via": via.value, "during": SignInAction.PASSWORD_CHANGED.value}
    password_hash = row.password_hash
    attempt = _count_attempt(session, settings, username, ip, now, detail)
    # No transaction is open here: other sign-ins go on while the password is checked.
    if not verify_password(password_hash, current_password):
        # Counted already (see _count_attempt).
        _audit(
            session, SignInAction.SIGN_IN_FAILED, username=username, role=None, ip=ip, now=now,
            detail=detail | {"reason": FailureReason.BAD_CREDENTIALS.value},
        )  # fmt: skip
        session.commit()
        field = [{"field": "current_password", "reason": _WRONG_PASSWORD}]
        raise InvalidInput("wrong_password", _WRONG_PASSWORD, field)
    # As a sign-in does: the right password clears the account's failures and gives the
    # address its attempt back, whatever becomes of the change.
    _right_password(session, attempt)
    session.commit()
    if new_password == current_password:
        same = [{"field": "new_password", "reason": "新密码不能与当前密码相同"}]
        raise InvalidInput("invalid", "新密码不符合要求", same)
    version = row.session_version or 0
    # Only from the version the token was checked at: of two changes at once, one wins and
    # the other is told, rather than both writing and each keeping a session.
    changed = session.execute(
        update(UserRow)
        .where(UserRow.username == username, UserRow.session_version == version)
        .values(
            password_hash=hash_password(new_password),
            password_changed_at=now,
            updated_at=now,
            session_version=version + 1,
        )
        .execution_options(synchronize_session=False)
    )
    if getattr(changed, "rowcount", 0) != 1:
        session.rollback()
        raise SignInRefused("已退出登录或账号已变更，请重新登录")
    ended = session.execute(
        update(SignInSessionRow)
        .where(
            SignInSessionRow.username == username,
            SignInSessionRow.session_id != current.session_id,
            SignInSessionRow.revoked_at.is_(None),
            SignInSessionRow.expires_at > now,
        )
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    own = session.get(SignInSessionRow, current.session_id)
    if own is None:  # gone since the check (a concurrent purge)
        session.rollback()
        raise SignInRefused("登录已过期，请重新登录")
    expires_at = min(now + token_lifetime(settings), own.issued_at + session_limit(settings))
    own.expires_at, own.renewed_at = expires_at, now
    _audit(
        session, SignInAction.PASSWORD_CHANGED, username=username, role=current.user.role, ip=ip,
        now=now, org_id=row.scope_key if current.user.role is Role.SECRETARY else None,
        detail={"username": username, "via": via.value, "session_id": current.session_id,
                "sessions_ended": int(getattr(ended, "rowcount", 0) or 0)},
    )  # fmt: skip
    session.commit()
    new_token = issue_token(
        username=username,
        session_id=current.session_id,
        session_version=version + 1,
        expires_at=expires_at,
        now=now,
        settings=settings,
    )
    return SignedIn(
        user=current.user, token=new_token, session_id=current.session_id, expires_at=expires_at
    )


#: A session whose token expired this long ago is deleted by the API's housekeeping
#: (``api.housekeeping``): renewal needs a valid token, so it can never be used again, and
#: its sign-in stays in the audit log.
ENDED_SESSION_KEPT = timedelta(days=1)
#: Sessions deleted per transaction (a first sweep may find a long backlog).
FORGET_BATCH = 2_000


def forget_ended_sessions(sessions: sessionmaker[Session], now: datetime) -> int:
    """Delete the sessions that ended more than :data:`ENDED_SESSION_KEPT` ago, in batches;
    how many went. Without this, every sign-in leaves a row for ever."""
    table = metadata.tables[SignInSessionRow.__tablename__]
    return delete_in_batches(
        sessions,
        table,
        (table.c.session_id,),
        (table.c.expires_at < now - ENDED_SESSION_KEPT,),
        FORGET_BATCH,
    )


def forget_quiet_throttles(
    sessions: sessionmaker[Session], now: datetime, window: timedelta
) -> int:
    """Delete the failed-sign-in counters quiet for ``window`` (no failure and no block in
    it), in batches; how many went. :func:`domain.throttle.after_failure` starts such a
    counter afresh anyway, so forgetting it changes no decision; without this, every
    mistyped password and every address a password-spraying bot tries from (and every
    made-up username: ``account:<name>`` is counted whether or not the account exists)
    leaves a row for ever."""
    quiet_since = now - window
    table = metadata.tables[SignInThrottleRow.__tablename__]
    return delete_in_batches(
        sessions,
        table,
        (table.c.key,),
        (
            table.c.last_failure_at <= quiet_since,
            or_(table.c.blocked_until.is_(None), table.c.blocked_until <= quiet_since),
        ),
        FORGET_BATCH,
    )
