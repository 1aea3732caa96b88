"""Setting up a county from the command line (``chuangzheng accounts``): the county and its
first county office account in one transaction, a county office only for an existing county,
the code a county-level 行政区划代码, and messages that say what to do next. The service on
SQLite and PostgreSQL; the commands on a SQLite file they create themselves, which then holds
what a migrated database holds."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from activities.db import create_schema, make_engine, session_factory
from activities.tables import AuditRow, UserRow
from activities.tables.roster import CountyRow, SystemRow
from chuangzheng.bootstrap import migration_heads
from chuangzheng.cli import app
from chuangzheng.services import counties
from chuangzheng.services.code_mail import CodeMail, CodeMailer, MailOutcome
from chuangzheng.services.errors import Conflict, InvalidInput
from chuangzheng.settings import get_settings
from domain.organisation import DEFAULT_COUNTY, Role

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """A read model built by the test suites' way (create_schema), on SQLite or PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'counties.db'}"
        engine = make_engine(url)
        create_schema(engine)
        yield session_factory(engine)
        engine.dispose()
        return
    base = request.getfixturevalue("postgres_url")
    name = f"cz_county_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(make_url(base).set(database=name).render_as_string(hide_password=False))
    try:
        create_schema(engine)
        yield session_factory(engine)
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def counted(sessions: sessionmaker[Session], *where: Any, row: Any = CountyRow) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(row).where(*where)) or 0)


def create(sessions: sessionmaker[Session], code: str, username: str, **extra: Any) -> Any:
    return counties.create_county_with_office(
        sessions,
        "cli:operator",
        code=code,
        name=extra.pop("name", "于都县"),
        username=username,
        display_name=extra.pop("display_name", "于都县委活动办"),
        now=NOW,
        **extra,
    )


# ----- the service -----------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["360781", "110101", "654326", "360782"])
def test_a_county_level_division_code_is_accepted(code: str) -> None:
    counties.check_division_code(code)


