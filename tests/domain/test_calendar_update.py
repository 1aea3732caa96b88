"""A calendar update applied to one organisation's campaign: open deadlines and timers move,
completed phases stay, an extension already granted is kept, every move is audited, and
the new calendar is part of the state."""

from __future__ import annotations

from datetime import date, datetime
from functools import cache
from pathlib import Path

from chuangzheng.sample_evidence import sample_evidence
from domain.actions import (
    CalendarUpdate,
    DecideExtension,
    DecideSubmission,
    RequestExtension,
    RoundExtension,
    SubmitEvidence,
)
from domain.calendar import SHANGHAI, deadline_day, end_of_day
from domain.campaign import Campaign, new_state
from domain.errors import DomainError, PlanError
from domain.events import EventKind
from domain.machine import PhaseStatus
from domain.organisation import Organisation, OrgType, Role, System
from domain.phases import Phase
from domain.plan import CalendarPlan, CampaignPlan
from domain.plan_loader import calendar_update, load_plan
from domain.schedule import OrgPlan, build_org_plan, reresolve_round, resolve_round
from domain.state import Actor, CampaignState

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2010, 5, 4, 9, 0, tzinfo=SHANGHAI)
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
COUNTY = Actor(user="county", role=Role.COUNTY_OFFICE)
# "Newly published" days off: one in 动员部署's last week (already completed by then), two
# at the end of 公开承诺's window (open when the update arrives).
PUBLISHED = CalendarPlan(holidays=(date(2010, 6, 29), date(2010, 8, 30), date(2010, 8, 31)))


@cache
def seed() -> CampaignPlan:
    return load_plan((ROOT / "plans/seed-002.yaml").read_text("utf-8"))


@cache
def plan() -> OrgPlan:
    round_plan = seed().round("round-1")
    schedule = resolve_round(seed(), round_plan, START)
    return build_org_plan(seed(), round_plan, schedule, ORG, round_id="r1")


def update(update_id: str = "cal-1") -> CalendarUpdate:
    schedule = reresolve_round(seed(), seed().round("round-1"), START, PUBLISHED)
    assert schedule.calendar is not None
    return CalendarUpdate(
        update_id=update_id,
        calendar=schedule.calendar,
        windows=schedule.windows,
        actor=COUNTY,
        reason="国务院办公厅发布节假日安排",
    )


def finish_phase(campaign: Campaign, now: datetime) -> None:
    phase = campaign.state.current()
    for step in plan().phase(phase.phase).steps:
        if not step.required:
            continue
        values = sample_evidence(
            step, ORG, opens_at=phase.opens_at, deadline=phase.deadline, now=now
        )
        campaign.submit(SubmitEvidence(actor=SECRETARY, step_id=step.id, values=values), now)
        campaign.decide(DecideSubmission(actor=INSTRUCTOR, step_id=step.id, accept=True), now)


def in_commitment() -> Campaign:
    """Mobilisation completed on 1 June; 公开承诺 open (deadline 31 Aug 2010)."""
    campaign = Campaign(plan(), new_state(plan()))
    campaign.settle(START)
    finish_phase(campaign, datetime(2010, 6, 1, 10, tzinfo=SHANGHAI))
    assert campaign.state.phase is Phase.PUBLIC_COMMITMENT
    campaign.take_outbox()
    return campaign


def test_the_org_plan_pins_the_calendar_the_campaign_uses() -> None:
    campaign = Campaign(plan(), new_state(plan()))
    assert campaign.calendar is plan().pinned_calendar
    # An org plan from before pinning computes from the plan's calendar, as before.
    old = plan().model_copy(update={"pinned_calendar": None})
    assert not hasattr(Campaign(old, new_state(old)).calendar, "first_day")


def test_open_deadlines_and_timers_move_and_completed_phases_stay() -> None:
    campaign = in_commitment()
    now = datetime(2010, 7, 10, 10, tzinfo=SHANGHAI)
    before = {p.phase: p.deadline for p in campaign.state.phases}
    wake_before = campaign.tick(now)
    assert campaign.apply_calendar(update(), now)
    after = {p.phase: p.deadline for p in campaign.state.phases}
    # 动员部署 was completed: its deadline stays although its window moved.
    assert after[Phase.MOBILISATION] == before[Phase.MOBILISATION]
    assert update().windows[0].deadline != before[Phase.MOBILISATION]
    # The round's windows are re-resolved from the kick-off: 动员部署's window now ends
    # 1 Jul, so 公开承诺 counts from 2 Jul and, without 30–31 Aug, ends 3 Sep instead of
    # 31 Aug (for every organisation alike); the later phases follow.
    commitment = campaign.state.phase_state(Phase.PUBLIC_COMMITMENT)
    assert deadline_day(commitment.deadline) == date(2010, 9, 3)
    assert commitment.planned_deadline == commitment.deadline
    assert commitment.status is PhaseStatus.OPEN
    for window in update().windows[1:]:
        assert after[window.phase] == window.deadline
    review = campaign.state.phase_state(Phase.LEADERSHIP_REVIEW)
    assert review.opens_at == commitment.deadline
    # The timers follow: the next wake-up (the light turning blue) is computed on the new
    # deadline with the new calendar.
    wake_after = campaign.tick(now)
    assert wake_before is not None and wake_after is not None and wake_after > wake_before
    assert wake_after == campaign.calendar.before(commitment.deadline, plan().ladder.blue_within)
    assert "3 holidays" in update().calendar.source
    assert date(2010, 8, 30) in update().calendar.rest_days
    # The new calendar is the campaign's and is part of its state.
    assert campaign.calendar is campaign.state.calendar == update().calendar
    restored = CampaignState.model_validate_json(campaign.state.model_dump_json())
    assert Campaign(plan(), restored).calendar == update().calendar


