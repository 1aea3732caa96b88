"""Plan versions without Temporal: what a draft may change (refusals name the field in
Chinese), the readable diff, and one organisation moving to a new version (open deadlines
and timers move, a completed phase stays, a phase already climbing keeps its ladder)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from pathlib import Path

import pytest

from domain.calendar import SHANGHAI, Span
from domain.campaign import Campaign, new_state
from domain.errors import PlanError
from domain.events import EventKind
from domain.machine import PhaseStatus
from domain.organisation import Role
from domain.phases import Phase
from domain.plan import CampaignPlan, LadderPlan, Rung, RungAction
from domain.plan_loader import load_plan
from domain.plan_version import (
    PlanVersionChange,
    apply_plan_version,
    check_deadlines_not_past,
    check_plan_version,
    describe_plan_changes,
    show_deadline,
)
from domain.schedule import RoundSchedule, build_org_plan, resolve_schedule
from domain.state import Actor
from tests.domain.test_campaign import ORG, finish_phase

ROOT = Path(__file__).resolve().parents[2]
START = datetime.combine(datetime(2025, 3, 3).date(), time(9), SHANGHAI)
COUNTY = Actor(user="county", name="县委活动办", role=Role.COUNTY_OFFICE)


def seed() -> CampaignPlan:
    return load_plan((ROOT / "plans/seed-002.yaml").read_text("utf-8"))


def with_phase_duration(plan: CampaignPlan, index: int, working_days: int) -> CampaignPlan:
    """Round one of ``plan`` with phase ``index`` lasting ``working_days`` instead."""
    round_plan = plan.round("round-1")
    phases = list(round_plan.phases)
    phases[index] = phases[index].model_copy(
        update={"duration": Span(working_days=working_days), "deadline": None}
    )
    rounds = tuple(
        r.model_copy(update={"phases": tuple(phases)}) if r.id == "round-1" else r
        for r in plan.rounds
    )
    return plan.model_copy(update={"rounds": rounds})


def with_ladder(plan: CampaignPlan, ladder: LadderPlan) -> CampaignPlan:
    rounds = tuple(
        r.model_copy(update={"ladder": ladder}) if r.id == "round-1" else r for r in plan.rounds
    )
    return plan.model_copy(update={"rounds": rounds})


def schedule(plan: CampaignPlan) -> RoundSchedule:
    return resolve_schedule(plan, plan.round("round-1"), START, rebased=True)


def change(plan: CampaignPlan, version_id: str = "v2", version: int = 2) -> PlanVersionChange:
    resolved = schedule(plan)
    return PlanVersionChange(
        version_id=version_id,
        version=version,
        plan_ref="sha256-test",
        windows=resolved.windows,
        ladder=plan.ladder_for(plan.round("round-1")),
        changes=("测试",),
        actor=COUNTY,
        reason="全县防汛，统一调整",
    )


def campaign_of(plan: CampaignPlan) -> Campaign:
    org_plan = build_org_plan(plan, plan.round("round-1"), schedule(plan), ORG, round_id="r1")
    campaign = Campaign(org_plan, new_state(org_plan))
    campaign.settle(START)
    return campaign


def test_a_draft_that_changes_steps_or_rules_is_refused_naming_the_field() -> None:
    plan = seed()
    round_plan = plan.round("round-1")
    phases = list(round_plan.phases)
    phases[1] = phases[1].model_copy(update={"steps": phases[1].steps[:-1]})
    rounds = tuple(
        r.model_copy(update={"phases": tuple(phases), "starts_on": r.starts_on + timedelta(1)})
        if r.id == "round-1"
        else r
        for r in plan.rounds
    )
    draft = plan.model_copy(update={"rounds": rounds})
    with pytest.raises(PlanError) as refused:
        check_plan_version(plan, draft, "round-1")
    fields = {e.field: e.reason for e in refused.value.errors}
    assert "rounds[0].phases[1].steps" in fields
    assert "公开承诺阶段的步骤不能在运行中修改" in fields["rounds[0].phases[1].steps"]
    assert "rounds[0].starts_on" in fields
    # A deadline or the ladder alone is allowed.
    check_plan_version(plan, with_phase_duration(plan, 2, 30), "round-1")


def test_the_diff_says_which_deadline_and_which_rung_moved() -> None:
    plan = seed()
    ladder = plan.ladder
    added = Rung(name="乡镇党委约谈", recipient=Role.TOWNSHIP, delay=Span(working_days=1))
    moved = ladder.rungs[1].model_copy(update={"delay": Span(working_days=4)})
    new_ladder = ladder.model_copy(
        update={
            "rungs": (ladder.rungs[0], added, moved, ladder.rungs[2]),
            "rectification_period": Span(working_days=15),
        }
    )
    draft = with_ladder(with_phase_duration(plan, 0, 45), new_ladder)
    old, new = schedule(plan), schedule(draft)
    lines = describe_plan_changes(old.windows, new.windows, ladder, new_ladder)
    first = old.windows[0].deadline
    assert lines[0] == (
        f"动员部署阶段截止时间由{show_deadline(first)}调整为{show_deadline(new.windows[0].deadline)}"
    )
    assert "整改期限由10个工作日调整为15个工作日" in lines
    assert any(line.startswith("新增第2级督办“乡镇党委约谈”") for line in lines)
    assert any("“指导小组督办”由（" in line and "4个工作日" in line for line in lines)
    # Deadlines show as days for plans counted in working days.
    assert len(show_deadline(first)) == 10


def test_a_deadline_moved_into_the_past_is_refused() -> None:
    plan = seed()
    old, new = schedule(plan), schedule(with_phase_duration(plan, 0, 1))
    with pytest.raises(PlanError) as refused:
        check_deadlines_not_past(old.windows, new.windows, old.windows[0].deadline)
    assert refused.value.errors[0].field == "rounds[0].phases[0].deadline"


def test_an_organisation_moves_open_deadlines_and_keeps_the_completed_phase() -> None:
    plan = seed()
    campaign = campaign_of(plan)
    finish_phase(campaign, START + timedelta(days=1))
    assert campaign.state.phase is Phase.PUBLIC_COMMITMENT
    done = campaign.state.phase_state(Phase.MOBILISATION).model_copy(deep=True)
    old_deadline = campaign.state.current().deadline
    campaign.take_outbox()
    # Every phase's window moves in the draft (the first one too): only the open and the
    # pending ones follow.
    draft = with_phase_duration(with_phase_duration(plan, 0, 30), 1, 70)
    cmd = change(draft)
    now = START + timedelta(days=2)
    assert apply_plan_version(campaign, cmd, now)
    assert not apply_plan_version(campaign, cmd, now)  # once per version id
    state = campaign.state
    assert state.phase_state(Phase.MOBILISATION) == done
    new = schedule(draft)
    for phase in (Phase.PUBLIC_COMMITMENT, Phase.LEADERSHIP_REVIEW, Phase.COMMENDATION):
        assert state.phase_state(phase).deadline == new.window(phase).deadline
        assert state.phase_state(phase).planned_deadline == new.window(phase).deadline
    assert state.plan_version == 2 and state.applied_plan_versions == ["v2"]
    events, _ = campaign.take_outbox()
    assert {e.kind for e in events} == {EventKind.PLAN_VERSION_APPLIED}
    open_event = next(e for e in events if e.phase is Phase.PUBLIC_COMMITMENT)
    assert open_event.detail["status"] == "open"
    assert open_event.detail["summary"].startswith("计划第2版：公开承诺阶段截止时间由")
    # Pending phases are named in the detail, not as the event's phase (no read-model row).
    assert {e.detail.get("phase") for e in events if e.phase is None} >= {"leadership_review"}
    # The timer follows: the next wake-up (the blue light before the new deadline) comes
    # after the old deadline, which passes without anything firing.
    assert state.current().deadline > old_deadline
    wake = campaign.tick(now)
    assert wake is not None and old_deadline < wake < state.current().deadline
    campaign.tick(old_deadline + timedelta(hours=1))
    assert state.current().status is PhaseStatus.OPEN and not campaign.take_outbox()[1]


def test_a_phase_already_climbing_finishes_on_its_ladder_and_the_next_takes_the_new_one() -> None:
    plan = seed()
    campaign = campaign_of(plan)
    deadline = campaign.state.current().deadline
    calendar = campaign.calendar
    first_rung = calendar.after(deadline, plan.ladder.rungs[0].delay) + timedelta(minutes=1)
    campaign.tick(first_rung)
    assert [e.rung for e in campaign.state.current().escalations] == [0]
    ladder = plan.ladder
    added = Rung(
        name="乡镇党委约谈",
        recipient=Role.TOWNSHIP,
        delay=Span(working_days=0),
        actions=(RungAction.NOTIFY,),
    )
    new_ladder = ladder.model_copy(update={"rungs": (added, *ladder.rungs)})
    draft = with_ladder(plan, new_ladder)
    assert apply_plan_version(campaign, change(draft), first_rung)
    # Still overdue (the deadline did not move), still on the old ladder: rung 1 is the
    # guidance group's, as recorded.
    assert campaign.state.current().status is PhaseStatus.OVERDUE
    assert campaign.ladder == ladder
    second = calendar.after(deadline, ladder.rungs[1].delay) + timedelta(minutes=1)
    campaign.tick(second)
    fired = campaign.state.current().escalations
    assert [(e.rung, e.name) for e in fired] == [(0, "指导员督促"), (1, "指导小组督办")]
    # The next phase runs on the new ladder.
    finish_phase(campaign, second)
    assert campaign.state.phase is Phase.PUBLIC_COMMITMENT
    assert campaign.ladder == new_ladder
