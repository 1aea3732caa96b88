"""What a process does at start with a database the migrations have not brought to their head,
and with a refused configuration or an unreachable Temporal.

The API, the worker and the accounts commands never create or alter tables on a database the
migrations manage, nor in production: they compare ``alembic_version`` with the migrations'
head and refuse to start with one line saying what to run (``chuangzheng.bootstrap``). A
refused ``CZ_*`` setting or an unreachable Temporal is printed as its reason, without a
traceback, and the process exits 2 (configuration, schema) or 1 (Temporal).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.engine import make_url

from activities.db import create_schema, make_engine
from activities.tables.roster import CountyRow
from api.main import create_app
from chuangzheng.bootstrap import (
    SchemaNotCurrent,
    migrate_database,
    migration_heads,
    open_database,
    schema_state,
)
from chuangzheng.payload_codec import new_key_text
from chuangzheng.ports import free_port
from chuangzheng.settings import Settings
from domain.organisation import DEFAULT_COUNTY

ROOT = Path(__file__).resolve().parents[1]
CHUANGZHENG = str(Path(sys.executable).parent / "chuangzheng")
STRONG_KEY = "Zq" + uuid.uuid4().hex + uuid.uuid4().hex
PAYLOAD_KEYS = f"k1:{new_key_text()}"
HEAD = migration_heads()[0]


def alembic_config(url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def production(database_url: str, tmp_path: Path) -> Settings:
    """Production settings (encrypted payloads, standard hashing) on ``database_url``; a
    Temporal address nothing listens on (the API serves without it)."""
    return Settings(
        environment="production",
        password_hashing="standard",
        secret_key=STRONG_KEY,
        payload_keys=PAYLOAD_KEYS,
        database_url=database_url,
        data_dir=tmp_path / "data",
        temporal_address=f"127.0.0.1:{free_port()}",
    )


def tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()


@pytest.fixture
def empty_pg_database(postgres_url: str) -> Iterator[str]:
    """A freshly created PostgreSQL database, dropped afterwards."""
    name = f"cz_start_{uuid.uuid4().hex[:10]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


async def _start(settings: Settings, probe: bool) -> None:
    """The app's start-up (its lifespan), then, if ``probe``, ``GET /healthz`` through the
    whole middleware stack."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        if probe:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                assert (await c.get("/healthz")).status_code == 200


def start_app(settings: Settings) -> None:
    asyncio.run(_start(settings, probe=False))


def assert_starts(settings: Settings) -> None:
    asyncio.run(_start(settings, probe=True))


# ----- the API app (create_app and its start-up) on PostgreSQL, production settings -------------


@pytest.mark.postgres
def test_the_api_refuses_an_empty_database_creates_nothing_and_starts_once_migrated(
    empty_pg_database: str, tmp_path: Path
) -> None:
    settings = production(empty_pg_database, tmp_path)
    with pytest.raises(SchemaNotCurrent) as refused:
        start_app(settings)
    line = str(refused.value)
    assert "\n" not in line
    assert "数据库尚未迁移" in line and "chuangzheng migrate" in line
    assert "has not been migrated" in line and HEAD in line
    assert tables(empty_pg_database) == set()
    # The operator's next step works (it failed with DuplicateTable when the API had built
    # the tables itself), and then the API starts.
    command.upgrade(alembic_config(empty_pg_database), "head")
    assert revision(empty_pg_database) == HEAD
    assert_starts(settings)


@pytest.mark.postgres
def test_the_api_refuses_a_database_at_an_older_revision_and_alters_nothing(
    empty_pg_database: str, tmp_path: Path
) -> None:
    command.upgrade(alembic_config(empty_pg_database), "0009")
    before = tables(empty_pg_database)
    assert "briefings" not in before  # migration 0010's
    settings = production(empty_pg_database, tmp_path)
    with pytest.raises(SchemaNotCurrent) as refused:
        start_app(settings)
    line = str(refused.value)
    assert "数据库结构版本为 0009" in line and f"需要 {HEAD}" in line
    assert f"at revision 0009, this release needs {HEAD}" in line
    assert tables(empty_pg_database) == before
    assert revision(empty_pg_database) == "0009"
    command.upgrade(alembic_config(empty_pg_database), "head")
    assert "briefings" in tables(empty_pg_database)
    assert_starts(settings)


@pytest.mark.postgres
def test_production_refuses_tables_built_without_the_migrations(
    empty_pg_database: str, tmp_path: Path
) -> None:
    """What the old API left behind (tables, no alembic_version): refused by the processes
    and by ``chuangzheng migrate`` (instead of its DuplicateTable half-way)."""
    engine = make_engine(empty_pg_database)
    create_schema(engine)
    engine.dispose()
    settings = production(empty_pg_database, tmp_path)
    with pytest.raises(SchemaNotCurrent, match="没有迁移记录"), open_database(settings):
        pass
    with pytest.raises(SchemaNotCurrent, match="no alembic_version"):
        migrate_database(settings)
    assert "alembic_version" not in tables(empty_pg_database)


# ----- outside production: an empty database takes the migrations' path -------------------------


def test_development_migrates_an_empty_database_and_refuses_an_old_one(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'dev.db'}"
    settings = Settings(environment="development", database_url=url, data_dir=tmp_path)
    with open_database(settings) as database:
        with database.sessions() as session:
            # The row migration 0009 writes, which create_schema never did.
            assert session.scalar(select(CountyRow.code)) == DEFAULT_COUNTY
        assert schema_state(database.engine).at_head
    assert revision(url) == HEAD

    old = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(old), "0012")
    before = tables(old)
    with (
        pytest.raises(SchemaNotCurrent, match="0012"),
        open_database(Settings(environment="development", database_url=old, data_dir=tmp_path)),
    ):
        pass
    assert tables(old) == before and revision(old) == "0012"


