"""Group commit: writes submitted by many concurrent activities, made in few transactions.

Under a deadline storm thousands of workflows record their events within seconds of each
other. One transaction each means one commit (an fsync) each, and on SQLite one writer at a
time. A :class:`GroupCommit` lets each activity await its own result while the writes of
every activity waiting at that moment go to the database together, in one transaction by
``write``, in a worker thread, so the event loop never waits for the database.

A group is written as soon as a writer is free: the items that arrive while a group is being
written make the next one (as a database's own group commit does). A quiet server's single
submission waits for nothing, and under a storm the groups grow with the writes' own time.
``max_wait`` can make the first item of a group wait for others as well; by default it does
not (a fixed 5 ms wait was a fifth of a quiet submission's time in the workflow, issue 11).

If a group fails, its items are written again one by one, each in its own transaction:
one poisoned item (a naive datetime, a constraint violation) fails only its own activity,
which Temporal retries or reports, and the others succeed. ``write`` must therefore be
idempotent, as every read-model write is.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import structlog

log = structlog.get_logger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: How long the first item of a group waits for others to join it, in seconds: none, a free
#: writer takes whatever is pending (see the module doc).
DEFAULT_MAX_WAIT = 0.0
#: Items per transaction at most; a group of deadline batches stays well under a second.
DEFAULT_MAX_ITEMS = 500


@dataclass
class _Pending(Generic[T, R]):
    item: T
    future: asyncio.Future[R]


class GroupCommit(Generic[T, R]):
    """Batches concurrent :meth:`submit` calls into calls of ``write`` (see the module doc).

    ``write(items)`` runs in a thread, writes all ``items`` in one transaction and returns
    one result per item, in order. ``writers`` groups may be written at once: 1 for SQLite
    (one writer at a time anyway: the next group gathers while this one commits), a few
    for PostgreSQL.
    """

    def __init__(
        self,
        write: Callable[[Sequence[T]], Sequence[R]],
        *,
        max_items: int = DEFAULT_MAX_ITEMS,
        max_wait: float = DEFAULT_MAX_WAIT,
        writers: int = 1,
    ) -> None:
        """Keep the writer and the limits; the collecting task starts with the first item."""
        if max_items < 1 or writers < 1 or max_wait < 0:
            raise ValueError("max_items and writers must be positive, max_wait not negative")
        self._write = write
        self._max_items = max_items
        self._max_wait = max_wait
        self._writers = writers
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[_Pending[T, R]] = []
        self._collector: asyncio.Task[None] | None = None
        self._slots: asyncio.Semaphore | None = None
        self._full: asyncio.Event | None = None
        self._writes: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        """Queue ``item`` for the next group and wait for its own result (or exception)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # A new event loop (tests run one per test): nothing pending can belong to it.
            self._loop = loop
            self._pending = []
            self._collector = None
            self._slots = asyncio.Semaphore(self._writers)
            self._full = asyncio.Event()
            self._writes = set()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append(_Pending(item, future))
        if len(self._pending) >= self._max_items:
            assert self._full is not None
            self._full.set()
        if self._collector is None or self._collector.done():
            # A context of its own: the group is nobody's in particular, so its log lines must
            # not carry the bound ids of whichever activity happened to start it.
            self._collector = loop.create_task(self._collect(), context=contextvars.Context())
        return await future

    async def _collect(self) -> None:
        """Form groups while items are pending; hand each to a writer slot."""
        slots, full = self._slots, self._full
        assert slots is not None and full is not None
        while self._pending:
            await slots.acquire()
            try:
                if len(self._pending) < self._max_items and self._max_wait:
                    full.clear()
                    # Others arriving within max_wait join this group.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(full.wait(), self._max_wait)
                group = self._pending[: self._max_items]
                del self._pending[: self._max_items]
                # An activity cancelled while waiting (timeout, worker shutdown) needs nothing.
                group = [p for p in group if not p.future.done()]
            except BaseException:
                slots.release()
                raise
            if not group:
                slots.release()
                continue
            task = asyncio.get_running_loop().create_task(self._write_group(group, slots))
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)

    async def _write_group(self, group: list[_Pending[T, R]], slots: asyncio.Semaphore) -> None:
        """Write one group in a thread and settle each item's future with its own outcome."""
        try:
            outcomes = await asyncio.to_thread(self._write_all_or_each, [p.item for p in group])
        except Exception as exc:  # a bug here, not a write's failure: nobody's result is known
            for pending in group:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        except BaseException:  # cancelled (the loop is shutting down)
            for pending in group:
                pending.future.cancel()
            raise
        finally:
            slots.release()
        for pending, outcome in zip(group, outcomes, strict=True):
            if pending.future.done():
                continue
            if isinstance(outcome, _Failure):
                pending.future.set_exception(outcome.error)
            else:
                pending.future.set_result(outcome)

    def _write_all_or_each(self, items: list[T]) -> list[R | _Failure]:
        """All items in one transaction; if that fails, each in its own (in the thread)."""
        try:
            results = list(self._write(items))
        except Exception as exc:
            if len(items) == 1:
                return [_Failure(exc)]
            log.warning("group write failed; writing one by one", items=len(items), error=str(exc))
        else:
            if len(results) != len(items):
                raise RuntimeError(f"write returned {len(results)} results for {len(items)}")
            return list(results)
        outcomes: list[R | _Failure] = []
        for item in items:
            try:
                (result,) = self._write([item])
            except Exception as exc:
                outcomes.append(_Failure(exc))
            else:
                outcomes.append(result)
        return outcomes


@dataclass(frozen=True)
class _Failure:
    """An item's exception, carried back from the thread to be raised in its activity."""

    error: Exception


__all__ = ["DEFAULT_MAX_ITEMS", "DEFAULT_MAX_WAIT", "GroupCommit"]
