"""The what-if's workflow: one batch of organisations of one arm, rehearsed in virtual time.

The batch's organisations are held as the real campaign states (:class:`.what_if_engine.
CountyRun`); the workflow sleeps on a durable timer from one instant where something is due
to the next, so the time-skipping server jumps across the round's months at once. The
domain is always given the planned instant as ``now``, never ``workflow.now()``: the server
may fire a timer a little late, and the result must not depend on it.

Unsandboxed: the batch imports the simulation's evidence helpers and holds thousands of
domain objects; it does no I/O and reads no clock, so the sandbox would only slow it. The
what-if's own worker runs it in debug mode (no deadlock detector): carrying a batch in at
the first instant is CPU work of a few seconds under load.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from .what_if_engine import BatchInput, BatchResult, CountyRun


@workflow.defn(name="WhatIfBatch", sandboxed=False)
class WhatIfBatch:
    """One arm's batch from the carried state to the end of the round."""

    @workflow.run
    async def run(self, batch: BatchInput) -> BatchResult:
        """Advance from instant to instant; return the batch's tally and outcomes."""
        county = CountyRun(batch)
        clock = batch.starts_at
        while (at := county.next_instant()) is not None:
            if at > clock:
                await workflow.sleep(at - clock)
                clock = at
            county.advance(at)
        return county.result()
