"""Admission rules: checks the organisation workflow's Update validators apply to new actions
only (``CampaignRules.check_independent_decision``, ``check_extension_reach``,
``check_state_budget``), and integers typed with digits ``int()`` refuses."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from domain.actions import (
    DecideExtension,
    DecideSubmission,
    ReportRectification,
    RequestExtension,
    SubmitEvidence,
)
from domain.briefing import check_briefing
from domain.campaign import Campaign
from domain.campaign_rules import STATE_BUDGET_BYTES
from domain.errors import DomainError, ValidationFailed
from domain.evidence import validate_evidence
from domain.organisation import Role
from domain.phases import Phase
from domain.schedule import MAX_EXTENSION, check_extended_deadline
from domain.state import Actor, Extension
from tests.domain.test_campaign import INSTRUCTOR, ORG, SECRETARY, START, fresh, plan

COUNTY = Actor(user="县委活动办", role=Role.COUNTY_OFFICE)
STEP = "set_up_leading_group"


def _submit(campaign: Campaign, actor: Actor, values: dict[str, object]) -> None:
    cmd = SubmitEvidence(actor=actor, step_id=STEP, values=values)
    campaign.check_submit(cmd)
    campaign.check_state_budget(cmd)
    campaign.submit(cmd, START)


def _leading_group() -> dict[str, object]:
    return {"leader": "李书记", "members": ["张三", "李四", "王五"], "office": "党政办，张三负责"}


def test_the_county_office_does_not_decide_what_it_entered_for_an_organisation() -> None:
    campaign = fresh()
    _submit(campaign, COUNTY, _leading_group())
    decision = DecideSubmission(actor=COUNTY, step_id=STEP, accept=True)
    campaign.check_decide(decision)  # the role may decide steps in general
    with pytest.raises(DomainError) as refused:
        campaign.check_independent_decision(decision)
    assert refused.value.code == "forbidden"
    assert "由县委活动办代为提交" in str(refused.value)
    assert "指导员" in str(refused.value)  # who may decide instead
    # The organisation's instructor accepts it.
    campaign.check_independent_decision(
        DecideSubmission(actor=INSTRUCTOR, step_id=STEP, accept=True)
    )


def test_the_county_office_still_decides_what_a_secretary_submitted() -> None:
    campaign = fresh()
    _submit(campaign, SECRETARY, _leading_group())
    campaign.check_independent_decision(DecideSubmission(actor=COUNTY, step_id=STEP, accept=True))


def test_an_extension_moves_later_by_a_year_at_most_and_stays_before_the_next_phase() -> None:
    first, second = START + timedelta(days=10), START + timedelta(days=30)
    deadlines = [(Phase.MOBILISATION, first), (Phase.PUBLIC_COMMITMENT, second)]

    def refusal(phase: Phase, new_deadline: datetime) -> str:
        with pytest.raises(DomainError) as refused:
            check_extended_deadline(deadlines, phase, new_deadline, field="new_deadline")
        assert refused.value.code == "invalid_deadline"
        assert refused.value.field == "new_deadline"
        return str(refused.value)

    check_extended_deadline(
        deadlines, Phase.MOBILISATION, first + timedelta(days=5), field="new_deadline"
    )
    assert "必须晚于动员部署阶段当前的截止时间" in refusal(Phase.MOBILISATION, first)
    assert "不早于下一阶段公开承诺" in refusal(Phase.MOBILISATION, second)
    # The last phase has no next one; a year is the most it moves.
    check_extended_deadline(
        deadlines, Phase.PUBLIC_COMMITMENT, second + MAX_EXTENSION, field="new_deadline"
    )
    assert "一年以上" in refusal(Phase.PUBLIC_COMMITMENT, second.replace(year=9999))


def test_an_organisations_extension_is_checked_when_asked_for_and_when_approved() -> None:
    campaign = fresh()
    deadline = campaign.state.current().deadline
    campaign.check_extension_reach(
        RequestExtension(actor=SECRETARY, new_deadline=deadline + timedelta(days=3), reason="换届")
    )
    too_far = RequestExtension(
        actor=SECRETARY, new_deadline=deadline.replace(year=9999), reason="换届"
    )
    with pytest.raises(DomainError):
        campaign.check_extension_reach(too_far)
    # A request accepted before the rule existed, under a plan without a pinned calendar
    # (the minute-scale demo plans): its approval is refused, its rejection is not.
    extension = Extension(
        id="ext-1",
        phase=campaign.state.current().phase,
        new_deadline=too_far.new_deadline,
        reason="换届",
        requested_by=SECRETARY,
        requested_at=START,
    )
    campaign.state.extensions.append(extension)
    approve = DecideExtension(actor=INSTRUCTOR, extension_id=extension.id, approve=True)
    with pytest.raises(DomainError):
        campaign.check_extension_reach(approve)
    campaign.check_extension_reach(
        DecideExtension(actor=INSTRUCTOR, extension_id=extension.id, approve=False, reason="过长")
    )


def test_returned_submissions_cannot_grow_the_record_past_its_budget() -> None:
    campaign = fresh()
    # About 240 KB a submission, as the tester sent: each return keeps the last one.
    big = _leading_group() | {"members": [f"党员{i:04d}" + "某" * 80 for i in range(950)]}
    accepted = 0
    with pytest.raises(DomainError) as refused:
        while True:
            _submit(campaign, SECRETARY, big)
            accepted += 1
            campaign.decide(
                DecideSubmission(actor=INSTRUCTOR, step_id=STEP, accept=False, reason="名单有误"),
                START,
            )
    assert refused.value.code == "record_full"
    assert 2 <= accepted <= 5
    assert len(campaign.state.model_dump_json().encode()) <= STATE_BUDGET_BYTES
    # The refusal says what to do instead.
    assert "附件" in str(refused.value)


@pytest.mark.parametrize("typed", ["²⁰", "①②", "2⁰"])
def test_integers_with_digits_int_refuses_are_a_field_error(typed: str) -> None:
    phase, step, spec = next(
        (phase, step, spec)
        for phase in plan().phases
        for step in phase.steps
        for spec in step.evidence
        if spec.kind.value == "integer"
    )
    values = {spec.name: typed}
    errors = validate_evidence(
        step,
        values,
        member_count=ORG.member_count,
        opens_at=phase.opens_at,
        deadline=phase.deadline,
    )
    assert [e.reason for e in errors if e.field == f"evidence.{spec.name}"], errors
    # Full-width digits are decimal: they read as the number typed.
    values = {spec.name: "４０"}
    errors = validate_evidence(
        step, values, member_count=40, opens_at=phase.opens_at, deadline=phase.deadline
    )
    assert not [e for e in errors if e.field == f"evidence.{spec.name}"], errors


def test_invisible_text_does_not_pass_for_evidence_or_a_report() -> None:
    campaign = fresh()
    zero_width = "\u200b\u200b"
    blank_leader = _leading_group() | {"leader": zero_width}
    with pytest.raises(ValidationFailed) as refused:
        campaign.check_visible_text(
            SubmitEvidence(actor=SECRETARY, step_id=STEP, values=blank_leader)
        )
    assert [e.field for e in refused.value.errors] == ["evidence.leader"]
    look_alikes = _leading_group() | {"members": ["张三", "张\u200b三", "李四"]}
    with pytest.raises(ValidationFailed) as refused:
        campaign.check_visible_text(
            SubmitEvidence(actor=SECRETARY, step_id=STEP, values=look_alikes)
        )
    assert "人员重复" in refused.value.errors[0].reason
    campaign.check_visible_text(
        SubmitEvidence(actor=SECRETARY, step_id=STEP, values=_leading_group())
    )
    with pytest.raises(DomainError) as short:
        campaign.check_visible_text(
            ReportRectification(
                actor=SECRETARY, phase=campaign.state.phase, report="\u200b" * 10 + "已整改"
            )
        )
    assert short.value.field == "report"


def test_a_briefing_of_invisible_characters_is_refused() -> None:
    errors = check_briefing("\u200b" * 4, "\u200b" * 60)
    assert {e.field for e in errors} == {"title", "text"}
