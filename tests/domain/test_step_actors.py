"""Steps done by whom seed 002 says (issue 15), on the shipped plan without Temporal:
领导点评 is written by the upper level and signed for by the organisation (§五(三)); the
群众评议 step takes only its ballot's published result (§五(四)); plans without the keys keep
the old rule (the secretary submits, a supervisor decides)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from chuangzheng.sample_evidence import sample_actors, sample_evidence
from domain.actions import DecideSubmission, SubmitEvidence
from domain.campaign import Campaign, new_state
from domain.campaign_rules import procedure_of
from domain.commendation_steps import (
    OrganisationOutcome,
    Outcome,
    approval_actor,
    approval_key,
    declaration_actor,
    declaration_key,
    declaration_values,
    outcomes,
)
from domain.errors import DomainError
from domain.evaluation import (
    EvaluationResult,
    ItemTally,
    Rating,
    Verdict,
    evaluation_actor,
    is_evaluation_actor,
    step_key,
    step_values,
)
from domain.evaluation_rules import FIVE_GOODS, EvaluationTarget
from domain.events import EventKind
from domain.machine import StepStatus
from domain.organisation import OrgType, Role
from domain.phases import Phase
from domain.plan import DEFAULT_SUBMITTERS, StepPlan, StepProcedure
from domain.plan_loader import load_plan
from domain.schedule import OrgPlan, build_org_plan, resolve_schedule
from domain.state import Actor
from tests.domain.test_campaign import INSTRUCTOR, ORG, ROOT, SECRETARY, START, plan

TOWNSHIP = Actor(user="青石镇", name="青石镇党委书记", role=Role.TOWNSHIP)
OPENER = Actor(user="tw-qingshi", name="青石镇党委", role=Role.TOWNSHIP)


def at_phase(target: Phase, org_plan: OrgPlan | None = None) -> tuple[Campaign, datetime]:
    """A campaign whose earlier phases were done by the people the plan names."""
    org_plan = org_plan or plan()
    campaign = Campaign(org_plan, new_state(org_plan))
    now = START
    campaign.settle(now)
    while campaign.state.phase is not target:
        phase = campaign.state.current()
        for step in org_plan.phase(phase.phase).steps:
            state = phase.step(step.id)
            if not step.required or state is None or state.settled:
                continue
            submitter, decider = sample_actors(step, ORG)
            values = sample_evidence(
                step, ORG, opens_at=phase.opens_at, deadline=phase.deadline, now=now
            )
            campaign.submit(SubmitEvidence(actor=submitter, step_id=step.id, values=values), now)
            if decider is not None:
                campaign.decide(DecideSubmission(actor=decider, step_id=step.id, accept=True), now)
        now = phase.deadline - timedelta(hours=1)
        campaign.settle(now)
    campaign.take_outbox()
    return campaign, now


def review_values(campaign: Campaign, now: datetime) -> dict[str, object]:
    phase = campaign.state.current()
    step = next(s for s in plan().phase(phase.phase).steps if s.id == "leader_review")
    return sample_evidence(step, ORG, opens_at=phase.opens_at, deadline=phase.deadline, now=now)


def result(satisfied: int, basic: int) -> EvaluationResult:
    cast = satisfied + basic
    items = tuple(
        ItemTally(
            item_id=i.id,
            label=i.label,
            counts={
                Rating.SATISFIED: satisfied,
                Rating.FAIRLY_SATISFIED: 0,
                Rating.BASICALLY_SATISFIED: basic,
                Rating.UNSATISFIED: 0,
            },
            ballots=cast,
        )
        for i in FIVE_GOODS
    )
    return EvaluationResult(
        issued=12, cast=cast, quorum=0.666, threshold=0.7, items=items,
        satisfaction=satisfied / cast, verdict=Verdict.SATISFACTORY,
    )  # fmt: skip


def test_the_shipped_plan_names_who_does_the_review_and_the_ballot() -> None:
    review = next(s for s in plan().phase(Phase.LEADERSHIP_REVIEW).steps if s.id == "leader_review")
    assert review.submitters == {Role.TOWNSHIP, Role.INSTRUCTOR, Role.GUIDANCE_GROUP}
    assert review.deciders == {Role.SECRETARY}
    ballot = next(
        s for s in plan().phase(Phase.PUBLIC_EVALUATION).steps if s.id == "public_evaluation_of_org"
    )
    assert ballot.ballot is EvaluationTarget.ORGANISATION and ballot.submitters == frozenset()
    campaign_plan = load_plan((ROOT / "plans/seed-002.yaml").read_text("utf-8"))
    for round_plan in campaign_plan.rounds:
        found = round_plan.ballot_step(EvaluationTarget.ORGANISATION, OrgType.RURAL)
        assert found is not None and found.id == "public_evaluation_of_org"
        assert round_plan.ballot_step(EvaluationTarget.MEMBER, OrgType.RURAL) is None
    # 评选表彰: the declaration settles 申报, the county's approval settles 审定.
    commendation = {s.id: s for s in plan().phase(Phase.COMMENDATION).steps}
    assert commendation["declaration"].settled_by is StepProcedure.DECLARATION
    assert commendation["county_approval"].settled_by is StepProcedure.APPROVAL
    assert commendation["county_approval"].required
    # Every other step keeps the default: the secretary submits, a supervisor decides.
    others = [
        s for p in plan().phases for s in p.steps if s.id != "leader_review" and s.procedure is None
    ]
    assert len(others) > 10 and all(s.submitters == DEFAULT_SUBMITTERS for s in others)


def test_a_plan_refuses_a_submitter_who_also_decides_and_roles_on_a_ballot_step() -> None:
    with pytest.raises(ValueError, match="同一角色"):
        StepPlan(id="x", name="x", submitted_by=(Role.TOWNSHIP,), decided_by=(Role.TOWNSHIP,))
    with pytest.raises(ValueError, match="ballot"):
        StepPlan(id="x", name="x", ballot=EvaluationTarget.ORGANISATION,
                 submitted_by=(Role.TOWNSHIP,))  # fmt: skip


def test_the_leaders_review_is_accepted_the_secretarys_refused_and_the_secretary_signs() -> None:
    campaign, now = at_phase(Phase.LEADERSHIP_REVIEW)
    values = review_values(campaign, now)
    # The organisation under review cannot write its own review.
    with pytest.raises(DomainError) as refused:
        campaign.check_submit(
            SubmitEvidence(actor=SECRETARY, step_id="leader_review", values=values)
        )
    assert refused.value.code == "forbidden"
    assert campaign.state.current().step("leader_review").status is StepStatus.OPEN  # type: ignore[union-attr]
    campaign.submit(SubmitEvidence(actor=TOWNSHIP, step_id="leader_review", values=values), now)
    step = campaign.state.current().step("leader_review")
    assert step is not None and step.status is StepStatus.SUBMITTED
    assert step.submissions[-1].submitted_by == TOWNSHIP
    # The instructor (a supervisor, who decides every other step) does not sign for it, and
    # the organisation may not send its review back.
    with pytest.raises(DomainError) as not_theirs:
        campaign.check_decide(
            DecideSubmission(actor=INSTRUCTOR, step_id="leader_review", accept=True)
        )
    assert not_theirs.value.code == "forbidden"
    with pytest.raises(DomainError, match="不能退回"):
        campaign.check_decide(
            DecideSubmission(
                actor=SECRETARY, step_id="leader_review", accept=False, reason="不同意"
            )
        )
    answer = "感谢点评，已对照指出的问题制定整改措施，下月底前完成。"
    campaign.decide(
        DecideSubmission(actor=SECRETARY, step_id="leader_review", accept=True, reason=answer), now
    )
    signed = campaign.state.phase_state(Phase.LEADERSHIP_REVIEW).step("leader_review")
    assert signed is not None and signed.status is StepStatus.ACCEPTED
    # The review was the phase's one required step: signed for, the phase is done.
    assert campaign.state.phase is Phase.PUBLIC_EVALUATION
    assert step.submissions[-1].decided_by == SECRETARY and step.submissions[-1].reason == answer


def test_a_typed_in_ballot_is_refused_and_the_published_result_settles_the_step_once() -> None:
    campaign, now = at_phase(Phase.PUBLIC_EVALUATION)
    phase = campaign.state.current()
    ballot = next(s for s in plan().phase(phase.phase).steps if s.id == "public_evaluation_of_org")
    typed = sample_evidence(ballot, ORG, opens_at=phase.opens_at, deadline=phase.deadline, now=now)
    for person in (SECRETARY, INSTRUCTOR, Actor(user="county", role=Role.COUNTY_OFFICE)):
        with pytest.raises(DomainError, match="由群众评议投票结果自动完成") as refused:
            campaign.check_submit(SubmitEvidence(actor=person, step_id=ballot.id, values=typed))
        assert refused.value.code == "ballot_step"
    # The evaluation's actor is no person: no account can be named like it.
    actor = evaluation_actor("ev-1", OPENER)
    assert is_evaluation_actor(actor) and not is_evaluation_actor(SECRETARY)
    assert procedure_of(actor) == "evaluation" and procedure_of(SECRETARY) is None
    # A roster account of an organisation whose id holds "/" is still a person.
    assert procedure_of(Actor(user="secretary-org/1-李书记", role=Role.SECRETARY)) is None
    # ... and it can settle nothing but the ballot step.
    with pytest.raises(DomainError, match="只能用于它所完成的步骤"):
        campaign.check_submit(SubmitEvidence(actor=actor, step_id="member_evaluation", values={}))
    published = result(satisfied=8, basic=1)
    values = step_values("ev-1", published)
    cmd = SubmitEvidence(
        actor=actor, step_id=ballot.id, values=values, idempotency_key=step_key("ev-1")
    )
    campaign.submit(cmd, now)
    campaign.submit(cmd, now)  # the activity retried: applied once
    step = phase.step(ballot.id)
    assert step is not None and step.status is StepStatus.ACCEPTED
    assert len(step.submissions) == 1
    assert step.submissions[0].values["ballots"] == {
        "satisfied": 40, "fairly_satisfied": 0, "basically_satisfied": 5, "unsatisfied": 0,
    }  # fmt: skip
    assert step.submissions[0].values["raters"] == 9
    assert step.submissions[0].values["satisfaction"]["总体"] == 88.9
    assert step.submissions[0].values["satisfaction"]["领导班子好"] == 88.9
    events, _ = campaign.take_outbox()
    kinds = [(e.kind, e.step_id) for e in events if e.step_id == ballot.id]
    assert kinds == [(EventKind.SUBMITTED, ballot.id), (EventKind.ACCEPTED, ballot.id)]
    # A second evaluation's result cannot settle it again.
    with pytest.raises(DomainError):
        campaign.check_submit(
            SubmitEvidence(actor=evaluation_actor("ev-2", OPENER), step_id=ballot.id,
                           values=step_values("ev-2", published), idempotency_key=step_key("ev-2"))
        )  # fmt: skip


def test_a_plan_without_the_keys_keeps_the_secretary_submitting_everything() -> None:
    """Running workflows carry their kick-off plan: without ``submitted_by`` / ``ballot``
    the secretary's review and typed-in ballot are accepted as before (replay-safe)."""
    text = (ROOT / "plans/seed-002.yaml").read_text("utf-8")
    old = (
        text.replace("            submitted_by: [township, instructor, guidance_group]\n", "")
        .replace("            decided_by: [secretary]\n", "")
        .replace("            ballot: organisation\n", "")
        .replace("            settled_by: declaration\n", "")
        .replace("            settled_by: approval\n", "")
    )
    assert old.count(" submitted_by:") == old.count(" settled_by:") == 0
    assert old.count(" ballot: organisation\n") == 0
    campaign_plan = load_plan(old)
    round_plan = campaign_plan.round("round-1")
    schedule = resolve_schedule(campaign_plan, round_plan, START, rebased=True)
    old_plan = build_org_plan(campaign_plan, round_plan, schedule, ORG, round_id="r1")
    assert all(
        sample_actors(s, ORG)[0].role is Role.SECRETARY for p in old_plan.phases for s in p.steps
    )
    campaign, _ = at_phase(Phase.COMPLETED, old_plan)
    for phase in campaign.state.phases:
        for step in phase.steps:
            if step.submissions:
                latest = step.submissions[-1]
                assert latest.submitted_by.role is Role.SECRETARY
                assert latest.decided_by is not None and latest.decided_by.role is Role.INSTRUCTOR


