"""Accounts and tokens as the API sees them: every route learns its caller from
:func:`authenticate_token`, the one place a token is checked.

The rules live in :mod:`chuangzheng.services.sign_in`: a token is short-lived and names a
sign-in session and the account's session version, both checked on every request in one
query; role and scope are read from the ``users`` table each time, so a changed role, a
deactivated account or a signed-out session takes effect at once. Passwords are argon2id.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from activities.db import upsert_insert
from activities.tables import UserRow, metadata
from api.errors import ApiError
from chuangzheng.services.sign_in import (
    Authenticated,
    SignInRefused,
    Throttled,
    User,
    authenticate,
    hash_password,
    to_user,
)
from chuangzheng.settings import Settings
from domain.organisation import Role

__all__ = [
    "User",
    "authenticate_token",
    "hash_password",
    "sign_in_error",
    "to_user",
    "upsert_user",
]


def sign_in_error(exc: SignInRefused | Throttled) -> ApiError:
    """A sign-in refusal as the API answers it: 401, or 429 with ``Retry-After``."""
    if isinstance(exc, Throttled):
        return ApiError(429, exc.code, exc.message, headers={"Retry-After": str(exc.retry_after)})
    return ApiError(401, "unauthorized", exc.message)


def authenticate_checked(session: Session, token: str, settings: Settings) -> Authenticated:
    """:func:`authenticate_token` with the session and the token's expiry (for the pages'
    sliding renewal)."""
    try:
        return authenticate(session, token, settings)
    except SignInRefused as exc:
        raise sign_in_error(exc) from None


def authenticate_token(session: Session, token: str, settings: Settings) -> User:
    """The user a bearer token names, or 401 (bad signature, expired, revoked, stale
    session version, unknown or inactive account)."""
    return authenticate_checked(session, token, settings).user


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
