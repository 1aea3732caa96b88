"""Alembic migrations build the whole read model on an empty SQLite and PostgreSQL database,
and what they build is exactly what ``activities.tables`` declares."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from activities.db import make_engine
from activities.tables import metadata

ROOT = Path(__file__).resolve().parents[2]


def alembic_config(url: str) -> Config:
    """The project's alembic.ini pointed at ``url``."""
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", url)
    return config


def assert_matches_metadata(url: str) -> None:
    """Every declared table exists and autogenerate finds nothing left to migrate."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            assert set(metadata.tables) <= set(inspect(connection).get_table_names())
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_upgrade_head_on_empty_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'migrated.db'}"
    command.upgrade(alembic_config(url), "head")
    assert_matches_metadata(url)
    command.upgrade(alembic_config(url), "head")  # a second run is a no-op
    command.downgrade(alembic_config(url), "base")
    engine = make_engine(url)
    try:
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()


@pytest.fixture
def empty_pg_database(postgres_url: str) -> Iterator[str]:
    """A freshly created PostgreSQL database ``cz_migrate_<random>``, dropped afterwards."""
    name = f"cz_migrate_{uuid.uuid4().hex[:10]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.postgres
def test_upgrade_head_on_empty_postgresql(empty_pg_database: str) -> None:
    command.upgrade(alembic_config(empty_pg_database), "head")
    assert_matches_metadata(empty_pg_database)
    command.downgrade(alembic_config(empty_pg_database), "base")


def test_processes_creating_the_schema_at_once_all_succeed(tmp_path: Path) -> None:
    """Worker processes starting together on an empty database (``make run`` with several
    workers) each create the schema; none may fail because another created a table first."""
    url = f"sqlite:///{tmp_path / 'race.db'}"
    code = (
        "import sys; from activities.db import create_schema, make_engine; "
        "create_schema(make_engine(sys.argv[1]))"
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", code, url], stderr=subprocess.PIPE)
        for _ in range(6)
    ]
    failures = [p.communicate()[1].decode() for p in processes if p.wait(timeout=120) != 0]
    assert failures == []
    engine = make_engine(url)
    try:
        assert set(inspect(engine).get_table_names()) >= set(metadata.tables)
    finally:
        engine.dispose()
