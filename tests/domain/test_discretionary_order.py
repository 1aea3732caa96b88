"""限期整改 at a supervisor's discretion runs through the campaign's rectification machinery
(seed 002 §六(五)): the 整改通知 to the secretary with the supervisor's ground and reason,
the blocked phase, the overdue notice up the ladder when the deadline passes without a
report, and the re-check that lets the phase complete."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.actions import RecheckRectification, ReportRectification
from domain.calendar import Span
from domain.campaign_rules import OrderRectification
from domain.errors import DomainError
from domain.events import EventKind
from domain.inspection import DISCRETION_SOURCE, RectificationGround, order_reason
from domain.machine import PhaseStatus
from domain.notices import NoticeKind
from domain.organisation import Role
from domain.phases import Phase
from domain.state import Actor, Outcome, RectificationStatus
from tests.domain.test_campaign import INSTRUCTOR, SECRETARY, START, finish_phase, fresh

TOWNSHIP = Actor(user="tw-chengguan", name="城关镇党委", role=Role.TOWNSHIP)


def discretion(reference: str = "ro-1") -> OrderRectification:
    return OrderRectification(
        actor=TOWNSHIP,
        source=DISCRETION_SOURCE,
        reference=reference,
        reason=order_reason(RectificationGround.INEFFECTIVE_WORK, "动员会流于形式，未层层发动"),
        period=Span(working_days=3),
    )


def test_a_discretionary_order_climbs_when_overdue_and_passes_on_recheck() -> None:
    campaign = fresh()
    campaign.take_outbox()
    now = START + timedelta(days=1)
    campaign.order_rectification(discretion(), now)
    campaign.order_rectification(discretion(), now)  # the same order again: one
    phase = campaign.state.current()
    order = phase.rectification
    assert order is not None and order.status is RectificationStatus.ISSUED
    assert order.deadline == campaign.calendar.deadline_after(now, Span(working_days=3))
    events, notices = campaign.take_outbox()
    assert [e.kind for e in events] == [EventKind.RECTIFICATION_REQUIRED]
    assert events[0].detail["source"] == "discretion" and events[0].detail["reference"] == "ro-1"
    assert [(n.kind, n.recipient_role) for n in notices] == [
        (NoticeKind.RECTIFICATION_ORDER, Role.SECRETARY)
    ]
    assert "工作上不得力" in notices[0].body and "动员会流于形式" in notices[0].body

    # No report by the deadline: the county office is told, once.
    late = order.deadline + timedelta(minutes=1)
    campaign.tick(late)
    campaign.tick(late + timedelta(hours=1))
    events, notices = campaign.take_outbox()
    overdue = [n for n in notices if n.kind is NoticeKind.RECTIFICATION_OVERDUE]
    assert [(n.recipient_role, n.phase) for n in overdue] == [
        (Role.COUNTY_OFFICE, Phase.MOBILISATION)
    ]
    assert EventKind.RECTIFICATION_OVERDUE in [e.kind for e in events]

    # The steps done, the phase waits for the re-check; a passed re-check completes it.
    finish_phase(campaign, late)
    assert campaign.state.current().phase is Phase.MOBILISATION
    campaign.report_rectification(
        ReportRectification(
            actor=SECRETARY, phase=Phase.MOBILISATION, report="已重新召开动员会，逐级发动到位。"
        ),
        late,
    )
    campaign.recheck(
        RecheckRectification(actor=INSTRUCTOR, phase=Phase.MOBILISATION, passed=True), late
    )
    done = campaign.state.phase_state(Phase.MOBILISATION)
    assert done.status is PhaseStatus.DONE and done.outcome is Outcome.AFTER_RECTIFICATION
    assert campaign.state.phase is Phase.PUBLIC_COMMITMENT


def test_an_order_whose_period_runs_past_the_calendar_is_refused_and_changes_nothing() -> None:
    """Found by schemathesis: a period into a year without holiday data failed the workflow
    task (the Update timed out, a 503) instead of refusing the order."""
    campaign = fresh()
    campaign.take_outbox()
    before = campaign.state.model_copy(deep=True)
    too_long = OrderRectification(
        actor=TOWNSHIP,
        source=DISCRETION_SOURCE,
        reference="ro-far",
        reason=order_reason(RectificationGround.INEFFECTIVE_WORK, "整改期限设得过长"),
        period=Span(working_days=600),  # about two and a half years of working days
    )
    with pytest.raises(DomainError) as refused:
        campaign.order_rectification(too_long, START + timedelta(days=1))
    assert refused.value.field == "period" and refused.value.code == "invalid_deadline"
    assert "请缩短整改期限" in refused.value.reason and "日历" in refused.value.reason
    assert campaign.state == before
    assert campaign.take_outbox() == ([], [])
    # The same reference can still be ordered with a period the calendar covers.
    campaign.order_rectification(
        too_long.model_copy(update={"period": Span(working_days=5)}), START + timedelta(days=1)
    )
    assert campaign.state.current().rectification is not None
