"""Typed references to activities and signals: one name, one input type, one result type.

Workflows call activities through :func:`execute` with a reference instead of a bare string,
so a renamed activity or a changed contract is a type error, not a stuck workflow; the
activity implementations register under the same reference (``@activity.defn(name=REF.name)``).
The workflows do not import the activity classes themselves (they hold SQLAlchemy and
clients), only these references and the contract models.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Generic, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy

from activities.contracts import (
    DeliveryReport,
    EventBatch,
    NoticeBatch,
    RecordReceipt,
    RosterPage,
    RosterPageRequest,
    SignalBatch,
    SignalReport,
    StartBatch,
    StartReport,
)
from activities.round_contracts import (
    AggregateRequest,
    CohortCheck,
    CohortReport,
    FanOutReport,
    RoundAggregate,
    RoundCheckResult,
    RoundFanOut,
    RoundStatusRecord,
    ScheduleRequest,
    StartRange,
    StartRangeReport,
)
from domain.evaluation import EvaluationResult
from domain.schedule import RoundSchedule
from workflows.digest_contracts import CircularReport, CircularRun, DigestReport, DigestRun
from workflows.evaluation_contracts import (
    CloseEvaluation,
    EvaluationWindow,
    PublishEvaluation,
    RectificationRequest,
    StepSettlement,
)

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass(frozen=True)
class ActivityRef(Generic[In, Out]):
    """An activity's registered name with its input and result types."""

    name: str
    input_type: type[In]
    result_type: type[Out]


@dataclass(frozen=True)
class SignalRef(Generic[In]):
    """A signal's registered name with its payload type."""

    name: str
    payload_type: type[In]


async def execute(
    ref: ActivityRef[In, Out],
    arg: In,
    *,
    start_to_close_timeout: timedelta,
    retry_policy: RetryPolicy | None = None,
    heartbeat_timeout: timedelta | None = None,
) -> Out:
    """Run the referenced activity from a workflow and return its typed result."""
    result: Out = await workflow.execute_activity(
        ref.name,
        arg,
        start_to_close_timeout=start_to_close_timeout,
        retry_policy=retry_policy,
        heartbeat_timeout=heartbeat_timeout,
        result_type=ref.result_type,
    )
    return result


async def execute_local(
    ref: ActivityRef[In, Out],
    arg: In,
    *,
    start_to_close_timeout: timedelta,
    schedule_to_close_timeout: timedelta,
    retry_policy: RetryPolicy,
) -> Out:
    """Run the referenced activity as a local activity: in the worker that runs the
    workflow task, inside that task (its result is one ``MARKER_RECORDED`` event, no
    schedule/start/complete and no second workflow task). ``schedule_to_close_timeout``
    bounds every attempt together, so a caller can fall back to :func:`execute`."""
    result: Out = await workflow.execute_local_activity(
        ref.name,
        arg,
        start_to_close_timeout=start_to_close_timeout,
        schedule_to_close_timeout=schedule_to_close_timeout,
        retry_policy=retry_policy,
        result_type=ref.result_type,
    )
    return result


# ----- recording and delivery (activities.recording) ---------------------------------------
RECORD_EVENTS: ActivityRef[EventBatch, int] = ActivityRef("record_events", EventBatch, int)
# ``record_events`` that also names the notices an external channel must carry (patch
# ``external-delivery-only``); the one above stays for runs recorded before it.
RECORD_OUTBOX: ActivityRef[EventBatch, RecordReceipt] = ActivityRef(
    "record_outbox", EventBatch, RecordReceipt
)
DELIVER_NOTICES: ActivityRef[NoticeBatch, DeliveryReport] = ActivityRef(
    "deliver_notices", NoticeBatch, DeliveryReport
)

# ----- kick-off and fan-out (activities.kickoff) -------------------------------------------
LOAD_ROSTER_PAGE: ActivityRef[RosterPageRequest, RosterPage] = ActivityRef(
    "load_roster_page", RosterPageRequest, RosterPage
)
START_ORGANISATION_WORKFLOWS: ActivityRef[StartBatch, StartReport] = ActivityRef(
    "start_organisation_workflows", StartBatch, StartReport
)
SIGNAL_ORGANISATIONS: ActivityRef[SignalBatch, SignalReport] = ActivityRef(
    "signal_organisations", SignalBatch, SignalReport
)

# ----- the bounded round (activities.round_progress, activities.round_fanout) --------------
RESOLVE_ROUND_SCHEDULE: ActivityRef[ScheduleRequest, RoundSchedule] = ActivityRef(
    "resolve_round_schedule", ScheduleRequest, RoundSchedule
)
RECORD_ROUND_STATUS: ActivityRef[RoundStatusRecord, bool] = ActivityRef(
    "record_round_status", RoundStatusRecord, bool
)
LOAD_ROUND_AGGREGATE: ActivityRef[AggregateRequest, RoundAggregate] = ActivityRef(
    "load_round_aggregate", AggregateRequest, RoundAggregate
)
START_ROUND_ORGANISATIONS: ActivityRef[StartRange, StartRangeReport] = ActivityRef(
    "start_round_organisations", StartRange, StartRangeReport
)
FAN_OUT_ROUND_SIGNAL: ActivityRef[RoundFanOut, FanOutReport] = ActivityRef(
    "fan_out_round_signal", RoundFanOut, FanOutReport
)
CHECK_ROUND_COHORTS: ActivityRef[CohortCheck, CohortReport] = ActivityRef(
    "check_round_cohorts", CohortCheck, CohortReport
)
# The cohort check and the aggregate in one pass (patch ``round-check-once``); the two
# above stay for rounds whose history was recorded before it.
CHECK_ROUND: ActivityRef[CohortCheck, RoundCheckResult] = ActivityRef(
    "check_round", CohortCheck, RoundCheckResult
)

# ----- 群众评议 (activities.evaluations) -----------------------------------------------------
OPEN_EVALUATION: ActivityRef[EvaluationWindow, EvaluationWindow] = ActivityRef(
    "open_evaluation", EvaluationWindow, EvaluationWindow
)
CLOSE_EVALUATION: ActivityRef[CloseEvaluation, EvaluationResult] = ActivityRef(
    "close_evaluation", CloseEvaluation, EvaluationResult
)
PUBLISH_EVALUATION: ActivityRef[PublishEvaluation, str] = ActivityRef(
    "publish_evaluation", PublishEvaluation, str
)
ORDER_EVALUATION_RECTIFICATION: ActivityRef[RectificationRequest, str] = ActivityRef(
    "order_evaluation_rectification", RectificationRequest, str
)
SETTLE_EVALUATION_STEP: ActivityRef[StepSettlement, str] = ActivityRef(
    "settle_evaluation_step", StepSettlement, str
)

# ----- daily digest and circular (activities.digests) --------------------------------------
SEND_DIGESTS: ActivityRef[DigestRun, DigestReport] = ActivityRef(
    "send_digests", DigestRun, DigestReport
)
PUBLISH_CIRCULAR: ActivityRef[CircularRun, CircularReport] = ActivityRef(
    "publish_circular", CircularRun, CircularReport
)

__all__ = [
    "ActivityRef",
    "SignalRef",
    "execute",
    "execute_local",
]
