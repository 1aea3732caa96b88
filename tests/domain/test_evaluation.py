"""群众评议 rules without I/O: composition, ballot, tally, quorum, threshold, the plan section,
and the campaign's rectification order from an evaluation."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from domain.actions import RecheckRectification, ReportRectification
from domain.calendar import Span
from domain.campaign_rules import OrderRectification
from domain.errors import DomainError, PlanError
from domain.evaluation import (
    EvaluationRules,
    EvaluationTarget,
    RaterKind,
    Rating,
    Verdict,
    check_ballot,
    check_composition,
    judge,
    rectification_reason,
    tally,
)
from domain.evaluation_rules import FIVE_GOODS, FIVE_LEADS
from domain.machine import PhaseStatus
from domain.notices import NoticeKind
from domain.organisation import Role
from domain.phases import Phase
from domain.plan_loader import load_plan
from domain.state import Actor, RectificationStatus
from tests.domain.test_campaign import INSTRUCTOR, SECRETARY, START, finish_phase, fresh

ROOT = Path(__file__).resolve().parents[2]
RULES = EvaluationRules()
ORG_RULES = RULES.for_target(EvaluationTarget.ORGANISATION)


def raters(members: int, non_members: int) -> dict[RaterKind, int]:
    return {RaterKind.MEMBER: members, RaterKind.NON_MEMBER: non_members}


def test_composition_needs_enough_raters_and_a_share_of_non_members() -> None:
    assert check_composition(ORG_RULES, raters(8, 4)) == []  # 4 of 12 is a third
    assert check_composition(ORG_RULES, raters(20, 10)) == []
    too_few_public = check_composition(ORG_RULES, raters(9, 3))
    assert [e.field for e in too_few_public] == ["raters.non_member"]
    assert "不得少于 33%" in too_few_public[0].reason and "至少 4 人" in too_few_public[0].reason
    too_small = check_composition(ORG_RULES, raters(3, 3))
    assert [e.field for e in too_small] == ["raters"]
    assert "至少需要 10 人" in too_small[0].reason
    negative = check_composition(ORG_RULES, raters(-1, 20))
    assert [e.field for e in negative] == ["raters.member"]
    # Members are evaluated with their own, smaller rule.
    member_rules = RULES.for_target(EvaluationTarget.MEMBER)
    assert check_composition(member_rules, raters(4, 1)) == []
    assert check_composition(member_rules, raters(5, 0))[0].field == "raters.non_member"


def ballot(*ratings: Rating) -> dict[str, str]:
    return {item.id: r.value for item, r in zip(FIVE_GOODS, ratings, strict=True)}


def test_a_ballot_rates_every_item_once_with_a_known_rating() -> None:
    full = ballot(*[Rating.SATISFIED] * 5)
    assert check_ballot(FIVE_GOODS, full) == []
    missing = dict(full)
    del missing["leadership"]
    assert [e.field for e in check_ballot(FIVE_GOODS, missing)] == ["ratings.leadership"]
    wrong = full | {"membership": "great"}
    assert "满意/比较满意/基本满意/不满意" in check_ballot(FIVE_GOODS, wrong)[0].reason
    extra = full | {"study": "satisfied"}
    assert [e.field for e in check_ballot(FIVE_GOODS, extra)] == ["ratings.study"]
    # A member ballot has the 五带头 items, not the 五个好.
    assert len(check_ballot(FIVE_LEADS, full)) == 10


def test_tally_counts_each_item() -> None:
    s, f, b, u = (Rating.SATISFIED, Rating.FAIRLY_SATISFIED, Rating.BASICALLY_SATISFIED,
                  Rating.UNSATISFIED)  # fmt: skip
    tallies = tally(
        FIVE_GOODS, [ballot(s, s, b, u, f), ballot(f, s, u, u, f), ballot(s, b, b, u, s)]
    )
    first = tallies[0]
    assert first.item_id == "leadership" and first.ballots == 3
    assert first.counts == {s: 2, f: 1, b: 0, u: 0}
    assert first.satisfaction == 1.0
    assert tallies[2].counts[b] == 2 and tallies[2].satisfaction == 0.0
    assert tallies[3].counts[u] == 3
    assert tally(FIVE_GOODS, [])[0].satisfaction is None


def test_quorum_is_a_share_of_issued_ballots() -> None:
    good = [ballot(*[Rating.SATISFIED] * 5)]
    # Two thirds of 12 is 8: 8 cast count, 7 do not.
    assert judge(RULES, EvaluationTarget.ORGANISATION, 12, tally(FIVE_GOODS, good * 8)).valid
    short = judge(RULES, EvaluationTarget.ORGANISATION, 12, tally(FIVE_GOODS, good * 7))
    assert short.verdict is Verdict.NO_QUORUM and not short.valid
    assert short.turnout == pytest.approx(7 / 12)
    # Without a quorum there is no verdict, even when every ballot is unsatisfied.
    bad = [ballot(*[Rating.UNSATISFIED] * 5)]
    void = judge(RULES, EvaluationTarget.ORGANISATION, 12, tally(FIVE_GOODS, bad * 7))
    assert void.verdict is Verdict.NO_QUORUM
    assert judge(RULES, EvaluationTarget.ORGANISATION, 0, []).verdict is Verdict.NO_QUORUM


def test_threshold_on_satisfied_and_fairly_satisfied() -> None:
    s, f, b = Rating.SATISFIED, Rating.FAIRLY_SATISFIED, Rating.BASICALLY_SATISFIED
    # 7 of 10 ballots satisfied or fairly satisfied on every item: exactly 70% passes.
    at_mark = [ballot(*[s] * 5)] * 4 + [ballot(*[f] * 5)] * 3 + [ballot(*[b] * 5)] * 3
    result = judge(RULES, EvaluationTarget.ORGANISATION, 10, tally(FIVE_GOODS, at_mark))
    assert result.satisfaction == pytest.approx(0.7) and result.verdict is Verdict.SATISFACTORY
    # 基本满意 does not count: 6 of 10 is below.
    below = [ballot(*[s] * 5)] * 6 + [ballot(*[b] * 5)] * 4
    result = judge(RULES, EvaluationTarget.ORGANISATION, 10, tally(FIVE_GOODS, below))
    assert result.verdict is Verdict.BELOW_THRESHOLD
    assert result.items_below == tuple(i.label for i in FIVE_GOODS)
    reason = rectification_reason(result, "柳树村党支部")
    assert "60.0%" in reason and "低于 70%" in reason and "领导班子好" in reason
    # One weak item is named but the overall rate decides.
    mixed = [ballot(s, s, s, s, b)] * 10
    result = judge(RULES, EvaluationTarget.ORGANISATION, 10, tally(FIVE_GOODS, mixed))
    assert result.verdict is Verdict.SATISFACTORY and result.items_below == ("群众反映好",)


def test_the_shipped_plans_carry_the_section_and_bad_values_name_their_field() -> None:
    seed = load_plan((ROOT / "plans/seed-002.yaml").read_text("utf-8"))
    assert seed.evaluation == EvaluationRules()  # the section states the defaults
    demo = load_plan((ROOT / "plans/demo.yaml").read_text("utf-8"))
    assert demo.evaluation.window == Span(minutes=3)
    text = (ROOT / "plans/demo.yaml").read_text("utf-8")
    broken = text.replace("satisfaction_threshold: 0.7", "satisfaction_threshold: 1.5", 1)
    with pytest.raises(PlanError) as caught:
        load_plan(broken)
    assert any(
        e.field == "evaluation.organisation.satisfaction_threshold" for e in caught.value.errors
    )


def order(reference: str = "ev-1", role: Role = Role.TOWNSHIP) -> OrderRectification:
    return OrderRectification(
        actor=Actor(user="tw", role=role),
        source="evaluation",
        reference=reference,
        reason="柳树村党支部群众评议满意率为 50.0%，低于 70% 的标准。",
    )


def test_an_evaluation_orders_rectification_that_blocks_the_open_phase() -> None:
    campaign = fresh()
    campaign.take_outbox()
    now = START + timedelta(days=1)
    with pytest.raises(DomainError) as refused:
        campaign.check_order_rectification(order(role=Role.ASSESSMENT_GROUP))
    assert refused.value.code == "forbidden"
    campaign.order_rectification(order(), now)
    campaign.order_rectification(order(), now)  # the same evaluation again: one order
    phase = campaign.state.current()
    assert phase.status is PhaseStatus.OPEN  # not overdue: the machine leaves it open
    assert phase.rectification is not None
    assert phase.rectification.status is RectificationStatus.ISSUED
    assert phase.rectification.deadline == campaign.calendar.deadline_after(
        now, Span(working_days=10)
    )
    events, notices = campaign.take_outbox()
    assert [e.kind for e in events] == ["rectification_required"]
    assert events[0].detail["source"] == "evaluation"
    assert [n.kind for n in notices] == [NoticeKind.RECTIFICATION_ORDER]
    assert "满意率为 50.0%" in notices[0].body
    # Every required step done: the phase still waits for the re-check.
    finish_phase(campaign, now)
    assert campaign.state.phase is Phase.MOBILISATION
    campaign.report_rectification(
        ReportRectification(
            actor=SECRETARY, phase=Phase.MOBILISATION, report="已对评议问题逐项整改并公示。"
        ),
        now,
    )
    # A second evaluation below the threshold joins the pending order: issued again.
    campaign.order_rectification(order("ev-2"), now + timedelta(hours=1))
    assert campaign.state.current().rectification.status is RectificationStatus.ISSUED  # type: ignore[union-attr]
    campaign.report_rectification(
        ReportRectification(
            actor=SECRETARY, phase=Phase.MOBILISATION, report="两次评议指出的问题均已整改到位。"
        ),
        now,
    )
    campaign.recheck(
        RecheckRectification(actor=INSTRUCTOR, phase=Phase.MOBILISATION, passed=True), now
    )
    assert campaign.state.phase is Phase.PUBLIC_COMMITMENT
