"""The what-if's pure parts: the draft change and its Chinese field errors, the ladder it
leads to, the state an organisation carries in, the tallies and their difference; and the
预警 rung of the plan, validated at plan load."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from chuangzheng.plans import parse_plan
from domain.calendar import Span
from domain.errors import PlanError, ValidationFailed
from domain.machine import PhaseStatus, StepStatus
from domain.notices import NoticeKind
from domain.organisation import Organisation, OrgType, Role, System
from domain.phases import WORKING_PHASES, Phase
from domain.plan import CampaignPlan, EarlyWarningKind
from domain.schedule import build_org_plan, resolve_schedule
from domain.state import Outcome
from domain.what_if import (
    ChangeKind,
    DraftChange,
    OrgStart,
    PhaseStart,
    carry_state,
    changed_ladder,
    difference,
    merge_tallies,
    notice_label,
    plan_with_change,
    tally,
)

ROOT = Path(__file__).resolve().parents[2]
SEED = (ROOT / "plans" / "seed-002.yaml").read_text("utf-8")


@pytest.fixture(scope="module")
def plan() -> CampaignPlan:
    return parse_plan(SEED)


def _errors(exc: pytest.ExceptionInfo[ValidationError]) -> str:
    return "；".join(str(e["msg"]) for e in exc.value.errors())


def test_a_draft_names_what_it_lacks_in_chinese() -> None:
    with pytest.raises(ValidationError) as missing:
        DraftChange(kind=ChangeKind.EXTEND_PHASE)
    assert "phase: 延长阶段时限须填写阶段" in _errors(missing)
    assert "by: 延长阶段时限须填写延长的时长" in _errors(missing)
    with pytest.raises(ValidationError) as too_long:
        DraftChange(kind="extend_phase", phase=Phase.MOBILISATION, by=Span(working_days=61))
    assert "by: 延长的时长须在 1 到 60 之间" in _errors(too_long)
    with pytest.raises(ValidationError) as to_secretary:
        DraftChange(
            kind="add_rung",
            rung_name="书记自查",
            recipient=Role.SECRETARY,
            delay=Span(working_days=1),
        )
    assert "recipient: 督办对象须为上级" in _errors(to_secretary)
    with pytest.raises(ValidationError) as no_period:
        DraftChange(kind="rectification_period")
    assert "period: 调整整改期限须填写新的整改期限" in _errors(no_period)


def test_the_ladder_a_draft_leads_to(plan: CampaignPlan) -> None:
    ladder = plan.ladder
    added = changed_ladder(
        ladder,
        DraftChange(
            kind="add_rung",
            rung_name="乡镇党委督办",
            recipient=Role.TOWNSHIP,
            delay=Span(working_days=2),
        ),
    )
    assert [r.name for r in added.rungs] == [
        "指导员督促",
        "乡镇党委督办",
        "指导小组督办",
        "县委领导小组办公室通报",
    ]
    moved = changed_ladder(
        ladder, DraftChange(kind="move_rung", rung_name="指导小组督办", delay=Span(working_days=5))
    )
    assert moved.rungs[1].delay == Span(working_days=5)
    period = changed_ladder(
        ladder, DraftChange(kind="rectification_period", period=Span(working_days=15))
    )
    assert period.rectification_period == Span(working_days=15) and period.rungs == ladder.rungs
    extended = DraftChange(
        kind="extend_phase", phase=Phase.LEADERSHIP_REVIEW, by=Span(working_days=5)
    )
    assert changed_ladder(ladder, extended) is ladder
    assert extended.describe() == "全县组织领导点评阶段截止时间延后5个工作日"


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        (
            DraftChange(kind="move_rung", rung_name="不存在", delay=Span(working_days=1)),
            "rung_name",
            "没有名为“不存在”的督办层级",
        ),
        (
            DraftChange(kind="move_rung", rung_name="指导员督促", delay=Span(working_days=9)),
            "delay",
            "逐级不减",
        ),
        (
            DraftChange(
                kind="add_rung",
                rung_name="指导员督促",
                recipient=Role.TOWNSHIP,
                delay=Span(working_days=1),
            ),
            "rung_name",
            "已有名为“指导员督促”的督办层级",
        ),
        (
            DraftChange(
                kind="add_rung",
                rung_name="最后",
                recipient=Role.TOWNSHIP,
                delay=Span(working_days=20),
            ),
            "delay",
            "最高一级",
        ),
        (
            DraftChange(kind="rectification_period", period=Span(minutes=30)),
            "period",
            "须与本轮计划使用同一单位（工作日）",
        ),
    ],
)
def test_a_draft_the_ladder_cannot_take_is_refused_naming_the_field(
    plan: CampaignPlan, change: DraftChange, field: str, reason: str
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        changed_ladder(plan.ladder, change)
    [error] = refused.value.errors
    assert error.field == field and reason in error.reason


def _org() -> Organisation:
    return Organisation(
        id="org-1",
        name="城关镇东关村党支部",
        type=OrgType.RURAL,
        township="城关镇",
        system=System.RURAL,
        instructor="张指导",
        secretary="李明",
        member_count=30,
    )


def test_an_organisation_carries_its_state_in(plan: CampaignPlan) -> None:
    round_plan = plan.round("round-1")
    starts_at = datetime(2010, 5, 4, 1, 0, tzinfo=UTC)  # on its planned day: 2010 has data
    schedule = resolve_schedule(plan, round_plan, starts_at, rebased=False)
    org = _org()
    org_plan = build_org_plan(plan, round_plan, schedule, org, round_id="r")
    first, second = schedule.windows[0], schedule.windows[1]
    now = second.deadline + timedelta(days=12)  # past the top rung of 公开承诺
    step = org_plan.phase(Phase.PUBLIC_COMMITMENT).steps[0].id
    start = OrgStart(
        organisation=org,
        phases=(
            PhaseStart(
                phase=Phase.MOBILISATION,
                status=PhaseStatus.DONE,
                deadline=first.deadline,
                completed_at=first.deadline - timedelta(days=3),
                outcome=Outcome.ON_TIME,
            ),
            PhaseStart(
                phase=Phase.PUBLIC_COMMITMENT,
                status=PhaseStatus.RECTIFYING,
                deadline=second.deadline,
                opened_at=first.deadline,
                settled_steps=(step,),
                rungs_fired=(
                    ("指导员督促", second.deadline),
                    ("县委领导小组办公室通报", second.deadline + timedelta(days=9)),
                ),
                rectification_issued_at=second.deadline + timedelta(days=9),
            ),
            *(PhaseStart(phase=w.phase, deadline=w.deadline) for w in schedule.windows[2:]),
        ),
    )
    assert start.current is Phase.PUBLIC_COMMITMENT
    assert schedule.calendar is not None
    state = carry_state(org_plan, start, now=now, calendar=schedule.calendar)
    assert state.phase is Phase.PUBLIC_COMMITMENT
    done, current = state.phases[0], state.phases[1]
    assert done.status is PhaseStatus.DONE and done.outcome is Outcome.ON_TIME
    assert all(s.status is StepStatus.ACCEPTED for s in done.steps)
    assert current.status is PhaseStatus.RECTIFYING and current.rectification is not None
    carried_step = current.step(step)
    assert carried_step is not None and carried_step.status is StepStatus.ACCEPTED
    assert [s.status for s in current.steps[1:]] == [StepStatus.OPEN] * (len(current.steps) - 1)
    # Fired rungs keep their place by name: 0 and 2 fired, the guidance group's did not.
    assert [e.rung for e in current.escalations] == [0, 2]
    assert current.reminder_sent
    assert all(p.status is PhaseStatus.PENDING for p in state.phases[2:])


def test_tallies_and_their_difference(plan: CampaignPlan) -> None:
    before = tally(
        {
            "a": {Phase.MOBILISATION: Outcome.ON_TIME},
            "b": {Phase.MOBILISATION: Outcome.LATE},
            "c": {Phase.MOBILISATION: Outcome.AFTER_RECTIFICATION},
        },
        {(Phase.MOBILISATION, "指导员督促"): 4, (Phase.MOBILISATION, "到期提醒"): 2},
    )
    after = tally(
        {
            "a": {Phase.MOBILISATION: Outcome.ON_TIME},
            "b": {Phase.MOBILISATION: Outcome.ON_TIME},
            "c": {Phase.MOBILISATION: Outcome.LATE},
        },
        {(Phase.MOBILISATION, "指导员督促"): 2},
    )
    first = before.phase(Phase.MOBILISATION)
    assert (first.on_time, first.late, first.after_rectification) == (1, 1, 1)
    assert before.phase(Phase.COMMENDATION).unfinished == 3
    diff = difference(before, after, organisations_affected=2)
    mob = diff.phases[0]
    assert (mob.on_time, mob.late, mob.after_rectification) == (1, 0, -1)
    notices = {n.label: (n.unchanged, n.changed, n.difference) for n in diff.notices}
    assert notices == {"指导员督促": (4, 2, -2), "到期提醒": (2, 0, -2)}
    merged = merge_tallies([before, after])
    assert merged.organisations == 6 and merged.phase(Phase.MOBILISATION).on_time == 3
    assert merged.notice_count("指导员督促") == 6
    assert notice_label(NoticeKind.ESCALATION, 1, plan.ladder) == "指导小组督办"
    assert notice_label(NoticeKind.REMINDER, None, plan.ladder) == "到期提醒"
    assert len(before.phases) == len(WORKING_PHASES)


def test_the_early_warning_rung_is_plan_data_validated_at_load(plan: CampaignPlan) -> None:
    rung = plan.ladder.early_warning
    assert rung is not None
    assert rung.kind is EarlyWarningKind.EARLY_WARNING and rung.name == "预警"
    assert rung.recipient is Role.INSTRUCTOR and rung.threshold == 0.3 and rung.not_before == 0.25
    assert rung.text.startswith("请在截止前督促")
    with pytest.raises(PlanError) as too_high:
        parse_plan(SEED.replace("threshold: 0.3", "threshold: 1.5"))
    assert any(e.field == "ladder.early_warning.threshold" for e in too_high.value.errors)
    with pytest.raises(PlanError) as to_secretary:
        parse_plan(
            SEED.replace(
                "recipient: instructor\n    threshold", "recipient: secretary\n    threshold"
            )
        )
    [error] = [e for e in to_secretary.value.errors if e.field.startswith("ladder.early_warning")]
    assert "不能发给书记" in error.reason
    with pytest.raises(PlanError) as wrong_kind:
        parse_plan(SEED.replace("kind: early_warning", "kind: late_warning"))
    assert any(e.field == "ladder.early_warning.kind" for e in wrong_kind.value.errors)


def test_a_reviewed_draft_becomes_a_plan_version(plan: CampaignPlan) -> None:
    """``plan_with_change``: an extension moves only its phase's deadline (the next phase
    keeps its own, as in the rehearsal); a ladder change lands on the round's own ladder
    and keeps the 预警; a township-only extension is refused saying what to do instead."""
    round_plan = plan.rounds[0]
    starts_at = datetime(2010, 5, 4, 1, 0, tzinfo=UTC)  # 2010 has holiday data
    before = resolve_schedule(plan, round_plan, starts_at)
    calendar = plan.calendar.build()
    change = DraftChange(kind="extend_phase", phase=Phase.MOBILISATION, by=Span(working_days=3))
    extended = plan_with_change(plan, round_plan.id, change)
    after = resolve_schedule(extended, extended.round(round_plan.id), starts_at)
    assert change.by is not None
    assert after.windows[0].deadline == calendar.after(before.windows[0].deadline, change.by)
    assert after.windows[0].deadline != before.windows[0].deadline
    assert [w.deadline for w in after.windows[1:]] == [w.deadline for w in before.windows[1:]]
    assert [p.steps for p in extended.rounds[0].phases] == [p.steps for p in round_plan.phases]

    moved = DraftChange(
        kind="move_rung", rung_name=plan.ladder.rungs[0].name, delay=Span(working_days=2)
    )
    laddered = plan_with_change(plan, round_plan.id, moved)
    own = laddered.rounds[0].ladder
    assert own is not None and own.rungs[0].delay == Span(working_days=2)
    assert own.early_warning == plan.ladder.early_warning is not None
    assert laddered.ladder == plan.ladder  # the campaign's (other rounds') ladder is untouched

    with pytest.raises(ValidationFailed) as township:
        plan_with_change(
            plan,
            round_plan.id,
            DraftChange(
                kind="extend_phase",
                phase=Phase.MOBILISATION,
                township="城关镇",
                by=Span(working_days=3),
            ),
        )
    assert township.value.errors[0].field == "township"
    assert "全县延长" in township.value.errors[0].reason
    assert "逐个批准延期" in township.value.errors[0].reason

    too_far = DraftChange(
        kind="extend_phase",
        phase=Phase.MOBILISATION,
        by=Span(working_days=round_plan.phases[1].duration.working_days or 0),  # type: ignore[union-attr]
    )
    with pytest.raises(ValidationFailed) as beyond:
        plan_with_change(plan, round_plan.id, too_far)
    assert beyond.value.errors[0].field == "by" and "下一阶段" in beyond.value.errors[0].reason