@pytest.mark.parametrize(
    ("code", "why"),
    [
        ("36-bad", "6 位数字"),
        ("3607810", "6 位数字"),
        ("36078", "6 位数字"),
        ("３６０７８１", "6 位数字"),  # full-width digits
        ("瑞金", "6 位数字"),
        ("990781", "前两位 99"),
        ("360700", "不能以 00 结尾"),
        ("360000", "不能以 00 结尾"),
    ],
)
def test_other_codes_are_refused_naming_the_field(code: str, why: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        counties.check_division_code(code)
    assert refused.value.errors[0]["field"] == "code"
    assert why in refused.value.errors[0]["reason"]


def test_a_taken_username_leaves_no_county_behind(sessions: sessionmaker[Session]) -> None:
    create(sessions, "360781", "ruijin-admin", name="瑞金市")
    groups = counted(sessions, row=SystemRow)
    with pytest.raises(Conflict, match="账号已存在"):
        create(sessions, "360782", "ruijin-admin")
    assert counted(sessions, CountyRow.code == "360782") == 0
    assert counted(sessions, row=SystemRow) == groups  # its guidance groups rolled back too
    assert counted(sessions, AuditRow.action == "account.create", row=AuditRow) == 1
    # Run again with another username: the county is not "already there".
    issued = create(sessions, "360782", "yudu-admin")
    assert issued.account.username == "yudu-admin"
    with sessions() as session:
        row = session.get(UserRow, "yudu-admin")
        assert row is not None and row.county == "360782" and row.role == Role.COUNTY_OFFICE
        assert session.get(CountyRow, "360782") is not None


def test_a_refused_account_or_code_creates_nothing(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(InvalidInput):
        create(sessions, "360782", "yudu-admin", display_name="")
    with pytest.raises(InvalidInput):
        create(sessions, "360782", "bad name!")
    with pytest.raises(InvalidInput, match="请求参数有误"):
        create(sessions, "36-bad", "yudu-admin")
    assert counted(sessions, CountyRow.code != DEFAULT_COUNTY) == 0
    assert counted(sessions, row=UserRow) == 0
    create(sessions, "360782", "yudu-admin")
    with pytest.raises(Conflict, match="县（区）代码已存在"):
        create(sessions, "360782", "yudu-second")
    assert counted(sessions, UserRow.username == "yudu-second", row=UserRow) == 0


def test_a_county_office_only_for_an_existing_county(sessions: sessionmaker[Session]) -> None:
    def office(username: str, county: str) -> Any:
        return counties.create_county_office(
            sessions, "cli:operator", county=county, username=username, display_name="张", now=NOW
        )

    with pytest.raises(InvalidInput) as refused:
        office("office3", "nosuch")
    assert refused.value.code == "unknown_county"
    assert refused.value.errors == [{"field": "county", "reason": "没有代码为 nosuch 的县（区）"}]
    assert counted(sessions, row=UserRow) == 0
    # The embedded default county needs no row; a created county is there.
    assert office("county-admin", DEFAULT_COUNTY).account.username == "county-admin"
    create(sessions, "360782", "yudu-admin")
    issued = office("yudu-second", "360782")
    with sessions() as session:
        row = session.get(UserRow, "yudu-second")
        assert row is not None and row.county == "360782"
    assert issued.code


class CheckingMailer:
    """A mailer that knows the office's own address and checks, when it sends, that the
    county and the account are already committed (read through another connection)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sent: list[str] = []

    def personal_address(self, role: Role, keys: Iterable[str], county: str) -> str:
        return "office@yudu.example.gov.cn"

    def send(self, mails: list[CodeMail]) -> set[str]:
        engine = make_engine(self.url)
        try:
            with engine.connect() as connection:
                for mail in mails:
                    user = connection.execute(
                        select(UserRow.county).where(UserRow.username == mail.username)
                    ).scalar()
                    assert user is not None, "mailed before the account was committed"
                    assert connection.execute(
                        select(CountyRow.code).where(CountyRow.code == user)
                    ).scalar(), "mailed before the county was committed"
        finally:
            engine.dispose()
        self.sent += [mail.username for mail in mails]
        return {mail.username for mail in mails}


def test_the_code_is_mailed_once_county_and_account_are_committed(
    sessions: sessionmaker[Session],
) -> None:
    bind = sessions.kw["bind"]
    mailer = CheckingMailer(bind.url.render_as_string(hide_password=False))
    issued = create(sessions, "360782", "yudu-admin", mailer=cast(CodeMailer, mailer))
    assert mailer.sent == ["yudu-admin"] and issued.mail is MailOutcome.SENT
    assert counted(sessions, AuditRow.action == "account.code_mail", row=AuditRow) == 1


# ----- the commands ----------------------------------------------------------------------------


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A SQLite file the commands create (development settings)."""
    for name in ("CZ_ENVIRONMENT", "CZ_DATABASE_URL", "DATABASE_URL", "CZ_CHANNELS_FILE"):
        monkeypatch.delenv(name, raising=False)
    url = f"sqlite:///{tmp_path / 'county.db'}"
    monkeypatch.setenv("CZ_DATABASE_URL", url)
    monkeypatch.setenv("CZ_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def test_the_commands_refuse_guide_and_leave_nothing_half_made(database: str) -> None:
    runner = CliRunner()
    unknown = runner.invoke(
        app, ["accounts", "create-county-office", "office3", "--name", "张", "--county", "nosuch"]
    )
    assert unknown.exit_code == 2, unknown.output
    assert "没有该县（区）" in unknown.output and "未创建账号" in unknown.output
    assert "chuangzheng accounts create-county <县级行政区划代码>" in unknown.output

    first = runner.invoke(
        app, ["accounts", "create-county-office", "ruijin-admin", "--name", "张主任"]
    )
    assert first.exit_code == 0, first.output

    taken = runner.invoke(
        app,
        ["accounts", "create-county", "360782", "--name", "于都县", "--office", "ruijin-admin",
         "--office-name", "于都县委活动办"],
    )  # fmt: skip
    assert taken.exit_code == 2
    assert "账号已存在" in taken.output
    assert "县（区）360782 未创建" in taken.output and "--office" in taken.output

    bad = runner.invoke(
        app,
        ["accounts", "create-county", "36-bad", "--name", "于都县", "--office", "yudu-admin",
         "--office-name", "于都县委活动办"],
    )  # fmt: skip
    assert bad.exit_code == 2
    assert "code：县（区）代码应为 6 位数字" in bad.output and "未创建" in bad.output

    created = runner.invoke(
        app,
        ["accounts", "create-county", "360782", "--name", "于都县", "--office", "yudu-admin",
         "--office-name", "于都县委活动办"],
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    assert "已创建县（区）：于都县（360782）" in created.output

    again = runner.invoke(
        app,
        ["accounts", "create-county", "360782", "--name", "于都县", "--office", "yudu-second",
         "--office-name", "于都县委活动办"],
    )  # fmt: skip
    assert again.exit_code == 2 and "县（区）代码已存在" in again.output
    assert "create-county-office yudu-second" in again.output
    assert "--county 360782" in again.output

    second = runner.invoke(
        app,
        ["accounts", "create-county-office", "yudu-second", "--name", "于都二", "--county",
         "360782"],
    )  # fmt: skip
    assert second.exit_code == 0, second.output

    engine = make_engine(database)
    try:
        with engine.connect() as connection:
            users = dict(connection.execute(select(UserRow.username, UserRow.county)).all())
            codes = set(connection.execute(select(CountyRow.code)).scalars())
            version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()
    assert users == {
        "ruijin-admin": DEFAULT_COUNTY,
        "yudu-admin": "360782",
        "yudu-second": "360782",
    }
    # The file the commands made is a migrated database: the default county's row included.
    assert codes == {DEFAULT_COUNTY, "360782"}
    assert (version,) == migration_heads()
