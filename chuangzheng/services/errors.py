"""What a use case refuses with: typed errors with a stable English ``code``, a Chinese
``message`` and per-field reasons, independent of any transport.

The API maps each class to one HTTP status (``api.errors.as_api_error``); a page shows
``message`` and the reasons; the CLI prints them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from domain.errors import DomainError, ValidationFailed


class ServiceError(Exception):
    """A use case refused: ``code`` for programs, ``message`` and ``errors`` for people."""

    def __init__(self, code: str, message: str, errors: Sequence[Mapping[str, Any]] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.errors: list[dict[str, Any]] = [dict(e) for e in errors]


class NotFound(ServiceError):
    """The object does not exist, or the caller may not see it (the two look the same, so a
    caller cannot learn what exists outside their scope)."""

    def __init__(self, message: str = "对象不存在或无权查看") -> None:
        super().__init__("not_found", message)


class InvalidInput(ServiceError):
    """What the caller sent is malformed (an unknown action, a reused idempotency key, a
    plan that does not load)."""


class Refused(ServiceError):
    """The workflow's validator refused the action; ``code`` is the validator's (e.g.
    ``forbidden``, ``reason_required``, ``wrong_phase``), so the caller can tell why."""


class Conflict(ServiceError):
    """The object's state no longer allows the call (a finished campaign, a failed query)."""


class TooLarge(ServiceError):
    """An upload, or what it expands to, is over a size limit (the limit named in the
    message and the field errors)."""

    def __init__(self, message: str, errors: Sequence[Mapping[str, Any]] = ()) -> None:
        super().__init__("too_large", message, errors)


class TemporalUnavailable(ServiceError):
    """Temporal timed out or could not be reached: nothing the caller sent was wrong, and a
    retry later with the same idempotency key is safe."""

    def __init__(self, message: str = "流程服务暂时繁忙或不可用，请稍后重试") -> None:
        super().__init__("temporal_unavailable", message)


def from_domain(exc: DomainError) -> ServiceError:
    """A domain refusal as a service error, with its code and every field error: broken
    field rules (``ValidationFailed``, e.g. a plan that does not load) are
    :class:`InvalidInput` (:class:`TooLarge` for a size limit), any other rule
    :class:`Refused`."""
    errors = [{"field": e.field, "reason": e.reason} for e in getattr(exc, "errors", [])]
    if not errors and exc.field is not None:
        errors = [{"field": exc.field, "reason": exc.reason}]
    if exc.code == "too_large":
        return TooLarge(exc.reason, errors)
    if isinstance(exc, ValidationFailed):
        return InvalidInput(exc.code, exc.reason, errors)
    return Refused(exc.code, exc.reason, errors)


@contextlib.contextmanager
def domain_refusals() -> Iterator[None]:
    """Domain refusals raised inside the block as service errors (:func:`from_domain`)."""
    try:
        yield
    except DomainError as exc:
        raise from_domain(exc) from None
