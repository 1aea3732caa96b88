"""Roster files: the shipped demo roster, CSV and XLSX alike, bad files import nothing."""

from __future__ import annotations

import codecs
import csv
import importlib.util
import io
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest
from openpyxl import Workbook  # type: ignore[import-untyped]

from activities.roster_files import read_roster_file, read_roster_text
from domain.errors import FieldError, ValidationFailed
from domain.organisation import OrgType, Role

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "deploy" / "demo"
ROSTER = DEMO / "roster.csv"
HEADER = "组织编号,组织名称,组织类型,所属乡镇,所属系统,党员人数,书记,指导员"


def _generator() -> ModuleType:
    """deploy/demo/make_roster.py, imported from its path (deploy/ is not a package)."""
    spec = importlib.util.spec_from_file_location("make_roster", DEMO / "make_roster.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_roster", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _table(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))


def _write_xlsx(path: Path, table: list[list[object]]) -> Path:
    workbook = Workbook()
    sheet = workbook.active
    for row in table:
        sheet.append(row)
    workbook.save(path)
    return path


# ── the shipped demo roster ────────────────────────────────────────────────────────────


def test_demo_roster_is_utf8_with_bom_and_chinese_headers() -> None:
    data = ROSTER.read_bytes()
    assert data.startswith(codecs.BOM_UTF8)
    assert data.decode("utf-8-sig").splitlines()[0] == HEADER


def test_demo_roster_covers_a_county() -> None:
    roster = read_roster_file(ROSTER)
    orgs = roster.organisations
    assert len(orgs) == 300
    types = Counter(o.type for o in orgs)
    assert set(types) == set(OrgType)
    assert types.most_common(1)[0][0] is OrgType.RURAL  # 农村 most numerous
    assert types[OrgType.COMMUNITY] > types[OrgType.STATE_ENTERPRISE]
    assert 1 <= types[OrgType.UNIVERSITY] <= 2
    assert len(roster.townships()) == 15
    assert all(t.endswith(("镇", "乡", "街道")) for t in roster.townships())
    assert len({o.id for o in orgs}) == 300 and orgs[0].id == "org-0001"
    assert len({o.name for o in orgs}) == 300


def test_demo_roster_instructors_cover_five_to_ten_within_a_township() -> None:
    roster = read_roster_file(ROSTER)
    instructors = {o.instructor for o in roster.organisations}
    for instructor in instructors:
        covered = roster.supervised_by(Role.INSTRUCTOR, instructor)
        assert 5 <= len(covered) <= 10, instructor
        assert len({o.township for o in covered}) == 1
    # Instructors and secretaries are different made-up people.
    assert not instructors & {o.secretary for o in roster.organisations}


def test_demo_roster_member_counts_are_realistic() -> None:
    orgs = read_roster_file(ROSTER).organisations
    villages = [o.member_count for o in orgs if o.type is OrgType.RURAL]
    firms = [o.member_count for o in orgs if o.type is OrgType.PRIVATE_ENTERPRISE]
    assert min(villages) >= 20 and max(villages) <= 80
    assert min(firms) >= 3 and max(firms) <= 30


def test_demo_roster_is_regenerated_byte_for_byte() -> None:
    generator = _generator()
    text = generator.roster_csv(generator.generate_roster())
    assert ROSTER.read_text(encoding="utf-8-sig") == text


def test_generator_prints_a_bigger_county_on_stdout() -> None:
    result = subprocess.run(
        [sys.executable, str(DEMO / "make_roster.py"), "--count", "500"],
        capture_output=True,
        check=True,
        text=True,
        encoding="utf-8",
        cwd=ROOT,
    )
    roster = read_roster_text(result.stdout)
    assert len(roster.organisations) == 500
    assert {o.type for o in roster.organisations} == set(OrgType)


def test_generator_scales_to_two_thousand() -> None:
    generator = _generator()
    roster = read_roster_text(generator.roster_csv(generator.generate_roster(2000)))
    assert len(roster.organisations) == 2000
    assert len({o.id for o in roster.organisations}) == 2000
    assert len(roster.townships()) >= 50


