"""The roster's optional 少数民族聚居地区 column (issue 15, seed 002 §四): 是/否 or blank, a bad
value named by row and header, a roster without the column unchanged, and the flag written
back only when some organisation carries it (the round's roster snapshot reads it again)."""

from __future__ import annotations

import pytest

from activities.roster_files import read_roster_text
from activities.roster_store import roster_csv
from domain.errors import ValidationFailed
from domain.roster_import import HEADER_ETHNIC_AREA, ROSTER_HEADERS

HEAD = "组织编号,组织名称,组织类型,所属乡镇,所属系统,党员人数,书记,指导员"
ROWS = [
    "eth-1,民族乡团结村党支部,农村,民族乡,县农委,20,阿书记,马指导",
    "eth-2,民族乡和平村党支部,农村,民族乡,县农委,20,白书记,马指导",
]


def test_the_column_flags_organisations_and_a_bad_value_is_named() -> None:
    text = f"{HEAD},{HEADER_ETHNIC_AREA}\n{ROWS[0]},是\n{ROWS[1]},\n"
    roster = read_roster_text(text)
    assert [o.ethnic_area for o in roster.organisations] == [True, False]
    # Written back with the column, and read again the same.
    again = read_roster_text(roster_csv(roster))
    assert again == roster
    with pytest.raises(ValidationFailed) as bad:
        read_roster_text(f"{HEAD},{HEADER_ETHNIC_AREA}\n{ROWS[0]},也许\n")
    [error] = bad.value.errors
    assert error.field == f"第2行·{HEADER_ETHNIC_AREA}" and "是" in error.reason


def test_a_roster_without_the_column_keeps_its_shape() -> None:
    roster = read_roster_text(HEAD + "\n" + "\n".join(ROWS) + "\n")
    assert not any(o.ethnic_area for o in roster.organisations)
    assert roster_csv(roster).splitlines()[0] == ",".join(ROSTER_HEADERS)
