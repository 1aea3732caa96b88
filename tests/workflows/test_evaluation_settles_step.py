"""群众评议 completes from the evaluation procedure (issue 15, seed 002 §五(四)), on the
time-skipping server with the shared worker: a published result that met its quorum settles
the organisation's 群众评议 step exactly once (the evaluation as actor, one idempotency key);
one below the threshold also orders rectification, which keeps the phase open until the
re-check; one below the quorum settles nothing; nobody can type the step in."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from activities.evaluations import cast_ballot, register_evaluation, token_for
from activities.tables import CampaignEventRow, EvaluationRow
from chuangzheng.sample_evidence import sample_evidence
from domain.actions import SubmitEvidence, WaiveStep
from domain.calendar import local_date
from domain.evaluation import (
    EvaluationTarget,
    RaterKind,
    Rating,
    Verdict,
    evaluation_actor,
    step_key,
    step_values,
)
from domain.evaluation_rules import FIVE_GOODS
from domain.machine import StepStatus
from domain.organisation import Role
from domain.phases import Phase
from domain.schedule import OrgPlan
from domain.state import Actor, RectificationStatus
from tests.workflows.support import (
    do_current_phase,
    instructor,
    org_plan,
    organisation,
    record_history,
    secretary,
    seed_plan,
    start_campaign,
    status,
)
from workflows.evaluation import EvaluationWorkflow, evaluation_workflow_id
from workflows.evaluation_contracts import CloseNow, EvaluationInput, EvaluationStatus
from workflows.ids import organisation_workflow_id
from workflows.organisation import OrganisationCampaignWorkflow

pytestmark = pytest.mark.usefixtures("worker")
SECRET = "settle-step-secret"
TOWNSHIP = Actor(user="tw-qingshi", name="青石镇党委", role=Role.TOWNSHIP)
STEP = "public_evaluation_of_org"


async def at_public_evaluation(
    env: WorkflowEnvironment, task_queue: str, org_id: str
) -> tuple[OrgPlan, WorkflowHandle[OrganisationCampaignWorkflow, object]]:
    """A campaign whose first three phases were done (the review by the instructor, signed
    for by the secretary): 群众评议 is open."""
    org = organisation(org_id)
    round_id = f"r-settle-{uuid.uuid4().hex[:6]}"
    plan = org_plan(org, await env.get_current_time(), round_id=round_id)
    campaign = await start_campaign(env.client, task_queue, plan)
    for _ in range(3):
        await do_current_phase(campaign, plan, await env.get_current_time())
    assert (await status(campaign)).state.phase is Phase.PUBLIC_EVALUATION
    return plan, campaign


async def open_ballot(
    client: Client,
    task_queue: str,
    sessions: sessionmaker[Session],
    plan: OrgPlan,
    now: datetime,
    votes: list[Rating],
) -> tuple[EvaluationInput, WorkflowHandle[EvaluationWorkflow, EvaluationStatus]]:
    """Open the organisation's evaluation as the service does (the plan's ballot step and
    the phase it is opened in, 群众评议, named in its input) and cast ``votes`` of 12
    tokens; the ballot stays open."""
    seed = seed_plan()
    step = seed.round("round-1").ballot_step(EvaluationTarget.ORGANISATION, plan.organisation.type)
    assert step is not None and step.id == STEP
    evaluation = EvaluationInput(
        evaluation_id=f"ev-{uuid.uuid4().hex[:12]}",
        round_id=plan.round_id,
        org_id=plan.organisation.id,
        org_workflow_id=organisation_workflow_id(plan.round_id, plan.organisation.id),
        target=EvaluationTarget.ORGANISATION,
        subject=plan.organisation.name,
        opened_by=TOWNSHIP,
        rules=seed.evaluation,
        calendar=seed.calendar,
        step_id=step.id,
        phase=Phase.PUBLIC_EVALUATION,
    )
    workflow_id = evaluation_workflow_id(plan.round_id, plan.organisation.id, "organisation", 1)
    with sessions.begin() as session:
        register_evaluation(
            session, SECRET, evaluation=evaluation, seq=1, workflow_id=workflow_id,
            raters={RaterKind.MEMBER: 8, RaterKind.NON_MEMBER: 4}, now=now,
        )  # fmt: skip
    handle = await client.start_workflow(
        EvaluationWorkflow.run, evaluation, id=workflow_id, task_queue=task_queue
    )
    await handle.execute_update(EvaluationWorkflow.opened)
    for index, rating in enumerate(votes):
        ballot = {item.id: rating.value for item in FIVE_GOODS}
        cast_ballot(sessions, token_for(SECRET, evaluation.evaluation_id, index), ballot, now)
    return evaluation, handle


async def run_ballot(
    client: Client,
    task_queue: str,
    sessions: sessionmaker[Session],
    plan: OrgPlan,
    now: datetime,
    votes: list[Rating],
) -> tuple[EvaluationInput, WorkflowHandle[EvaluationWorkflow, EvaluationStatus]]:
    """:func:`open_ballot`, then the organiser closes it early."""
    evaluation, handle = await open_ballot(client, task_queue, sessions, plan, now, votes)
    await handle.execute_update(EvaluationWorkflow.close_now, CloseNow(actor=TOWNSHIP))
    return evaluation, handle


def step_events(sessions: sessionmaker[Session], round_id: str) -> list[str]:
    """The step's events in the read model, in the order the campaign emitted them (the
    event id ends with the campaign's sequence number)."""
    with sessions() as session:
        rows = session.execute(
            select(CampaignEventRow.event_id, CampaignEventRow.kind).where(
                CampaignEventRow.round_id == round_id, CampaignEventRow.step_id == STEP
            )
        ).all()
    return [kind for _, kind in sorted(rows, key=lambda r: int(r[0].rsplit("/", 1)[1]))]


