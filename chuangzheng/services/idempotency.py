"""Stored answers for idempotency keys: a retry with the same key (per account) gets the
answer the first call produced, and the same key with a different request is refused.

One table (``idempotency_keys``) serves the API's generic wrapper (``api.idempotency``) and
the services that keep their own answers (:mod:`chuangzheng.services.organisation_actions`),
so a key is spent once whichever door the request came through. Synchronous SQLAlchemy:
callers run these functions in a worker thread, never on an event loop.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, update
from sqlalchemy.orm import Session, sessionmaker

from activities.db import delete_in_batches, upsert_insert
from activities.tables import IdempotencyRow, metadata
from chuangzheng.services.errors import InvalidInput

#: The header (and form field) clients name the key with; errors name it as the field.
KEY_FIELD = "Idempotency-Key"
#: The status a claimed key's row carries until its request's answer is stored
#: (:func:`claim_key`); never an HTTP status, so never replayed.
IN_PROGRESS = 0
#: Expired keys deleted per transaction, so a first sweep over a large backlog never holds
#: SQLite's write lock for long.
EXPIRE_BATCH = 2_000
#: A claim this old is taken to belong to a process that died mid-request: a retry may take
#: it over. Far above any request's own limits (a Temporal call gives up after 20 s).
STALE_CLAIM = timedelta(minutes=2)


def command_key(username: str, key: str | None) -> str | None:
    """The key a domain command carries: per account, so two users' keys never collide."""
    return f"{username}:{key}" if key is not None else None


def lookup_answer(session: Session, username: str, key: str) -> IdempotencyRow | None:
    """The answer stored under (``username``, ``key``), if any."""
    return session.get(IdempotencyRow, (username, key))


def replayable(row: IdempotencyRow, fingerprint: str) -> bytes:
    """The stored answer, if ``row`` was stored for the same request; otherwise the key is
    being reused for another request, which is refused rather than answered wrongly."""
    if row.fingerprint != fingerprint:
        raise InvalidInput(
            "idempotency_key_reused",
            "该 Idempotency-Key 已用于另一请求",
            [{"field": KEY_FIELD, "reason": "同一键只能用于同一请求"}],
        )
    return row.body


def store_answer(
    sessions: sessionmaker[Session],
    username: str,
    key: str,
    fingerprint: str,
    status_code: int,
    body: bytes,
) -> None:
    """Keep ``body`` as the answer to (``username``, ``key``) in a transaction of its own."""
    table = metadata.tables[IdempotencyRow.__tablename__]
    with sessions.begin() as session:
        stmt = upsert_insert(session, table).values(
            username=username,
            key=key,
            fingerprint=fingerprint,
            status_code=status_code,
            body=body,
            created_at=datetime.now(UTC),
        )
        # A concurrent retry may have stored first: its answer is equivalent (same effect).
        session.execute(stmt.on_conflict_do_nothing(index_elements=["username", "key"]))


def claim_key(
    session: Session, username: str, key: str, fingerprint: str, now: datetime
) -> IdempotencyRow | None:
    """Claim (``username``, ``key``) for a request about to run, in the caller's transaction:
    None if it is this request's to run now; otherwise the row another request left (its
    answer, or its claim while it runs: ``status_code`` :data:`IN_PROGRESS`).

    The claim is what makes two copies of one request sent at once (a double click, a client
    retrying before the first answer came) have one effect when the action itself cannot
    recognise the key (a row inserted with a fresh id): the second waits for the first's
    answer instead of running beside it. A claim older than :data:`STALE_CLAIM` is taken
    over."""
    table = metadata.tables[IdempotencyRow.__tablename__]
    inserted = session.execute(
        upsert_insert(session, table)
        .values(
            username=username,
            key=key,
            fingerprint=fingerprint,
            status_code=IN_PROGRESS,
            body=b"",
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["username", "key"])
        # RETURNING, not rowcount: psycopg reports -1 for this statement as SQLAlchemy runs it.
        .returning(table.c.key)
    ).first()
    if inserted is not None:
        return None
    row = session.get(IdempotencyRow, (username, key), populate_existing=True)
    if row is None:  # released between the insert and the read: claim it next time
        return IdempotencyRow(
            username=username, key=key, fingerprint=fingerprint, status_code=IN_PROGRESS
        )
    stale = row.status_code == IN_PROGRESS and row.created_at < now - STALE_CLAIM
    if stale and row.fingerprint == fingerprint:
        taken = session.execute(
            update(table)
            .where(
                table.c.username == username,
                table.c.key == key,
                table.c.status_code == IN_PROGRESS,
                table.c.created_at == row.created_at,
            )
            .values(created_at=now)
            .returning(table.c.key)
        ).first()
        if taken is not None:
            return None
    return row


def finish_claim(
    sessions: sessionmaker[Session], username: str, key: str, status_code: int, body: bytes
) -> None:
    """Store the answer of the request that claimed (``username``, ``key``)."""
    table = metadata.tables[IdempotencyRow.__tablename__]
    with sessions.begin() as session:
        session.execute(
            update(table)
            .where(table.c.username == username, table.c.key == key)
            .values(status_code=status_code, body=body)
        )


def release_claim(sessions: sessionmaker[Session], username: str, key: str) -> None:
    """Give the key back after its request failed (nothing to replay): a retry runs anew."""
    table = metadata.tables[IdempotencyRow.__tablename__]
    with sessions.begin() as session:
        session.execute(
            delete(table).where(
                table.c.username == username,
                table.c.key == key,
                table.c.status_code == IN_PROGRESS,
            )
        )


def expire_keys(sessions: sessionmaker[Session], now: datetime, retention: timedelta) -> int:
    """Delete the keys older than ``retention`` (their answers, and claims long dead), in
    batches of :data:`EXPIRE_BATCH`; how many went. A retry after that runs anew: an
    organisation's Update still has one effect (the workflow keeps its commands' keys),
    while an action that inserts rows with fresh ids would run again, as with any API whose
    keys expire. Without this the table grows with every keyed write for ever."""
    table = metadata.tables[IdempotencyRow.__tablename__]
    return delete_in_batches(
        sessions,
        table,
        (table.c.username, table.c.key),
        (table.c.created_at < now - retention,),
        EXPIRE_BATCH,
    )
