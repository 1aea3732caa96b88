"""Engines, sessions and the schema of the SQL read model (SQLite by default, PostgreSQL too).

``make_engine`` is called once by whoever assembles the process (``worker.py``, the API);
nothing here reads settings, so tests pass their own URL.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Engine,
    Table,
    create_engine,
    delete,
    event,
    false,
    inspect,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from activities.tables import metadata

#: How long a SQLite writer waits for another writer's lock before failing, in milliseconds.
#: The worker runs activities in parallel; waiting beats an ``database is locked`` retry.
SQLITE_BUSY_TIMEOUT_MS = 5_000

#: The insert constructs that support ``ON CONFLICT`` (the same API on both dialects).
UpsertInsert = sqlite.Insert | postgresql.Insert


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    """Per-connection SQLite settings; they are not persistent, so every connection needs them.

    WAL lets dashboard readers (the API, another process) run while a worker writes;
    ``synchronous=NORMAL`` is WAL's recommended durability (a commit survives a crash of the
    process; only a power cut can lose the last commits, which the activities would write
    again, being idempotent); foreign keys are off by default in SQLite; the busy timeout
    makes writers of several processes queue instead of failing at once.
    """
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


#: What stands for a NUL character in what PostgreSQL stores (see :func:`_without_nul`).
NUL_REPLACEMENT = "\ufffd"


def _without_nul(value: Any) -> Any:
    """``value`` (JSON-like) with every NUL character in its texts and keys replaced."""
    if isinstance(value, str):
        return value.replace("\x00", NUL_REPLACEMENT)
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nul(v) for v in value]
    return value


def _json_for_postgresql(value: Any) -> str:
    """JSON for a JSON/JSONB column: PostgreSQL refuses the escape ``\\u0000``, so a NUL in
    any text is replaced (checked on the encoded text first: the common case costs one
    substring search)."""
    encoded = json.dumps(value)
    if "\\u0000" in encoded:
        encoded = json.dumps(_without_nul(value))
    return encoded


def _parameters_without_nul(
    _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool
) -> tuple[str, Any]:
    """Replace NUL in text parameters before PostgreSQL sees them.

    PostgreSQL text cannot hold NUL (SQLite can). A NUL that reached a write (typed into a
    reason, carried in a workflow's history, read from a roster file) failed that write with
    ``DataError`` on every retry: an organisation's recording stopped for good. The API
    refuses NUL in what it is sent (``api.security``); this is the read model's own guard,
    for what came another way or before that check.
    """
    return statement, _without_nul(parameters) if _has_nul(parameters) else parameters


def _has_nul(parameters: Any) -> bool:
    if isinstance(parameters, str):
        return "\x00" in parameters
    if isinstance(parameters, dict):
        return any(_has_nul(v) for v in parameters.values())
    if isinstance(parameters, list | tuple):
        return any(_has_nul(v) for v in parameters)
    return False


def make_engine(
    url: str, *, pool_size: int | None = None, max_overflow: int | None = None
) -> Engine:
    """Create the engine for ``url`` (``sqlite:///path`` or ``postgresql+psycopg://...``).

    For a SQLite file the parent directory is created (the default lives under ``.data/``,
    which a fresh checkout does not have) and every connection is put in WAL mode with a busy
    timeout. A plain ``postgresql://`` URL is switched to the psycopg 3 driver, the only
    PostgreSQL driver the project installs; ``pool_size`` and ``max_overflow`` (settings
    ``database_pool_size``, ``database_max_overflow``) size its connection pool, and every
    connection is pinged when taken from the pool.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed)
        event.listen(engine, "connect", _configure_sqlite_connection)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() != "psycopg":
        parsed = parsed.set(drivername="postgresql+psycopg")
    pool: dict[str, int] = {}
    if pool_size is not None:
        pool["pool_size"] = pool_size
    if max_overflow is not None:
        pool["max_overflow"] = max_overflow
    # pre_ping: a database restart must not fail the next activity with a dead connection.
    engine = create_engine(parsed, pool_pre_ping=True, json_serializer=_json_for_postgresql, **pool)
    event.listen(engine, "before_cursor_execute", _parameters_without_nul, retval=True)
    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory for ``engine``.

    ``expire_on_commit=False`` so rows returned from a committed unit of work stay readable
    after the session closes (activities hand them on to logging or callers).
    """
    return sessionmaker(bind=engine, expire_on_commit=False)


def create_schema(engine: Engine, *, attempts: int = 5) -> None:
    """Create any missing read-model tables (development and tests; production migrates).

    Several processes may start on an empty database at once (``make run`` with more than
    one worker process): ``create_all`` checks, then creates, so a table another process
    created in between fails with "already exists". Trying again is the fix: the next check
    sees it.
    """
    for attempt in range(attempts):
        try:
            metadata.create_all(engine)
            return
        except DBAPIError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def upsert_insert(session: Session, table: Table) -> UpsertInsert:
    """An ``INSERT`` for ``table`` in the session's dialect that supports ``ON CONFLICT``.

    SQLite and PostgreSQL both offer ``on_conflict_do_nothing`` / ``on_conflict_do_update``
    with the same arguments, so callers write one upsert for both.
    """
    return dialect_insert(session.get_bind().dialect.name, table)


def dialect_insert(dialect: str, table: Table) -> UpsertInsert:
    """:func:`upsert_insert` for a dialect named ``sqlite`` or ``postgresql``.

    For statements built once and kept (see ``activities.projection``): a statement
    object reused with fresh parameters is compiled once per engine, not on every call.
    """
    if dialect == "sqlite":
        return sqlite.insert(table)
    if dialect == "postgresql":
        return postgresql.insert(table)
    raise NotImplementedError(f"the read model supports SQLite and PostgreSQL, not {dialect}")


def write_lock(session: Session, entity: type[Any]) -> None:
    """On SQLite, take the database's write lock now, for the rest of the session's
    transaction: what ``FOR UPDATE`` does for a row on PostgreSQL (where this does nothing
    and the caller's ``with_for_update`` reads lock the rows).

    Call it first in a transaction that reads a row and writes on what it read. On SQLite
    ``FOR UPDATE`` is ignored and the driver begins a transaction only at the first write,
    so without this the read runs outside the transaction and another writer can commit
    between the read and the write: a close overwritten by a late "running", a ballot
    stored after its window's tally, two failed sign-ins counted as one. A write statement
    that matches no row is enough to take the lock (and waits for it up to the busy
    timeout, as any writer does); the reads after it see the latest commit.
    """
    if session.get_bind().dialect.name != "sqlite":
        return
    # Any table would do (the lock is the database's); the caller's keeps it readable.
    column = inspect(entity).primary_key[0]
    session.execute(
        update(entity)
        .where(false())
        .values({column.name: column})
        .execution_options(synchronize_session=False)
    )


def delete_in_batches(
    sessions: sessionmaker[Session],
    table: Table,
    keys: Sequence[ColumnElement[Any]],
    where: Sequence[ColumnElement[bool]],
    batch: int,
) -> int:
    """Delete ``table``'s rows matching ``where``, ``batch`` of them (chosen by their primary
    ``keys``) to a transaction, until none are left; how many went. The housekeeping's
    sweeps use it: a first sweep may find a long backlog, and short transactions keep
    SQLite's other writers waiting only briefly."""
    key = keys[0] if len(keys) == 1 else tuple_(*keys)
    deleted = 0
    while True:
        with sessions.begin() as session:
            chosen = select(*keys).where(*where).limit(batch)
            result = session.execute(delete(table).where(key.in_(chosen)))
            gone = cast("CursorResult[Any]", result).rowcount
        deleted += gone
        if gone < batch:
            return deleted
