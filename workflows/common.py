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
