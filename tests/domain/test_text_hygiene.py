"""Invisible characters, full-width look-alikes and direction overrides (domain.text) in the
roster and member imports: a look-alike cell is the same person or member, or a clear
refusal with its row, never a second account or member that looks the same."""

from __future__ import annotations

import pickle

import pytest

from domain.errors import FieldError, ValidationFailed
from domain.members import parse_members
from domain.organisation import Organisation, OrgType, Roster, System
from domain.roster_import import derive_org_id, organisation_row, parse_roster, sheet_rows
from domain.text import (
    BIDI_REASON,
    CONTROL_REASON,
    TextRefused,
    clean_id,
    clean_name,
    clean_text,
    is_blank,
    visible_length,
    visible_text,
)

ORG = Organisation(
    id="org-0001",
    name="青石镇柳树村党支部",
    type=OrgType.RURAL,
    township="青石镇",
    system=System.RURAL,
    member_count=36,
    secretary="刘三",
    instructor="王二",
)
OTHER = ORG.model_copy(update={"id": "org-0002", "name": "青石镇杨树村党支部"})


# ----- the functions ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "王二\u200b",  # zero-width space
        "王\u200d二",  # zero-width joiner
        "\ufeff王二",  # byte-order mark
        "王\u2060二",  # word joiner
        "王\u200c二\u200e",  # non-joiner, left-to-right mark
        "\u3000王二\u3000",  # ideographic spaces
        " 王二\u00ad",  # soft hyphen
        "王\u3164二",  # Hangul filler (draws nothing, not Cf)
    ],
)
def test_invisible_characters_are_removed_from_names(text: str) -> None:
    assert clean_name(text) == "王二"
    assert clean_text(text) == "王二"


def test_ids_are_nfkc_so_full_width_reads_as_ascii() -> None:
    assert clean_id("Ｍ００１") == "M001"
    assert clean_id("M\u200b001") == "M001"
    assert clean_id("ｏｒｇ－０００１\u3000") == "org-0001"


def test_names_fold_full_width_letters_and_digits_but_keep_chinese_punctuation() -> None:
    assert clean_name("李Ａ１") == "李A1"
    # NFKC would make these ASCII and rename the township's account on the next import.
    assert clean_name("城关镇（开发区）") == "城关镇（开发区）"
    assert clean_name("阿不都·热合曼") == "阿不都·热合曼"
    # Canonically equivalent forms are one name (a CJK compatibility ideograph, U+F900).
    assert clean_name("\uf900") == "\u8c48"


def test_organisation_names_keep_their_width() -> None:
    assert clean_text("第１党支部\u200b") == "第１党支部"


@pytest.mark.parametrize("override", ["\u202e", "\u202a", "\u202d", "\u2066", "\u2069"])
def test_direction_overrides_are_refused_not_removed(override: str) -> None:
    for clean in (clean_text, clean_name, clean_id):
        with pytest.raises(TextRefused) as refused:
            clean(f"王{override}二")
        assert refused.value.reason == BIDI_REASON


