"""The campaign aggregate without Temporal: the exit guard (hypothesis), the ladder climbing
rung by rung exactly once, lights, extensions and rectification."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from functools import cache
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from chuangzheng.sample_evidence import sample_evidence
from domain.actions import (
    DecideExtension,
    DecideSubmission,
    RecheckRectification,
    ReportRectification,
    RequestExtension,
    SubmitEvidence,
    WaiveStep,
)
from domain.calendar import SHANGHAI, Span
from domain.campaign import Campaign, new_state
from domain.errors import DomainError
from domain.lights import Light
from domain.machine import PhaseStatus, StepStatus
from domain.notices import NoticeKind
from domain.organisation import Organisation, OrgType, Role, System
from domain.phases import WORKING_PHASES, Phase
from domain.plan_loader import load_plan
from domain.schedule import OrgPlan, build_org_plan, resolve_schedule
from domain.state import Actor, RectificationStatus

ROOT = Path(__file__).resolve().parents[2]
START = datetime.combine(datetime(2025, 3, 3).date(), time(9), SHANGHAI)
ORG = Organisation(
    id="org-1",
    name="柳树村党支部",
    type=OrgType.RURAL,
    township="青石镇",
    system=System.RURAL,
    instructor="王指导",
    secretary="李书记",
    member_count=12,
)
SECRETARY = Actor(user="李书记", role=Role.SECRETARY)
INSTRUCTOR = Actor(user="王指导", role=Role.INSTRUCTOR)


@cache
def plan() -> OrgPlan:
    campaign = load_plan((ROOT / "plans/seed-002.yaml").read_text("utf-8"))
    round_plan = campaign.round("round-1")
    schedule = resolve_schedule(campaign, round_plan, START, rebased=True)
    return build_org_plan(campaign, round_plan, schedule, ORG, round_id="r1")


def fresh() -> Campaign:
    campaign = Campaign(plan(), new_state(plan()))
    campaign.settle(START)
    return campaign


def finish_phase(campaign: Campaign, now: datetime) -> None:
    phase = campaign.state.current()
    for step in plan().phase(phase.phase).steps:
        state = phase.step(step.id)
        if not step.required or state is None or state.settled:
            continue
        values = sample_evidence(
            step, ORG, opens_at=phase.opens_at, deadline=phase.deadline, now=now
        )
        campaign.submit(SubmitEvidence(actor=SECRETARY, step_id=step.id, values=values), now)
        campaign.decide(DecideSubmission(actor=INSTRUCTOR, step_id=step.id, accept=True), now)


def test_ladder_climbs_rung_by_rung_once_and_orders_rectification() -> None:
    campaign = fresh()
    deadline = campaign.state.current().deadline
    calendar = campaign.calendar
    # Blue before the deadline, red after it.
    assert campaign.tick(START) is not None and campaign.state.light is Light.GREEN
    campaign.tick(calendar.before(deadline, Span(working_days=2)))
    assert campaign.state.light is Light.BLUE
    _, notices = campaign.take_outbox()
    assert [n.kind for n in notices] == [NoticeKind.REMINDER]
    seen: list[int] = []
    for rung_index, rung in enumerate(plan().ladder.rungs):
        moment = calendar.after(deadline, rung.delay) + timedelta(minutes=1)
        campaign.tick(moment)
        campaign.tick(moment)  # a second tick at the same time fires nothing new
        seen = [e.rung for e in campaign.state.current().escalations]
        assert seen == list(range(rung_index + 1))
    phase = campaign.state.current()
    assert phase.status is PhaseStatus.RECTIFYING and campaign.state.light is Light.RED
    _, notices = campaign.take_outbox()
    ids = [n.notice_id for n in notices]
    assert len(ids) == len(set(ids))
    kinds = sorted((n.kind.value, n.recipient_role.value) for n in notices)
    assert ("rectification_order", "secretary") in kinds and ("circular", "township") in kinds
    overdue = [n for n in notices if n.kind is NoticeKind.ESCALATION and n.rung == 2]
    assert "逾期6个工作日" in overdue[0].title
    # The organisation catches up; the phase waits for the re-check.
    later = calendar.after(deadline, Span(working_days=8))
    finish_phase(campaign, later)
    assert campaign.state.phase is Phase.MOBILISATION
    campaign.report_rectification(
        ReportRectification(
            actor=SECRETARY, phase=Phase.MOBILISATION, report="已补开动员大会并报送方案。"
        ),
        later,
    )
    try:
        campaign.check_recheck(
            RecheckRectification(actor=INSTRUCTOR, phase=Phase.MOBILISATION, passed=False)
        )
        raise AssertionError("a failed re-check without notes must be refused")
    except DomainError as refused:
        assert refused.code == "reason_required"
    campaign.recheck(
        RecheckRectification(actor=INSTRUCTOR, phase=Phase.MOBILISATION, passed=True), later
    )
    assert campaign.state.phase is Phase.PUBLIC_COMMITMENT


def test_approved_extension_moves_every_timer() -> None:
    campaign = fresh()
    deadline = campaign.state.current().deadline
    calendar = campaign.calendar
    new_deadline = calendar.after(deadline, Span(working_days=10))
    campaign.request_extension(
        RequestExtension(actor=SECRETARY, new_deadline=new_deadline, reason="换届"), START
    )
    campaign.decide_extension(
        DecideExtension(actor=INSTRUCTOR, extension_id="ext-1", approve=True), START
    )
    campaign.tick(calendar.after(deadline, Span(working_days=7)))
    assert campaign.state.current().escalations == []
    assert campaign.state.current().status is PhaseStatus.OPEN
    campaign.tick(new_deadline + timedelta(minutes=1))
    assert [e.rung for e in campaign.state.current().escalations] == [0]


ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "submit",
                "bad_submit",
                "accept",
                "return",
                "waive",
                "waive_no_reason",
                "tick",
                "report",
                "recheck",
            ]
        ),
        st.integers(min_value=0, max_value=9),
        st.integers(min_value=0, max_value=30),
    ),
    max_size=80,
)


@settings(max_examples=150, deadline=None)
@given(ACTIONS)
def test_no_sequence_completes_a_phase_without_its_required_steps(
    actions: list[tuple[str, int, int]],
) -> None:
    campaign = fresh()
    now = START
    for kind, index, days in actions:
        if campaign.state.finished():
            break
        phase = campaign.state.current()
        steps = plan().phase(phase.phase).steps
        step = steps[index % len(steps)]
        try:
            if kind == "tick":
                now = now + timedelta(days=days)
                campaign.tick(now)
            elif kind in ("submit", "bad_submit"):
                values = sample_evidence(
                    step, ORG, opens_at=phase.opens_at, deadline=phase.deadline, now=now
                )
                if kind == "bad_submit":
                    values = {k: None for k in values} | {"unknown": 1}
                campaign.submit(
                    SubmitEvidence(actor=SECRETARY, step_id=step.id, values=values), now
                )
            elif kind in ("accept", "return"):
                campaign.decide(
                    DecideSubmission(
                        actor=INSTRUCTOR, step_id=step.id, accept=kind == "accept", reason="不全"
                    ),
                    now,
                )
            elif kind in ("waive", "waive_no_reason"):
                reason = "本单位不适用" if kind == "waive" else " "
                campaign.waive(WaiveStep(actor=INSTRUCTOR, step_id=step.id, reason=reason), now)
            elif kind == "report":
                campaign.report_rectification(
                    ReportRectification(
                        actor=SECRETARY, phase=phase.phase, report="已按要求全部整改到位"
                    ),
                    now,
                )
            else:
                campaign.recheck(
                    RecheckRectification(
                        actor=INSTRUCTOR, phase=phase.phase, passed=days % 2 == 0, notes="复查"
                    ),
                    now,
                )
        except DomainError:
            pass
        for phase_state in campaign.state.phases:
            if phase_state.status is PhaseStatus.DONE:
                assert all(
                    s.status in (StepStatus.ACCEPTED, StepStatus.WAIVED)
                    for s in phase_state.steps
                    if s.required
                )
                assert all(
                    s.waiver_reason.strip()
                    for s in phase_state.steps
                    if s.status is StepStatus.WAIVED
                )
                assert (
                    phase_state.rectification is None
                    or phase_state.rectification.status is RectificationStatus.PASSED
                )
        order = [p.status for p in campaign.state.phases]
        current = WORKING_PHASES.index(campaign.state.phase) if not campaign.state.finished() else 5
        assert all(s is PhaseStatus.DONE for s in order[:current])
        assert all(s is PhaseStatus.PENDING for s in order[current + 1 :])
    if campaign.state.finished():
        assert all(p.status is PhaseStatus.DONE for p in campaign.state.phases)
