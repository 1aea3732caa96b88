"""Stored answers for idempotency keys: a retry with the same key (per account) gets the
answer the first call produced, and the same key with a different request is refused.

One table (``idempotency_keys``) serves the API's generic wrapper (``api.idempotency``) and
the services that keep their own answers (:mod:`chuangzheng.services.organisation_actions`),
so a key is spent once whichever door the request came through. Synchronous SQLAlchemy:
callers run these functions in a worker thread, never on an event loop.

A key is bound to one request (its fingerprint) from the moment it is first used: the request
claims it (:func:`claim_key`, a row "in progress") before it acts, and the row keeps the
fingerprint until the key expires. The workflows deduplicate their commands by key alone, so
without the claim two requests with one key and different bodies sent at once would both be
"accepted" while only the first had any effect. A claim is given back only when its request
certainly did nothing (:func:`release_claim`, after a refusal); when the outcome is unknown
(Temporal did not answer, the request was cancelled) it stays bound and is left for the same
request to take over at once (:func:`abandon_claim`).
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
#: A claim this old is taken to belong to a process that died mid-request: a retry of the
#: same request may take it over (another request with the key is still refused). Far above
#: any request's own limits (a Temporal call gives up after 20 s).
STALE_CLAIM = timedelta(minutes=2)
#: How long a copy of a request waits for the first copy's answer before it is told to retry
#: (seconds); above a Temporal call's own limit would hold a connection for nothing.
TWIN_PATIENCE = 15.0
#: How often a waiting copy looks for the first copy's answer (seconds).
TWIN_POLL = 0.1
#: The error code a copy gets when the first is still running past :data:`TWIN_PATIENCE`.
TWIN_RUNNING = "in_progress"
#: The message that goes with :data:`TWIN_RUNNING`.
TWIN_RUNNING_MESSAGE = "同一请求正在处理中，请稍后重试"


def command_key(username: str, key: str | None) -> str | None:
    """The key a domain command carries: per account, so two users' keys never collide."""
    return f"{username}:{key}" if key is not None else None


def lookup_answer(session: Session, username: str, key: str) -> IdempotencyRow | None:
    """The answer stored under (``username``, ``key``), if any."""
    return session.get(IdempotencyRow, (username, key))


def key_reused() -> InvalidInput:
    """The refusal of a key already bound to another request (422 in the API)."""
    return InvalidInput(
        "idempotency_key_reused",
        "该 Idempotency-Key 已用于另一请求",
        [{"field": KEY_FIELD, "reason": "同一键只能用于同一请求"}],
    )


def stale_claim(row: IdempotencyRow, now: datetime) -> bool:
    """Whether ``row`` is a claim whose request is taken to be dead (or gave it up without
    knowing its outcome): the same request may take it over (:func:`claim_key`)."""
    return row.status_code == IN_PROGRESS and row.created_at < now - STALE_CLAIM


def store_answer(
    sessions: sessionmaker[Session],
    username: str,
    key: str,
    fingerprint: str,
    status_code: int,
    body: bytes,
) -> None:
    """Keep ``body`` as the answer to (``username``, ``key``) in a transaction of its own:
    it fills the request's claim (or a row of its own when there is none). An answer already
    stored stays (a concurrent retry that took a stale claim over stored an equivalent one:
    same effect), and so does a row of another request."""
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
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=["username", "key"],
                set_={"status_code": stmt.excluded.status_code, "body": stmt.excluded.body},
                where=(table.c.fingerprint == fingerprint) & (table.c.status_code == IN_PROGRESS),
            )
        )


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
    over by the same request (``fingerprint``); to another request the row is returned,
    bound as it was, for the caller to refuse."""
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
    if stale_claim(row, now) and row.fingerprint == fingerprint:
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
    """Give the key back after its request certainly did nothing (refused before or by the
    action; nothing to replay): a retry, or a corrected request, runs anew."""
    table = metadata.tables[IdempotencyRow.__tablename__]
    with sessions.begin() as session:
        session.execute(
            delete(table).where(
                table.c.username == username,
                table.c.key == key,
                table.c.status_code == IN_PROGRESS,
            )
        )


def abandon_claim(
    sessions: sessionmaker[Session], username: str, key: str, fingerprint: str, now: datetime
) -> None:
    """Leave the claim of a request that ended without knowing whether it had its effect
    (Temporal did not answer in time: the Update may have been applied; the request was
    cancelled): the key stays bound to that request, since a workflow that applied it would
    silently drop another command under the same key, and is made stale at once, so the same
    request retried takes it over without waiting (and the workflow, which deduplicates by
    key, applies it at most once)."""
    table = metadata.tables[IdempotencyRow.__tablename__]
    with sessions.begin() as session:
        session.execute(
            update(table)
            .where(
                table.c.username == username,
                table.c.key == key,
                table.c.fingerprint == fingerprint,
                table.c.status_code == IN_PROGRESS,
            )
            .values(created_at=now - STALE_CLAIM - timedelta(seconds=1))
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
