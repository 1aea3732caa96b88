"""``chuangzheng accounts create-county`` and ``create-supervisor``: a county with its first
county office account, and a province office's account naming its counties, created from
the command line on an empty database and activated with the printed codes; bad input gets
a Chinese message naming the field. Real SQLite file, the real console app."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from activities.db import make_engine, session_factory
from activities.tables import UserRow
from activities.tables.access import AccountCountyRow
from activities.tables.roster import CountyRow
from chuangzheng.cli import app
from chuangzheng.services import activation
from chuangzheng.services.sign_in import SignInVia, sign_in
from chuangzheng.settings import get_settings
from domain.organisation import DEFAULT_COUNTY, Role


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'city.db'}"
    monkeypatch.setenv("CZ_DATABASE_URL", url)
    monkeypatch.setenv("CZ_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def _code(output: str) -> str:
    match = re.search(r"激活码：([A-Z0-9-]{14})", output)
    assert match is not None, output
    return match.group(1)


def test_a_county_and_a_province_office_from_the_command_line(database: str) -> None:
    runner = CliRunner()
    county = runner.invoke(
        app,
        ["accounts", "create-county", "360781", "--name", "瑞金市", "--office", "ruijin-admin",
         "--office-name", "瑞金市委活动办"],
    )  # fmt: skip
    assert county.exit_code == 0, county.output
    assert "已创建县（区）：瑞金市（360781）" in county.output
    office_code = _code(county.output)

    again = runner.invoke(
        app,
        ["accounts", "create-county", "360781", "--name", "瑞金市", "--office", "other",
         "--office-name", "x"],
    )  # fmt: skip
    assert again.exit_code == 2 and "县（区）代码已存在" in again.output
    bad = runner.invoke(
        app,
        ["accounts", "create-county", "瑞金", "--name", "瑞金市", "--office", "o2",
         "--office-name", "x"],
    )  # fmt: skip
    assert bad.exit_code == 2 and "code：县（区）代码应为" in bad.output

    unknown = runner.invoke(
        app,
        ["accounts", "create-supervisor", "gz-zzb", "--name", "赣州市委组织部",
         "--county", "360781", "--county", "999999"],
    )  # fmt: skip
    assert unknown.exit_code == 2 and "counties：没有这些县（区）：999999" in unknown.output
    province = runner.invoke(
        app,
        ["accounts", "create-supervisor", "jx-zzb", "--name", "江西省委组织部", "--province",
         "--county", "360781", "--county", DEFAULT_COUNTY],
    )  # fmt: skip
    assert province.exit_code == 0, province.output
    province_code = _code(province.output)

    engine = make_engine(database)
    try:
        sessions = session_factory(engine)
        with sessions() as session:
            assert session.get(CountyRow, "360781").name == "瑞金市"  # type: ignore[union-attr]
            office = session.get(UserRow, "ruijin-admin")
            assert office is not None and office.county == "360781"
            assert office.role == Role.COUNTY_OFFICE.value
            above = session.get(UserRow, "jx-zzb")
            assert above is not None and above.role == Role.PROVINCE_OFFICE.value
            assert above.county == ""
            supervised = set(
                session.scalars(
                    select(AccountCountyRow.county).where(AccountCountyRow.username == "jx-zzb")
                )
            )
            assert supervised == {"360781", DEFAULT_COUNTY}
        for username, code in (("ruijin-admin", office_code), ("jx-zzb", province_code)):
            activation.activate(
                sessions, username=username, code=code, new_password="江西-瑞金-2026-春",
                ip=None, now=datetime.now(UTC),
            )  # fmt: skip
        with sessions() as session:
            for username, counties in (
                ("jx-zzb", {"360781", DEFAULT_COUNTY}),
                ("ruijin-admin", {"360781"}),
            ):
                signed = sign_in(
                    session, username=username, password="江西-瑞金-2026-春", ip=None,
                    via=SignInVia.API, settings=get_settings(),
                )  # fmt: skip
                assert signed.user.counties == frozenset(counties), username
        # A reset keeps the account in its county (the operator acts in the account's own).
        reset = runner.invoke(app, ["accounts", "reset", "ruijin-admin"])
        assert reset.exit_code == 0, reset.output
        reset = runner.invoke(app, ["accounts", "reset", "jx-zzb"])
        assert reset.exit_code == 0, reset.output
    finally:
        engine.dispose()
