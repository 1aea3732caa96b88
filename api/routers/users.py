"""Signing in and out, renewing a token, and the caller's own account (who it is, and a
change of its own password)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field

from api.auth import User, sign_in_error
from api.deps import CurrentUser, SessionDep, SettingsDep, bearer, client_ip
from api.errors import ApiError, as_api_error
from api.responses import AUTHENTICATED, WITH_BODY, ErrorBody, Timestamp, errors
from chuangzheng.services import sign_in as service
from chuangzheng.services.errors import ServiceError
from chuangzheng.services.sign_in import SignedIn, SignInRefused, SignInVia, Throttled

router = APIRouter(prefix="/api/v1", tags=["账号 auth"])

#: 429 as the login documents it (``api.responses`` lists the statuses most routes share).
THROTTLED: dict[int | str, dict[str, Any]] = {
    429: {
        "model": ErrorBody,
        "description": "登录失败次数过多，按 Retry-After 秒数后重试（too_many_attempts）",
        "headers": {
            "Retry-After": {"description": "可再次尝试前等待的秒数", "schema": {"type": "integer"}}
        },
    }
}


class Credentials(BaseModel):
    """Username and password."""

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class PasswordChange(BaseModel):
    """The caller's current password and the new one, entered twice."""

    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=1, max_length=256)
    new_password_again: str = Field(min_length=1, max_length=256)


class UserView(BaseModel):
    """An account as clients see it."""

    username: str
    display_name: str
    role: str
    scope_key: str


class Token(BaseModel):
    """A bearer token, when it expires (renew before: ``POST /api/v1/auth/renew``) and the
    account it names."""

    access_token: str
    token_type: str = "bearer"
    expires_at: Timestamp
    expires_in: int
    user: UserView


class SignedOut(BaseModel):
    """The session ended by a sign-out."""

    signed_out: bool


def user_view(user: User) -> dict[str, Any]:
    """An account as clients see it."""
    return {
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role.value,
        "scope_key": user.scope_key,
    }


def _token(signed_in: SignedIn) -> dict[str, Any]:
    expires_at: datetime = signed_in.expires_at
    return {
        "access_token": signed_in.token,
        "token_type": "bearer",
        "expires_at": expires_at,
        "expires_in": max(0, int((expires_at - datetime.now(expires_at.tzinfo)).total_seconds())),
        "user": user_view(signed_in.user),
    }


def _bearer_token(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(401, "unauthorized", "请先登录")
    return credentials.credentials


BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


@router.post(
    "/auth/login",
    summary="登录，取得令牌",
    response_model=Token,
    responses={**errors(401, *WITH_BODY), **THROTTLED},
)
def post_login(
    body: Credentials, request: Request, session: SessionDep, settings: SettingsDep
) -> dict[str, Any]:
    """Check the password and return a short-lived bearer token for a new session (audited).
    Repeated failures for the account or from the address answer 429 with ``Retry-After``,
    even for the right password, until the block passes."""
    try:
        signed_in = service.sign_in(
            session,
            username=body.username,
            password=body.password,
            ip=client_ip(request),
            via=SignInVia.API,
            settings=settings,
        )
    except (SignInRefused, Throttled) as exc:
        raise sign_in_error(exc) from None
    return _token(signed_in)


@router.post(
    "/auth/renew",
    summary="续期令牌",
    response_model=Token,
    responses=errors(401),
)
def post_renew(
    session: SessionDep, settings: SettingsDep, credentials: BearerCredentials
) -> dict[str, Any]:
    """A new token for the same session, valid for another token lifetime (never past the
    session's maximum, after which the client signs in again)."""
    try:
        return _token(service.renew(session, _bearer_token(credentials), settings))
    except SignInRefused as exc:
        raise sign_in_error(exc) from None


@router.post(
    "/auth/logout",
    summary="退出登录，吊销令牌",
    response_model=SignedOut,
    responses=errors(401),
)
def post_logout(
    request: Request, session: SessionDep, settings: SettingsDep, credentials: BearerCredentials
) -> dict[str, Any]:
    """End the token's session: the token (and any renewed from it) is refused at once."""
    try:
        service.sign_out(session, _bearer_token(credentials), settings, ip=client_ip(request))
    except SignInRefused as exc:
        raise sign_in_error(exc) from None
    return {"signed_out": True}


@router.get(
    "/users/me", summary="当前账号", response_model=UserView, responses=errors(*AUTHENTICATED)
)
def me(user: CurrentUser) -> dict[str, Any]:
    """Who the token belongs to."""
    return user_view(user)


@router.post(
    "/users/me/password",
    summary="修改本人密码",
    response_model=Token,
    responses={**errors(401, 409, *WITH_BODY), **THROTTLED},
)
def change_password(
    body: PasswordChange,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    credentials: BearerCredentials,
) -> dict[str, Any]:
    """Change the caller's own password (any role): the current one, and the new one twice.
    The new password obeys the same rule as at activation (every reason listed, 422). A wrong
    current password is 422 on ``current_password`` and counts as a failed sign-in: repeated
    failures answer 429 with ``Retry-After``, as the login does. Every other session of the
    account ends at once; the answer is a new token for the caller's own session (the one
    sent stops working). 409 ``no_password``: the account signs in through the county's
    identity provider and has no password here. Audited, never the password."""
    try:
        signed_in = service.change_password(
            session,
            _bearer_token(credentials),
            current_password=body.current_password,
            new_password=body.new_password,
            new_password_again=body.new_password_again,
            ip=client_ip(request),
            via=SignInVia.API,
            settings=settings,
        )
    except (SignInRefused, Throttled) as exc:
        raise sign_in_error(exc) from None
    except ServiceError as exc:
        raise as_api_error(exc) from None
    return _token(signed_in)
