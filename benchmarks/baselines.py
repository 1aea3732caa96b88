"""Raw-Temporal baselines: the smallest workflows that do what a campaign does, run by a
worker of their own (in a subprocess, like the project's worker) on the same server.

- :class:`BaselineWorkflow`: start, run one no-op activity, wait for an Update (``bump``)
  or a long timer. Kick-off, memory and round-trip baselines.
- :class:`TimerWorkflow`: sleep until an instant, then run one no-op activity (the deadline
  storm's baseline).
- :class:`TimersWorkflow`: sleep through a list of instants, taking Updates meanwhile (the
  simulation's baseline: the same timers and Updates as an organisation).

``python -m benchmarks.baselines --address HOST:PORT --task-queue Q --status FILE`` runs the
worker; it writes ``{"count": n, "last": epoch seconds}`` of the no-op activities to FILE
(every 0.1 s when it changed) so the harness knows when the last one ran without asking
Temporal.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    from chuangzheng.temporal_server import data_converter


class _Tally:
    count = 0
    last = 0.0


@activity.defn(name="baseline_record")
async def baseline_record(value: int) -> int:
    """Stands in for the read-model write: no I/O; counts that a workflow got this far."""
    _Tally.count += 1
    _Tally.last = time.time()
    return value


@workflow.defn(name="BenchBaselineWorkflow")
class BaselineWorkflow:
    """Start, run one activity, wait for an update or a long timer."""

    def __init__(self) -> None:
        self._count = 0

    @workflow.run
    async def run(self, value: int) -> int:
        await workflow.execute_activity(
            baseline_record, value, start_to_close_timeout=timedelta(seconds=60)
        )
        await workflow.wait_condition(lambda: self._count < 0, timeout=timedelta(days=30))
        return self._count

    @workflow.update
    def bump(self, value: int) -> int:
        """A trivial update, to compare with ``submit_evidence``."""
        self._count += value
        return self._count


@workflow.defn(name="BenchTimerWorkflow")
class TimerWorkflow:
    """Sleep until ``at`` (epoch seconds), then run one no-op activity."""

    @workflow.run
    async def run(self, at: float) -> None:
        wait = at - workflow.now().timestamp()
        if wait > 0:
            await workflow.sleep(wait)
        await workflow.execute_activity(
            baseline_record, 0, start_to_close_timeout=timedelta(seconds=120)
        )


@workflow.defn(name="BenchTimersWorkflow")
class TimersWorkflow:
    """Sleep through ``instants`` (epoch seconds, ascending) while Updates come; end once
    ``updates`` have come."""

    def __init__(self) -> None:
        self._updates = 0

    @workflow.run
    async def run(self, instants: list[float], updates: int) -> int:
        await workflow.execute_activity(
            baseline_record, 0, start_to_close_timeout=timedelta(seconds=60)
        )
        for at in instants:
            wait = at - workflow.now().timestamp()
            if wait > 0:
                await workflow.sleep(wait)
        await workflow.wait_condition(lambda: self._updates >= updates)
        return self._updates

    @workflow.update
    def bump(self, value: int) -> int:
        self._updates += value
        return self._updates


@workflow.defn(name="BenchFanoutWorkflow")
class FanoutWorkflow:
    """A raw round: start ``n`` BaselineWorkflows named ``<prefix>-<i>`` in batches, each
    batch one activity, then end. Its history is the least a fan-out round writes."""

    @workflow.run
    async def run(self, prefix: str, n: int, batch: int) -> int:
        for first in range(0, n, batch):
            await workflow.execute_activity(
                "baseline_start_batch",
                args=[prefix, first, min(batch, n - first)],
                start_to_close_timeout=timedelta(minutes=10),
            )
        return n


class FanoutActivities:
    """The fan-out's activity: starts one batch of baseline workflows (20 at a time)."""

    def __init__(self, client: Client, task_queue: str) -> None:
        self.client = client
        self.task_queue = task_queue

    @activity.defn(name="baseline_start_batch")
    async def start_batch(self, prefix: str, first: int, count: int) -> int:
        from temporalio.common import WorkflowIDConflictPolicy

        limiter = asyncio.Semaphore(20)

        async def start(i: int) -> None:
            async with limiter:
                await self.client.start_workflow(
                    "BenchBaselineWorkflow",
                    i,
                    id=f"{prefix}-{i}",
                    task_queue=self.task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                )

        await asyncio.gather(*(start(i) for i in range(first, first + count)))
        return count


BASELINE_WORKFLOWS = [BaselineWorkflow, TimerWorkflow, TimersWorkflow, FanoutWorkflow]


def baseline_worker(client: Client, task_queue: str, **kwargs: object) -> Worker:
    """A worker for the baseline workflows (in-process; the subprocess uses the same)."""
    fanout = FanoutActivities(client, task_queue)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=BASELINE_WORKFLOWS,
        activities=[baseline_record, fanout.start_batch],
        **kwargs,  # type: ignore[arg-type]
    )


def epoch(at: datetime) -> float:
    return at.astimezone(UTC).timestamp()


async def _report(status: Path) -> None:
    seen = -1
    while True:
        if _Tally.count != seen:
            seen = _Tally.count
            tmp = status.with_suffix(".tmp")
            tmp.write_text(json.dumps({"count": seen, "last": _Tally.last}))
            os.replace(tmp, status)
        await asyncio.sleep(0.1)


async def _main(address: str, task_queue: str, status: Path) -> None:
    client = await Client.connect(address, data_converter=data_converter())
    reporter = asyncio.create_task(_report(status))
    try:
        # As many cached as the project's worker when the run sets it (province), so both
        # sides' timers fire in cached workflows; else the SDK's default.
        cache = os.environ.get("CZ_WORKER_MAX_CACHED_WORKFLOWS")
        extra = {"max_cached_workflows": int(cache)} if cache else {}
        await baseline_worker(client, task_queue, **extra).run()
    finally:
        reporter.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", required=True)
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--status", type=Path, required=True)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args.address, args.task_queue, args.status))
