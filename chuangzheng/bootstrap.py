"""One bootstrap for every entry point: the API, the worker, the CLI and ``make run``.

It builds, from :class:`~chuangzheng.settings.Settings`:

- the read model's engine and session factory (:func:`open_database`),
- the Temporal client (:func:`connect_temporal`): address, namespace, TLS or API key, and the
  project's data converter with the AES-GCM payload codec when encryption is on,
- the notifier (the inbox, plus the channels of ``CZ_CHANNELS_FILE``),
- the evidence files' storage, a directory or an S3-compatible bucket
  (:func:`~chuangzheng.upload_storage.build_upload_storage`),

and hands them over together as :class:`Services` (:func:`open_services`). Nothing is built
at import time; tests pass their own settings (or a client, e.g. a test server's).

The read model's schema belongs to the migrations (``chuangzheng migrate``, i.e. ``alembic
upgrade head``: the ``chuangzheng-migrate`` Job, compose's ``migrate`` service, ``make run``).
A process never creates or alters a table of a database the migrations manage: at start it
checks that the database is at the migrations' head and refuses to start otherwise
(:func:`ensure_schema`, :class:`SchemaNotCurrent`). In development an empty database is
migrated on the spot (the same path, so it is then managed like any other); a schema the
test suites build directly (``activities.db.create_schema``, no ``alembic_version``; so does
an empty database under ``CZ_ENVIRONMENT=test``) is used as it is.

A process that cannot start for a reason its operator must fix raises
:class:`StartupRefused` (settings, schema, an unreachable Temporal); the entry points
(``chuangzheng.cli``, ``worker.main``) print its lines without a traceback
(:func:`report_refusal`) and exit with its code: 2 for configuration and schema, 1 when
Temporal cannot be reached (often an outage rather than a wrong address).

``serve_api`` is the API process (``chuangzheng api``): uvicorn over ``api.main.create_app``
with a bounded graceful shutdown; the worker process is ``worker.run_worker``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

import structlog

from chuangzheng.settings import Settings, UnknownVariablesError, get_settings, repo_root

if TYPE_CHECKING:  # heavy imports stay inside the functions: `chuangzheng --help` is fast
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker
    from temporalio.client import Client
    from temporalio.converter import DataConverter
    from temporalio.service import TLSConfig

    from activities.notifier import Notifier
    from chuangzheng.upload_storage import UploadStorage

log = structlog.get_logger(__name__)

#: Exit code of a process that refused to start over its configuration or its database's
#: schema (the operator must change something), the same as the CLI's bad input.
EXIT_CONFIGURATION = 2
#: Exit code when Temporal cannot be reached at start: a wrong address as often as an outage.
EXIT_UNAVAILABLE = 1

#: What the operator runs to bring the database to this release's schema.
MIGRATE_COMMAND = "chuangzheng migrate"


class StartupRefused(RuntimeError):
    """The process cannot start for a reason its operator must fix. ``lines`` are what the
    entry point prints instead of a traceback; ``exit_code`` is the process's exit status."""

    def __init__(self, lines: str | Sequence[str], *, exit_code: int = EXIT_CONFIGURATION):
        self.lines = (lines,) if isinstance(lines, str) else tuple(lines)
        self.exit_code = exit_code
        super().__init__("\n".join(self.lines))


class ConfigurationRefused(StartupRefused):
    """The settings (``CZ_*``) are refused: each line names the variable and the reason."""


class TemporalUnreachable(StartupRefused):
    """Temporal could not be reached at start (address, namespace, TLS, or an outage)."""

    def __init__(self, line: str) -> None:
        super().__init__(line, exit_code=EXIT_UNAVAILABLE)


@dataclass(frozen=True)
class SchemaState:
    """Where a database stands against the migrations: the revisions its ``alembic_version``
    holds (``managed``: that table exists), the migrations' heads, and its tables."""

    current: tuple[str, ...]
    heads: tuple[str, ...]
    managed: bool
    tables: frozenset[str]

    @property
    def at_head(self) -> bool:
        return self.managed and set(self.current) == set(self.heads)

    @property
    def has_read_model_tables(self) -> bool:
        """Some table of the read model exists (built by the migrations or directly)."""
        from activities.tables import metadata

        return bool(self.tables & set(metadata.tables))

    def describe(self) -> str:
        """``0009`` / ``0009, 0010`` / ``-``: the database's revision for messages."""
        return ", ".join(self.current) or "-"


