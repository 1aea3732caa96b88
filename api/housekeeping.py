"""What the API deletes now and then so the read model does not grow for ever: stored
answers of idempotency keys past their retention, sign-in sessions long ended, and
failed-sign-in counters gone quiet.

Every API process runs :func:`keep_house` from its lifespan; two processes sweeping at once
delete each row once. Audit rows are never deleted: sign-ins and account changes stay in
the audit log after their sessions go.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.orm import Session, sessionmaker

from api.blocking import run_sync
from chuangzheng.services.idempotency import expire_keys
from chuangzheng.services.sign_in import forget_ended_sessions, forget_quiet_throttles

log = structlog.get_logger(__name__)

#: How often a sweep runs, and how long after the API starts the first one does (seconds):
#: an hour's rows are a small batch, and a process restarting in a loop does not sweep on
#: every start.
SWEEP_EVERY = 3600.0
SWEEP_FIRST = 60.0


def sweep(
    sessions: sessionmaker[Session],
    now: datetime,
    retention: timedelta,
    throttle_window: timedelta,
) -> dict[str, int]:
    """One sweep: how many rows of each kind went. ``retention`` is the idempotency keys'
    (``CZ_IDEMPOTENCY_RETENTION_HOURS``), ``throttle_window`` the sign-in throttle's
    (``CZ_SIGNIN_WINDOW_MINUTES``)."""
    return {
        "idempotency_keys": expire_keys(sessions, now, retention),
        "sign_in_sessions": forget_ended_sessions(sessions, now),
        "sign_in_throttle": forget_quiet_throttles(sessions, now, throttle_window),
    }


async def keep_house(
    sessions: sessionmaker[Session],
    retention: timedelta,
    throttle_window: timedelta,
    *,
    every: float = SWEEP_EVERY,
    first: float = SWEEP_FIRST,
) -> None:
    """Until cancelled: :func:`sweep` in the threadpool every ``every`` seconds. A failed
    sweep (a database locked or away) is logged and the next one tries again."""
    await asyncio.sleep(first)
    while True:
        try:
            deleted = await run_sync(sweep, sessions, datetime.now(UTC), retention, throttle_window)
        except Exception:
            log.exception("housekeeping_failed")
        else:
            if any(deleted.values()):
                log.info("housekeeping_swept", **deleted)
        await asyncio.sleep(every)