# ── CSV and XLSX ───────────────────────────────────────────────────────────────────────


def test_xlsx_imports_the_same_as_csv(tmp_path: Path) -> None:
    table: list[list[object]] = [list(row) for row in _table(ROSTER.read_text(encoding="utf-8"))]
    for row in table[1:]:
        row[5] = int(str(row[5]))  # a real spreadsheet holds numbers as numbers
    xlsx = _write_xlsx(tmp_path / "名册.xlsx", table)
    assert read_roster_file(xlsx) == read_roster_file(ROSTER)


def test_xlsx_numbers_read_as_whole_numbers(tmp_path: Path) -> None:
    rows: list[list[object]] = [
        list(HEADER.split(",")),
        [1001, "青石镇柳树村党支部", "农村", "青石镇", "rural", 36.0, "赵明", "钱安"],
    ]
    [org] = read_roster_file(_write_xlsx(tmp_path / "r.xlsx", rows)).organisations
    assert (org.id, org.member_count) == ("1001", 36)


def test_gbk_csv_from_chinese_excel_is_read(tmp_path: Path) -> None:
    text = HEADER + "\n" + "org-1,青石镇柳树村党支部,农村,青石镇,农村基层组织,36,赵明,钱安\n"
    path = tmp_path / "gbk.csv"
    path.write_bytes(text.encode("gbk"))
    [org] = read_roster_file(path).organisations
    assert org.name == "青石镇柳树村党支部"


def _bad_table() -> list[list[str]]:
    table = _table(ROSTER.read_text(encoding="utf-8"))[:6]
    table[2][2] = "学校"  # row 3: unknown type
    table[3][5] = "0"  # row 4: no members
    table[4][0] = table[1][0]  # row 5: duplicate id of row 2
    table[5][6] = ""  # row 6: no secretary
    return table


EXPECTED_BAD_FIELDS = ["第3行·组织类型", "第4行·党员人数", "第5行·组织编号", "第6行·书记"]


def test_bad_csv_reports_every_row_and_imports_nothing(tmp_path: Path) -> None:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(_bad_table())
    path = tmp_path / "bad.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8-sig")
    with pytest.raises(ValidationFailed) as refused:
        read_roster_file(path)
    assert refused.value.code == "invalid_roster"
    assert [e.field for e in refused.value.errors] == EXPECTED_BAD_FIELDS
    assert FieldError("第5行·组织编号", "“org-0001”与第2行重复") in refused.value.errors


def test_bad_xlsx_reports_the_same_rows(tmp_path: Path) -> None:
    path = _write_xlsx(tmp_path / "bad.xlsx", [list(row) for row in _bad_table()])
    with pytest.raises(ValidationFailed) as refused:
        read_roster_file(path)
    assert [e.field for e in refused.value.errors] == EXPECTED_BAD_FIELDS


@pytest.mark.parametrize("name", ["roster.xls", "roster.txt", "roster"])
def test_unknown_extension_is_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text(HEADER, encoding="utf-8")
    with pytest.raises(ValidationFailed) as refused:
        read_roster_file(path)
    [error] = refused.value.errors
    assert error.field == "文件"
    assert "不支持的文件类型" in error.reason and ".xlsx" in error.reason


def test_corrupt_xlsx_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "broken.xlsx"
    path.write_bytes(b"not a zip file")
    with pytest.raises(ValidationFailed) as refused:
        read_roster_file(path)
    assert refused.value.errors[0].reason.startswith("无法读取 Excel 文件")


def test_empty_csv_is_refused() -> None:
    with pytest.raises(ValidationFailed) as refused:
        read_roster_text("")
    assert refused.value.errors == [FieldError("文件", "文件为空，第1行应为表头")]


def test_csv_text_with_a_bom_and_short_rows() -> None:
    text = "\ufeff" + HEADER + "\norg-1,青石镇柳树村党支部,农村,青石镇,rural,36,赵明\n"
    with pytest.raises(ValidationFailed) as refused:
        read_roster_text(text)
    assert refused.value.errors == [FieldError("第2行·指导员", "不能为空")]
