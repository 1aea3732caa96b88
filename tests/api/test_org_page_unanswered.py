"""The organisation page when its workflow does not answer in time (issue 11: in a deadline
storm the status query waits behind the storm's workflow tasks): the page comes back within
its short query budget with what the read model holds and says the step details are not
available yet, instead of hanging for the query's full 10 s or failing."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from api.ui.org_view import PAGE_QUERY_TIMEOUT
from chuangzheng.services.workflow_calls import QUERY_RPC_TIMEOUT
from tests.api.conftest import PASSWORD, Stack, start_demo_round
from workflows.ids import organisation_workflow_id

pytestmark = [
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.one_database(
        "sqlite",
        why="the page's budget is about a workflow that does not answer, not about the read model",
    ),
]


async def test_the_page_answers_within_its_budget_when_the_workflow_does_not(
    stack: Stack, dev_server: WorkflowEnvironment
) -> None:
    rid = await start_demo_round(stack, f"slow-{uuid.uuid4().hex[:8]}")
    workflow_id = organisation_workflow_id(rid, "org-a")
    client = dev_server.client
    # org-a's workflow is replaced by a run on a task queue no worker polls: its status
    # query is dispatched and never answered, as when every worker is busy or gone.
    await client.get_workflow_handle(workflow_id).terminate(reason="test: unanswered query")
    stranded = await client.start_workflow(
        "CampaignOrganisation", id=workflow_id, task_queue=f"nobody-{uuid.uuid4()}"
    )
    try:
        async with httpx.AsyncClient(
            base_url=stack.base_url, timeout=60, headers={"Origin": stack.base_url}
        ) as browser:
            signed = await browser.post(
                "/ui/login", data={"username": "county", "password": PASSWORD, "next": "/ui/"}
            )
            assert signed.status_code == 303, signed.text
            started = time.monotonic()
            page = await browser.get(f"/ui/orgs/org-a?round={rid}")
            took = time.monotonic() - started
            assert page.status_code == 200, page.text
            assert "流程状态暂不可用" in page.text
            # The read model's part is still there: the organisation (its roster name).
            assert "城关镇东关村党支部" in page.text
            # Not the query's own 10 s: the page gave up after its budget (3 s). The page's
            # other work (the read model, while the worker writes other rounds' timers on
            # SQLite) took up to 6.4 s more in a loaded CI run, so the bound is the query's
            # timeout, the difference this test is about.
            assert PAGE_QUERY_TIMEOUT < QUERY_RPC_TIMEOUT
            assert took < QUERY_RPC_TIMEOUT.total_seconds(), took

            # Another organisation of the same round still shows its steps.
            other = await browser.get(f"/ui/orgs/org-b?round={rid}")
            assert other.status_code == 200
            assert "流程状态暂不可用" not in other.text
    finally:
        await stranded.terminate(reason="test done")
