"""Recorded histories must replay against today's workflow code (determinism guard).

Histories live in tests/histories/ and were recorded from the workflow tests with
CZ_RECORD_HISTORIES=1. A failure here means a change would break running workflows: guard
it with ``workflow.patched`` instead of re-recording.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from chuangzheng.temporal_server import data_converter
from tests.workflows.support import HISTORIES
from worker import WORKFLOWS, workflow_runner

RECORDED = sorted(HISTORIES.glob("*.json"))


def test_histories_are_committed() -> None:
    assert len(RECORDED) >= 2, "recorded histories are missing from tests/histories"


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.stem)
async def test_recorded_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text("utf-8"))
    replayer = Replayer(
        workflows=list(WORKFLOWS),
        data_converter=data_converter(),
        workflow_runner=workflow_runner(),
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
