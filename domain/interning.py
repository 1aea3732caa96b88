"""One shared instance per distinct immutable plan part, process-wide.

Every organisation of a round receives the same ladder, calendar, pinned calendar and phase
windows in its input; decoded, each copy is a tree of a few hundred pydantic objects, kept
for as long as the workflow stays in the worker's cache. :func:`intern` swaps an equal copy
for the instance already in memory, so a thousand cached organisations hold one of each,
not a thousand.

Sharing is safe because the parts are frozen pydantic models (immutable, compared by value)
and no workflow mutates its plan; it changes no value, so no command and no replay. This
module is passed through the workflow sandbox with the rest of ``domain`` (``worker.py``),
so one table serves every workflow run. Entries are weak: a plan part nobody holds any more
(its round has left the cache) goes away with its last holder.
"""

from __future__ import annotations

import threading
import weakref
from typing import TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)

_shared: weakref.WeakValueDictionary[tuple[type, int], BaseModel] = weakref.WeakValueDictionary()
# Workflow tasks run on several threads; the lock keeps lookup-then-insert whole.
_lock = threading.Lock()


def intern(value: M) -> M:
    """The process's shared instance equal to ``value`` (``value`` itself the first time).

    An unhashable value (a frozen model with a dict inside) and an equal hash with an
    unequal value (a collision) are kept as they are: sharing is an optimisation, never a
    reason to refuse an input.
    """
    try:
        key = (type(value), hash(value))
    except TypeError:
        return value
    with _lock:
        shared = _shared.get(key)
        if shared is None:
            _shared[key] = value
            return value
    if shared == value:
        return shared  # same type: the type is part of the key
    return value


def shared_count() -> int:
    """How many distinct parts are shared right now (for tests and diagnostics)."""
    return len(_shared)
