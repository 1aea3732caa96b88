"""The dev server with a history file runs SQLite in WAL with NORMAL sync, whether the SDK
starts it (tests, benchmarks) or ``make run`` does (``dev_server_command``): a benchmark
measures the server the product runs, and the rollback journal halved a storm's pace."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest

from chuangzheng.temporal_server import dev_server_command, start_dev_server_env


def pragma_values(command: list[str]) -> list[str]:
    return [command[i + 1] for i, arg in enumerate(command) if arg == "--sqlite-pragma"]


def test_make_runs_server_with_a_file_uses_wal_and_in_memory_needs_no_pragma(
    tmp_path: Path,
) -> None:
    with_file = dev_server_command(
        host="127.0.0.1", port=1, db_file=tmp_path / "t.db", ui_port=None
    )
    assert pragma_values(with_file) == ["journal_mode=wal", "synchronous=normal"]
    in_memory = dev_server_command(host="127.0.0.1", port=1, db_file=None, ui_port=None)
    assert pragma_values(in_memory) == []


@pytest.mark.asyncio(loop_scope="session")
async def test_the_sdk_started_server_writes_its_history_file_in_wal(tmp_path: Path) -> None:
    db_file = tmp_path / "temporal.db"
    env = await start_dev_server_env(db_file=db_file)
    try:
        # The server registered its namespace and search attributes: it has written.
        await env.client.workflow_service.get_system_info(GetSystemInfoRequest())
        with sqlite3.connect(f"file:{db_file}?mode=ro", uri=True) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert Path(f"{db_file}-wal").exists()
    finally:
        await env.shutdown()
