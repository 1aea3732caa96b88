"""An escalation that fires late (the Temporal server or every worker was down when it fell
due) is recorded with both instants: when it happened (the event's ``at``) and when it was
due (``detail["due_at"]``), so the read model shows how late it went out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from domain.campaign import Campaign, new_state
from domain.events import EventKind
from domain.ladder import rung_times
from domain.organisation import Organisation, OrgType, System
from domain.plan_loader import load_plan
from domain.schedule import build_org_plan, resolve_schedule

ROOT = Path(__file__).resolve().parents[2]
ORG = Organisation(
    id="org-late",
    name="柳树村党支部",
    type=OrgType.RURAL,
    township="青石镇",
    system=System.RURAL,
    instructor="王指导",
    secretary="李书记",
    member_count=12,
)


def test_late_rungs_record_when_they_were_due() -> None:
    plan = load_plan((ROOT / "plans/demo.yaml").read_text("utf-8"))
    starts_at = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    round_plan = plan.rounds[0]
    schedule = resolve_schedule(plan, round_plan, starts_at, rebased=True)
    org_plan = build_org_plan(plan, round_plan, schedule, ORG, round_id="r-late")
    campaign = Campaign(org_plan, new_state(org_plan))
    campaign.settle(starts_at)
    deadline = campaign.state.current().deadline
    due = rung_times(deadline, org_plan.ladder, org_plan.calendar.build())
    # Woken only ten minutes after the top rung: every rung fires now, once.
    late = due[-1] + timedelta(minutes=10)
    campaign.tick(late)
    events, _ = campaign.take_outbox()
    escalated = [e for e in events if e.kind == EventKind.ESCALATED]
    assert [e.detail["rung"] for e in escalated] == [0, 1, 2]
    assert [e.at for e in escalated] == [late] * 3
    assert [datetime.fromisoformat(e.detail["due_at"]) for e in escalated] == due
    assert due[0] < due[1] < due[2] < late
    # Nothing more falls due at the same instant: no rung is recorded twice.
    campaign.tick(late)
    again, _ = campaign.take_outbox()
    assert not [e for e in again if e.kind == EventKind.ESCALATED]
