"""Login and the caller's own account."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from api.auth import User, issue_token, login, record_login
from api.deps import CurrentUser, SessionDep, SettingsDep, client_ip
from api.responses import AUTHENTICATED, WITH_BODY, errors

router = APIRouter(prefix="/api/v1", tags=["账号 auth"])


class Credentials(BaseModel):
    """Username and password."""

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class UserView(BaseModel):
    """An account as clients see it."""

    username: str
    display_name: str
    role: str
    scope_key: str


class Token(BaseModel):
    """A bearer token and the account it names."""

    access_token: str
    token_type: str = "bearer"
    user: UserView


def user_view(user: User) -> dict[str, Any]:
    """An account as clients see it."""
    return {
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role.value,
        "scope_key": user.scope_key,
    }


@router.post(
    "/auth/login",
    summary="登录，取得令牌",
    response_model=Token,
    responses=errors(401, *WITH_BODY),
)
def post_login(
    body: Credentials, request: Request, session: SessionDep, settings: SettingsDep
) -> dict[str, Any]:
    """Check the password and return a bearer token (recorded in the audit log)."""
    user = login(session, body.username, body.password)
    record_login(session, user, ip=client_ip(request))
    session.commit()
    return {
        "access_token": issue_token(user, settings),
        "token_type": "bearer",
        "user": user_view(user),
    }


@router.get(
    "/users/me", summary="当前账号", response_model=UserView, responses=errors(*AUTHENTICATED)
)
def me(user: CurrentUser) -> dict[str, Any]:
    """Who the token belongs to."""
    return user_view(user)
