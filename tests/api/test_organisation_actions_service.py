"""The "act on an organisation" use case called directly (``chuangzheng.services``), against
the real stack (dev server, the project's worker, SQLite): the API's route and the pages run
the same service, so a key spent through one door is spent for the other."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment

from activities.db import make_engine, session_factory
from api.auth import User
from api.routers.action_bodies import Submit
from api.routers.actions import caller
from api.ui.actions import run_action
from chuangzheng.services.errors import InvalidInput, NotFound
from chuangzheng.services.organisation_actions import (
    OrganisationAction,
    OrganisationActions,
)
from domain.campaign_rules import CampaignStatus
from domain.organisation import Role
from tests.api.conftest import Stack, start_demo_round, token
from tests.api.test_campaign_api import evidence
from workflows.ids import organisation_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")

SECRETARY = User(username="sec-a", display_name="sec-a", role=Role.SECRETARY, scope_key="org-a")


@pytest.fixture
def sessions(stack: Stack) -> Iterator[sessionmaker[Session]]:
    """The read model of the stack, as the bootstrap's session factory."""
    engine = make_engine(stack.settings.database_url)
    yield session_factory(engine)
    engine.dispose()


async def submissions(client: Any, round_id: str, step_id: str) -> int:
    """How many submissions the workflow holds for ``step_id`` of org-a (its own state, so
    a duplicate effect cannot hide behind a lagging read model)."""
    status: CampaignStatus = await client.get_workflow_handle(
        organisation_workflow_id(round_id, "org-a")
    ).query("status", result_type=CampaignStatus)
    assert status.state is not None
    steps = [s for p in status.state.phases for s in p.steps if s.step_id == step_id]
    return sum(len(s.submissions) for s in steps)


async def test_the_route_and_the_pages_share_one_use_case_and_its_keys(
    http: httpx.AsyncClient,
    stack: Stack,
    dev_server: WorkflowEnvironment,
    sessions: sessionmaker[Session],
) -> None:
    rid = await start_demo_round(stack, f"svc-{uuid.uuid4().hex[:8]}")
    client = dev_server.client
    service = OrganisationActions(sessions=sessions, temporal=client)
    secretary = await token(http, "sec-a")
    base = f"/api/v1/rounds/{rid}/organisations/org-a"
    status = (await http.get(f"{base}/status", headers=secretary)).json()
    step_id = "hold_mobilisation_meeting"
    body = {"step_id": step_id, "values": evidence(stack, status, step_id)}
    fields = Submit.model_validate(body).model_dump(mode="json")
    key = f"k-{uuid.uuid4()}"

    # Called twice with one key, the service has one effect and replays the first answer.
    first = await service.act(
        caller(SECRETARY, "127.0.0.1"), round_id=rid, org_id="org-a",
        action=OrganisationAction.SUBMIT_EVIDENCE, fields=fields, idempotency_key=key,
    )  # fmt: skip
    again = await service.act(
        caller(SECRETARY, "127.0.0.1"), round_id=rid, org_id="org-a",
        action=OrganisationAction.SUBMIT_EVIDENCE, fields=fields, idempotency_key=key,
    )  # fmt: skip
    assert not first.replayed and again.replayed
    assert again.body == first.body and again.result == first.result
    assert await submissions(client, rid, step_id) == 1

    # The route runs the same use case: the key the service spent is spent for HTTP too.
    replayed = await http.post(
        f"{base}/submissions", json=body, headers={**secretary, "Idempotency-Key": key}
    )
    assert replayed.status_code == 200, replayed.text
    assert replayed.headers.get("Idempotent-Replayed") == "true"
    assert replayed.content == first.body
    with pytest.raises(InvalidInput) as reused:
        await service.act(
            caller(SECRETARY, None), round_id=rid, org_id="org-a",
            action=OrganisationAction.SUBMIT_EVIDENCE, fields={**fields, "values": {}},
            idempotency_key=key,
        )  # fmt: skip
    assert reused.value.code == "idempotency_key_reused"

    # A page's form key is the same command key the service builds: a form posted twice,
    # then the same key through the service, is still one effect (the workflow's dedup).
    form_key = uuid.uuid4().hex
    report_step = "set_up_leading_group"
    report = {"step_id": report_step, "values": evidence(stack, status, report_step)}
    for _ in range(2):
        await run_action(
            client, SECRETARY, None, round_id=rid, org_id="org-a",
            name="submit_evidence", fields=report, form_key=form_key,
        )  # fmt: skip
    through_service = await service.act(
        caller(SECRETARY, None), round_id=rid, org_id="org-a",
        action=OrganisationAction.SUBMIT_EVIDENCE,
        fields=Submit.model_validate(report).model_dump(mode="json"),
        idempotency_key=f"ui:{form_key}",
    )  # fmt: skip
    assert not through_service.replayed  # no stored answer: the workflow deduplicated it
    assert await submissions(client, rid, report_step) == 1


async def test_outside_the_callers_scope_is_not_found_before_any_call(
    stack: Stack, dev_server: WorkflowEnvironment, sessions: sessionmaker[Session]
) -> None:
    service = OrganisationActions(sessions=sessions, temporal=dev_server.client)
    with pytest.raises(NotFound):
        # No round of this id exists: the scope check answers before Temporal is asked.
        await service.act(
            caller(SECRETARY, None), round_id="no-such-round", org_id="org-b",
            action=OrganisationAction.WAIVE_STEP, fields={"step_id": "x", "reason": "r"},
        )  # fmt: skip
