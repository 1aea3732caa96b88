"""Idempotency-Key for writes: a retry with the same key (per user) gets the stored response.

The first successful response (2xx) is stored under (user, key) with a fingerprint of the
request; the same key with a different request is refused (422), so a client bug cannot
silently replay the wrong answer. Workflow updates additionally carry the key into the
domain command, so two concurrent retries still have one effect.

The lookup and the store are synchronous SQLAlchemy, run in the threadpool (``api.blocking``).
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import Response
from sqlalchemy.orm import Session, sessionmaker
from starlette.datastructures import UploadFile as StarletteUploadFile

from activities.tables import IdempotencyRow
from api.auth import User
from api.blocking import run_sync
from api.errors import ApiError
from chuangzheng.services.idempotency import command_key as services_command_key
from chuangzheng.services.idempotency import lookup_answer, store_answer

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 200


def idempotency_key(request: Request) -> str | None:
    """The request's key, checked for length; None when absent."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not key.strip() or len(key) > MAX_KEY_LENGTH:
        raise ApiError(
            422,
            "invalid",
            "请求参数有误",
            [{"field": HEADER, "reason": f"应为 1–{MAX_KEY_LENGTH} 个字符"}],
        )
    return key


def command_key(user: User, key: str | None) -> str | None:
    """The key the domain command carries: per user, so users never collide (the services'
    format, so a key means the same whichever door a request came through)."""
    return services_command_key(user.username, key)


async def _fingerprint(request: Request) -> str:
    digest = hashlib.sha256(f"{request.method} {request.url.path}\n".encode())
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        # An upload's stream was consumed when the route parsed its form (request.body()
        # would raise, a 500): the parsed form, files included, is what the key covers.
        for name, value in (await request.form()).multi_items():
            digest.update(f"{name}\n".encode())
            if isinstance(value, StarletteUploadFile):
                await value.seek(0)
                digest.update(f"{value.filename}\n".encode() + await value.read())
                await value.seek(0)
            else:
                digest.update(f"{value}\n".encode())
        return digest.hexdigest()[:64]
    digest.update(await request.body())
    return digest.hexdigest()[:64]


def _json(result: Any) -> bytes:
    # Most results are already plain JSON (``model_dump(mode="json")``): the C encoder takes
    # them directly; jsonable_encoder walks big statuses in Python and costs milliseconds.
    try:
        return json.dumps(result, ensure_ascii=False, separators=(",", ":")).encode()
    except TypeError:
        return json.dumps(jsonable_encoder(result), ensure_ascii=False).encode()


async def _run(action: Callable[[], Awaitable[Any]] | Callable[[], Any]) -> Any:
    # A plain function is database work: it runs in the threadpool, never on the loop.
    if inspect.iscoroutinefunction(action):
        return await action()
    return await run_sync(action)


async def idempotent(
    request: Request,
    sessions: sessionmaker[Session],
    user: User,
    action: Callable[[], Awaitable[Any]] | Callable[[], Any],
    *,
    status_code: int = 200,
    check: Callable[[Session], Any] | None = None,
) -> Response:
    """Run ``action`` once per Idempotency-Key; its result becomes the JSON response.
    ``action`` is a coroutine function (Temporal calls) or a plain function (run in the
    threadpool). ``check`` (e.g. the caller's scope on the organisation) runs first, in the
    same session and thread hop as the key's lookup, and its refusal wins over a replay."""
    key = idempotency_key(request)
    if key is None:
        if check is not None:
            await run_sync(_checked, sessions, check)
        content = _json(await _run(action))
        return Response(content, status_code=status_code, media_type="application/json")
    fingerprint = await _fingerprint(request)
    stored = await run_sync(_lookup, sessions, user.username, key, check)
    if stored is not None:
        if stored.fingerprint != fingerprint:
            raise ApiError(
                422,
                "idempotency_key_reused",
                "该 Idempotency-Key 已用于另一请求",
                [{"field": HEADER, "reason": "同一键只能用于同一请求"}],
            )
        return Response(
            stored.body,
            status_code=stored.status_code,
            media_type="application/json",
            headers={"Idempotent-Replayed": "true"},
        )
    content = _json(await _run(action))
    await run_sync(_store, sessions, user.username, key, fingerprint, status_code, content)
    return Response(content, status_code=status_code, media_type="application/json")


def _checked(sessions: sessionmaker[Session], check: Callable[[Session], Any]) -> None:
    with sessions() as session:
        check(session)


def _lookup(
    sessions: sessionmaker[Session],
    username: str,
    key: str,
    check: Callable[[Session], Any] | None = None,
) -> IdempotencyRow | None:
    with sessions() as session:
        if check is not None:
            check(session)
        return lookup_answer(session, username, key)


def _store(
    sessions: sessionmaker[Session],
    username: str,
    key: str,
    fingerprint: str,
    status_code: int,
    content: bytes,
) -> None:
    # One writer for the table, shared with the services that keep their own answers.
    store_answer(sessions, username, key, fingerprint, status_code, content)
