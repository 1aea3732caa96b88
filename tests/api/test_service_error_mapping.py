"""The API's one mapping from service errors to HTTP (``api.routers.actions.as_api_error``):
each class of ``chuangzheng.services.errors`` has one status, a workflow's refusal the
status its code calls for."""

from __future__ import annotations

import pytest

from api.routers.actions import as_api_error
from chuangzheng.services.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    Refused,
    ServiceError,
    TemporalUnavailable,
)


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (NotFound(), 404, "not_found"),
        (InvalidInput("idempotency_key_reused", "reused"), 422, "idempotency_key_reused"),
        (Conflict("completed", "finished"), 409, "completed"),
        (TemporalUnavailable(), 503, "temporal_unavailable"),
        (Refused("forbidden", "no"), 403, "forbidden"),
        (Refused("reason_required", "why?"), 422, "reason_required"),
        (Refused("wrong_phase", "not now"), 409, "wrong_phase"),
    ],
)
def test_each_service_error_has_one_status(error: ServiceError, status: int, code: str) -> None:
    mapped = as_api_error(error)
    assert (mapped.status_code, mapped.code, mapped.message) == (status, code, error.message)


def test_unavailable_tells_the_client_when_to_retry() -> None:
    assert int(as_api_error(TemporalUnavailable()).headers["Retry-After"]) > 0


def test_field_reasons_travel_with_the_refusal() -> None:
    errors = [{"field": "reason", "reason": "退回须说明理由"}]
    assert as_api_error(Refused("reason_required", "须说明理由", errors)).errors == errors
