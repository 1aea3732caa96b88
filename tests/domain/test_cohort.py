"""Who is behind (yellow): the pro-rata schedule (序时进度), cohorts, and light precedence."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from domain.calendar import SHANGHAI, Span
from domain.cohort import (
    BehindSchedule,
    CohortMember,
    behind_schedule,
    position,
    schedule_position,
)
from domain.lights import Light, light_for, phase_progress, pro_rata
from domain.machine import StepStatus
from domain.phases import Phase
from domain.plan import CalendarPlan
from domain.state import PhaseState, StepState
from tests.domain.test_campaign import fresh

START = datetime.combine(datetime(2025, 3, 3).date(), time(9), SHANGHAI)
CALENDAR = CalendarPlan().build()


def member(org_id: str, phase: Phase, progress: float, **kw: object) -> CohortMember:
    return CohortMember.model_validate(
        {
            "org_id": org_id,
            "township": "青石镇",
            "system": "rural",
            "phase": phase,
            "progress": progress,
            **kw,
        }
    )


def test_pro_rata_is_the_elapsed_share_of_the_window_clamped() -> None:
    end = START + timedelta(days=10)
    assert pro_rata(opens_at=START, deadline=end, now=START - timedelta(days=1)) == 0.0
    assert pro_rata(opens_at=START, deadline=end, now=START + timedelta(days=4)) == 0.4
    assert pro_rata(opens_at=START, deadline=end, now=end + timedelta(days=3)) == 1.0
    assert pro_rata(opens_at=START, deadline=START, now=START) == 1.0


def test_phase_progress_counts_settled_required_steps_only() -> None:
    steps = [
        StepState(step_id="a", name="甲", required=True, status=StepStatus.ACCEPTED),
        StepState(step_id="b", name="乙", required=True, status=StepStatus.WAIVED),
        StepState(step_id="c", name="丙", required=True, status=StepStatus.SUBMITTED),
        StepState(step_id="d", name="丁", required=True),
        StepState(step_id="e", name="戊", required=False, status=StepStatus.ACCEPTED),
    ]
    phase = PhaseState(
        phase=Phase.MOBILISATION,
        opens_at=START,
        deadline=START + timedelta(days=30),
        planned_deadline=START + timedelta(days=30),
        steps=steps,
    )
    assert phase_progress(phase) == 0.5
    assert phase_progress(phase.model_copy(update={"completed_at": START})) == 1.0
    assert phase_progress(phase.model_copy(update={"steps": steps[4:]})) == 1.0


def test_positions_put_every_phase_on_one_scale() -> None:
    assert position(Phase.MOBILISATION, 0.5) == 0.5
    assert position(Phase.LEADERSHIP_REVIEW, 0.25) == 2.25
    assert position(Phase.COMPLETED, 0.0) == 5.0
    assert schedule_position({Phase.MOBILISATION: 1.0, Phase.PUBLIC_COMMITMENT: 0.3}) == 1.3


def test_the_laggard_of_a_township_is_behind_and_the_others_are_not() -> None:
    members = [member(f"o{i}", Phase.PUBLIC_COMMITMENT, 0.0) for i in range(5)]
    members.append(member("late", Phase.MOBILISATION, 0.0))
    assert behind_schedule(members, {Phase.MOBILISATION: 0.3}) == {"late"}
    # Caught up: nobody is behind.
    members[-1] = member("late", Phase.PUBLIC_COMMITMENT, 0.0)
    assert behind_schedule(members, {Phase.MOBILISATION: 0.3}) == set()


def test_on_schedule_within_tolerance_is_not_behind_even_below_the_median() -> None:
    members = [member(f"o{i}", Phase.PUBLIC_COMMITMENT, 0.0) for i in range(5)]
    members.append(member("steady", Phase.MOBILISATION, 0.25))
    assert behind_schedule(members, {Phase.MOBILISATION: 0.3}) == set()
    assert behind_schedule(members, {Phase.MOBILISATION: 0.3}, tolerance=0.0) == {"steady"}


def test_a_cohort_all_behind_together_is_not_yellow() -> None:
    members = [member(f"o{i}", Phase.MOBILISATION, 0.0) for i in range(6)]
    assert behind_schedule(members, {Phase.MOBILISATION: 0.9}) == set()


def test_small_cohorts_say_nothing_and_either_cohort_suffices() -> None:
    pro = {Phase.MOBILISATION: 0.5}
    # Two in the township, no system: no cohort of three.
    pair = [
        member("a", Phase.PUBLIC_COMMITMENT, 0.0, system=""),
        member("b", Phase.MOBILISATION, 0.0, system=""),
    ]
    assert behind_schedule(pair, pro) == set()
    # Alone in its township, but its system (3 members) is ahead of it.
    system = [
        member("a", Phase.PUBLIC_COMMITMENT, 0.0, township="甲镇"),
        member("b", Phase.PUBLIC_COMMITMENT, 0.0, township="乙镇"),
        member("c", Phase.MOBILISATION, 0.0, township="丙镇"),
    ]
    assert behind_schedule(system, pro) == {"c"}


def test_closed_and_completed_organisations_are_never_behind() -> None:
    members = [member(f"o{i}", Phase.COMPLETED, 1.0) for i in range(4)]
    members.append(member("shut", Phase.MOBILISATION, 0.0, closed=True))
    assert behind_schedule(members, {Phase.MOBILISATION: 1.0}) == set()


def test_light_precedence_red_over_yellow_over_blue_over_green() -> None:
    deadline = START + timedelta(days=30)
    blue = Span(working_days=5)

    def light(now: datetime, behind: bool, done: bool = False) -> Light:
        return light_for(
            deadline=deadline,
            now=now,
            done=done,
            blue_within=blue,
            calendar=CALENDAR,
            behind=behind,
        )

    early, near, late = START, deadline - timedelta(days=1), deadline + timedelta(days=1)
    assert [light(early, False), light(near, False), light(late, False)] == [
        Light.GREEN,
        Light.BLUE,
        Light.RED,
    ]
    assert [light(early, True), light(near, True), light(late, True)] == [
        Light.YELLOW,
        Light.YELLOW,
        Light.RED,
    ]
    assert light(late, True, done=True) is Light.GREEN
    assert Light.YELLOW.label == "滞后"


def test_the_verdict_is_a_small_frozen_message() -> None:
    verdict = BehindSchedule(behind=True, as_of=START)
    assert BehindSchedule.model_validate(verdict.model_dump(mode="json")) == verdict


def test_the_campaign_turns_yellow_when_told_and_back_when_caught_up() -> None:
    campaign = fresh()
    campaign.take_outbox()
    now = START + timedelta(days=3)
    assert campaign.state.light is Light.GREEN
    assert campaign.set_behind_schedule(BehindSchedule(behind=True, as_of=now), now)
    assert campaign.state.behind_schedule and campaign.state.light is Light.YELLOW
    events, _ = campaign.take_outbox()
    assert [e.kind for e in events] == ["behind_schedule"]
    # The same verdict again changes nothing and records nothing.
    assert not campaign.set_behind_schedule(BehindSchedule(behind=True, as_of=now), now)
    assert campaign.take_outbox() == ([], [])
    # Past the deadline red wins over yellow.
    late = campaign.state.current().deadline + timedelta(hours=1)
    campaign.tick(late)
    assert campaign.state.light is Light.RED
    assert campaign.set_behind_schedule(BehindSchedule(behind=False, as_of=late), late)
    assert campaign.state.light is Light.RED and not campaign.state.behind_schedule
