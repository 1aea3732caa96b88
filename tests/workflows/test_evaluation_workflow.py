"""EvaluationWorkflow on the time-skipping server with the shared worker: the window closes
by its durable timer, the tally lands in the read model, a result below the threshold opens
a 整改通知 in the organisation's campaign workflow, and one below the quorum is void."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.evaluations import BallotRefused, cast_ballot, register_evaluation, token_for
from activities.tables import CampaignEventRow, EvaluationItemRow, EvaluationRow, NoticeRow
from domain.calendar import Span
from domain.evaluation import EvaluationTarget, RaterKind, Rating, Verdict
from domain.evaluation_rules import FIVE_GOODS
from domain.organisation import Role
from domain.phases import Phase
from domain.state import Actor, RectificationStatus
from tests.workflows.support import org_plan, organisation, seed_plan, start_campaign, status
from workflows.evaluation import EvaluationWorkflow, evaluation_workflow_id
from workflows.evaluation_contracts import EvaluationInput, EvaluationStage, EvaluationStatus
from workflows.ids import organisation_workflow_id

pytestmark = pytest.mark.usefixtures("worker")
SECRET = "workflow-test-secret"
TOWNSHIP = Actor(user="tw-qingshi", name="青石镇党委", role=Role.TOWNSHIP)


async def open_evaluation(
    client: Client,
    task_queue: str,
    sessions: sessionmaker[Session],
    round_id: str,
    org_id: str,
    raters: dict[RaterKind, int],
    now: datetime,
) -> tuple[EvaluationInput, WorkflowHandle[EvaluationWorkflow, EvaluationStatus]]:
    """What the API does: the row and token hashes, then the workflow."""
    plan = seed_plan()
    evaluation = EvaluationInput(
        evaluation_id=f"ev-{uuid.uuid4().hex[:12]}",
        round_id=round_id,
        org_id=org_id,
        org_workflow_id=organisation_workflow_id(round_id, org_id),
        target=EvaluationTarget.ORGANISATION,
        subject="柳树村党支部",
        opened_by=TOWNSHIP,
        rules=plan.evaluation,
        calendar=plan.calendar,
    )
    workflow_id = evaluation_workflow_id(round_id, org_id, "organisation", 1)
    with sessions.begin() as session:
        register_evaluation(
            session, SECRET, evaluation=evaluation, seq=1, workflow_id=workflow_id,
            raters=raters, now=now,
        )  # fmt: skip
    handle = await client.start_workflow(
        EvaluationWorkflow.run, evaluation, id=workflow_id, task_queue=task_queue
    )
    return evaluation, handle


def ratings(rating: Rating) -> dict[str, str]:
    return {item.id: rating.value for item in FIVE_GOODS}


async def test_window_closes_by_timer_and_low_satisfaction_orders_rectification(
    time_skipping_env: WorkflowEnvironment, task_queue: str, sessions: sessionmaker[Session]
) -> None:
    env = time_skipping_env
    org = organisation("org-eval-01")
    round_id = f"r-eval-{uuid.uuid4().hex[:6]}"
    plan = org_plan(org, await env.get_current_time(), round_id=round_id)
    campaign = await start_campaign(env.client, task_queue, plan)
    now = await env.get_current_time()
    evaluation, handle = await open_evaluation(
        env.client, task_queue, sessions, round_id, org.id,
        {RaterKind.MEMBER: 8, RaterKind.NON_MEMBER: 4}, now,
    )  # fmt: skip
    opened = await handle.execute_update(EvaluationWorkflow.opened)
    assert opened.stage is EvaluationStage.OPEN and opened.window is not None
    calendar = plan.calendar.build()
    assert opened.window.closes_at == calendar.deadline_after(
        opened.window.opens_at, Span(working_days=5)
    )
    # 9 of 12 vote (quorum 2/3 met); 4 satisfied, 5 basically satisfied: 44% < 70%.
    for index in range(9):
        rating = Rating.SATISFIED if index < 4 else Rating.BASICALLY_SATISFIED
        cast_ballot(
            sessions, token_for(SECRET, evaluation.evaluation_id, index), ratings(rating), now
        )
    # Nothing closes it early: the durable timer does (time skips to the deadline).
    final = await handle.result()
    assert final.stage is EvaluationStage.PUBLISHED
    assert final.result is not None and final.result.verdict is Verdict.BELOW_THRESHOLD
    assert final.result.cast == 9 and final.result.issued == 12
    assert final.rectification == "ordered"
    with sessions() as session:
        row = session.get(EvaluationRow, evaluation.evaluation_id)
        assert row is not None and row.closed_at is not None
        assert row.closed_at >= opened.window.closes_at  # closed by the timer, not before
        assert row.status == "published" and row.published_at is not None
        items = session.scalars(
            select(EvaluationItemRow)
            .where(EvaluationItemRow.evaluation_id == evaluation.evaluation_id)
            .order_by(EvaluationItemRow.position)
        ).all()
        assert [i.label for i in items] == [i.label for i in FIVE_GOODS]
        assert all((i.satisfied, i.basically_satisfied, i.ballots) == (4, 5, 9) for i in items)
    # A ballot after the close is refused.
    with pytest.raises(BallotRefused) as late:
        cast_ballot(
            sessions, token_for(SECRET, evaluation.evaluation_id, 10), ratings(Rating.SATISFIED),
            await env.get_current_time(),
        )  # fmt: skip
    assert late.value.code == "window_closed"
    # The organisation's workflow has the order, blocking its phase until the re-check.
    current = await status(campaign)
    phase = current.state.current()
    assert phase.phase is Phase.MOBILISATION
    assert phase.rectification is not None
    assert phase.rectification.status is RectificationStatus.ISSUED
    with sessions() as session:
        kinds = session.scalars(
            select(CampaignEventRow.kind).where(CampaignEventRow.round_id == round_id)
        ).all()
        notices = session.scalars(
            select(NoticeRow.title).where(
                NoticeRow.round_id == round_id, NoticeRow.kind == "rectification_order"
            )
        ).all()
    assert {"rectification_required", "rectification_ordered"} & set(kinds)
    assert any("整改通知" in t for t in notices)


async def test_below_quorum_the_result_is_void_and_nothing_is_ordered(
    time_skipping_env: WorkflowEnvironment, task_queue: str, sessions: sessionmaker[Session]
) -> None:
    env = time_skipping_env
    org = organisation("org-eval-02")
    round_id = f"r-eval-{uuid.uuid4().hex[:6]}"
    plan = org_plan(org, await env.get_current_time(), round_id=round_id)
    campaign = await start_campaign(env.client, task_queue, plan)
    now = await env.get_current_time()
    evaluation, handle = await open_evaluation(
        env.client, task_queue, sessions, round_id, org.id,
        {RaterKind.MEMBER: 8, RaterKind.NON_MEMBER: 4}, now,
    )  # fmt: skip
    await handle.execute_update(EvaluationWorkflow.opened)
    for index in range(7):  # 7 of 12 is below two thirds
        cast_ballot(
            sessions, token_for(SECRET, evaluation.evaluation_id, index),
            ratings(Rating.UNSATISFIED), now,
        )  # fmt: skip
    final = await handle.result()
    assert final.stage is EvaluationStage.INVALID
    assert final.result is not None and final.result.verdict is Verdict.NO_QUORUM
    assert final.rectification is None
    with sessions() as session:
        row = session.get(EvaluationRow, evaluation.evaluation_id)
        assert row is not None and row.status == "invalid" and row.published_at is None
    assert (await status(campaign)).state.current().rectification is None
