"""评选表彰 rules: weighted totals, averaging, outliers, shared ranks, quotas, 审定 reasons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from domain.commendation import (
    Assessment,
    Declaration,
    Group,
    assess,
    check_declaration,
    check_scores,
    rank,
    weighted_total,
)
from domain.commendation_approval import approve, honours_list
from domain.errors import PlanError, ValidationFailed
from domain.organisation import System
from domain.plan_loader import load_plan
from domain.rubric import (
    SEED_002_RULES,
    CategoryRules,
    CommendationRules,
    HonourCategory,
    RubricItem,
    rules_or_default,
)

ROOT = Path(__file__).resolve().parents[2]
ORG = HonourCategory.ADVANCED_ORGANISATION
T0 = datetime(2011, 6, 1, 1, 0, tzinfo=UTC)


def _rules(quota: int = 2, **by_system: int) -> CommendationRules:
    """Two items: 领导班子好 weight 2 (max 10) and 工作业绩好 weight 0.5 (max 40): max 40."""
    return CommendationRules(
        min_sheets=3,
        outlier_points=Decimal(10),
        categories=(
            CategoryRules(
                category=ORG,
                standard="五个好",
                quota_per_system=quota,
                quota_by_system={System(k): v for k, v in by_system.items()},
                items=(
                    RubricItem(id="leadership", name="领导班子好", weight=Decimal(2),
                               max_points=Decimal(10)),
                    RubricItem(id="performance", name="工作业绩好", weight=Decimal("0.5"),
                               max_points=Decimal(40)),
                ),
            ),
        ),
    )  # fmt: skip


def _declaration(n: int, system: System = System.RURAL) -> Declaration:
    return Declaration(
        declaration_id=f"d{n}",
        category=ORG,
        org_id=f"org-{n}",
        org_name=f"第{n}党支部",
        system=system,
        township="城关镇",
        nominee=f"第{n}党支部",
        deeds="带领群众致富，事迹突出。",
        declared_at=T0 + timedelta(minutes=n),
    )


def _sheets(*totals: float) -> dict[str, dict[str, Decimal]]:
    """Sheets whose weighted totals are ``totals`` (all on 工作业绩好: points = 2 × total)."""
    return {
        f"assessor-{i}": {"leadership": Decimal(0), "performance": Decimal(str(t)) * 2}
        for i, t in enumerate(totals)
    }


def _assessed(rules: CommendationRules, n: int, *totals: float, **kw: System) -> Assessment:
    return assess(rules, _declaration(n, **kw), _sheets(*totals))


def test_weighted_total_is_the_sum_of_weight_times_points() -> None:
    category = _rules().categories[0]
    scores = check_scores(category, {"leadership": 8.5, "performance": 30}, complete=True)
    assert weighted_total(category, scores) == Decimal("32.0")  # 2×8.5 + 0.5×30
    assert category.max_total() == Decimal(40)


def test_scores_are_checked_per_item_with_chinese_reasons() -> None:
    category = _rules().categories[0]
    with pytest.raises(ValidationFailed) as refused:
        check_scores(category, {"leadership": 11, "performance": 1.25, "x": 1}, complete=True)
    reasons = {e.field: e.reason for e in refused.value.errors}
    assert reasons == {
        "scores.leadership": "领导班子好应在 0–10 分之间",
        "scores.performance": "分数最多保留一位小数",
        "scores.x": "评分标准中没有该项",
    }
    # A draft may leave items open; a submitted sheet may not.
    assert check_scores(category, {"leadership": 5}, complete=False) == {"leadership": Decimal(5)}
    with pytest.raises(ValidationFailed) as incomplete:
        check_scores(category, {"leadership": 5}, complete=True)
    assert [e.field for e in incomplete.value.errors] == ["scores.performance"]
    with pytest.raises(ValidationFailed):
        check_scores(category, {"leadership": "abc", "performance": True}, complete=False)


def test_score_is_the_mean_of_submitted_totals_rounded_half_up() -> None:
    assessment = _assessed(_rules(), 1, 30, 31, 31)
    assert assessment.score == Decimal("30.67")  # 92 / 3 = 30.666…
    assert [s.total for s in assessment.sheets] == [Decimal(30), Decimal(31), Decimal(31)]
    assert _assessed(_rules(), 2, 30, 31).score is None  # two of three sheets: not yet ranked


def test_a_sheet_far_from_the_median_sheet_is_flagged_but_still_counted() -> None:
    assessment = _assessed(_rules(), 1, 36, 35, 20)
    flags = {s.assessor: (s.outlier, s.median) for s in assessment.sheets}
    assert flags == {
        "assessor-0": (False, Decimal(35)),  # |36 − 35| = 1
        "assessor-1": (False, Decimal(35)),
        "assessor-2": (True, Decimal(35)),  # |20 − 35| = 15 > 10
    }
    assert assessment.outliers == 1
    assert assessment.score == Decimal("30.33")  # the outlier still counts
    # One wild sheet does not get its sound neighbours flagged (a "median of the others"
    # rule would flag 36 here too: |36 − median(35, 10)| = 13.5).
    assert [s.outlier for s in _assessed(_rules(), 2, 36, 35, 10).sheets] == [False, False, True]
    # Even counts use the mean of the two middle totals; exactly the threshold is not beyond.
    four = _assessed(_rules(), 3, 30, 30, 32, 20)
    assert [(s.median, s.outlier) for s in four.sheets] == [(Decimal(30), False)] * 3 + [
        (Decimal(30), False)
    ]
    # With two sheets nothing is flagged: there is no majority to deviate from.
    assert assess(_rules(), _declaration(4), _sheets(40, 0)).outliers == 0


def test_equal_scores_share_a_rank_and_a_tie_at_the_quota_line_is_flagged() -> None:
    rules = _rules(quota=1)
    a = _assessed(rules, 1, 30, 31, 20)  # 27.00, one outlier
    b = _assessed(rules, 2, 34, 34, 34)  # 34.00
    c = _assessed(rules, 3, 33, 34, 35)  # 34.00: the same score as b
    unscored = _assessed(rules, 4, 40)
    (group,) = rank(rules, [a, b, c, unscored])
    ranked = [(s.assessment.declaration.declaration_id, s.rank, s.shares_rank, s.proposed,
               s.tied_at_quota_line) for s in group.standings]  # fmt: skip
    assert ranked == [
        ("d2", 1, True, True, False),  # declaration order among equals (display only)
        ("d3", 1, True, True, True),
        ("d1", 3, False, False, False),  # competition ranking: 1, 1, 3
        ("d4", None, False, False, False),  # not enough sheets: unranked
    ]
    assert group.over_quota_by_tie


def test_quota_is_per_system_and_plan_set() -> None:
    rules = _rules(quota=2, education=1)
    rural = [_assessed(rules, n, t, t, t) for n, t in ((1, 30), (2, 35), (3, 25), (4, 20))]
    schools = [_assessed(rules, n, t, t, t, system=System.EDUCATION) for n, t in ((5, 10), (6, 9))]
    groups = {g.system: g for g in rank(rules, rural + schools)}
    proposed = {
        system: [s.assessment.declaration.declaration_id for s in g.standings if s.proposed]
        for system, g in groups.items()
    }
    assert proposed == {System.RURAL: ["d2", "d1"], System.EDUCATION: ["d5"]}
    assert [s.rank for s in groups[System.EDUCATION].standings] == [1, 2]


def _board() -> tuple[list[Group], dict[str, Assessment]]:
    rules = _rules(quota=1)
    assessments = [_assessed(rules, 1, 30, 31, 20), _assessed(rules, 2, 34, 34, 34),
                   _assessed(rules, 3, 33, 34, 35)]  # fmt: skip
    return rank(rules, assessments), {a.declaration.declaration_id: a for a in assessments}


def test_strike_and_add_each_need_a_reason() -> None:
    groups, by_id = _board()
    with pytest.raises(ValidationFailed) as refused:
        approve(groups, by_id, [("d3", " ")], [("d1", "")])
    assert {e.field: e.reason for e in refused.value.errors} == {
        "struck[0].reason": "取消入选必须说明理由",
        "added[0].reason": "增补必须说明理由",
    }
    assert refused.value.code == "invalid"  # 422 in the API
    with pytest.raises(ValidationFailed) as wrong:
        approve(groups, by_id, [("d1", "理由充分")], [("d2", "理由充分"), ("zz", "理由充分")])
    assert {e.field: e.reason for e in wrong.value.errors} == {
        "struck[0].declaration_id": "该申报不在拟表彰名单中",
        "added[0].declaration_id": "该申报已在拟表彰名单中",
        "added[1].declaration_id": "本轮没有该申报",
    }

    approved, decisions = approve(
        groups, by_id, [("d3", "群众反映问题待核实")], [("d1", "抗洪抢险表现突出")]
    )
    assert [(e.assessment.declaration.declaration_id, e.rank, e.added) for e in approved] == [
        ("d2", 1, False),
        ("d1", 3, True),
    ]
    assert [(d.kind.value, d.declaration_id) for d in decisions] == [
        ("strike", "d3"),
        ("add", "d1"),
    ]
    honours = honours_list("r1", approved)
    assert [(h.nominee, h.certificate_no, h.added) for h in honours] == [
        ("第2党支部", "r1-ZZ-001", False),
        ("第1党支部", "r1-ZZ-002", True),
    ]


def test_declarations_are_checked_with_chinese_reasons() -> None:
    with pytest.raises(ValidationFailed) as refused:
        check_declaration(SEED_002_RULES, HonourCategory.OUTSTANDING_MEMBER, None, "短")
    assert {e.field for e in refused.value.errors} == {"nominee", "deeds"}
    with pytest.raises(ValidationFailed) as named:
        check_declaration(SEED_002_RULES, ORG, "李明", "带领全村党员群众发展产业，事迹突出。")
    assert named.value.errors[0].field == "nominee"
    with pytest.raises(ValidationFailed) as not_awarded:
        check_declaration(
            _rules(), HonourCategory.OUTSTANDING_MEMBER, "李明", "事迹突出事迹突出事迹突出"
        )
    assert not_awarded.value.errors[0].reason == "本轮计划不评选优秀共产党员"
    check_declaration(
        SEED_002_RULES, HonourCategory.OUTSTANDING_MEMBER, "李明", "带头服务群众十年如一日"
    )


def test_seed_002_plan_carries_the_seed_rules_and_a_missing_section_defaults_to_them() -> None:
    plan = load_plan((ROOT / "plans" / "seed-002.yaml").read_text("utf-8"))
    assert plan.commendation == SEED_002_RULES
    organisation = SEED_002_RULES.category(ORG)
    assert organisation is not None
    assert [i.name for i in organisation.items] == [
        "领导班子好", "党员队伍好", "工作机制好", "工作业绩好", "群众反映好"
    ]  # fmt: skip
    member = SEED_002_RULES.category(HonourCategory.OUTSTANDING_MEMBER)
    assert member is not None and member.standard == "五带头"
    assert organisation.max_total() == Decimal(100)
    assert rules_or_default(None) is SEED_002_RULES
    demo = load_plan((ROOT / "plans" / "demo.yaml").read_text("utf-8"))
    assert demo.commendation is not None and demo.commendation.categories[0].quota_per_system == 1


def test_a_bad_commendation_section_names_its_field() -> None:
    text = (ROOT / "plans" / "demo.yaml").read_text("utf-8")
    broken = text.replace("{id: membership,", "{id: leadership,", 1)
    with pytest.raises(PlanError) as refused:
        load_plan(broken)
    assert any(
        e.field.startswith("commendation.categories[0]") and "评分项编号重复" in e.reason
        for e in refused.value.errors
    )