def test_every_move_is_audited_with_the_old_and_new_deadline() -> None:
    campaign = in_commitment()
    now = datetime(2010, 7, 10, 10, tzinfo=SHANGHAI)
    old = campaign.state.phase_state(Phase.PUBLIC_COMMITMENT).deadline
    campaign.apply_calendar(update(), now)
    events, _ = campaign.take_outbox()
    assert {e.kind for e in events} == {EventKind.CALENDAR_UPDATED}
    moved = {e.phase: e for e in events}
    assert Phase.MOBILISATION not in moved
    event = moved[Phase.PUBLIC_COMMITMENT]
    assert event.actor == COUNTY
    assert event.detail["update_id"] == "cal-1"
    assert event.detail["reason"] == "国务院办公厅发布节假日安排"
    assert event.detail["old_deadline"] == old.isoformat()
    assert event.detail["new_deadline"] == end_of_day(date(2010, 9, 3)).isoformat()
    assert event.detail["calendar"]["last_day"] == update().calendar.last_day.isoformat()


def test_an_update_applies_once() -> None:
    campaign = in_commitment()
    now = datetime(2010, 7, 10, 10, tzinfo=SHANGHAI)
    assert campaign.apply_calendar(update(), now)
    campaign.take_outbox()
    assert not campaign.apply_calendar(update(), now)
    assert campaign.take_outbox() == ([], [])
    assert campaign.state.applied_calendar_updates == ["cal-1"]


def test_an_extension_already_granted_beyond_the_new_deadline_is_kept() -> None:
    campaign = in_commitment()
    now = datetime(2010, 7, 10, 10, tzinfo=SHANGHAI)
    extended = end_of_day(date(2010, 9, 10))
    campaign.request_extension(
        RequestExtension(actor=SECRETARY, new_deadline=extended, reason="村两委换届"), now
    )
    extension_id = campaign.state.extensions[-1].id
    campaign.decide_extension(
        DecideExtension(actor=INSTRUCTOR, extension_id=extension_id, approve=True), now
    )
    campaign.apply_calendar(update(), now)
    commitment = campaign.state.phase_state(Phase.PUBLIC_COMMITMENT)
    assert commitment.deadline == extended
    assert deadline_day(commitment.planned_deadline) == date(2010, 9, 3)


def test_an_update_with_nothing_to_move_is_still_on_record() -> None:
    campaign = in_commitment()
    now = datetime(2010, 7, 10, 10, tzinfo=SHANGHAI)
    same = resolve_round(seed(), seed().round("round-1"), START)
    assert same.calendar is not None
    cmd = CalendarUpdate(
        update_id="cal-same",
        calendar=same.calendar,
        windows=same.windows,
        actor=COUNTY,
        reason="核对",
    )
    assert campaign.apply_calendar(cmd, now)
    events, _ = campaign.take_outbox()
    assert [(e.kind, e.phase) for e in events] == [(EventKind.CALENDAR_UPDATED, None)]


def test_extensions_beyond_the_pinned_calendar_are_refused() -> None:
    campaign = in_commitment()
    now = datetime(2010, 7, 10, 10, tzinfo=SHANGHAI)
    pinned = plan().pinned_calendar
    assert pinned is not None
    too_late = end_of_day(pinned.last_day)
    try:
        campaign.check_request_extension(
            RequestExtension(actor=SECRETARY, new_deadline=too_late, reason="村两委换届"), now
        )
        raise AssertionError("an extension beyond the pinned calendar must be refused")
    except DomainError as refused:
        assert refused.code == "invalid_deadline" and refused.field == "new_deadline"
        assert pinned.last_day.isoformat() in refused.reason
    # A round-wide extension that far is not applied (the round's validator refuses it).
    cmd = RoundExtension(
        extension_id="x1",
        phase=Phase.PUBLIC_COMMITMENT,
        new_deadline=too_late,
        reason="统一延期",
        actor=COUNTY,
    )
    deadline = campaign.state.phase_state(Phase.PUBLIC_COMMITMENT).deadline
    assert not campaign.apply_round_extension(cmd, now)
    assert campaign.state.phase_state(Phase.PUBLIC_COMMITMENT).deadline == deadline


def test_the_calendar_update_action_is_built_from_published_data() -> None:
    cmd = calendar_update(
        seed(),
        "round-1",
        START,
        PUBLISHED,
        update_id="cal-9",
        actor=COUNTY,
        reason="国务院办公厅发布节假日安排",
    )
    assert cmd.windows == update().windows and cmd.calendar == update().calendar
    # Re-based into 2027, the published data must cover the year, or it is refused by name.
    later = datetime(2026, 6, 1, 9, tzinfo=SHANGHAI)
    try:
        calendar_update(
            seed(), "round-1", later, PUBLISHED, update_id="x", actor=COUNTY, reason="r"
        )
        raise AssertionError("a year without data must be refused")
    except PlanError as refused:
        assert refused.errors[0].field == "calendar"
        assert refused.errors[0].reason.startswith("2027年")
