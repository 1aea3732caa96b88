"""Stored answers for idempotency keys: a retry with the same key (per account) gets the
answer the first call produced, and the same key with a different request is refused.

One table (``idempotency_keys``) serves the API's generic wrapper (``api.idempotency``) and
the services that keep their own answers (:mod:`chuangzheng.services.organisation_actions`),
so a key is spent once whichever door the request came through. Synchronous SQLAlchemy:
callers run these functions in a worker thread, never on an event loop.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from activities.db import upsert_insert
from activities.tables import IdempotencyRow, metadata
from chuangzheng.services.errors import InvalidInput

#: The header (and form field) clients name the key with; errors name it as the field.
KEY_FIELD = "Idempotency-Key"


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
