"""Local users: argon2 password hashes and signed bearer tokens (HS256 JWT).

:func:`authenticate_token` is the only place a token is checked; replacing it (e.g. with an
OIDC verifier) changes how every route learns its caller. Tokens carry only the username;
role and scope are read from the ``users`` table on every request, so a changed role or a
disabled account takes effect at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session

from activities.db import upsert_insert
from activities.tables import AuditRow, UserRow, metadata
from api.errors import ApiError
from chuangzheng.settings import Settings
from domain.organisation import Role

TOKEN_ALGORITHM = "HS256"
TOKEN_LIFETIME = timedelta(hours=12)
_HASHER = PasswordHasher()
# Verifying against a dummy hash when the user does not exist keeps response times equal,
# so a login form cannot be used to find out which usernames exist.
_DUMMY_HASH = _HASHER.hash("not-a-password")


@dataclass(frozen=True)
class User:
    """The caller: account, display name, role and the key of what the role covers."""

    username: str
    display_name: str
    role: Role
    scope_key: str


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``."""
    return _HASHER.hash(password)


def _unauthorized(message: str = "请先登录") -> ApiError:
    return ApiError(401, "unauthorized", message)


def to_user(row: UserRow) -> User:
    """The API's view of a stored account."""
    return User(
        username=row.username,
        display_name=row.display_name,
        role=Role(row.role),
        scope_key=row.scope_key,
    )


def login(session: Session, username: str, password: str) -> User:
    """The user whose password matches, or a 401 that does not say which part was wrong."""
    row = session.get(UserRow, username)
    try:
        _HASHER.verify(row.password_hash if row else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        raise _unauthorized("用户名或密码错误") from None
    if row is None or not row.active:
        raise _unauthorized("用户名或密码错误")
    return to_user(row)


def record_login(session: Session, user: User, *, ip: str | None, via: str | None = None) -> None:
    """Add the login to the audit log (the caller commits), from the API or the dashboard."""
    now = datetime.now(UTC)
    session.add(
        AuditRow(
            audit_id=f"login/{user.username}/{now.isoformat()}",
            user=user.username,
            role=user.role.value,
            action="login",
            round_id=None,
            org_id=None,
            ip=ip,
            at=now,
            detail={"via": via} if via else {},
        )
    )


def issue_token(user: User, settings: Settings, *, now: datetime | None = None) -> str:
    """A signed token naming ``user``."""
    now = now or datetime.now(UTC)
    claims = {"sub": user.username, "iat": now, "exp": now + TOKEN_LIFETIME}
    return jwt.encode(claims, settings.secret_key, algorithm=TOKEN_ALGORITHM)


def authenticate_token(session: Session, token: str, settings: Settings) -> User:
    """The user a bearer token names, or 401 (bad signature, expired, unknown or inactive)."""
    try:
        claims = jwt.decode(token, settings.secret_key, algorithms=[TOKEN_ALGORITHM])
    except jwt.ExpiredSignatureError:
        raise _unauthorized("登录已过期，请重新登录") from None
    except jwt.InvalidTokenError:
        raise _unauthorized("登录凭证无效") from None
    row = session.get(UserRow, str(claims.get("sub", "")))
    if row is None or not row.active:
        raise _unauthorized("账号不存在或已停用")
    return to_user(row)


def upsert_user(
    session: Session,
    *,
    username: str,
    display_name: str,
    password: str | None = None,
    password_hash: str | None = None,
    role: Role,
    scope_key: str = "",
) -> None:
    """Create or update an account from a password (hashed here) or a ready argon2 hash."""
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
        "created_at": datetime.now(UTC),
    }
    stmt = upsert_insert(session, table).values(values)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["username"],
            set_={k: stmt.excluded[k] for k in values if k not in ("username", "created_at")},
        )
    )