def test_the_declaration_and_the_approval_settle_the_commendation_steps() -> None:
    campaign, now = at_phase(Phase.COMMENDATION)
    phase = campaign.state.current()
    assert phase.step("declaration") is not None and phase.step("county_approval") is not None
    typed = {"declaration_id": "d-1", "deeds": "事迹"}
    for actor in (SECRETARY, evaluation_actor("ev-1", OPENER), approval_actor("r1", SECRETARY)):
        with pytest.raises(DomainError, match="评选表彰申报完成，不能手工填报"):
            campaign.check_submit(SubmitEvidence(actor=actor, step_id="declaration", values=typed))
    declared = declaration_actor("d-1", SECRETARY)
    cmd = SubmitEvidence(
        actor=declared,
        step_id="declaration",
        values=declaration_values("d-1", "带领群众致富"),
        idempotency_key=declaration_key("d-1"),
    )
    campaign.submit(cmd, now)
    campaign.submit(cmd, now)
    step = phase.step("declaration")
    assert step is not None and step.status is StepStatus.ACCEPTED and len(step.submissions) == 1
    assert step.submissions[0].submitted_by.role is Role.SECRETARY
    county = Actor(user="county", name="县委活动办", role=Role.COUNTY_OFFICE)
    outcome = OrganisationOutcome(
        org_id=ORG.id, outcome=Outcome.SELECTED, honours=("先进基层党组织：柳树村党支部",)
    )
    campaign.submit(
        SubmitEvidence(
            actor=approval_actor("r1", county),
            step_id="county_approval",
            values=outcome.values("县委常委会第12次会议"),
            idempotency_key=approval_key("r1", ORG.id),
        ),
        now,
    )
    approved = campaign.state.phase_state(Phase.COMMENDATION).step("county_approval")
    assert approved is not None and approved.status is StepStatus.ACCEPTED
    assert campaign.state.phase is Phase.COMMENDATION  # 党员考评上报 is still open
    report = next(
        s for s in plan().phase(Phase.COMMENDATION).steps if s.id == "member_assessment_report"
    )
    values = sample_evidence(report, ORG, opens_at=phase.opens_at, deadline=phase.deadline, now=now)
    campaign.submit(SubmitEvidence(actor=SECRETARY, step_id=report.id, values=values), now)
    campaign.decide(DecideSubmission(actor=INSTRUCTOR, step_id=report.id, accept=True), now)
    assert campaign.state.phase_state(Phase.COMMENDATION).completed_at is not None
    assert campaign.state.finished()


def test_approval_outcomes_name_the_honours_or_why_not() -> None:
    declared = [("d-a", "org-a"), ("d-m", "org-a"), ("d-b", "org-b"), ("d-c", "org-c")]
    honours = [{"org_id": "org-a", "title": "优秀共产党员", "nominee": "李明"}]
    found = outcomes(declared, honours, {"d-b": "事迹材料失实"})
    assert [(o.org_id, o.outcome) for o in found] == [
        ("org-a", Outcome.SELECTED),
        ("org-b", Outcome.NOT_SELECTED),
        ("org-c", Outcome.NOT_SELECTED),
    ]
    assert found[0].honours == ("优秀共产党员：李明",)
    assert found[1].note == "事迹材料失实" and found[2].note == "综合考评未进入名额"
    assert found[1].values("会议") == {
        "meeting": "会议",
        "outcome": "未入选",
        "note": "事迹材料失实",
    }
