"""Accounts and tokens as the API sees them: every route learns its caller from
:func:`authenticate_token`, the one place a token is checked.

The rules live in :mod:`chuangzheng.services.sign_in`: a token is short-lived and names a
sign-in session and the account's session version, both checked on every request in one
query; role and scope are read from the ``users`` table each time, so a changed role, a
deactivated account or a signed-out session takes effect at once. Passwords are argon2id.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from api.errors import ApiError
from chuangzheng.services.accounts import upsert_user
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
