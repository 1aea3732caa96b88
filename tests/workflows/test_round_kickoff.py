"""The bounded round (``CampaignRound``) on the real Temporal dev server: a round of 500
organisations kicked off twice yields exactly 500 organisation workflows (counted by
visibility), also after a restart; and a round that continues as new keeps its cursor and
finds its progress in the read model."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.testing import WorkflowEnvironment

from activities.db import create_schema, make_engine, session_factory
from activities.round_progress import store_plan
from chuangzheng.temporal_server import start_dev_server_env
from domain.actions import CloseRound
from domain.phases import Phase
from domain.plan_loader import load_plan
from tests.workflows.support import COUNTY, ROOT, max_cached_workflows, write_roster
from worker import build_worker
from workflows.contracts import RoundProgress
from workflows.ids import round_workflow_id
from workflows.round import CampaignRound
from workflows.round_contracts import CampaignRoundInput, RoundTerms

ORGANISATIONS = 500


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal CLI dev server (in-memory) for this module."""
    env = await start_dev_server_env()
    yield env
    await env.shutdown()


@pytest.fixture(scope="module")
def roster_500(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated county of 500 organisations."""
    path = tmp_path_factory.mktemp("roster") / "roster-500.csv"
    write_roster(path, ORGANISATIONS)
    return path


async def kick_off(
    client: Client, kickoff: CampaignRoundInput, task_queue: str
) -> WorkflowHandle[CampaignRound, RoundProgress]:
    """What the county office's "kick off" does: start the round, or find it running."""
    return await client.start_workflow(
        CampaignRound.run,
        kickoff,
        id=round_workflow_id(kickoff.terms.round_id),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )


async def count(client: Client, round_id: str) -> int:
    query = f'CzRound = "{round_id}" AND WorkflowType = "OrganisationCampaignWorkflow"'
    return (await client.count_workflows(query)).count


async def test_round_kicked_off_twice_makes_exactly_one_workflow_per_organisation(
    dev_env: WorkflowEnvironment, roster_500: Path, tmp_path: Path
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'rm.db'}")
    create_schema(engine)
    sessions = session_factory(engine)
    client = dev_env.client
    task_queue = "round-kickoff-test"
    plan = load_plan((ROOT / "plans/demo.yaml").read_text("utf-8"))
    kickoff = CampaignRoundInput(
        terms=RoundTerms(
            round_id="r-500",
            round_plan_id=plan.rounds[0].id,
            roster_source=str(roster_500),
            actor=COUNTY,
            start_chunk=200,
            page_size=100,
        ),
        plan_ref=store_plan(sessions, plan),
    )
    async with build_worker(
        client,
        task_queue=task_queue,
        sessions=sessions,
        max_cached_workflows=max_cached_workflows(),
    ):
        first, second = await asyncio.gather(
            kick_off(client, kickoff, task_queue), kick_off(client, kickoff, task_queue)
        )
        assert first.result_run_id == second.result_run_id
        deadline = time.monotonic() + 120
        progress = await first.query(CampaignRound.progress)
        while not progress.starting_done and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            progress = await first.query(CampaignRound.progress)
        assert progress.starting_done and progress.started == ORGANISATIONS
        assert progress.total == ORGANISATIONS

        # The county office kicks off once more after a restart of the round workflow: the
        # start activity finds every organisation's workflow already there.
        await first.terminate("simulated operator restart")
        again = await kick_off(client, kickoff, task_queue)
        assert again.result_run_id != first.result_run_id
        progress = await again.query(CampaignRound.progress)
        while not progress.starting_done and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            progress = await again.query(CampaignRound.progress)
        assert progress.started == ORGANISATIONS

        # Visibility is eventually consistent: wait for it to catch up, then it must be 500.
        seen = 0
        while time.monotonic() < deadline:
            seen = await count(client, "r-500")
            if seen >= ORGANISATIONS:
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(1)
        assert await count(client, "r-500") == ORGANISATIONS
        assert seen == ORGANISATIONS

        await again.execute_update(
            CampaignRound.close, {"actor": COUNTY.model_dump(), "reason": "测试结束"}
        )
        await again.result()
    engine.dispose()


async def test_round_continues_as_new_with_its_progress(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """On the dev server: the time-skipping server's handling of a run that continues as
    new while signals and queries arrive is not what a real cluster does."""
    env = dev_env
    task_queue = "round-can-test"
    engine = make_engine(f"sqlite:///{tmp_path / 'rm.db'}")
    create_schema(engine)
    sessions = session_factory(engine)
    roster = tmp_path / "roster.csv"
    write_roster(roster, 12)
    plan = load_plan((ROOT / "plans/demo.yaml").read_text("utf-8"))
    kickoff = CampaignRoundInput(
        terms=RoundTerms(
            round_id="r-round-can",
            round_plan_id="demo",
            roster_source=str(roster),
            actor=COUNTY,
            starts_at=None,  # the dev server runs on the real clock
            # One organisation per start activity: a dozen events each, so the history
            # passes 100 while starting.
            start_chunk=1,
            history_limit=100,
            cohort_check_every=timedelta(seconds=1),
        ),
        plan_ref=store_plan(sessions, plan),
    )
    async with build_worker(
        env.client,
        task_queue=task_queue,
        sessions=sessions,
        max_cached_workflows=max_cached_workflows(),
    ):
        await continue_as_new_keeps_progress(env, kickoff, task_queue)
    engine.dispose()


async def continue_as_new_keeps_progress(
    env: WorkflowEnvironment, kickoff: CampaignRoundInput, task_queue: str
) -> None:
    handle = await env.client.start_workflow(
        CampaignRound.run,
        kickoff,
        id=round_workflow_id(kickoff.terms.round_id),
        task_queue=task_queue,
    )
    first_run = (await handle.describe()).run_id
    progress = await handle.query(CampaignRound.progress)
    for _ in range(300):
        if progress.starting_done and sum(progress.by_phase.values()) == 12:
            break
        await asyncio.sleep(0.1)
        progress = await handle.query(CampaignRound.progress)
    for _ in range(100):
        if (await handle.describe()).run_id != first_run:
            break
        await asyncio.sleep(0.1)
    assert (await handle.describe()).run_id != first_run
    assert progress.started == 12 and progress.total == 12
    assert progress.by_phase == {Phase.MOBILISATION: 12}
    final = await handle.execute_update(
        CampaignRound.close, CloseRound(actor=COUNTY, reason="测试结束")
    )
    assert final.applied
    assert (await handle.result()).closed