def test_the_test_suites_directly_built_schema_is_used_as_it_is(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'suite.db'}"
    engine = make_engine(url)
    create_schema(engine)
    engine.dispose()
    for environment in ("test", "development"):
        settings = Settings(
            environment=environment, secret_key=STRONG_KEY, database_url=url, data_dir=tmp_path
        )
        with open_database(settings):
            pass
    assert "alembic_version" not in tables(url)
    # An empty database under CZ_ENVIRONMENT=test: built the suites' way, not migrated.
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    settings = Settings(
        environment="test", secret_key=STRONG_KEY, database_url=empty, data_dir=tmp_path
    )
    with open_database(settings):
        pass
    assert "alembic_version" not in tables(empty) and "audit_log" in tables(empty)


# ----- the processes: one clear line, no traceback ---------------------------------------------


def process_environment(tmp_path: Path, **changes: str) -> dict[str, str]:
    """A production environment as a deployment gives it (nothing inherited from the suite's
    own CZ_* variables)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CZ_")}
    environ.pop("DATABASE_URL", None)
    environ |= {
        "CZ_ENVIRONMENT": "production",
        "CZ_SECRET_KEY": STRONG_KEY,
        "CZ_PAYLOAD_KEYS": PAYLOAD_KEYS,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'read-model.db'}",
        "CZ_DATA_DIR": str(tmp_path / "data"),
        "CZ_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "CZ_API_PORT": str(free_port()),
    }
    return environ | changes


def run(args: list[str], environ: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHUANGZHENG, *args], env=environ, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def assert_clean_refusal(done: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    err = done.stderr
    assert done.returncode == code, (done.returncode, err[-3000:])
    assert "Traceback" not in err and "input_value" not in err and "[type=" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 3, err
    for needle in needles:
        assert needle in err, (needle, err)
    # Never the secrets themselves.
    assert STRONG_KEY not in err and PAYLOAD_KEYS.split(":", 1)[1] not in err


SETTINGS_REFUSALS = {
    "weak-secret-key": ({"CZ_SECRET_KEY": "short-key"}, "CZ_SECRET_KEY is too weak"),
    "no-payload-keys": ({"CZ_PAYLOAD_KEYS": ""}, "CZ_PAYLOAD_KEYS is empty"),
    "bad-payload-keys": ({"CZ_PAYLOAD_KEYS": "k1:not-base64!"}, "CZ_PAYLOAD_KEYS key 'k1'"),
    "fast-hashing": ({"CZ_PASSWORD_HASHING": "fast"}, "CZ_PASSWORD_HASHING=fast"),
    "worker-roles": ({"CZ_WORKER_ROLES": "workflows"}, "CZ_WORKER_ROLES must run both"),
    "bad-port": ({"CZ_API_PORT": "eighty"}, "CZ_API_PORT: Input should be a valid integer"),
}


@pytest.mark.parametrize("process", ["api", "worker"])
@pytest.mark.parametrize("case", sorted(SETTINGS_REFUSALS))
def test_a_refused_configuration_is_one_line_per_reason_and_exit_code_2(
    process: str, case: str, tmp_path: Path
) -> None:
    changes, reason = SETTINGS_REFUSALS[case]
    done = run([process], process_environment(tmp_path, **changes), tmp_path)
    assert_clean_refusal(done, 2, "配置有误，未启动", reason)
    assert not (tmp_path / "read-model.db").exists()


def test_the_processes_refuse_an_unmigrated_database_then_migrate_fixes_it(
    tmp_path: Path,
) -> None:
    environ = process_environment(tmp_path)
    for process in ("api", "worker"):
        done = run([process], environ, tmp_path)
        assert_clean_refusal(done, 2, "数据库尚未迁移", "chuangzheng migrate")
    assert tables(environ["DATABASE_URL"]) == set()
    checked = run(["migrate", "--check"], environ, tmp_path)
    assert_clean_refusal(checked, 2, "数据库尚未迁移")
    migrated = run(["migrate"], environ, tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    assert f"- → {HEAD}" in migrated.stdout
    # The worker now gets as far as Temporal, which is not there: one line, exit code 1.
    unreachable = run(["worker"], environ, tmp_path)
    assert_clean_refusal(
        unreachable, 1, "无法连接 Temporal", environ["CZ_TEMPORAL_ADDRESS"], "CZ_TEMPORAL_ADDRESS"
    )
    unknown_host = run(
        ["worker"], environ | {"CZ_TEMPORAL_ADDRESS": "temporal.invalid:7233"}, tmp_path
    )
    assert_clean_refusal(unknown_host, 1, "temporal.invalid:7233", "dns error")


def test_python_m_worker_refuses_the_same_way(tmp_path: Path) -> None:
    environ = process_environment(tmp_path, CZ_SECRET_KEY="short-key")
    done = subprocess.run(
        [sys.executable, "-m", "worker"],
        env=environ,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_clean_refusal(done, 2, "CZ_SECRET_KEY is too weak")


def test_a_database_migrated_by_a_newer_release_is_refused_not_migrated(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'newer.db'}"
    command.upgrade(alembic_config(url), "head")
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    settings = Settings(environment="development", database_url=url, data_dir=tmp_path)
    with pytest.raises(SchemaNotCurrent, match="9999, unknown to this release"):
        migrate_database(settings)
    with pytest.raises(SchemaNotCurrent, match="请部署与数据库一致的版本"), open_database(settings):
        pass
    assert revision(url) == "9999"
