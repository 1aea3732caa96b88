"""``chuangzheng accounts``: the first county office account of a real county, created from
the command line on an empty database, activated with the printed code; a reset prints a new
code and spends the old one. Real SQLite file, the real console app (typer's runner)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from activities.db import make_engine, session_factory
from activities.tables import AuditRow, UserRow
from chuangzheng.cli import app
from chuangzheng.services import activation
from chuangzheng.services.errors import InvalidInput
from chuangzheng.settings import get_settings


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'county.db'}"
    monkeypatch.setenv("CZ_DATABASE_URL", url)
    monkeypatch.setenv("CZ_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CZ_PUBLIC_BASE_URL", "https://cxzy.example.gov.cn")
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def _code(output: str) -> str:
    match = re.search(r"激活码：([A-Z0-9-]{14})", output)
    assert match is not None, output
    return match.group(1)


def test_first_county_office_account_from_the_command_line(database: str) -> None:
    runner = CliRunner()
    created = runner.invoke(
        app, ["accounts", "create-county-office", "county-admin", "--name", "县委活动办张主任"]
    )
    assert created.exit_code == 0, created.output
    assert "https://cxzy.example.gov.cn/ui/activate" in created.output
    first = _code(created.output)

    again = runner.invoke(app, ["accounts", "create-county-office", "county-admin", "--name", "x"])
    assert again.exit_code == 2 and "账号已存在" in again.output

    reset = runner.invoke(app, ["accounts", "reset", "county-admin"])
    assert reset.exit_code == 0, reset.output
    second = _code(reset.output)
    assert second != first

    engine = make_engine(database)
    try:
        sessions = session_factory(engine)
        with pytest.raises(InvalidInput):
            activation.activate(
                sessions,
                username="county-admin",
                code=first,
                new_password="县委-活动办-2026-春",
                ip=None,
                now=datetime.now(UTC),
            )
        account = activation.activate(
            sessions,
            username="county-admin",
            code=second,
            new_password="县委-活动办-2026-春",
            ip=None,
            now=datetime.now(UTC),
        )
        assert account.role.value == "county_office" and account.activated
        with sessions() as session:
            row = session.get(UserRow, "county-admin")
            assert row is not None and row.password_hash and row.source == "admin"
            audit = session.scalars(select(AuditRow).order_by(AuditRow.at)).all()
        assert [a.action for a in audit] == ["account.create", "account.reset", "account.activate"]
        assert audit[0].user.startswith("cli:")
    finally:
        engine.dispose()

    missing = runner.invoke(app, ["accounts", "reset", "nobody"])
    assert missing.exit_code == 2 and "不存在" in missing.output