class SchemaNotCurrent(StartupRefused):
    """The database is not at the migrations' head: the process refuses to start (it never
    creates or alters tables on a database the migrations manage, nor in production)."""

    def __init__(self, state: SchemaState) -> None:
        self.state = state
        super().__init__(_schema_line(state))


def _schema_line(state: SchemaState) -> str:
    """One Chinese and English line: what is wrong with the schema and what to run."""
    head = ", ".join(state.heads)
    run_zh = f"请先运行数据库迁移 `{MIGRATE_COMMAND}`（即 alembic upgrade head）再启动"
    run_en = f"run the migrations (`{MIGRATE_COMMAND}`, i.e. alembic upgrade head) first"
    if not state.managed and state.has_read_model_tables:
        return (
            "数据库中已有表，但没有迁移记录（alembic_version），不是由迁移建立的，拒绝启动："
            f"新装且尚无数据的，请清空数据库后运行 `{MIGRATE_COMMAND}`；已有数据的，见 "
            'docs/production.md "Database schema"。'
            " The database has tables but no alembic_version (they were not created by the "
            "migrations): refusing to start; a new install holding no data yet: empty it and "
            f'run `{MIGRATE_COMMAND}`; one holding data: docs/production.md "Database schema".'
        )
    if not state.managed or not state.current:
        return (
            f"数据库尚未迁移（本版本需要结构版本 {head}），拒绝启动：{run_zh}。"
            f" The database has not been migrated (this release needs revision {head}): "
            f"refusing to start; {run_en}."
        )
    unknown = [r for r in state.current if r not in _known_revisions()]
    if unknown:
        return (
            f"数据库结构版本 {state.describe()} 不在本版本的迁移中（由更新的版本迁移过？本版本需要 "
            f"{head}），拒绝启动：请部署与数据库一致的版本。"
            f" The database is at revision {state.describe()}, unknown to this release (which "
            f"needs {head}; migrated by a newer release?): refusing to start; deploy the "
            "release that matches the database."
        )
    return (
        f"数据库结构版本为 {state.describe()}，本版本需要 {head}，拒绝启动：{run_zh}。"
        f" The database schema is at revision {state.describe()}, this release needs "
        f"{head}: refusing to start; {run_en}."
    )


@dataclass(frozen=True)
class Database:
    """The read model of one process: its engine and session factory."""

    engine: Engine
    sessions: sessionmaker[Session]


@dataclass(frozen=True)
class Services:
    """Everything an entry point needs, built once per process by :func:`open_services`."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    temporal: Client
    notifier: Notifier
    uploads: UploadStorage


def _alembic_config() -> Any:
    """The project's ``alembic.ini`` with its migrations (no URL: callers hand a connection)."""
    from alembic.config import Config

    config = Config(str(repo_root() / "alembic.ini"))
    config.set_main_option("script_location", str(repo_root() / "migrations"))
    return config


@contextlib.contextmanager
def _quiet_alembic() -> Iterator[None]:
    """Alembic's INFO lines (plug-ins set up, the context's dialect) stay out of a process's
    log while it only reads where the schema stands."""
    logger = logging.getLogger("alembic")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


@functools.lru_cache(maxsize=1)
def _script() -> Any:
    with _quiet_alembic():
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(_alembic_config())


def migration_heads() -> tuple[str, ...]:
    """The head revision(s) of the migrations this release ships."""
    return tuple(sorted(_script().get_heads()))


def _known_revisions() -> set[str]:
    return {script.revision for script in _script().walk_revisions()}


