"""``DailyDigestWorkflow`` and ``CircularWorkflow``: short runs started by Temporal Schedules.

Each reads the instant from ``workflow.now()`` (the schedule's fire time in virtual or real
time) and hands it to one activity, which loads the round's status from the read model and
sends. The status stays out of workflow history on purpose: a round of thousands of
organisations would make every daily run carry megabytes of payload.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.common import ACTIVITY_RETRY

SEND_TIMEOUT = timedelta(minutes=5)
_FROZEN = ConfigDict(frozen=True)


class DailyDigestInput(BaseModel):
    """Which round to digest (the date is the local date of the run)."""

    model_config = _FROZEN

    round_id: str


class CircularInput(BaseModel):
    """Which round to circulate; ``key`` names an on-demand circular (default: the date)."""

    model_config = _FROZEN

    round_id: str
    key: str | None = None


class DigestRun(BaseModel):
    """Input of ``send_digests``: the round and the instant the digest is for."""

    model_config = _FROZEN

    round_id: str
    now: datetime


class CircularRun(BaseModel):
    """Input of ``publish_circular``."""

    model_config = _FROZEN

    round_id: str
    now: datetime
    key: str | None = None


class DigestReport(BaseModel):
    """What ``send_digests`` did: digests new today, and ones sent earlier the same day."""

    model_config = _FROZEN

    sent: int
    already_sent: int
    recipients: tuple[str, ...] = ()


class CircularReport(BaseModel):
    """The published circular: its id, files and digests, and the notices it sent."""

    model_config = _FROZEN

    circular_id: str
    xlsx_path: str
    xlsx_sha256: str
    text_path: str
    notices_sent: int
    already_published: bool


@workflow.defn
class DailyDigestWorkflow:
    """One supervisor digest run for a round (the schedule fires it daily)."""

    @workflow.run
    async def run(self, input: DailyDigestInput) -> DigestReport:
        """Send today's digests; a second run the same day sends nothing new."""
        report: DigestReport = await workflow.execute_activity(
            "send_digests",
            DigestRun(round_id=input.round_id, now=workflow.now()),
            start_to_close_timeout=SEND_TIMEOUT,
            retry_policy=ACTIVITY_RETRY,
            result_type=DigestReport,
        )
        return report


@workflow.defn
class CircularWorkflow:
    """One circular (通报) for a round: weekly by schedule, or on demand with a key."""

    @workflow.run
    async def run(self, input: CircularInput) -> CircularReport:
        """Publish the document and notify the county office and every township."""
        report: CircularReport = await workflow.execute_activity(
            "publish_circular",
            CircularRun(round_id=input.round_id, now=workflow.now(), key=input.key),
            start_to_close_timeout=SEND_TIMEOUT,
            retry_policy=ACTIVITY_RETRY,
            result_type=CircularReport,
        )
        return report
