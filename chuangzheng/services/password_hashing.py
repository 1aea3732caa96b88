"""Password hashing: the one argon2id hasher for passwords and one-time activation codes.

The standard parameters are argon2-cffi's (RFC 9106's second recommendation: 3 passes over
64 MiB, 4 lanes): some 60-270 ms of CPU per hash or check on this project's 2-core machines,
deliberately. The test suite signs in a few thousand times and builds accounts by the
hundred, so it sets ``CZ_PASSWORD_HASHING=fast`` (one pass over 1 MiB, well under a
millisecond); the parameters travel inside each hash, so any process verifies any hash.
``Settings`` declares the variable and refuses ``fast`` in production; the hasher reads it
here, once per process, because hashes are made in places that hold no settings (the
account store, the demo users).
"""

from __future__ import annotations

import os
from typing import Final, Literal

from argon2 import PasswordHasher

Hashing = Literal["standard", "fast"]
HASHING_VARIABLE: Final = "CZ_PASSWORD_HASHING"


def hasher_for(hashing: Hashing) -> PasswordHasher:
    """The argon2id hasher of a profile: ``standard`` for every real deployment, ``fast``
    for test suites only."""
    if hashing == "fast":
        return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    return PasswordHasher()


def configured_hashing(value: str | None) -> Hashing:
    """The profile named by ``CZ_PASSWORD_HASHING`` (unset: ``standard``)."""
    if value in (None, "", "standard"):
        return "standard"
    if value == "fast":
        return "fast"
    raise ValueError(f"{HASHING_VARIABLE}={value!r}: expected 'standard' or 'fast'")


HASHER: Final = hasher_for(configured_hashing(os.environ.get(HASHING_VARIABLE)))
