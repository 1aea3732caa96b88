"""Roster rows (keyed by Chinese headers) become organisations, or every bad cell is named."""

from __future__ import annotations

import pytest

from domain.errors import FieldError, ValidationFailed
from domain.organisation import Organisation, OrgType, System
from domain.roster_import import (
    REQUIRED_HEADERS,
    ROSTER_HEADERS,
    derive_org_id,
    organisation_row,
    parse_roster,
)

ORGS = (
    Organisation(
        id="org-0001",
        name="青石镇柳树村党支部",
        type=OrgType.RURAL,
        township="青石镇",
        system=System.RURAL,
        member_count=36,
        secretary="赵明",
        instructor="钱安",
    ),
    Organisation(
        id="org-0002",
        name="青石镇中心小学党支部",
        type=OrgType.PUBLIC_INSTITUTION,
        township="青石镇",
        system=System.EDUCATION,
        member_count=18,
        secretary="孙华",
        instructor="钱安",
    ),
    Organisation(
        id="org-0003",
        name="南湖街道幸福社区党支部",
        type=OrgType.COMMUNITY,
        township="南湖街道",
        system=System.RURAL,
        member_count=42,
        secretary="李静",
        instructor="周平",
    ),
)


def _rows() -> list[dict[str, object]]:
    return [dict(organisation_row(org)) for org in ORGS]


def _errors(rows: list[dict[str, object]], **kwargs: int) -> list[FieldError]:
    with pytest.raises(ValidationFailed) as refused:
        parse_roster(rows, **kwargs)
    assert refused.value.code == "invalid_roster"
    return refused.value.errors


def test_rows_with_chinese_labels_round_trip() -> None:
    roster = parse_roster(_rows())
    assert roster.organisations == ORGS
    assert roster.townships() == ["青石镇", "南湖街道"]


def test_headers_are_the_documented_chinese_ones() -> None:
    assert ROSTER_HEADERS == (
        "组织编号",
        "组织名称",
        "组织类型",
        "所属乡镇",
        "所属系统",
        "党员人数",
        "书记",
        "指导员",
    )
    assert "组织编号" not in REQUIRED_HEADERS


def test_english_ids_short_names_and_stray_whitespace_are_accepted() -> None:
    rows = _rows()
    rows[0].update({"组织类型": " rural ", "所属系统": "rural", "党员人数": " 36 "})
    rows[1].update({"所属系统": "县教育局", "组织名称": "  青石镇中心小学党支部\u3000"})
    rows[2].update({"所属系统": "农村基层组织指导小组(县农委)", "党员人数": 42.0})
    assert parse_roster(rows).organisations == ORGS


def test_headers_with_spaces_are_recognised() -> None:
    rows = [{f" {key} ": value for key, value in row.items()} for row in _rows()]
    assert parse_roster(rows).organisations == ORGS


def test_every_bad_row_is_reported_and_nothing_is_imported() -> None:
    rows = _rows()
    rows.append(dict(rows[0], 组织编号="org-0004", 组织类型="学校", 党员人数="很多"))
    rows.append(dict(rows[0], 组织编号="org-0005", 书记="  ", 指导员=""))
    rows.append(dict(rows[0], 组织编号="org-0006", 党员人数="0", 所属系统="宣传部"))
    rows.append(dict(rows[0], 组织编号="org-0007", 党员人数="12.5"))
    errors = _errors(rows)
    assert [e.field for e in errors] == [
        "第5行·组织类型",
        "第5行·党员人数",
        "第6行·书记",
        "第6行·指导员",
        "第7行·所属系统",
        "第7行·党员人数",
        "第8行·党员人数",
    ]
    reasons = {e.field: e.reason for e in errors}
    assert reasons["第5行·组织类型"].startswith("“学校”不是可识别的组织类型，应为：农村（rural）")
    assert reasons["第5行·党员人数"] == "“很多”不是整数"
    assert reasons["第6行·书记"] == "不能为空"
    assert reasons["第7行·所属系统"].startswith("“宣传部”不是可识别的系统")
    assert reasons["第7行·党员人数"] == "应为不小于1的整数"
    assert reasons["第8行·党员人数"] == "“12.5”不是整数"


def test_row_numbers_follow_first_row_number() -> None:
    rows = _rows()
    rows[1]["组织类型"] = "未知"
    assert [e.field for e in _errors(rows, first_row_number=5)] == ["第6行·组织类型"]


def test_duplicate_id_is_reported_on_the_second_row() -> None:
    rows = _rows()
    rows[2]["组织编号"] = "org-0001"
    assert _errors(rows) == [FieldError("第4行·组织编号", "“org-0001”与第2行重复")]


def test_id_with_spaces_is_refused() -> None:
    rows = _rows()
    rows[0]["组织编号"] = "org 0001"
    assert _errors(rows) == [FieldError("第2行·组织编号", "不能包含空格")]


def test_missing_required_header_is_one_error_naming_it() -> None:
    rows = _rows()
    for row in rows:
        del row["组织类型"]
        del row["指导员"]
    assert _errors(rows) == [
        FieldError("表头·组织类型", "缺少必填列“组织类型”"),
        FieldError("表头·指导员", "缺少必填列“指导员”"),
    ]


def test_without_an_id_column_ids_are_derived_stably_from_names() -> None:
    rows = _rows()
    for row in rows:
        del row["组织编号"]
    roster = parse_roster(rows)
    assert [o.id for o in roster.organisations] == [derive_org_id(o.name) for o in ORGS]
    assert parse_roster(rows) == roster
    assert derive_org_id("青石镇柳树村党支部").startswith("org-")


def test_derived_ids_of_same_named_organisations_clash_on_the_name() -> None:
    rows = _rows()
    for row in rows:
        del row["组织编号"]
    rows[2]["组织名称"] = rows[0]["组织名称"]
    [error] = _errors(rows)
    assert error.field == "第4行·组织名称"
    assert error.reason.startswith("与第2行重名")


def test_blank_rows_are_skipped_but_keep_their_numbers() -> None:
    rows = _rows()
    rows.insert(1, dict.fromkeys(ROSTER_HEADERS, ""))
    rows.append({key: None for key in ROSTER_HEADERS})
    rows[2]["组织类型"] = "未知"
    assert [e.field for e in _errors(rows)] == ["第4行·组织类型"]


def test_an_empty_roster_is_refused() -> None:
    assert _errors([dict.fromkeys(ROSTER_HEADERS, "")]) == [
        FieldError("名册", "名册中没有任何组织")
    ]


def test_every_type_and_system_label_is_accepted() -> None:
    rows = []
    for index, (org_type, system) in enumerate(zip(OrgType, list(System) * 2, strict=False)):
        rows.append(
            dict(
                organisation_row(ORGS[0]),
                组织编号=f"org-{index}",
                组织类型=org_type.label,
                所属系统=system.label,
            )
        )
    roster = parse_roster(rows)
    assert {o.type for o in roster.organisations} == set(OrgType)
    assert {o.system for o in roster.organisations} == set(System)
