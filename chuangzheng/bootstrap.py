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

``serve_api`` is the API process (``chuangzheng api``): uvicorn over ``api.main.create_app``
with a bounded graceful shutdown; the worker process is ``worker.run_worker``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from chuangzheng.settings import Settings, get_settings

if TYPE_CHECKING:  # heavy imports stay inside the functions: `chuangzheng --help` is fast
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker
    from temporalio.client import Client
    from temporalio.converter import DataConverter
    from temporalio.service import TLSConfig

    from activities.notifier import Notifier
    from chuangzheng.upload_storage import UploadStorage

log = structlog.get_logger(__name__)


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


def build_database(settings: Settings, *, create_schema: bool = False) -> Database:
    """The engine (pool sized by ``database_pool_size``/``database_max_overflow``) and session
    factory for ``settings.database_url``; the caller disposes of ``engine``.
    ``create_schema`` creates missing tables (development and tests; production runs the
    migrations first)."""
    from activities.db import create_schema as create_tables
    from activities.db import make_engine, session_factory

    engine = make_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
    )
    if create_schema:
        create_tables(engine)
    return Database(engine=engine, sessions=session_factory(engine))


@contextlib.contextmanager
def open_database(settings: Settings, *, create_schema: bool = False) -> Iterator[Database]:
    """:func:`build_database`, disposed of on exit (for commands that need only the database)."""
    database = build_database(settings, create_schema=create_schema)
    try:
        yield database
    finally:
        database.engine.dispose()


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
            raise RuntimeError(f"{name}: cannot read {path} ({exc.strerror or exc})") from None
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

    ``required`` (the worker, the CLI): an unreachable server is an error now. Otherwise
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
        return await Client.connect(settings.temporal_address, **options)
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

    settings = settings or get_settings()
    client = await connect_temporal(settings)
    await register_search_attributes(client, settings.temporal_namespace)
    return tuple(key.name for key in ALL_KEYS)


def prepare_temporal_main() -> None:
    """``python -c "from chuangzheng.bootstrap import prepare_temporal_main; …"``: print the
    registered keys; exit non-zero (the Job retries) when Temporal cannot be reached."""
    import asyncio

    names = asyncio.run(prepare_temporal())
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
    create_schema: bool = False,
    temporal_required: bool = True,
) -> AsyncIterator[Services]:
    """Build every service of the process; the database is disposed of on exit.

    ``settings`` defaults to the process settings (``CZ_*``), ``temporal`` to a new client
    for them. Fails at once on a broken configuration (database URL, channels file,
    unreachable Temporal), before the process starts serving; with ``temporal_required``
    False (the API) an unreachable Temporal is not fatal (see :func:`connect_temporal`).
    """
    from chuangzheng.upload_storage import build_upload_storage

    settings = settings or get_settings()
    with open_database(settings, create_schema=create_schema) as database:
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

    Returns the exit code: 0 after a clean stop, 3 (uvicorn's) when start-up failed.
    """
    import uvicorn

    from api.main import create_app
    from chuangzheng.logging import configure_logging
    from chuangzheng.telemetry import install_temporal_runtime

    settings = settings or get_settings()
    configure_logging(settings)
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
