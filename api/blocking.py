"""The API's one model for blocking work: synchronous code in worker threads, never on the loop.

The read model is synchronous SQLAlchemy (the worker's activities share it), so the API does
not keep a second, async engine: plain ``def`` routes and dependencies run in Starlette's
threadpool, and ``async`` routes (those that await Temporal) hand every database call to
:func:`run_sync`. File parsing (rosters, member lists) has its own small limiter, so a burst of
uploads can neither starve the threads database calls need nor be parsed on the loop.

:func:`install_loop_guard` makes the rule checkable: it fails (tests, development) or logs
(production) any SQL statement issued from a thread that is running an event loop.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, ParamSpec, TypeVar

import anyio.to_thread
import structlog
from sqlalchemy import Engine, event

from domain.errors import FieldError, ValidationFailed

P = ParamSpec("P")
T = TypeVar("T")

log = structlog.get_logger(__name__)

#: Concurrent spreadsheet/CSV parses per API process, each in a process of its own: parsing
#: is seconds of pure-Python CPU, and in a thread it would hold the GIL so long that the
#: event loop (and every request on it) waits its turn (measured: 2.8 s for ``/users/me``).
PARSE_CONCURRENCY = 2
_parse_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()
# One limiter per event loop (tests run several apps, each on its own loop).
_parse_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = (
    weakref.WeakKeyDictionary()
)


async def run_sync(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run blocking ``func`` (database, files) in the threadpool and await its result."""
    return await anyio.to_thread.run_sync(functools.partial(func, *args, **kwargs))


def _pool() -> ProcessPoolExecutor:
    global _parse_pool
    with _pool_lock:
        if _parse_pool is None:
            # spawn, not fork: forking a process that runs threads (uvicorn's, the
            # threadpool's) can copy a held lock into the child.
            _parse_pool = ProcessPoolExecutor(
                max_workers=PARSE_CONCURRENCY, mp_context=multiprocessing.get_context("spawn")
            )
        return _parse_pool


def _refusal_safe(func: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    # Runs in the parse process. A ValidationFailed does not survive pickling (its __init__
    # takes the field errors, its args hold the joined text), so it travels as data.
    try:
        return ("ok", func(*args, **kwargs))
    except ValidationFailed as exc:
        return ("refused", exc.code, [(e.field, e.reason) for e in exc.errors])


async def parse_off_loop(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run an upload parser (a picklable module-level function) in a parse process, at most
    :data:`PARSE_CONCURRENCY` at once; its ``ValidationFailed`` is raised here."""
    loop = asyncio.get_running_loop()
    limiter = _parse_limiters.get(loop)
    if limiter is None:
        limiter = _parse_limiters[loop] = anyio.CapacityLimiter(PARSE_CONCURRENCY)
    async with limiter:
        outcome = await loop.run_in_executor(_pool(), _refusal_safe, func, args, kwargs)
    if outcome[0] == "refused":
        _, code, errors = outcome
        raise ValidationFailed([FieldError(field, reason) for field, reason in errors], code=code)
    result: T = outcome[1]
    return result


def shutdown_parse_pool() -> None:
    """Stop the parse processes (the API's shutdown; a new pool starts on the next parse)."""
    global _parse_pool
    with _pool_lock:
        pool, _parse_pool = _parse_pool, None
    if pool is not None:
        # No waiting: a parse under way is bounded by the file limits and ends on its own.
        pool.shutdown(wait=False, cancel_futures=True)


class BlockingCallOnLoop(RuntimeError):
    """A database statement was issued from an event loop thread (it would stall the loop)."""


def on_event_loop() -> bool:
    """Whether the calling thread is running an asyncio event loop right now."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def install_loop_guard(engine: Engine, *, strict: bool) -> None:
    """Check every statement of ``engine``: raise (``strict``) or log when it runs on a loop."""

    def _check(*_: Any) -> None:
        if on_event_loop():
            if strict:
                raise BlockingCallOnLoop("数据库调用不应在事件循环线程中执行")
            log.warning("blocking_db_call_on_event_loop")

    event.listen(engine, "before_cursor_execute", _check)