def schema_state(engine: Engine) -> SchemaState:
    """Where the database of ``engine`` stands against the migrations (reads only)."""
    from sqlalchemy import inspect

    with _quiet_alembic(), engine.connect() as connection:
        from alembic.migration import MigrationContext

        tables = frozenset(inspect(connection).get_table_names())
        current = tuple(sorted(MigrationContext.configure(connection).get_current_heads()))
    return SchemaState(
        current=current,
        heads=migration_heads(),
        managed="alembic_version" in tables,
        tables=tables,
    )


def upgrade_schema(engine: Engine) -> None:
    """``alembic upgrade head`` through ``engine`` (one transaction where the database can)."""
    from alembic import command

    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def ensure_schema(engine: Engine, settings: Settings) -> SchemaState:
    """Check the database is at the migrations' head before a process starts on it, or raise
    :class:`SchemaNotCurrent` (one line saying what to run). Nothing is created or altered on
    a database the migrations manage (``alembic_version``), nor in production.

    Outside production a database without ``alembic_version`` is not the migrations':
    in development an empty one is migrated now (:func:`upgrade_schema`, the path every
    database takes, so it is managed from then on, ``make run`` can migrate it later, and it
    has the rows the migrations write, the default county's); one whose tables were built
    directly, and any under ``CZ_ENVIRONMENT=test`` (the test suites build theirs with
    ``activities.db.create_schema``, a tenth of the migrations' time), gets its missing
    tables, as before."""
    state = schema_state(engine)
    if state.at_head:
        return state
    if state.managed or settings.environment == "production":
        raise SchemaNotCurrent(state)
    if state.has_read_model_tables or settings.environment == "test":
        from activities.db import create_schema

        create_schema(engine)
        return state
    log.info("migrating the empty database", environment=settings.environment)
    try:
        upgrade_schema(engine)
    except Exception:
        # Another process started on the same empty database may have migrated it first.
        time.sleep(1.0)
        if not schema_state(engine).at_head:
            raise
    return schema_state(engine)


def check_database(settings: Settings) -> SchemaState:
    """:func:`ensure_schema` on the configured database, with an engine of its own (the API
    checks before uvicorn starts, so a refusal is one line rather than a start-up failure)."""
    from activities.db import make_engine

    engine = make_engine(settings.database_url)
    try:
        return ensure_schema(engine, settings)
    finally:
        engine.dispose()


def migrate_database(settings: Settings) -> tuple[SchemaState, SchemaState]:
    """``chuangzheng migrate``: the configured database to the migrations' head; the states
    before and after. A database with tables but no ``alembic_version`` (built without the
    migrations), or at a revision this release does not know, is refused with
    :class:`SchemaNotCurrent` instead of failing half-way."""
    from activities.db import make_engine

    engine = make_engine(settings.database_url)
    try:
        before = schema_state(engine)
        if not before.managed and before.has_read_model_tables:
            raise SchemaNotCurrent(before)
        if set(before.current) - _known_revisions():  # migrated by a newer release
            raise SchemaNotCurrent(before)
        if not before.at_head:
            upgrade_schema(engine)
        return before, schema_state(engine)
    finally:
        engine.dispose()


def wait_for_schema(settings: Settings, *, timeout: float, interval: float = 2.0) -> SchemaState:
    """Wait until the configured database is at the migrations' head (a Deployment's init
    container, while the migrations' Job runs), at most ``timeout`` seconds; then
    :class:`SchemaNotCurrent`. Reads only; an unreachable database counts as not yet."""
    from sqlalchemy.exc import SQLAlchemyError

    from activities.db import make_engine

    engine = make_engine(settings.database_url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                state = schema_state(engine)
            except SQLAlchemyError as exc:
                if time.monotonic() >= deadline:
                    raise StartupRefused(
                        f"无法连接数据库 / cannot reach the database: {_short(exc)}"
                    ) from None
            else:
                if state.at_head or time.monotonic() >= deadline:
                    if not state.at_head:
                        raise SchemaNotCurrent(state)
                    return state
            time.sleep(interval)
    finally:
        engine.dispose()


def build_database(settings: Settings, *, check_schema: bool = True) -> Database:
    """The engine (pool sized by ``database_pool_size``/``database_max_overflow``) and session
    factory for ``settings.database_url``; the caller disposes of ``engine``. The schema is
    checked first (:func:`ensure_schema`; ``check_schema=False`` for callers that migrate or
    check it themselves)."""
    from activities.db import make_engine, session_factory

    engine = make_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
    )
    if check_schema:
        try:
            ensure_schema(engine, settings)
        except BaseException:
            engine.dispose()
            raise
    return Database(engine=engine, sessions=session_factory(engine))