@pytest.mark.parametrize("control", ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\x9f"])
def test_control_characters_are_refused(control: str) -> None:
    with pytest.raises(TextRefused) as refused:
        clean_name(f"王{control}二")
    assert refused.value.reason == CONTROL_REASON


def test_free_text_checks_see_what_a_reader_sees() -> None:
    for nothing in ("", "   ", "\u200b", "\u3000\u200b\ufeff", "\u200d\n\t", "\u202e", "\x00"):
        assert is_blank(nothing), repr(nothing)
        assert visible_text(nothing) == ""
    assert not is_blank("已完成")
    assert visible_text("\u200b 已完成\n第二行 \u3000") == "已完成\n第二行"
    # Padding does not reach a minimum length.
    assert visible_length("好" + " \u200b\u3000" * 20 + "的") == 2
    assert visible_length("学习 十次") == 4


# ----- roster import ---------------------------------------------------------------------------
def _roster(*rows: dict[str, object]) -> Roster:
    return parse_roster(list(rows))


def _errors(rows: list[dict[str, object]]) -> list[FieldError]:
    with pytest.raises(ValidationFailed) as refused:
        parse_roster(rows)
    return refused.value.errors


def test_look_alike_people_in_the_roster_are_the_same_people() -> None:
    plain = _roster(organisation_row(ORG))
    looks_alike = _roster(
        dict(organisation_row(ORG), 指导员="王二\u200b", 书记="刘\u200d三", 所属乡镇="\ufeff青石镇")
    )
    assert looks_alike == plain
    assert looks_alike.organisations[0].instructor == "王二"
    assert looks_alike.organisations[0].secretary == "刘三"


def test_look_alike_and_full_width_ids_are_one_organisation() -> None:
    assert _roster(dict(organisation_row(ORG), 组织编号="ｏｒｇ－０００１")) == _roster(
        organisation_row(ORG)
    )
    rows: list[dict[str, object]] = [
        dict(organisation_row(ORG)),
        dict(organisation_row(OTHER), 组织编号="org-0001\u200b"),
    ]
    assert _errors(rows) == [FieldError("第3行·组织编号", "“org-0001”与第2行重复")]


def test_a_name_with_invisible_characters_derives_the_same_id() -> None:
    row = dict(organisation_row(ORG), 组织编号="")
    hidden = dict(row, 组织名称="青石镇\u200b柳树村党支部\u3000")
    assert _roster(hidden).organisations[0].id == derive_org_id("青石镇柳树村党支部")
    assert _errors([row, hidden]) == [
        FieldError("第3行·组织名称", "与第2行重名，无法生成唯一的组织编号，请填写组织编号")
    ]


def test_invisible_only_cells_are_empty_and_overrides_are_refused_with_their_row() -> None:
    rows: list[dict[str, object]] = [
        dict(organisation_row(ORG), 指导员="\u200b\u3000"),
        dict(organisation_row(OTHER), 书记="刘\u202e三", 组织编号="org\u202e-2"),
    ]
    assert _errors(rows) == [
        FieldError("第2行·指导员", "不能为空"),
        FieldError("第3行·书记", BIDI_REASON),
        FieldError("第3行·组织编号", BIDI_REASON),
    ]


def test_control_characters_are_still_refused_in_the_roster() -> None:
    rows: list[dict[str, object]] = [dict(organisation_row(ORG), 组织名称="柳树\x07村党支部")]
    assert _errors(rows) == [FieldError("第2行·组织名称", CONTROL_REASON)]


def test_rows_and_headers_that_look_blank_are_blank() -> None:
    blank = dict.fromkeys(organisation_row(ORG), "\u200b")
    header = {f"\ufeff{k}\u200b": v for k, v in organisation_row(OTHER).items()}
    roster = _roster(organisation_row(ORG), blank, header)
    assert [o.id for o in roster.organisations] == ["org-0001", "org-0002"]


def test_sheet_rows_are_the_rows_the_clerk_sees() -> None:
    blank = dict.fromkeys(organisation_row(ORG), "")
    roster = _roster(organisation_row(ORG), blank, organisation_row(OTHER))
    assert sheet_rows(roster) == {"org-0001": 2, "org-0002": 4}
    # A roster built in code: its positions.
    assert sheet_rows(Roster(organisations=(ORG, OTHER))) == {"org-0001": 2, "org-0002": 3}


# ----- member import ---------------------------------------------------------------------------
def _members(*rows: tuple[str, str, str]) -> list[dict[str, object]]:
    return [{"组织编号": o, "党员姓名": n, "党员编号": m} for o, n, m in rows]


def _member_errors(rows: list[dict[str, object]]) -> list[str]:
    with pytest.raises(ValidationFailed) as refused:
        parse_members(rows, known_orgs={"org-0001"})
    return [f"{e.field}: {e.reason}" for e in refused.value.errors]


@pytest.mark.parametrize("look_alike", ["M\u200b001", "Ｍ００１", "\ufeffM001\u3000"])
def test_a_look_alike_member_id_is_the_same_member(look_alike: str) -> None:
    parsed = parse_members(
        _members(("org-0001", "张\u200d三", look_alike)), known_orgs={"org-0001"}
    )
    assert [(m.member_id, m.name) for m in parsed.members] == [("M001", "张三")]
    rows = _members(("org-0001", "张三", "M001"), ("org-0001", "张三", look_alike))
    assert _member_errors(rows) == ["第3行·党员编号: “M001”与第2行重复"]


def test_member_cells_with_overrides_or_only_invisible_characters_are_refused() -> None:
    rows = _members(("org-0001", "张\u202e三", "M001"), ("org-0001\u200b", "\u200b", "M002"))
    assert _member_errors(rows) == [
        f"第2行·党员姓名: {BIDI_REASON}",
        "第3行·党员姓名: 不能为空",
    ]


def test_sheet_rows_travel_with_the_roster_out_of_a_parse_process() -> None:
    blank = dict.fromkeys(organisation_row(ORG), "")
    roster = _roster(blank, organisation_row(ORG))
    again = pickle.loads(pickle.dumps(roster))
    assert sheet_rows(again) == {"org-0001": 3}
    # Not a field: payloads and equality are the plain roster's.
    assert roster == Roster(organisations=(ORG,)) and Roster(organisations=(ORG,)) == roster
    assert roster.model_dump() == Roster(organisations=(ORG,)).model_dump()
    assert hash(roster) == hash(Roster(organisations=(ORG,)))
