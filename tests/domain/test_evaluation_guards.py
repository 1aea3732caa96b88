"""群众评议's guards as pure rules: the phase an evaluation is opened in, the bound on raters,
and a plan's ``ballot`` step that must accept what the published result submits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from domain.evaluation import (
    MAX_RATERS,
    EvaluationRules,
    EvaluationTarget,
    RaterKind,
    Rating,
    check_rater_limits,
    judge,
    phase_refusal,
    step_values,
    tally,
)
from domain.evaluation_rules import (
    BALLOT_STEP_FIELDS,
    FIVE_GOODS,
    ballot_step_problems,
    require_valid_ballot_step,
)
from domain.evidence import validate_evidence
from domain.machine import PhaseStatus
from domain.phases import Phase
from domain.plan import EvidenceField, FieldKind, StepPlan
from domain.plan_loader import load_plan

ROOT = Path(__file__).resolve().parents[2]
RULES = EvaluationRules()
GOOD_EVIDENCE = (
    EvidenceField(name="evaluation_id", label="评议编号", kind=FieldKind.TEXT),
    EvidenceField(name="ballots", label="评议票统计", kind=FieldKind.BALLOTS),
    EvidenceField(name="raters", label="参评人数", kind=FieldKind.INTEGER, min=1),
    EvidenceField(name="satisfaction", label="满意率", kind=FieldKind.SCORES, min=0, max=100),
    EvidenceField(name="feedback", label="反馈", kind=FieldKind.TEXT, required=False),
)


def ballot_step(*evidence: EvidenceField) -> StepPlan:
    """The step unvalidated (``StepPlan`` itself now refuses a step with problems, through
    ``require_valid_ballot_step``), so the problems can be listed one by one."""
    return StepPlan.model_construct(
        id="public_evaluation_of_org",
        name="组织群众评议",
        ballot=EvaluationTarget.ORGANISATION,
        evidence=evidence,
        required=True,
        submitted_by=None,
        decided_by=None,
        settled_by=None,
        applies_to=None,
        description="",
    )


def test_a_plan_with_a_ballot_step_its_result_cannot_settle_is_refused() -> None:
    with pytest.raises(ValueError, match="evaluation_id"):
        StepPlan(
            id="public_evaluation_of_org",
            name="组织群众评议",
            ballot=EvaluationTarget.ORGANISATION,
            evidence=(EvidenceField(name="ballots", label="票数", kind=FieldKind.BALLOTS),),
        )


# ----- the phase ------------------------------------------------------------------------


def test_only_the_evaluation_phase_opens_an_evaluation() -> None:
    assert phase_refusal("东关村党支部", Phase.PUBLIC_EVALUATION, PhaseStatus.OPEN, False) is None
    # Overdue or rectifying is still 群众评议: the ballot may be what brings it up to date.
    for status in (PhaseStatus.OVERDUE, PhaseStatus.RECTIFYING):
        assert phase_refusal("x", Phase.PUBLIC_EVALUATION, status, False) is None
    wrong = phase_refusal("东关村党支部", Phase.MOBILISATION, PhaseStatus.OPEN, False)
    assert wrong == "东关村党支部目前处于“动员部署”阶段，群众评议须在“群众评议”阶段开展"
    for phase in (Phase.PUBLIC_COMMITMENT, Phase.LEADERSHIP_REVIEW, Phase.COMMENDATION):
        reason = phase_refusal("x", phase, PhaseStatus.OPEN, False)
        assert reason is not None and phase.label in reason
    assert "尚未开始" in (phase_refusal("x", None, None, False) or "")
    assert "尚未开始" in (
        phase_refusal("x", Phase.PUBLIC_EVALUATION, PhaseStatus.PENDING, False) or ""
    )
    assert "已结束" in (phase_refusal("x", Phase.COMPLETED, None, True) or "")
    assert "已结束" in (phase_refusal("x", Phase.PUBLIC_EVALUATION, PhaseStatus.OPEN, True) or "")


# ----- the raters ------------------------------------------------------------------------


def test_raters_are_bounded_by_the_members_and_the_cap() -> None:
    def counts(members: int, public: int) -> dict[RaterKind, int]:
        return {RaterKind.MEMBER: members, RaterKind.NON_MEMBER: public}

    assert check_rater_limits(counts(9, 5), member_count=9) == []
    assert check_rater_limits(counts(9, MAX_RATERS - 9), member_count=9) == []
    tester = check_rater_limits(counts(5000, 5000), member_count=9)
    assert [e.field for e in tester] == ["raters.member", "raters"]
    assert "超过本组织党员人数 9 人" in tester[0].reason
    assert f"最多发放 {MAX_RATERS} 张选票" in tester[1].reason
    over = check_rater_limits(counts(9, MAX_RATERS - 8), member_count=9, field="rater_names")
    assert [e.field for e in over] == ["rater_names"]
    assert MAX_RATERS == 1000  # seed 002 §四 "千人评议机关": the largest practice it names


# ----- a plan's ballot step ---------------------------------------------------------------


def test_the_fields_table_is_what_a_published_result_submits() -> None:
    result = judge(RULES, EvaluationTarget.ORGANISATION, 12, tally(FIVE_GOODS, [_ballot()] * 10))
    assert set(step_values("ev-0123456789abcdef", result)) == set(BALLOT_STEP_FIELDS)


def _ballot(rating: Rating = Rating.SATISFIED) -> dict[str, str]:
    return {item.id: rating.value for item in FIVE_GOODS}


def test_a_good_ballot_step_accepts_every_valid_result() -> None:
    step = ballot_step(*GOOD_EVIDENCE)
    assert ballot_step_problems(step) == []
    require_valid_ballot_step(step)
    now = datetime(2025, 3, 3, 9, tzinfo=UTC)
    # The smallest valid result (quorum of the fewest ballots) and a poor one.
    for issued, cast, rating in ((10, 7, Rating.UNSATISFIED), (40, 40, Rating.SATISFIED)):
        result = judge(
            RULES,
            EvaluationTarget.ORGANISATION,
            issued,
            tally(FIVE_GOODS, [_ballot(rating)] * cast),
        )
        assert result.valid
        values = step_values("ev-0123456789abcdef", result)
        errors = validate_evidence(
            step, values, member_count=9, opens_at=now, deadline=now + timedelta(days=30)
        )
        assert errors == []


def test_the_shipped_plans_ballot_steps_pass() -> None:
    for name in ("seed-002", "demo"):
        plan = load_plan((ROOT / "plans" / f"{name}.yaml").read_text("utf-8"))
        steps = [
            s
            for r in plan.rounds
            for p in r.phases
            for s in (
                *p.steps,
                *p.ethnic_area_steps,
                *(x for e in p.extra_steps.values() for x in e),
            )
        ]
        assert all(ballot_step_problems(s, plan.evaluation) == [] for s in steps), name


def test_the_testers_step_without_evaluation_id_and_satisfaction_is_refused() -> None:
    step = ballot_step(
        EvidenceField(name="ballots", label="评议票统计", kind=FieldKind.BALLOTS),
        EvidenceField(name="raters", label="参评人数", kind=FieldKind.INTEGER, min=1),
    )
    problems = ballot_step_problems(step)
    assert len(problems) == 1
    assert "evaluation_id（text）" in problems[0] and "satisfaction（scores）" in problems[0]
    with pytest.raises(ValueError, match="evaluation_id"):
        require_valid_ballot_step(step)
    # What the worker logged: the result is refused by exactly this step.
    result = judge(RULES, EvaluationTarget.ORGANISATION, 12, tally(FIVE_GOODS, [_ballot()] * 10))
    now = datetime(2025, 3, 3, 9, tzinfo=UTC)
    errors = validate_evidence(
        step,
        step_values("ev-0123456789abcdef", result),
        member_count=9,
        opens_at=now,
        deadline=now + timedelta(days=30),
    )
    assert {e.field for e in errors} == {"evidence.evaluation_id", "evidence.satisfaction"}


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        (EvidenceField(name="feedback", label="反馈", kind=FieldKind.TEXT), "required: false"),
        (EvidenceField(name="satisfaction", label="满意率", kind=FieldKind.INTEGER), "scores"),
        (
            EvidenceField(name="raters", label="参评人数", kind=FieldKind.INTEGER, min=10),
            "最少只有 1 张",
        ),
        (
            EvidenceField(
                name="raters", label="参评人数", kind=FieldKind.INTEGER, max_share_of_members=1.0
            ),
            "max_share_of_members",
        ),
        (
            EvidenceField(name="satisfaction", label="满意率", kind=FieldKind.SCORES, max=10),
            "max 不能小于 100",
        ),
        (
            EvidenceField(
                name="evaluation_id", label="评议编号", kind=FieldKind.TEXT, min_length=50
            ),
            "min_length",
        ),
    ],
)
def test_a_field_the_result_cannot_satisfy_is_named(field: EvidenceField, expected: str) -> None:
    evidence = (*(f for f in GOOD_EVIDENCE if f.name != field.name), field)
    problems = ballot_step_problems(ballot_step(*evidence))
    assert len(problems) == 1 and expected in problems[0], problems


def test_with_the_plans_rules_the_least_valid_result_bounds_min() -> None:
    # 10 ballots at least, two thirds of them cast: a valid result has at least 7.
    at_seven = EvidenceField(name="raters", label="参评人数", kind=FieldKind.INTEGER, min=7)
    at_eight = EvidenceField(name="raters", label="参评人数", kind=FieldKind.INTEGER, min=8)
    others = tuple(f for f in GOOD_EVIDENCE if f.name != "raters")
    assert ballot_step_problems(ballot_step(*others, at_seven), RULES) == []
    assert "最少只有 7 张" in ballot_step_problems(ballot_step(*others, at_eight), RULES)[0]


def test_a_step_without_ballot_is_not_checked() -> None:
    assert ballot_step_problems(StepPlan(id="x", name="x")) == []
