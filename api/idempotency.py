"""Idempotency-Key for writes: a retry with the same key (per user) gets the stored response.

The first successful response (2xx) is stored under (user, key) with a fingerprint of the
request; the same key with a different request is refused (422), so a client bug cannot
silently replay the wrong answer. The key is claimed before the action runs, so a copy of
the request sent while the first still runs (a double click, a client retrying too soon)
waits for the first's answer and replays it instead of running beside it: actions that only
insert rows with fresh ids (a supervision record, a spot check) have one effect too. A copy
still waiting after :data:`TWIN_PATIENCE` is told 409 ``in_progress`` with ``Retry-After``.
Workflow updates additionally carry the key into the domain command; since a workflow
deduplicates by key alone, a request whose outcome is unknown (Temporal did not answer, the
request was cancelled, a bug) leaves its key bound to it rather than giving it back
(:func:`chuangzheng.services.idempotency.abandon_claim`): the same request may retry at once,
another request with the key is still refused.

The lookup and the store are synchronous SQLAlchemy, run in the threadpool (``api.blocking``).
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as SqlalchemyTimeoutError
from sqlalchemy.orm import Session, sessionmaker
from starlette.datastructures import UploadFile as StarletteUploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from activities.tables import IdempotencyRow
from api.auth import User
from api.blocking import run_sync
from api.errors import ApiError
from chuangzheng.services import idempotency as keys
from chuangzheng.services.errors import ServiceError, TemporalUnavailable
from chuangzheng.services.idempotency import (
    IN_PROGRESS,
    abandon_claim,
    claim_key,
    finish_claim,
    release_claim,
)
from chuangzheng.services.idempotency import command_key as services_command_key
from domain.errors import DomainError

T = TypeVar("T")

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 200
#: How long a copy of a request waits for the first to finish before it is told to retry
#: (seconds); above a Temporal call's own limit would hold a connection for nothing.
TWIN_PATIENCE = keys.TWIN_PATIENCE
#: The error code a copy gets when the first is still running past :data:`TWIN_PATIENCE`.
TWIN_RUNNING = keys.TWIN_RUNNING
#: How often a waiting copy looks for the first's answer (seconds).
TWIN_POLL = keys.TWIN_POLL


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


async def request_fingerprint(request: Request) -> str:
    """What an Idempotency-Key covers: the method, the path and the body (a parsed upload)."""
    digest = hashlib.sha256(f"{request.method} {request.url.path}\n".encode())
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        # A form's stream was consumed when the route parsed it (request.body() would raise,
        # a 500): the parsed form, files included, is what the key covers.
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
    fingerprint = await request_fingerprint(request)

    async def produce() -> tuple[Answer, bool]:
        return Answer(status_code, _json(await _run(action))), True

    answer = await run_once(sessions, user.username, key, fingerprint, produce, check=check)
    return Response(
        answer.body,
        status_code=answer.status_code,
        media_type="application/json",
        headers={"Idempotent-Replayed": "true"} if answer.replayed else None,
    )


@dataclass(frozen=True)
class Answer:
    """What a request answered, as kept under its key: a status and a body (JSON for the
    API, the redirect's location for a page's form)."""

    status_code: int
    body: bytes
    #: Replayed from an earlier copy of the request rather than produced now.
    replayed: bool = False


async def run_once(
    sessions: sessionmaker[Session],
    username: str,
    key: str,
    fingerprint: str,
    produce: Callable[[], Awaitable[tuple[Answer, bool]]],
    *,
    check: Callable[[Session], Any] | None = None,
) -> Answer:
    """``produce`` once per (``username``, ``key``): claim the key, run it, keep its answer;
    a copy that finds the key claimed waits for that answer and replays it. ``produce``
    says whether its answer is to be kept (False: an outcome a corrected retry must not
    replay; the key is given back, as it is when ``produce`` raises). ``check`` runs first,
    in the claim's transaction; its refusal wins over a replay. The same key for another
    request (another ``fingerprint``) is 422; a first copy still running after
    :data:`TWIN_PATIENCE` is 409 ``in_progress`` with ``Retry-After``."""
    patience = asyncio.get_running_loop().time() + TWIN_PATIENCE
    while (
        stored := await run_sync(_claim, sessions, username, key, fingerprint, check)
    ) is not None:
        if stored.fingerprint != fingerprint:
            raise ApiError(
                422,
                "idempotency_key_reused",
                "该 Idempotency-Key 已用于另一请求",
                [{"field": HEADER, "reason": "同一键只能用于同一请求"}],
            )
        if stored.status_code != IN_PROGRESS:
            return Answer(stored.status_code, stored.body, replayed=True)
        if asyncio.get_running_loop().time() > patience:
            raise twin_running()
        await asyncio.sleep(TWIN_POLL)
    try:
        answer, keep = await produce()
    except BaseException as exc:
        # Nothing to replay. A refusal gives the key back (a corrected retry runs anew); a
        # failure that may have come after a workflow applied the command keeps it bound.
        if nothing_done(exc):
            await asyncio.shield(run_sync(release_claim, sessions, username, key))
        else:
            now = datetime.now(UTC)
            await asyncio.shield(run_sync(abandon_claim, sessions, username, key, fingerprint, now))
        raise
    if keep:
        await run_sync(finish_claim, sessions, username, key, answer.status_code, answer.body)
    else:
        await run_sync(release_claim, sessions, username, key)
    return answer


def twin_running() -> ApiError:
    """409 ``in_progress`` with ``Retry-After``: a copy of the request is still running."""
    return ApiError(409, TWIN_RUNNING, keys.TWIN_RUNNING_MESSAGE, headers={"Retry-After": "1"})


def nothing_done(exc: BaseException) -> bool:
    """Whether a keyed action that raised ``exc`` certainly did nothing, so its key may go
    back: a refusal (a 4xx, a domain or service refusal other than Temporal not answering)
    or the read model failing (its transaction rolled back). Anything else (Temporal did not
    answer, a cancellation, a bug) may have come after a workflow applied the command."""
    if isinstance(exc, ApiError | StarletteHTTPException):
        return exc.status_code < 500 or getattr(exc, "code", "") == "database_unavailable"
    if isinstance(exc, ServiceError):
        return not isinstance(exc, TemporalUnavailable)
    return isinstance(
        exc, DomainError | RequestValidationError | OperationalError | SqlalchemyTimeoutError
    )


def _checked(sessions: sessionmaker[Session], check: Callable[[Session], Any]) -> None:
    with sessions() as session:
        check(session)


def _claim(
    sessions: sessionmaker[Session],
    username: str,
    key: str,
    fingerprint: str,
    check: Callable[[Session], Any] | None = None,
) -> IdempotencyRow | None:
    """``check`` and the key's claim in one transaction (see
    :func:`chuangzheng.services.idempotency.claim_key`); ``check``'s refusal wins."""
    with sessions.begin() as session:
        if check is not None:
            check(session)
        return claim_key(session, username, key, fingerprint, datetime.now(UTC))


async def issue_once(
    sessions: sessionmaker[Session],
    username: str,
    key: str,
    fingerprint: str,
    issue: Callable[[], Awaitable[T]],
    kept: Callable[[T], Answer],
) -> tuple[T, Answer] | tuple[None, Answer]:
    """:func:`run_once` for an action whose answer holds a secret shown once (activation
    codes are stored only as hashes): the key keeps ``kept(result)``, the answer with the
    secret left out, and only the copy that ran gets ``result``; a copy of the request gets
    None and the kept answer. So a double click issues one set of codes, not two that
    each mail the person and the first of which no longer works."""
    ran: list[T] = []

    async def produce() -> tuple[Answer, bool]:
        result = await issue()
        ran.append(result)
        return kept(result), True

    answer = await run_once(sessions, username, key, fingerprint, produce)
    if ran:
        return ran[0], answer
    return None, answer
