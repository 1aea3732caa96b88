"""Alembic environment for the read model (SQLite and PostgreSQL).

The URL comes, in order, from ``alembic -x url=...``, from ``sqlalchemy.url`` set on the
config by code (tests, ``activities.migrate``-style callers), or from the settings. Engines
are built with :func:`activities.db.make_engine` so a plain ``postgresql://`` URL uses the
psycopg 3 driver and SQLite gets its per-connection pragmas, as everywhere else.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from activities.db import make_engine
from activities.tables import metadata

config = context.config


def database_url() -> str:
    """The URL to migrate: ``-x url=`` wins, then the config's, then the settings'."""
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if url:
        return url
    from chuangzheng.settings import get_settings  # only when nothing else says

    return get_settings().database_url


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things: batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def run_migrations_offline() -> None:
    """Emit SQL to stdout (``alembic upgrade head --sql``)."""
    url = database_url()
    context.configure(
        url=url,
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate through a live connection (a connection handed over by code is reused)."""
    given = config.attributes.get("connection")
    if given is not None:
        _configure(given)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(database_url())
    try:
        with engine.connect() as connection:
            _configure(connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
