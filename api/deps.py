"""Dependencies shared by the routers, as ``Annotated`` aliases.

Database access follows one model (``api.blocking``): plain ``def`` dependencies and routes
run in the threadpool; ``async`` routes hand their SQL to ``run_sync``.

``app.state`` holds what the app factory assembled: ``settings``, ``sessions`` (a session
factory) and ``temporal`` (a Temporal client). Routes never build these themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from api.auth import User, authenticate_token
from api.errors import ApiError
from chuangzheng.settings import Settings
from domain.organisation import Role

bearer = HTTPBearer(auto_error=False, description="POST /api/v1/auth/login 取得的令牌")


# The dependencies that only read app.state are coroutines: FastAPI runs a plain function
# dependency in the threadpool, and three needless thread hops per request showed in the
# submission's profile.


async def get_settings_dep(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


def _sessions(request: Request) -> sessionmaker[Session]:
    sessions: sessionmaker[Session] = request.app.state.sessions
    return sessions


async def get_sessions(request: Request) -> sessionmaker[Session]:
    """The app's session factory (for routes that need their own transactions)."""
    return _sessions(request)


def get_session(request: Request) -> Iterator[Session]:
    """A session for one request, closed afterwards; routes commit what they write (a plain
    generator: FastAPI opens and closes it in the threadpool)."""
    with _sessions(request)() as session:
        yield session


async def get_temporal(request: Request) -> Client:
    """The app's Temporal client."""
    client: Client = request.app.state.temporal
    return client


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_session)]
SessionsDep = Annotated[sessionmaker[Session], Depends(get_sessions)]
TemporalClientDep = Annotated[Client, Depends(get_temporal)]


def get_current_user(
    sessions: SessionsDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> User:
    """The caller named by the bearer token (the one place tokens are checked).

    A plain function, so FastAPI runs it in the threadpool; it reads the account in a short
    session of its own rather than the request's :data:`SessionDep`, so routes that need no
    session (the actions) pay one thread hop for authentication instead of three."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(401, "unauthorized", "请先登录")
    with sessions() as session:
        return authenticate_token(session, credentials.credentials, settings)


CurrentUser = Annotated[User, Depends(get_current_user)]


def client_ip(request: Request) -> str | None:
    """Where the request came from (for the audit log)."""
    return request.client.host if request.client else None


def require_role(user: User, *roles: Role) -> None:
    """403 unless ``user`` acts in one of ``roles``."""
    if user.role not in roles:
        raise ApiError(403, "forbidden", "当前角色无权执行此操作")
