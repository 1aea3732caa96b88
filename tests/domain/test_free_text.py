"""Free text outside the workflow (commitments, declarations, 审定 reasons, briefings,
supervision records, contact points, inspections, rectification orders, request bodies):
every "non-empty" and "at least N characters" rule counts what a reader sees, and a
direction override is refused with the field named. One rule, ``domain.text``:
:func:`free_text_problem` for domain checks, :class:`Visible` for request models."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field, ValidationError

from api.routers.evaluation_bodies import OpenEvaluation
from api.routers.rounds import Close, ExtendRound
from chuangzheng.services import contact_points, inspections, rectification_orders
from chuangzheng.services.errors import InvalidInput
from chuangzheng.services.field_errors import field_errors
from domain.briefing import check_briefing, check_note
from domain.commendation import check_declaration, nominee_name
from domain.commendation_approval import approve
from domain.commitments import (
    CommitmentStatus,
    ItemDraft,
    Verdict,
    check_commitment,
    check_fulfilment,
    check_review,
    require_reason,
)
from domain.errors import DomainError, ValidationFailed
from domain.rubric import SEED_002_RULES, HonourCategory
from domain.text import (
    BIDI_REASON,
    BLANK_REASON,
    CONTROL_REASON,
    Visible,
    free_text_problem,
    too_short_reason,
)

TODAY = date(2026, 3, 2)
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff\u00ad"
SHA = "a" * 64


# ----- the rule ------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["", "   ", ZERO_WIDTH, "\u3000\u200b \t\n", "\u3164\u2800"])
def test_text_a_reader_sees_nothing_of_is_blank(text: str) -> None:
    assert free_text_problem(text) == BLANK_REASON
    assert free_text_problem(text, short="请填写") == "请填写"
    assert free_text_problem(text, minimum=0) is None  # optional text may be empty


def test_minimum_lengths_count_visible_characters() -> None:
    assert free_text_problem("问题" + ZERO_WIDTH * 5 + "  ", minimum=4) == too_short_reason(4)
    assert free_text_problem("发现问题", minimum=4) is None
    assert free_text_problem("发 现 问 题", minimum=4) is None
    assert too_short_reason(4) == "内容过短，至少 4 个字（空格和不可见字符不计）"


@pytest.mark.parametrize("override", ["\u202e", "\u202d", "\u2066", "\u2069", "\u202a"])
def test_direction_overrides_are_refused_even_in_optional_text(override: str) -> None:
    text = f"整改{override}完成情况良好"
    assert free_text_problem(text) == BIDI_REASON
    assert free_text_problem(text, minimum=0) == BIDI_REASON
    assert free_text_problem(text, short="请填写") == BIDI_REASON
    assert free_text_problem("情况\x00良好") == CONTROL_REASON
    assert free_text_problem("第一行\n第二行\t完") is None


class _Body(BaseModel):
    text: Annotated[str, Visible(4)] = Field(max_length=20, description="检查发现")
    note: Annotated[str, Visible(0)] = Field(default="", max_length=20, description="备注")
    names: list[Annotated[str, Visible()]] = Field(default_factory=list, description="人员")
    member: Annotated[str, Visible()] | None = None


def _errors(values: dict[str, Any]) -> list[dict[str, str]]:
    with pytest.raises(ValidationError) as refused:
        _Body.model_validate(values)
    return field_errors(refused.value, _Body)


def test_visible_request_fields_answer_with_the_field_and_the_chinese_reason() -> None:
    assert _errors(
        {
            "text": "问" + ZERO_WIDTH * 3,
            "note": "a\u202eb",
            "names": ["赵", "\u200b"],
            "member": " ",
        }
    ) == [
        {"field": "text", "reason": "检查发现：内容过短，至少 4 个字（空格和不可见字符不计）"},
        {"field": "note", "reason": f"备注：{BIDI_REASON}"},
        {"field": "names.1", "reason": "人员[1]：不能为空"},
        {"field": "member", "reason": "不能为空"},
    ]
    # The maximum is still the stored length, as written.
    assert _errors({"text": "长" * 21})[0]["reason"] == "检查发现：内容过长，最多 20 个字符"
    kept = _Body.model_validate({"text": " 发现问题 ", "names": ["赵书记"]})
    assert kept.text == " 发现问题 "  # judged, not changed


def test_visible_fields_keep_min_length_in_the_json_schema() -> None:
    properties = _Body.model_json_schema()["properties"]
    assert properties["text"]["minLength"] == 4
    assert properties["text"]["maxLength"] == 20
    assert properties["note"]["minLength"] == 0
    assert properties["names"]["items"]["minLength"] == 1
    assert ExtendRound.model_json_schema()["properties"]["reason"]["minLength"] == 1


# ----- 公开承诺 ---------------------------------------------------------------------------------
def test_a_commitment_of_zero_width_characters_is_no_commitment() -> None:
    with pytest.raises(ValidationFailed) as refused:
        check_commitment(ZERO_WIDTH * 10, [ItemDraft(" \u200b ", TODAY)], today=TODAY)
    assert [(e.field, e.reason) for e in refused.value.errors] == [
        ("content", "承诺内容不能为空"),
        ("items[0].content", "承诺事项不能为空"),
    ]
    with pytest.raises(ValidationFailed) as disguised:
        check_commitment("服务\u202e群众", [ItemDraft("走访\u2067", TODAY)], today=TODAY)
    assert [(e.field, e.reason) for e in disguised.value.errors] == [
        ("content", BIDI_REASON),
        ("items[0].content", BIDI_REASON),
    ]
    check_commitment("带头服务群众", [ItemDraft("每月走访一次", TODAY)], today=TODAY)


def test_reasons_comments_and_fulfilment_count_visible_characters() -> None:
    with pytest.raises(DomainError) as missing:
        require_reason(ZERO_WIDTH, "退回承诺")
    assert (missing.value.code, missing.value.field) == ("reason_required", "reason")
    assert missing.value.reason == "退回承诺须说明理由"
    with pytest.raises(DomainError) as disguised:
        require_reason("内容\u202e空泛", "退回承诺")
    assert (disguised.value.code, disguised.value.reason) == ("invalid", BIDI_REASON)
    assert require_reason("  内容空泛 ", "退回承诺") == "内容空泛"

    with pytest.raises(DomainError) as unexplained:
        check_review(Verdict.PARTLY, "\u200b\u2060")
    assert unexplained.value.field == "comment"
    with pytest.raises(DomainError) as comment:
        check_review(Verdict.FULFILLED, "好\u202e")
    assert (comment.value.field, comment.value.reason) == ("comment", BIDI_REASON)
    check_review(Verdict.FULFILLED, "")

    with pytest.raises(ValidationFailed) as empty:
        check_fulfilment(
            CommitmentStatus.PUBLISHED, fulfilled_on=TODAY, description=ZERO_WIDTH,
            evidence={"name": "a.pdf", "sha256": SHA}, today=TODAY,
        )  # fmt: skip
    assert [(e.field, e.reason) for e in empty.value.errors] == [("description", "请填写兑现情况")]


# ----- 申报 and 审定 ----------------------------------------------------------------------------
def test_declarations_count_the_nominee_and_deeds_as_a_reader_sees_them() -> None:
    member = HonourCategory.OUTSTANDING_MEMBER
    with pytest.raises(ValidationFailed) as refused:
        check_declaration(SEED_002_RULES, member, "王\u200b\u200d", "带头" + ZERO_WIDTH * 9)
    assert {e.field: e.reason for e in refused.value.errors} == {
        "nominee": "申报优秀共产党员须填写被推荐人姓名（2–30字）",
        "deeds": "主要事迹不少于10字",
    }
    with pytest.raises(ValidationFailed) as disguised:
        check_declaration(SEED_002_RULES, member, "王\u202e二", "带领群众致富，事迹突出\u202e。")
    assert {e.field: e.reason for e in disguised.value.errors} == {
        "nominee": BIDI_REASON,
        "deeds": BIDI_REASON,
    }
    with pytest.raises(ValidationFailed) as organisation:
        check_declaration(
            SEED_002_RULES, HonourCategory.ADVANCED_ORGANISATION, "某某", "带领群众致富，事迹突出。"
        )
    assert [e.field for e in organisation.value.errors] == ["nominee"]
    # Only invisible characters in an organisation's nominee: nothing to refuse.
    check_declaration(
        SEED_002_RULES, HonourCategory.ADVANCED_ORGANISATION, "\u200b", "带领群众致富，事迹突出。"
    )
    check_declaration(SEED_002_RULES, member, "王 二", "带领群众致富，事迹突出。")
    # The look-alike is the same nominee (the duplicate check compares the cleaned name).
    assert nominee_name(" 王\u200b二\u3000") == nominee_name("王二") == "王二"
    assert nominee_name("ＬＩ Ｍｉｎｇ") == "LI Ming"


def test_strikes_and_additions_need_a_visible_reason() -> None:
    with pytest.raises(ValidationFailed) as refused:
        approve([], {}, [("d1", "理" + ZERO_WIDTH)], [("d2", "理由\u202e")])
    reasons = {e.field: e.reason for e in refused.value.errors}
    assert reasons["struck[0].reason"] == "取消入选必须说明理由"
    assert reasons["added[0].reason"] == BIDI_REASON


# ----- briefings ------------------------------------------------------------------------------
def test_briefings_refuse_direction_overrides_by_field() -> None:
    text = "做法和成效" * 12
    assert check_briefing("经验\u202e交流材料", text)[0].field == "title"
    assert check_briefing("经验\u202e交流材料", text)[0].reason == BIDI_REASON
    assert [e.field for e in check_briefing("经验交流材料", text + "\u2066")] == ["text"]
    assert [e.field for e in check_briefing(ZERO_WIDTH * 3, text)] == ["title"]
    assert check_briefing("经验交流材料", text) == []
    assert [e.reason for e in check_note("按\u202e")] == [BIDI_REASON]


# ----- service request models ---------------------------------------------------------------
def _refused(parse: Any, fields: dict[str, Any]) -> list[dict[str, str]]:
    with pytest.raises(InvalidInput) as refused:
        parse(fields)
    return refused.value.errors


def test_service_request_models_count_visible_characters() -> None:
    point = {"cadre_key": "cadre-li", "cadre_name": "\u200b", "title": "副县长\u202e",
             "org_ids": ["org-a"]}  # fmt: skip
    assert _refused(contact_points.parse_request, point) == [
        {"field": "cadre_name", "reason": "领导干部姓名：不能为空"},
        {"field": "title", "reason": f"职务及分管领域：{BIDI_REASON}"},
    ]
    order = {"ground": "other", "reason": "整改" + ZERO_WIDTH * 4, "period_working_days": 5}
    assert _refused(rectification_orders.parse_request, order) == [
        {
            "field": "reason",
            "reason": "问题与整改要求：内容过短，至少 4 个字（空格和不可见字符不计）",
        }
    ]
    result = {"inspectors": "\ufeff", "inspected_on": "2026-03-02", "findings": "台账" + " " * 6,
              "verdict": "good"}  # fmt: skip
    assert [e["field"] for e in _refused(inspections.parse_result, result)] == [
        "inspectors",
        "findings",
    ]


def test_api_bodies_count_visible_characters() -> None:
    with pytest.raises(ValidationError) as refused:
        OpenEvaluation.model_validate(
            {
                "target": "member",
                "member": "\u200b",
                "rater_names": [{"name": " ", "kind": "member"}],
            }
        )
    assert {(e["loc"], e["type"]) for e in refused.value.errors()} == {
        (("member",), "text_too_short"),
        (("rater_names", 0, "name"), "text_too_short"),
    }
    with pytest.raises(ValidationError) as disguised:
        Close.model_validate({"reason": "结束\u202e"})
    assert disguised.value.errors()[0]["type"] == "text_refused"
    assert Close.model_validate({}).reason == ""
