"""The roster in the read model: CSV and XLSX import, bad files import nothing, re-import
updates in place; on SQLite always and on PostgreSQL when it answers."""

from __future__ import annotations

from pathlib import Path

import pytest
from openpyxl import Workbook  # type: ignore[import-untyped]
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from activities.roster_files import read_roster_file
from activities.roster_store import (
    import_roster_file,
    load_roster,
    write_roster_snapshot,
)
from activities.tables import OrganisationRow, PersonRoleRow, SystemRow, TownshipRow
from domain.errors import ValidationFailed

ROOT = Path(__file__).resolve().parents[2]
DEMO_ROSTER = ROOT / "deploy" / "demo" / "roster.csv"
HEADER = ["组织编号", "组织名称", "组织类型", "所属乡镇", "所属系统", "党员人数", "书记", "指导员"]
ROWS = [
    ["org-a", "城关镇东关村党支部", "农村", "城关镇", "县农委", "42", "李明", "张指导"],
    ["org-b", "城关镇西关社区党支部", "社区", "城关镇", "县农委", "25", "王芳", "张指导"],
    ["org-c", "县教育局机关党支部", "机关", "县直", "县直机关工委", "30", "赵强", "刘指导"],
]


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    lines = [",".join(HEADER), *(",".join(r) for r in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8-sig")
    return path


def write_xlsx(path: Path, rows: list[list[str]]) -> Path:
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(HEADER)
    for row in rows:
        sheet.append([int(c) if c.isdigit() else c for c in row])
    workbook.save(path)
    return path


def count(sessions: sessionmaker[Session], model: type) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


@pytest.mark.parametrize("writer", [write_csv, write_xlsx], ids=["csv", "xlsx"])
def test_valid_file_imports_roster_townships_systems_and_people(
    sessions: sessionmaker[Session], tmp_path: Path, writer: object
) -> None:
    suffix = ".csv" if writer is write_csv else ".xlsx"
    path = writer(tmp_path / f"roster{suffix}", ROWS)  # type: ignore[operator]
    with sessions.begin() as session:
        report = import_roster_file(session, path)
    assert (report.added, report.updated, report.total) == (3, 0, 3)
    with sessions() as session:
        roster = load_roster(session)
        org = session.get(OrganisationRow, "org-c")
        roles = session.scalars(select(PersonRoleRow).order_by(PersonRoleRow.person)).all()
    assert [o.id for o in roster.organisations] == ["org-a", "org-b", "org-c"]
    assert org is not None and (org.system, org.org_type) == ("organs", "government_organ")
    assert count(sessions, TownshipRow) == 2
    assert count(sessions, SystemRow) == 6
    assert {(r.person, r.role, r.scope_key) for r in roles} >= {
        ("李明", "secretary", "org-a"),
        ("张指导", "instructor", "张指导"),
    }


@pytest.mark.parametrize("writer", [write_csv, write_xlsx], ids=["csv", "xlsx"])
def test_bad_rows_are_reported_and_nothing_is_imported(
    sessions: sessionmaker[Session], tmp_path: Path, writer: object
) -> None:
    suffix = ".csv" if writer is write_csv else ".xlsx"
    bad = [
        ROWS[0],
        ["org-x", "某村党支部", "火星", "城关镇", "县农委", "12", "甲", "乙"],
        ["org-y", "某社区党支部", "社区", "城关镇", "县农委", "0", "丙", "丁"],
    ]
    path = writer(tmp_path / f"bad{suffix}", bad)  # type: ignore[operator]
    with pytest.raises(ValidationFailed) as caught, sessions.begin() as session:
        import_roster_file(session, path)
    fields = [e.field for e in caught.value.errors]
    assert "第3行·组织类型" in fields
    assert "第4行·党员人数" in fields
    assert count(sessions, OrganisationRow) == 0
    assert count(sessions, PersonRoleRow) == 0


def test_reimport_updates_in_place_and_deactivates_the_missing(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    with sessions.begin() as session:
        import_roster_file(session, write_csv(tmp_path / "v1.csv", ROWS))
    updated = [[*ROWS[0][:5], "50", "李新", "张指导"], ROWS[1]]
    with sessions.begin() as session:
        report = import_roster_file(session, write_csv(tmp_path / "v2.csv", updated))
    # org-a changed, org-b did not, org-c left: only changes are counted
    assert (report.added, report.updated, report.deactivated) == (0, 1, 1)
    assert (report.unchanged, report.deactivated_ids) == (1, ("org-c",))
    with sessions() as session:
        org_a = session.get(OrganisationRow, "org-a")
        org_c = session.get(OrganisationRow, "org-c")
        people = set(session.scalars(select(PersonRoleRow.person)))
        active = [o.id for o in load_roster(session).organisations]
    assert org_a is not None and (org_a.member_count, org_a.secretary) == (50, "李新")
    assert org_c is not None and not org_c.active
    assert "李明" not in people and "赵强" not in people
    assert active == ["org-a", "org-b"]
    assert count(sessions, OrganisationRow) == 3


def test_demo_roster_round_trips_through_a_snapshot(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    with sessions.begin() as session:
        report = import_roster_file(session, DEMO_ROSTER)
    with sessions() as session:
        snapshot = write_roster_snapshot(session, tmp_path / "snap" / "roster.csv")
        stored = load_roster(session)
    assert report.total == len(stored.organisations) == 300
    assert read_roster_file(snapshot) == read_roster_file(DEMO_ROSTER) == stored