@contextlib.contextmanager
def open_database(settings: Settings, *, check_schema: bool = True) -> Iterator[Database]:
    """:func:`build_database`, disposed of on exit (for commands that need only the database)."""
    database = build_database(settings, check_schema=check_schema)
    try:
        yield database
    finally:
        database.engine.dispose()


# ----- refusals at start: settings, Temporal, and how the entry points show them -----------


def settings_error_lines(exc: Exception) -> list[str]:
    """The reasons a settings validation error gives, one line each, naming the variable;
    pydantic's ``[type=…, input_value=…]`` left out (it can hold the secret key), the value
    shown only for a field that is not a secret."""
    from pydantic import ValidationError

    from chuangzheng.settings import Settings as SettingsModel

    if not isinstance(exc, ValidationError):
        return [str(exc)]
    lines = []
    for error in exc.errors(include_url=False):
        reason = str(error["msg"]).removeprefix("Value error, ")
        loc = [str(part) for part in error["loc"]]
        if not loc:
            lines.append(reason)
            continue
        name = loc[0]
        field = SettingsModel.model_fields.get(name)
        variable = name if name.isupper() else f"CZ_{name.upper()}"
        value = error.get("input")
        shown = ""
        if field is not None and field.repr and isinstance(value, str | int | float):
            shown = f" (got {str(value)[:80]!r})"
        lines.append(f"{variable}: {reason}{shown}")
    return lines


def as_refusal(exc: BaseException) -> StartupRefused | None:
    """``exc`` as a refusal to start if it is one: a :class:`StartupRefused`, the settings'
    validation error, or production's unknown ``CZ_*`` variables; otherwise None."""
    from pydantic import ValidationError

    if isinstance(exc, StartupRefused):
        return exc
    if isinstance(exc, ValidationError) and exc.title == Settings.__name__:
        return ConfigurationRefused(settings_error_lines(exc))
    if isinstance(exc, UnknownVariablesError):
        return ConfigurationRefused(str(exc))
    return None


def load_settings() -> Settings:
    """:func:`~chuangzheng.settings.get_settings`, a refused configuration raised as
    :class:`ConfigurationRefused` (its lines name each variable and reason)."""
    try:
        return get_settings()
    except Exception as exc:
        refusal = as_refusal(exc)
        if refusal is None:
            raise
        raise refusal from None


def report_refusal(refusal: StartupRefused, stream: TextIO | None = None) -> None:
    """Print why the process did not start, on stderr: a configuration's reasons under one
    heading, any other refusal as its own line(s)."""
    out = stream or sys.stderr
    if isinstance(refusal, ConfigurationRefused):
        print("配置有误，未启动 / configuration refused, not started:", file=out)
        for line in refusal.lines:
            print(f"  {line}", file=out)
    else:
        for line in refusal.lines:
            print(line, file=out)
    out.flush()


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


def _connect_reason(exc: BaseException) -> str:
    """The useful part of the SDK's connection error (``tcp connect error: Connection
    refused``, ``dns error: failed to lookup address information: …``)."""
    text = str(exc)
    kind = re.search(r'ConnectError\("([^"]+)"', text)
    detail = re.findall(r'(?:message|error): "([^"]+)"', text)
    if kind and detail:
        return f"{kind.group(1)}: {detail[-1]}"
    return _short(exc)


