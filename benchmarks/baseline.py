"""The raw-Temporal baseline: the smallest workflow that does what a campaign does per
organisation at start (one activity, then wait on a timer) and takes an update."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

RECORDED: set[int] = set()


@activity.defn(name="baseline_record")
async def baseline_record(value: int) -> int:
    """Stands in for the read-model write: no I/O; counts which workflows got this far."""
    RECORDED.add(value)
    return value


@workflow.defn
class BaselineWorkflow:
    """Start, run one activity, report nothing, wait for an update or a long timer."""

    def __init__(self) -> None:
        self._count = 0

    @workflow.run
    async def run(self, value: int) -> int:
        await workflow.execute_activity(
            "baseline_record", value, start_to_close_timeout=timedelta(seconds=30)
        )
        await workflow.wait_condition(lambda: self._count > 0, timeout=timedelta(days=30))
        return self._count

    @workflow.update
    def bump(self, value: int) -> int:
        """A trivial update, to compare with ``submit_evidence``."""
        self._count += value
        return self._count
