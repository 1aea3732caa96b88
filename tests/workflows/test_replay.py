"""Recorded histories must replay against today's workflow code (determinism guard).

Histories live in tests/histories/ (see its README): the organisation and round workflows'
were recorded from their workflow tests with CZ_RECORD_HISTORIES=1, the short workflows'
(and the what-if's ``WhatIfBatch``) by ``python -m tests.histories.record``. Every file is
replayed with the worker's own workflows, sandbox runner and data converter — or, for a
type that runs on a worker of its own (:data:`OWN_WORKERS`), with that worker's. A failure
here means a change would break running workflows: guard it with ``workflow.patched``
instead of re-recording.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

import chuangzheng.simulation
import workflows
from chuangzheng.simulation import what_if_run
from chuangzheng.temporal_server import data_converter
from tests.workflows.support import HISTORIES
from worker import WORKFLOWS, workflow_runner

RECORDED = sorted(HISTORIES.glob("*.json"))


@dataclass(frozen=True)
class OwnWorker:
    """A worker other than worker.py's: the workflows it runs and how."""

    workflows: Sequence[type]
    debug_mode: bool = False


#: Workflow types defined outside ``workflows/`` (in ``chuangzheng.simulation``), run on a
#: worker of their own, by type name. ``WhatIfBatch``: the what-if's, on its throw-away
#: time-skipping server with a worker in debug mode (``what_if_run.rehearse``). Its
#: histories die with that server, so no running workflow depends on an old one; replaying
#: its recorded history guards determinism (a batch whose task is retried or evicted mid-run
#: replays its own history) and the code's compatibility with what the rehearsal sends.
OWN_WORKERS: dict[str, OwnWorker] = {
    "WhatIfBatch": OwnWorker(workflows=what_if_run.WORKFLOWS, debug_mode=True),
}


def _history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text("utf-8"))


def _workflow_type(history: WorkflowHistory) -> str:
    """The workflow type a history is of (its first event starts the execution)."""
    started = history.events[0].workflow_execution_started_event_attributes
    return started.workflow_type.name


def _workflow_classes(package: ModuleType = workflows) -> dict[str, type]:
    """Every workflow class defined in ``package``, by workflow type name."""
    found: dict[str, type] = {}
    for info in pkgutil.iter_modules(package.__path__, f"{package.__name__}."):
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
    # The simulation's own workflows (the what-if's): each on its own worker, listed above.
    simulated = _workflow_classes(chuangzheng.simulation)
    own = {
        workflow._Definition.must_from_class(c).name
        for w in OWN_WORKERS.values()
        for c in w.workflows
    }
    assert set(simulated) <= set(OWN_WORKERS), (
        f"not in OWN_WORKERS: {set(simulated) - set(OWN_WORKERS)}"
    )
    assert set(OWN_WORKERS) <= own, "an OWN_WORKERS entry does not run its own type"
    classes |= simulated
    recorded = {_workflow_type(_history(path)) for path in RECORDED}
    missing = sorted(set(classes) - recorded)
    assert not missing, (
        f"no recorded history in tests/histories for {missing}: record one "
        "(tests/histories/README.md says how)"
    )


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.stem)
async def test_recorded_history_replays(path: Path) -> None:
    history = _history(path)
    own = OWN_WORKERS.get(_workflow_type(history))
    if own is not None:
        replayer = Replayer(
            workflows=list(own.workflows),
            data_converter=data_converter(),
            debug_mode=own.debug_mode,
        )
    else:
        replayer = Replayer(
            workflows=list(WORKFLOWS),
            data_converter=data_converter(),
            workflow_runner=workflow_runner(),
        )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
