"""The legacy round type ("CampaignRoundWorkflow") still runs for rounds kicked off before
the bounded round ("CampaignRound"); this test records its history for the replay test.

Re-record with ``CZ_RECORD_HISTORIES=1 .venv/bin/pytest -p no:cacheprovider
tests/workflows/test_round_legacy.py`` only if the legacy class itself has to change (it
should not: it is frozen for runs in flight).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from domain.actions import CloseRound
from domain.calendar import Span
from domain.phases import Phase
from domain.schedule import resolve_schedule
from tests.workflows.support import COUNTY, record_history, seed_plan, write_roster
from workflows.contracts import RoundExtensionRequest, RoundInput, RoundKickoff
from workflows.ids import round_workflow_id
from workflows.round import CampaignRoundWorkflow

pytestmark = pytest.mark.usefixtures("worker")


async def test_legacy_round_runs_extends_and_closes(
    time_skipping_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    env = time_skipping_env
    roster = write_roster(tmp_path / "roster.csv", 8)
    plan = seed_plan()
    now = await env.get_current_time()
    kickoff = RoundKickoff(
        round_id="r-round-legacy",
        plan=plan,
        round_plan_id="round-1",
        roster_source=str(roster),
        actor=COUNTY,
        starts_at=now,
        batch_size=5,
    )
    handle = await env.client.start_workflow(
        CampaignRoundWorkflow.run,
        RoundInput(kickoff=kickoff),
        id=round_workflow_id(kickoff.round_id),
        task_queue=task_queue,
    )
    progress = await handle.query(CampaignRoundWorkflow.progress)
    for _ in range(200):
        # Organisations no longer report to a round (workflows/organisation.py, patch
        # small-history): only the cursor is seen.
        if progress.starting_done:
            break
        await asyncio.sleep(0.1)
        progress = await handle.query(CampaignRoundWorkflow.progress)
    assert progress.started == 8
    schedule = resolve_schedule(plan, plan.round("round-1"), now, rebased=True)
    deadline = schedule.window(Phase.MOBILISATION).deadline
    await handle.execute_update(
        CampaignRoundWorkflow.extend_phase,
        RoundExtensionRequest(
            actor=COUNTY,
            phase=Phase.MOBILISATION,
            new_deadline=plan.calendar.build().after(deadline, Span(working_days=5)),
            reason="统一顺延",
        ),
    )
    result = await handle.execute_update(
        CampaignRoundWorkflow.close, CloseRound(actor=COUNTY, reason="测试结束")
    )
    assert result.closed
    assert (await handle.result()).closed
    await record_history(handle, "round_legacy")