async def test_a_result_meeting_its_quorum_settles_the_step_exactly_once(
    time_skipping_env: WorkflowEnvironment, task_queue: str, sessions: sessionmaker[Session]
) -> None:
    env = time_skipping_env
    plan, campaign = await at_public_evaluation(env, task_queue, "org-settle-01")
    phase = (await status(campaign)).state.current()
    # Typed in by the secretary: refused, the step still open.
    ballot_plan = next(s for s in plan.phase(Phase.PUBLIC_EVALUATION).steps if s.id == STEP)
    typed = sample_evidence(
        ballot_plan, plan.organisation, opens_at=phase.opens_at, deadline=phase.deadline,
        now=await env.get_current_time(),
    )  # fmt: skip
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await campaign.execute_update(
            OrganisationCampaignWorkflow.submit_evidence,
            SubmitEvidence(actor=secretary(plan.organisation), step_id=STEP, values=typed),
        )
    assert "由群众评议投票结果自动完成" in str(refused.value.cause)
    # 10 of 12 vote, 9 satisfied: published, 90% satisfaction.
    votes = [Rating.SATISFIED] * 9 + [Rating.UNSATISFIED]
    evaluation, handle = await run_ballot(
        env.client, task_queue, sessions, plan, await env.get_current_time(), votes
    )
    final = await handle.result()
    assert final.result is not None and final.result.verdict is Verdict.SATISFACTORY
    assert final.step == "settled" and final.rectification is None
    state = (await status(campaign)).state
    step = state.phase_state(Phase.PUBLIC_EVALUATION).step(STEP)
    assert step is not None and step.status is StepStatus.ACCEPTED
    assert len(step.submissions) == 1
    submission = step.submissions[0]
    assert submission.submitted_by == evaluation_actor(evaluation.evaluation_id, TOWNSHIP)
    assert submission.decided_by == submission.submitted_by
    assert submission.values["evaluation_id"] == evaluation.evaluation_id
    assert submission.values["raters"] == 10
    assert submission.values["ballots"]["satisfied"] == 45  # 9 ballots x 5 items
    assert submission.values["satisfaction"]["总体"] == 90.0
    # The same settlement again (an activity retried after the Update landed): nothing new.
    again = await campaign.execute_update(
        OrganisationCampaignWorkflow.submit_evidence,
        SubmitEvidence(
            actor=evaluation_actor(evaluation.evaluation_id, TOWNSHIP), step_id=STEP,
            values=step_values(evaluation.evaluation_id, final.result),
            idempotency_key=step_key(evaluation.evaluation_id),
        ),
    )  # fmt: skip
    assert again.step_status is StepStatus.ACCEPTED
    after = (await status(campaign)).state.phase_state(Phase.PUBLIC_EVALUATION).step(STEP)
    assert after is not None and len(after.submissions) == 1
    for _ in range(50):  # the read model gets the outbox at the next flush
        if len(step_events(sessions, plan.round_id)) >= 2:
            break
        await env.sleep(1)
    assert step_events(sessions, plan.round_id) == ["submitted", "accepted"]
    await record_history(handle, "evaluation_settles_step")
    # The organisation's side (new plan keys): the review written by the instructor and
    # signed for by the secretary, the ballot's result accepted as it came.
    await record_history(campaign, "organisation_plan_actors")


