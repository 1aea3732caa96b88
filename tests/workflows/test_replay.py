"""Recorded histories must replay against today's workflow code (determinism guard).

Histories live in tests/histories/ (see its README): the organisation and round workflows'
were recorded from their workflow tests with CZ_RECORD_HISTORIES=1, the short workflows'
by ``python -m tests.histories.record``. Every file is replayed with the worker's own
workflows, sandbox runner and data converter. A failure here means a change would break
running workflows: guard it with ``workflow.patched`` instead of re-recording.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

import workflows
from chuangzheng.temporal_server import data_converter
from tests.workflows.support import HISTORIES
from worker import WORKFLOWS, workflow_runner

RECORDED = sorted(HISTORIES.glob("*.json"))


def _history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text("utf-8"))


def _workflow_type(history: WorkflowHistory) -> str:
    """The workflow type a history is of (its first event starts the execution)."""
    started = history.events[0].workflow_execution_started_event_attributes
    return started.workflow_type.name


def _workflow_classes() -> dict[str, type]:
    """Every workflow class defined in the ``workflows`` package, by workflow type name."""
    found: dict[str, type] = {}
    for info in pkgutil.iter_modules(workflows.__path__, f"{workflows.__name__}."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if not isinstance(value, type) or value.__module__ != module.__name__:
                continue
            definition = workflow._Definition.from_class(value)
            if definition is not None and definition.name is not None:
                found[definition.name] = value
    return found


def test_histories_are_committed() -> None:
    assert len(RECORDED) >= 2, "recorded histories are missing from tests/histories"


def test_every_workflow_type_has_a_recorded_history() -> None:
    classes = _workflow_classes()
    assert classes, "no workflow classes found in workflows/"
    registered = {workflow._Definition.must_from_class(c).name for c in WORKFLOWS}
    assert set(classes) <= registered, f"not registered by worker.py: {set(classes) - registered}"
    recorded = {_workflow_type(_history(path)) for path in RECORDED}
    missing = sorted(set(classes) - recorded)
    assert not missing, (
        f"no recorded history in tests/histories for {missing}: record one "
        "(tests/histories/README.md says how)"
    )


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.stem)
async def test_recorded_history_replays(path: Path) -> None:
    history = _history(path)
    replayer = Replayer(
        workflows=list(WORKFLOWS),
        data_converter=data_converter(),
        workflow_runner=workflow_runner(),
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