def temporal_data_converter(settings: Settings) -> DataConverter:
    """The project's data converter (pydantic models; the SDK's default JSON converter would
    hand workflows plain dicts), with the AES-GCM payload codec when payload encryption is
    on (``chuangzheng.payload_codec``). Failure messages and stack traces are then encrypted
    too (the SDK's encoded failure attributes): they can hold the same business text."""
    import dataclasses

    from temporalio.converter import DefaultFailureConverterWithEncodedAttributes

    from chuangzheng.payload_codec import AesGcmPayloadCodec, parse_payload_keys
    from chuangzheng.temporal_server import data_converter

    converter = data_converter()
    if not settings.payload_encryption_enabled:
        return converter
    return dataclasses.replace(
        converter,
        payload_codec=AesGcmPayloadCodec(parse_payload_keys(settings.payload_keys)),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def temporal_tls(settings: Settings) -> TLSConfig | bool:
    """The TLS configuration of the connection: False (plain, the local dev server), True
    (server-authenticated with the system's CAs), or the certificates read from the
    configured PEM files. A file that cannot be read raises RuntimeError naming the setting."""
    from temporalio.service import TLSConfig

    if not settings.temporal_tls_enabled:
        return False
    files = {
        "CZ_TEMPORAL_TLS_CERT": settings.temporal_tls_cert,
        "CZ_TEMPORAL_TLS_KEY": settings.temporal_tls_key,
        "CZ_TEMPORAL_TLS_CA": settings.temporal_tls_ca,
    }
    if not any(files.values()) and not settings.temporal_tls_server_name:
        return True
    read: dict[str, bytes | None] = {}
    for name, path in files.items():
        if path is None:
            read[name] = None
            continue
        try:
            read[name] = path.read_bytes()
        except OSError as exc:
            raise ConfigurationRefused(
                f"{name}: cannot read {path} ({exc.strerror or exc})"
            ) from None
    return TLSConfig(
        server_root_ca_cert=read["CZ_TEMPORAL_TLS_CA"],
        client_cert=read["CZ_TEMPORAL_TLS_CERT"],
        client_private_key=read["CZ_TEMPORAL_TLS_KEY"],
        domain=settings.temporal_tls_server_name or None,
    )


#: How long a process waits at start for Temporal before it goes on without it (the API).
TEMPORAL_CONNECT_AT_START_SECONDS = 10.0


async def connect_temporal(settings: Settings, *, required: bool = True) -> Client:
    """A client for the configured address and namespace: TLS or an API key as configured
    (:func:`temporal_tls`), and the project's data converter with the payload codec
    (:func:`temporal_data_converter`). The worker, the API and the CLI all connect here.

    ``required`` (the worker, the CLI): an unreachable server is an error now
    (:class:`TemporalUnreachable`, one line naming the address and the settings). Otherwise
    (the API) it is logged and the client connects on its first call instead: the pages,
    sign-in and everything else the read model answers keep serving through a Temporal
    outage or a start before Temporal's, ``/readyz`` says Temporal is unavailable, and calls
    into workflows answer 503 with ``Retry-After`` until the server is back."""
    from temporalio.client import Client

    from chuangzheng.telemetry import client_interceptors

    options: dict[str, Any] = {
        "namespace": settings.temporal_namespace,
        "api_key": settings.temporal_api_key or None,
        "tls": temporal_tls(settings),
        "data_converter": temporal_data_converter(settings),
        "interceptors": client_interceptors(settings),
    }
    if required:
        try:
            return await Client.connect(settings.temporal_address, **options)
        except RuntimeError as exc:
            raise TemporalUnreachable(
                f"无法连接 Temporal（CZ_TEMPORAL_ADDRESS={settings.temporal_address}，"
                f"命名空间 {settings.temporal_namespace}）：{_connect_reason(exc)}；请检查"
                " CZ_TEMPORAL_ADDRESS 和 TLS 设置，或 Temporal 是否已启动。"
                f" Cannot connect to Temporal at {settings.temporal_address} (namespace "
                f"{settings.temporal_namespace}): check CZ_TEMPORAL_ADDRESS and the TLS "
                "settings, or whether Temporal is up."
            ) from exc
    try:
        return await asyncio.wait_for(
            Client.connect(settings.temporal_address, **options),
            TEMPORAL_CONNECT_AT_START_SECONDS,
        )
    except (RuntimeError, TimeoutError) as exc:
        log.warning(
            "temporal_unreachable_at_start",
            address=settings.temporal_address,
            error=str(exc)[:300],
            effect="serving without Temporal; workflow calls answer 503 until it is reachable",
        )
        return await Client.connect(settings.temporal_address, lazy=True, **options)


async def prepare_temporal(settings: Settings | None = None) -> tuple[str, ...]:
    """Register the workflows' search attributes on the configured namespace of an existing
    cluster (idempotent; the namespace itself is the cluster operator's). Returns the keys'
    names. Run by the deploy/k8s ``chuangzheng-temporal-setup`` Job with the same settings
    (address, namespace, TLS or API key) as the worker."""
    from chuangzheng.temporal_server import register_search_attributes
    from workflows.search_attributes import ALL_KEYS

    settings = settings or load_settings()
    client = await connect_temporal(settings)
    await register_search_attributes(client, settings.temporal_namespace)
    return tuple(key.name for key in ALL_KEYS)


def prepare_temporal_main() -> None:
    """``python -c "from chuangzheng.bootstrap import prepare_temporal_main; …"``: print the
    registered keys; exit non-zero (the Job retries) when Temporal cannot be reached."""
    try:
        names = asyncio.run(prepare_temporal(load_settings()))
    except StartupRefused as refusal:
        report_refusal(refusal)
        raise SystemExit(refusal.exit_code) from None
    print(f"search attributes registered on the namespace: {', '.join(names)}")


def build_notifier(sessions: sessionmaker[Session], settings: Settings) -> Notifier:
    """The notifier: the inbox, plus the channels of ``CZ_CHANNELS_FILE`` (validated now)."""
    from activities.channels import build_notifier as build

    return build(sessions, settings)


@contextlib.asynccontextmanager
async def open_services(
    settings: Settings | None = None,
    *,
    temporal: Client | None = None,
    temporal_required: bool = True,
) -> AsyncIterator[Services]:
    """Build every service of the process; the database is disposed of on exit.

    ``settings`` defaults to the process settings (``CZ_*``), ``temporal`` to a new client
    for them. Fails at once on a broken configuration (database URL, a database not at the
    migrations' head, channels file, unreachable Temporal), before the process starts
    serving; with ``temporal_required`` False (the API) an unreachable Temporal is not fatal
    (see :func:`connect_temporal`). The schema is checked, never created on a database the
    migrations manage (:func:`ensure_schema`).
    """
    from chuangzheng.upload_storage import build_upload_storage

    settings = settings or load_settings()
    with open_database(settings) as database:
        notifier = build_notifier(database.sessions, settings)
        client = temporal or await connect_temporal(settings, required=temporal_required)
        yield Services(
            settings=settings,
            engine=database.engine,
            sessions=database.sessions,
            temporal=client,
            notifier=notifier,
            uploads=build_upload_storage(settings),
        )


def serve_api(settings: Settings | None = None) -> int:
    """The API process: uvicorn on ``api_host:api_port`` until SIGTERM or Ctrl-C, then at most
    ``api_graceful_shutdown_seconds`` for in-flight requests. Access logs go through the
    project's logging (JSON on stderr unless at a terminal), ballot tokens redacted.

    Returns the exit code: 0 after a clean stop, 3 (uvicorn's) when start-up failed. A
    refused configuration, a database not at the migrations' head or an unreadable TLS file
    raise :class:`StartupRefused` before uvicorn starts (the entry point prints it).
    """
    import uvicorn

    from api.main import create_app
    from chuangzheng.logging import configure_logging
    from chuangzheng.telemetry import install_temporal_runtime

    settings = settings or load_settings()
    configure_logging(settings)
    # Refusals now, as one line each, rather than as uvicorn's failed start-up (a traceback):
    # the schema (the lifespan checks again, for other assemblies) and the TLS files.
    check_database(settings)
    temporal_tls(settings)
    # Core logs through our logging; the API binds no metrics port (its /metrics is a route).
    install_temporal_runtime(settings, metrics=False)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,  # keep the project's handlers; uvicorn's loggers propagate to them
        timeout_graceful_shutdown=max(1, round(settings.api_graceful_shutdown_seconds)),
        # A client that stopped reading must not hold the shutdown.
        timeout_keep_alive=5,
    )
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 3
