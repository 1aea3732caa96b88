"""Column types, naming convention and the declarative base of the read model."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    DateTime,
    LargeBinary,
    MetaData,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

# Deterministic constraint and index names: Alembic can only alter or drop what it can name,
# and database-generated names differ between SQLite and PostgreSQL.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Lengths: ids are built from round, organisation, phase, kind, rung and recipient (see
# ``domain.notices.notice_id``), so they get generous room; names are Chinese and short.
ID = 64
LONG_ID = 255
NAME = 200
ENUM = 32


class NaiveDatetimeError(ValueError):
    """A datetime without a time zone reached the database layer (a programming error)."""


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime, stored in UTC and always read back aware in UTC.

    PostgreSQL's ``timestamptz`` keeps the instant but SQLite has no time zone type: it would
    store the wall-clock digits and return a naive value. Converting to UTC before writing and
    attaching UTC after reading makes both databases behave the same. Naive values are refused
    because their meaning (Beijing time? UTC?) cannot be known here.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive datetimes; normalise aware ones to UTC."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise NaiveDatetimeError(f"naive datetime {value.isoformat()} refused: attach a tz")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Attach UTC to SQLite's naive values; convert PostgreSQL's session-zone values."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class PackedBytes(TypeDecorator[bytes]):
    """Bytes stored zlib-compressed once they are long enough for it to pay.

    Stored answers (``idempotency_keys.body``) are mostly an organisation's whole status as
    JSON: tens of kilobytes each, written on every keyed submission, a tenth of that once
    compressed. A compressed value starts with :data:`MARK`; anything else is read as it is,
    so rows written before the type was introduced still read. No stored answer starts
    with NUL (JSON, a redirect's path or nothing), so the mark cannot be mistaken."""

    impl = LargeBinary
    cache_ok = True

    MARK = b"\x00z"
    #: Below this, compressing saves too little to be worth the CPU.
    THRESHOLD = 512

    def process_bind_param(self, value: bytes | None, dialect: Dialect) -> bytes | None:
        if value is None or len(value) < self.THRESHOLD:
            return value
        return self.MARK + zlib.compress(value, 1)

    def process_result_value(self, value: bytes | None, dialect: Dialect) -> bytes | None:
        if value is None:
            return None
        value = bytes(value)  # a memoryview from some drivers
        if value.startswith(self.MARK):
            return zlib.decompress(value[len(self.MARK) :])
        return value


# JSONB on PostgreSQL so dashboards can index and query event details; plain JSON elsewhere.
JSONDocument = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    """Declarative base of the read model; its metadata is what Alembic compares against."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSONDocument,
    }
