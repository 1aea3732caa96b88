"""``chuangzheng check-names``: ids and names an import before session 18 stored with
invisible or full-width characters are listed, and ``--fix`` rewrites them to what the
imports now read, in one transaction, only when no two clean to the same value. The real
console app (typer's runner) over a real SQLite file and a PostgreSQL schema (``engine``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from activities.tables import (
    OrganisationRow,
    PartyMemberRow,
    RosterDepartureRow,
    SignInSessionRow,
    UserRow,
)
from chuangzheng.cli import app
from chuangzheng.names_cli import check_names
from chuangzheng.services.roster import secretary_username
from chuangzheng.settings import get_settings
from domain.text import BIDI_REASON

NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
ORG_1 = "org-1\u200b"  # a zero-width space pasted after the id
ORG_2 = "ｏｒｇ－２"  # full-width
PINNED = "org-4\u200d"  # named by a round's record: its workflows carry the id
SECRETARY = secretary_username(ORG_1, "刘\u200d三")
INSTRUCTOR = "instructor-王二\u2060"


@pytest.fixture
def database(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The CLI's database (``CZ_DATABASE_URL``) is the test's engine's."""
    url = engine.url.render_as_string(hide_password=False)
    monkeypatch.setenv("CZ_DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def _org(org_id: str, secretary: str = "李明", row_number: int = 1) -> OrganisationRow:
    return OrganisationRow(
        org_id=org_id, name=f"{org_id}党支部", org_type="rural", township="城关镇",
        system="rural", member_count=30, secretary=secretary, instructor="王二\u2060",
        ethnic_area=False, active=True, row_number=row_number, updated_at=NOW,
    )  # fmt: skip


def _user(username: str, role: str, scope: str, display_name: str) -> UserRow:
    return UserRow(
        username=username, display_name=display_name, password_hash=None, role=role,
        scope_key=scope, active=True, created_at=NOW, source="roster", session_version=0,
    )  # fmt: skip


def _seed(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        session.add_all(
            [
                _org(ORG_1, "刘\u200d三"),
                _org(ORG_2, row_number=2),
                _org("org-3", row_number=3),
                _org(PINNED, row_number=4),
                PartyMemberRow(org_id=ORG_1, member_id="M001", name="王\u200d芳", active=True,
                               row_number=1, updated_at=NOW),
                PartyMemberRow(org_id="org-3", member_id="M002", name="Ｌｉ Ｍｉｎｇ",
                               active=True, row_number=1, updated_at=NOW),
                PartyMemberRow(org_id="org-3", member_id="M003", name="张伟", active=True,
                               row_number=2, updated_at=NOW),
                _user(SECRETARY, "secretary", ORG_1, "org-1党支部书记刘\u200d三"),
                _user(INSTRUCTOR, "instructor", "王二\u2060", "王二\ufeff"),
                _user("county", "county_office", "", "县委活动办"),
                SignInSessionRow(session_id="s-1", username=INSTRUCTOR, via="password",
                                 ip=None, issued_at=NOW, expires_at=NOW + timedelta(hours=8)),
                RosterDepartureRow(round_id="r1", org_id=PINNED, detected_at=NOW,
                                   decision="pending"),
            ]
        )  # fmt: skip


def _snapshot(sessions: sessionmaker[Session]) -> dict[str, list[Any]]:
    with sessions() as session:
        return {
            "orgs": sorted(session.scalars(select(OrganisationRow.org_id))),
            "members": sorted(
                tuple(row)
                for row in session.execute(
                    select(PartyMemberRow.org_id, PartyMemberRow.member_id, PartyMemberRow.name)
                )
            ),
            "users": sorted(
                tuple(row)
                for row in session.execute(
                    select(UserRow.username, UserRow.scope_key, UserRow.display_name)
                )
            ),
        }


def test_unclean_names_are_listed_and_fixed_in_one_transaction(
    database: str, sessions: sessionmaker[Session]
) -> None:
    _seed(sessions)
    runner = CliRunner()
    before = _snapshot(sessions)

    listed = runner.invoke(app, ["check-names"])
    assert listed.exit_code == 1, listed.output
    lines = listed.stdout.splitlines()
    assert lines[0] == "表\t字段\t行\t原值\t清理后\t说明"
    rows = {tuple(line.split("\t")[:5]) for line in lines[1:]}
    assert rows == {
        ("organisations", "org_id", repr(ORG_1), repr(ORG_1), "'org-1'"),
        ("organisations", "org_id", repr(ORG_2), repr(ORG_2), "'org-2'"),
        ("organisations", "org_id", repr(PINNED), repr(PINNED), "'org-4'"),
        ("users", "username", repr(SECRETARY), repr(SECRETARY), "'secretary-org-1-刘三'"),
        ("users", "username", repr(INSTRUCTOR), repr(INSTRUCTOR), "'instructor-王二'"),
        ("users", "display_name", repr(SECRETARY), repr("org-1党支部书记刘\u200d三"),
         "'org-1党支部书记刘三'"),
        ("users", "display_name", repr(INSTRUCTOR), repr("王二\ufeff"), "'王二'"),
        ("party_members", "name", repr(f"{ORG_1}/M001"), repr("王\u200d芳"), "'王芳'"),
        ("party_members", "name", "'org-3/M002'", repr("Ｌｉ Ｍｉｎｇ"), "'Li Ming'"),
    }  # fmt: skip
    assert "\\u200b" in listed.stdout  # the invisible character is shown
    assert "roster_departures" in next(line for line in lines if repr(PINNED) in line)
    assert _snapshot(sessions) == before  # listing writes nothing

    # A look-alike account beside the stored one: which is meant is the county's call.
    with sessions.begin() as session:
        session.add(_user("instructor-王二", "instructor", "王二", "王二"))
    collided = runner.invoke(app, ["check-names", "--fix"])
    assert collided.exit_code == 1, collided.output
    assert "清理后都是 'instructor-王二'" in collided.stderr
    assert "未改写任何值" in collided.stderr
    with sessions() as session:
        assert session.get(OrganisationRow, ORG_1) is not None  # nothing written
    with sessions.begin() as session:
        session.execute(delete(UserRow).where(UserRow.username == "instructor-王二"))
    assert _snapshot(sessions) == before

    fixed = runner.invoke(app, ["check-names", "--fix"])
    # The organisation named by a round's record stays as stored: the status says so.
    assert fixed.exit_code == 1, fixed.output
    assert "已改写 8 处" in fixed.stdout and "另有 1 处无法改写" in fixed.stderr
    after = _snapshot(sessions)
    assert after["orgs"] == ["org-1", "org-2", "org-3", PINNED]
    assert after["members"] == [
        ("org-1", "M001", "王芳"),
        ("org-3", "M002", "Li Ming"),
        ("org-3", "M003", "张伟"),
    ]
    assert after["users"] == [
        ("county", "", "县委活动办"),
        ("instructor-王二", "王二\u2060", "王二"),  # the next import sets the scope
        ("secretary-org-1-刘三", "org-1", "org-1党支部书记刘三"),
    ]
    with sessions() as session:
        signed_in = session.get(SignInSessionRow, "s-1")
        assert signed_in is not None
        assert signed_in.username == "instructor-王二" and signed_in.revoked_at is not None
        renamed = session.get(UserRow, "instructor-王二")
        assert renamed is not None and renamed.session_version == 1

    # Once the round's record is gone (the county office's call), the id is fixed too.
    with sessions.begin() as session:
        session.execute(delete(RosterDepartureRow))
    assert runner.invoke(app, ["check-names", "--fix"]).exit_code == 0
    clean = runner.invoke(app, ["check-names"])
    assert clean.exit_code == 0, clean.output
    assert "都已是清理后的形式" in clean.stdout


def test_values_that_cannot_be_cleaned_are_listed_with_the_reason(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        session.add_all(
            [
                _org("org-1"),
                PartyMemberRow(org_id="org-1", member_id="M001", name="王\u202e二", active=True,
                               row_number=1, updated_at=NOW),
                PartyMemberRow(org_id="org-1", member_id="M002", name="\u200b", active=True,
                               row_number=2, updated_at=NOW),
                _user("township-城关镇（开发区）", "township", "城关镇（开发区）", "城关镇"),
            ]
        )  # fmt: skip
    with sessions() as session:
        report = check_names(session)
    # Chinese full-width brackets are kept, as the roster import keeps them.
    assert [(u.row, u.cleaned, u.blocked) for u in report.unclean] == [
        ("org-1/M001", "", BIDI_REASON),
        ("org-1/M002", "", "清理后为空"),
    ]
    assert report.collisions == () and report.fixable == ()
