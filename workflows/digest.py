"""``DailyDigestWorkflow`` and ``CircularWorkflow``: short runs started by Temporal Schedules.

Each reads the instant from ``workflow.now()`` (the schedule's fire time in virtual or real
time) and hands it to one activity, which loads the round's status from the read model and
sends. The status stays out of workflow history on purpose: a round of thousands of
organisations would make every daily run carry megabytes of payload.

The contracts live in :mod:`workflows.digest_contracts` (re-exported here).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.activity_refs import PUBLISH_CIRCULAR, SEND_DIGESTS, execute
    from workflows.common import ACTIVITY_RETRY
    from workflows.digest_contracts import (
        CircularInput,
        CircularReport,
        CircularRun,
        DailyDigestInput,
        DigestReport,
        DigestRun,
    )

SEND_TIMEOUT = timedelta(minutes=5)

__all__ = [
    "SEND_TIMEOUT",
    "CircularInput",
    "CircularReport",
    "CircularRun",
    "CircularWorkflow",
    "DailyDigestInput",
    "DailyDigestWorkflow",
    "DigestReport",
    "DigestRun",
]


@workflow.defn
class DailyDigestWorkflow:
    """One supervisor digest run for a round (the schedule fires it daily)."""

    @workflow.run
    async def run(self, input: DailyDigestInput) -> DigestReport:
        """Send today's digests; a second run the same day sends nothing new."""
        return await execute(
            SEND_DIGESTS,
            DigestRun(round_id=input.round_id, now=workflow.now()),
            start_to_close_timeout=SEND_TIMEOUT,
            retry_policy=ACTIVITY_RETRY,
        )


@workflow.defn
class CircularWorkflow:
    """One circular (通报) for a round: weekly by schedule, or on demand with a key."""

    @workflow.run
    async def run(self, input: CircularInput) -> CircularReport:
        """Publish the document and notify the county office and every township."""
        return await execute(
            PUBLISH_CIRCULAR,
            CircularRun(round_id=input.round_id, now=workflow.now(), key=input.key),
            start_to_close_timeout=SEND_TIMEOUT,
            retry_policy=ACTIVITY_RETRY,
        )
