"""The read model's housekeeping, on SQLite and PostgreSQL: a stored answer (a whole status)
is kept compressed and read back exactly (rows written before the compression still read);
keys past their retention are swept away in batches, answers and dead claims alike, while
the others stay replayable; sign-in sessions ended a day ago are forgotten, and so are
failed-sign-in counters gone quiet (a live block stays); and the API's sweeper does all of it
until it stops."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from activities.tables import IdempotencyRow
from activities.tables.access import SignInSessionRow, SignInThrottleRow
from activities.tables.base import PackedBytes
from api.housekeeping import keep_house
from chuangzheng.services import idempotency, sign_in
from chuangzheng.services.idempotency import (
    claim_key,
    expire_keys,
    lookup_answer,
    store_answer,
)

NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
WEEK = timedelta(days=7)
WINDOW = timedelta(minutes=15)


def _status(steps: int) -> bytes:
    """An answer the size of an organisation's whole status (tens of kilobytes of JSON)."""
    document = {
        "state": {
            "phases": [
                {"step_id": f"step-{i}", "status": "submitted", "values": {"说明": "材料" * 40}}
                for i in range(steps)
            ]
        }
    }
    return json.dumps(document, ensure_ascii=False).encode()


def _stored_length(engine: Engine, key: str) -> int:
    with engine.connect() as connection:
        length = connection.execute(
            text("SELECT length(body) FROM idempotency_keys WHERE key = :k"), {"k": key}
        ).scalar_one()
    return int(length)


def _count(sessions: sessionmaker[Session], table: type[Any] = IdempotencyRow) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def test_a_whole_status_is_kept_compressed_and_read_back_exactly(
    engine: Engine, sessions: sessionmaker[Session]
) -> None:
    body = _status(80)
    assert len(body) > 20_000
    store_answer(sessions, "sec-a", "big", "fp", 200, body)
    store_answer(sessions, "sec-a", "small", "fp", 200, b'{"ok":true}')
    assert _stored_length(engine, "big") < len(body) / 5
    assert _stored_length(engine, "small") == len(b'{"ok":true}')  # not worth compressing
    with sessions() as session:
        big = lookup_answer(session, "sec-a", "big")
        small = lookup_answer(session, "sec-a", "small")
    assert big is not None and big.body == body
    assert small is not None and small.body == b'{"ok":true}'

    # A row written before the column compressed (raw JSON) still reads as it was.
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO idempotency_keys (username, key, fingerprint, status_code, body,"
                " created_at) VALUES ('sec-a', 'old', 'fp', 200, :body, :at)"
            ),
            {"body": body, "at": NOW},
        )
    with sessions() as session:
        old = lookup_answer(session, "sec-a", "old")
    assert old is not None and old.body == body
    assert not body.startswith(PackedBytes.MARK)


def test_keys_past_their_retention_are_swept_in_batches(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(idempotency, "EXPIRE_BATCH", 3)
    for i in range(7):  # two full batches and a part
        store_answer(sessions, "sec-a", f"old-{i}", "fp", 200, b"{}")
    with sessions.begin() as session:
        session.execute(update(IdempotencyRow).values(created_at=NOW - WEEK - timedelta(hours=1)))
        # A claim whose request died long ago goes too; a fresh claim stays.
        assert claim_key(session, "sec-b", "dead", "fp", NOW - WEEK - timedelta(days=1)) is None
        assert claim_key(session, "sec-b", "running", "fp", NOW) is None
    store_answer(sessions, "sec-a", "recent", "fp", 200, b'{"kept":1}')

    assert expire_keys(sessions, NOW, WEEK) == 8
    with sessions() as session:
        kept = {(r.username, r.key) for r in session.scalars(select(IdempotencyRow))}
    assert kept == {("sec-b", "running"), ("sec-a", "recent")}
    assert expire_keys(sessions, NOW, WEEK) == 0


def _sign_in_session(session_id: str, expires_at: datetime) -> SignInSessionRow:
    return SignInSessionRow(
        session_id=session_id,
        username="sec-a",
        via="password",
        ip="10.0.0.1",
        issued_at=expires_at - timedelta(minutes=30),
        expires_at=expires_at,
    )


def test_sessions_ended_a_day_ago_are_forgotten(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sign_in, "FORGET_BATCH", 2)
    with sessions.begin() as session:
        for i in range(5):
            session.add(_sign_in_session(f"ended-{i}", NOW - timedelta(days=2)))
        session.add(_sign_in_session("just-expired", NOW - timedelta(hours=2)))
        session.add(_sign_in_session("live", NOW + timedelta(minutes=20)))
    assert sign_in.forget_ended_sessions(sessions, NOW) == 5
    with sessions() as session:
        left = set(session.scalars(select(SignInSessionRow.session_id)))
    assert left == {"just-expired", "live"}


def _counter(key: str, last: datetime, blocked_until: datetime | None = None) -> SignInThrottleRow:
    return SignInThrottleRow(
        key=key,
        failures=3,
        first_failure_at=last - timedelta(minutes=5),
        last_failure_at=last,
        blocked_until=blocked_until,
    )


def test_failed_sign_in_counters_gone_quiet_are_forgotten(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A counter the throttle would start afresh goes; one that still counts or blocks
    stays (a long block outlasts its last failure by more than the window)."""
    monkeypatch.setattr(sign_in, "FORGET_BATCH", 2)
    with sessions.begin() as session:
        for i in range(5):  # a bot's made-up usernames, an hour ago
            session.add(_counter(f"account:bot-{i}", NOW - timedelta(hours=1)))
        session.add(_counter("address:10.0.0.9", NOW - WINDOW))  # exactly quiet: goes
        session.add(_counter("account:typo", NOW - timedelta(minutes=3)))
        session.add(
            _counter("address:10.0.0.7", NOW - timedelta(hours=1), NOW + timedelta(minutes=30))
        )
        session.add(
            _counter("address:10.0.0.8", NOW - timedelta(hours=1), NOW - timedelta(minutes=5))
        )
    assert sign_in.forget_quiet_throttles(sessions, NOW, WINDOW) == 6
    with sessions() as session:
        left = set(session.scalars(select(SignInThrottleRow.key)))
    assert left == {"account:typo", "address:10.0.0.7", "address:10.0.0.8"}


async def test_the_api_sweeps_until_it_stops(sessions: sessionmaker[Session]) -> None:
    now = datetime.now(UTC)
    store_answer(sessions, "sec-a", "stale", "fp", 200, b"{}")
    with sessions.begin() as session:
        session.execute(update(IdempotencyRow).values(created_at=now - 2 * WEEK))
        session.add(_sign_in_session("ended", now - timedelta(days=3)))
        session.add(_counter("account:bot", now - timedelta(hours=1)))
    sweeper = asyncio.create_task(keep_house(sessions, WEEK, WINDOW, every=0.05, first=0.0))
    tables = (IdempotencyRow, SignInSessionRow, SignInThrottleRow)
    try:
        for _ in range(100):
            if not any(_count(sessions, table) for table in tables):
                break
            await asyncio.sleep(0.05)
        assert [_count(sessions, table) for table in tables] == [0, 0, 0]
        store_answer(sessions, "sec-a", "fresh", "fp", 200, b"{}")
        await asyncio.sleep(0.2)  # several sweeps later: a fresh key is not touched
        assert _count(sessions) == 1
    finally:
        sweeper.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sweeper