async def test_below_the_threshold_the_step_is_settled_and_rectification_holds_the_phase(
    time_skipping_env: WorkflowEnvironment, task_queue: str, sessions: sessionmaker[Session]
) -> None:
    env = time_skipping_env
    plan, campaign = await at_public_evaluation(env, task_queue, "org-settle-02")
    votes = [Rating.SATISFIED] * 4 + [Rating.BASICALLY_SATISFIED] * 6  # 40% < 70%
    _, handle = await run_ballot(
        env.client, task_queue, sessions, plan, await env.get_current_time(), votes
    )
    final = await handle.result()
    assert final.result is not None and final.result.verdict is Verdict.BELOW_THRESHOLD
    assert final.rectification == "ordered" and final.step == "settled"
    state = (await status(campaign)).state
    phase = state.phase_state(Phase.PUBLIC_EVALUATION)
    step = phase.step(STEP)
    assert step is not None and step.status is StepStatus.ACCEPTED
    # member_evaluation (required) is still open, and the order blocks completion anyway.
    assert state.phase is Phase.PUBLIC_EVALUATION
    assert phase.rectification is not None
    assert phase.rectification.status is RectificationStatus.ISSUED


async def test_a_failed_quorum_settles_nothing(
    time_skipping_env: WorkflowEnvironment, task_queue: str, sessions: sessionmaker[Session]
) -> None:
    env = time_skipping_env
    plan, campaign = await at_public_evaluation(env, task_queue, "org-settle-03")
    votes = [Rating.SATISFIED] * 7  # 7 of 12 is below two thirds
    _, handle = await run_ballot(
        env.client, task_queue, sessions, plan, await env.get_current_time(), votes
    )
    final = await handle.result()
    assert final.result is not None and final.result.verdict is Verdict.NO_QUORUM
    assert final.step is None and final.rectification is None
    step = (await status(campaign)).state.phase_state(Phase.PUBLIC_EVALUATION).step(STEP)
    assert step is not None and step.status is StepStatus.OPEN and not step.submissions


async def test_a_result_before_the_phase_opens_is_refused_and_says_why(
    time_skipping_env: WorkflowEnvironment, task_queue: str, sessions: sessionmaker[Session]
) -> None:
    env = time_skipping_env
    org = organisation("org-settle-04")
    plan = org_plan(org, await env.get_current_time(), round_id=f"r-settle-{uuid.uuid4().hex[:6]}")
    campaign = await start_campaign(env.client, task_queue, plan)
    _, handle = await run_ballot(
        env.client, task_queue, sessions, plan, await env.get_current_time(),
        [Rating.SATISFIED] * 10,
    )  # fmt: skip
    final = await handle.result()
    assert final.step is not None and final.step.startswith("未能完成群众评议步骤")
    assert (await status(campaign)).state.phase is Phase.MOBILISATION


async def test_a_result_published_after_its_phase_ended_orders_no_rectification_elsewhere(
    time_skipping_env: WorkflowEnvironment, task_queue: str, sessions: sessionmaker[Session]
) -> None:
    """Found by outside testers: the ballot opened in 群众评议 stays open while the phase
    ends (the instructor waives 组织群众评议, the rest is done); its result, below the
    threshold, once ordered 整改 on 评选表彰. The order names its phase now: refused, and
    the evaluation records why."""
    env = time_skipping_env
    plan, campaign = await at_public_evaluation(env, task_queue, "org-settle-05")
    votes = [Rating.SATISFIED] * 4 + [Rating.BASICALLY_SATISFIED] * 6  # 40% < 70%
    evaluation, handle = await open_ballot(
        env.client, task_queue, sessions, plan, await env.get_current_time(), votes
    )
    assert evaluation.phase is Phase.PUBLIC_EVALUATION
    await campaign.execute_update(
        OrganisationCampaignWorkflow.waive_step,
        WaiveStep(
            actor=instructor(plan.organisation), step_id=STEP, reason="评议期限过长，先行免除"
        ),
    )
    after = await do_current_phase(campaign, plan, await env.get_current_time())
    assert after.state.phase is Phase.COMMENDATION  # 群众评议 ended, the ballot still open
    ended = after.state.phase_state(Phase.PUBLIC_EVALUATION).completed_at
    assert ended is not None
    await handle.execute_update(EvaluationWorkflow.close_now, CloseNow(actor=TOWNSHIP))
    final = await handle.result()
    assert final.result is not None and final.result.verdict is Verdict.BELOW_THRESHOLD
    assert final.rectification is not None
    assert final.rectification.startswith("未能下达整改通知：")
    assert f"“群众评议”阶段已于{local_date(ended).isoformat()}结束" in final.rectification
    assert "本组织现处于“评选表彰”阶段" in final.rectification
    # Nothing landed on the phase the organisation is in now (nor on the ended one).
    state = (await status(campaign)).state
    assert state.phase is Phase.COMMENDATION
    assert state.phase_state(Phase.COMMENDATION).rectification is None
    assert state.phase_state(Phase.PUBLIC_EVALUATION).rectification is None
    # The refusal is on the evaluation's record (the read model) as well.
    with sessions() as session:
        row = session.get(EvaluationRow, evaluation.evaluation_id)
        assert row is not None and row.rectification == final.rectification
