"""What every workflow shares: activity options and how a domain refusal becomes an
ApplicationError (the reason in Chinese, a stable code, the field errors for the API)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

from domain.errors import DomainError

ACTIVITY_TIMEOUT = timedelta(seconds=30)
# Activities are idempotent, so retrying for as long as it takes is safe.
ACTIVITY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)

# The organisation workflow's flush as a local activity (patch ``local-flush``): one
# attempt may take as long as SQLite's busy timeout, and all attempts together stay under
# the 8 s at which the SDK would heartbeat the 10 s workflow task; past that budget the
# flush falls back to the regular activity, whose retries cost the workflow nothing while
# the read model is down (a local activity's retries would hold the workflow task). The
# budget cuts an attempt that hangs; attempts that fail at once are bounded by their
# number (the SDK does not end a local activity's back-off at the budget: measured, it
# went on retrying across workflow-task heartbeats).
LOCAL_FLUSH_ATTEMPT = timedelta(seconds=5)
LOCAL_FLUSH_BUDGET = timedelta(seconds=7)
LOCAL_FLUSH_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    maximum_interval=timedelta(seconds=2),
    maximum_attempts=3,
)


def refusal(exc: DomainError) -> ApplicationError:
    """A domain refusal as a non-retryable ApplicationError: the reason in Chinese, a stable
    ``type`` code, and every field error in the details for the API to render."""
    errors = [{"field": e.field, "reason": e.reason} for e in getattr(exc, "errors", [])]
    if not errors and exc.field is not None:
        errors = [{"field": exc.field, "reason": exc.reason}]
    return ApplicationError(
        exc.reason, {"code": exc.code, "errors": errors}, type=exc.code, non_retryable=True
    )


def checked(check: Callable[[], object]) -> None:
    """Run a domain check, turning a refusal into an ApplicationError."""
    try:
        check()
    except DomainError as exc:
        raise refusal(exc) from None
