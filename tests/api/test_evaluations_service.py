"""The 群众评议 use cases called directly (``chuangzheng.services.evaluations``) against the
real stack (dev server, the project's worker, the stack's read model): refusals before
anything is stored, then a ballot opened (its workflow started, the window open), printed,
closed early and audited."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment

from activities.db import make_engine, session_factory
from activities.tables import AuditRow, EvaluationRow
from chuangzheng.services import evaluations
from chuangzheng.services.errors import Conflict, InvalidInput, NotFound, Refused
from domain.evaluation import EvaluationTarget, RaterKind
from tests.api.conftest import Stack, start_demo_round, wait_for
from tests.api.service_county import caller, demo_round
from tests.api.test_evaluation_guards import reach_public_evaluation

pytestmark = pytest.mark.asyncio(loop_scope="session")

RATERS = evaluations.EvaluationRequest(raters={RaterKind.MEMBER: 8, RaterKind.NON_MEMBER: 4})


@pytest.fixture
def sessions(stack: Stack) -> Iterator[sessionmaker[Session]]:
    """The stack's read model, as the bootstrap's session factory."""
    engine = make_engine(stack.settings.database_url)
    yield session_factory(engine)
    engine.dispose()


def _rows(sessions: sessionmaker[Session], round_id: str) -> list[EvaluationRow]:
    with sessions() as session:
        return list(
            session.scalars(select(EvaluationRow).where(EvaluationRow.round_id == round_id))
        )


async def test_refused_before_anything_is_stored(
    stack: Stack, dev_server: WorkflowEnvironment, sessions: sessionmaker[Session]
) -> None:
    service = evaluations.Evaluations(sessions, dev_server.client, stack.settings)
    rid = await demo_round(sessions, f"evs-{uuid.uuid4().hex[:8]}")  # created, not kicked off
    with pytest.raises(Conflict) as not_started:
        await service.open(caller("ins-zhang"), rid, "org-a", RATERS)
    assert not_started.value.code == "not_started"
    with pytest.raises(Refused) as own:  # a secretary does not evaluate their organisation
        await service.open(caller("sec-a"), rid, "org-a", RATERS)
    assert own.value.code == "forbidden"
    with pytest.raises(NotFound):  # org-c is outside ins-zhang's scope
        await service.open(caller("ins-zhang"), rid, "org-c", RATERS)
    assert _rows(sessions, rid) == []


async def test_opened_printed_and_closed(
    stack: Stack, dev_server: WorkflowEnvironment, sessions: sessionmaker[Session]
) -> None:
    service = evaluations.Evaluations(sessions, dev_server.client, stack.settings)
    rid = await start_demo_round(stack, f"evs-{uuid.uuid4().hex[:8]}")
    with pytest.raises(Conflict) as too_early:  # org-a is in 动员部署
        await service.open(caller("ins-zhang"), rid, "org-a", RATERS)
    assert too_early.value.code == "wrong_phase" and "动员部署" in too_early.value.message
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        await reach_public_evaluation(http, rid, ("org-a",))
    with pytest.raises(InvalidInput) as both:
        await service.open(
            caller("ins-zhang"),
            rid,
            "org-a",
            evaluations.EvaluationRequest(
                raters={RaterKind.MEMBER: 8}, rater_names=[("甲", RaterKind.MEMBER)]
            ),
        )
    assert [e["field"] for e in both.value.errors] == ["raters"]
    opened = await service.open(caller("ins-zhang"), rid, "org-a", RATERS)
    assert opened["status"] == "open" and opened["issued"] == {"member": 8, "non_member": 4}
    with pytest.raises(Conflict) as again:
        await service.open(caller("ins-zhang"), rid, "org-a", RATERS)
    assert again.value.code == "evaluation_exists"
    evaluation_id = opened["evaluation_id"]
    with sessions() as session:
        row = evaluations.printable(session, caller("ins-zhang"), evaluation_id)
        assert (row.issued_members, row.issued_non_members) == (8, 4)
        with pytest.raises(Refused):  # the secretary may not print an organisation's slips
            evaluations.printable(session, caller("sec-a"), evaluation_id)
    closed = await service.close(caller("ins-zhang"), evaluation_id)
    assert closed["evaluation_id"] == evaluation_id

    async def tallied() -> bool:
        # The window closes now; the workflow tallies (no votes: below the quorum).
        return [r.status for r in _rows(sessions, rid)] == ["invalid"]

    await wait_for(tallied)
    with sessions() as session:
        audited = session.scalars(
            select(AuditRow.action)
            .where(AuditRow.round_id == rid, AuditRow.action.like("evaluation_%"))
            .order_by(AuditRow.at)
        ).all()
        assert audited == ["evaluation_opened", "evaluation_closed"]
    assert [r.target for r in _rows(sessions, rid)] == [EvaluationTarget.ORGANISATION.value]
    with sessions() as session, pytest.raises(Conflict) as late:
        evaluations.printable(session, caller("ins-zhang"), evaluation_id)
    assert late.value.code == "window_closed"
