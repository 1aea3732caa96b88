"""Calls into workflows with their refusals turned into API errors.

A rejected Update (its validator raised the ``refusal()`` ApplicationError) becomes a 4xx
with the validator's code, message and field errors; a workflow that does not exist (round
not kicked off, organisation not in the round) becomes a 404. A call that times out (the
``rpc_timeout`` below, or the server's own deadline) or cannot reach the server is a 503 with
``Retry-After`` (:func:`api.errors.temporal_unavailable`), never a 500 or a misleading 409.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeVar

from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.errors import ApiError, not_found, refused, temporal_unavailable

T = TypeVar("T")

#: How long an Update may take before the API answers 503 (a deadline storm queues them;
#: the client retries with the same Idempotency-Key, which the workflow deduplicates).
UPDATE_RPC_TIMEOUT = timedelta(seconds=20)
#: How long a query may take (a query needs a worker to answer it; none running = timeout).
QUERY_RPC_TIMEOUT = timedelta(seconds=10)
#: Temporal statuses that mean "busy or unreachable, try again later".
_UNAVAILABLE = frozenset(
    {
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.RESOURCE_EXHAUSTED,
        RPCStatusCode.CANCELLED,
    }
)


def _from_application_error(exc: ApplicationError) -> ApiError:
    code = exc.type or "rejected"
    errors: list[dict[str, Any]] = []
    if exc.details and isinstance(exc.details[0], dict):
        errors = list(exc.details[0].get("errors", []))
    return refused(code, exc.message or "操作被拒绝", errors)


async def update(
    client: Client, workflow_id: str, name: str, arg: object, result_type: type[T]
) -> T:
    """Execute an Update; refusals become :class:`ApiError`."""
    handle = client.get_workflow_handle(workflow_id)
    try:
        result: T = await handle.execute_update(
            name, arg, result_type=result_type, rpc_timeout=UPDATE_RPC_TIMEOUT
        )
        return result
    except WorkflowUpdateFailedError as exc:
        if isinstance(exc.cause, ApplicationError):
            raise _from_application_error(exc.cause) from None
        raise
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            raise not_found("该组织不在本轮活动中或本轮尚未启动") from None
        if exc.status is RPCStatusCode.FAILED_PRECONDITION:
            raise ApiError(409, "completed", "该活动流程已结束，不能再操作") from None
        if exc.status in _UNAVAILABLE:
            raise temporal_unavailable() from None
        raise
    except RPCTimeoutOrCancelledError:
        raise temporal_unavailable() from None


async def query(client: Client, workflow_id: str, name: str, result_type: type[T]) -> T:
    """Run a query; a missing workflow is a 404."""
    handle = client.get_workflow_handle(workflow_id)
    try:
        result: T = await handle.query(name, result_type=result_type, rpc_timeout=QUERY_RPC_TIMEOUT)
        return result
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            raise not_found("该组织不在本轮活动中或本轮尚未启动") from None
        if exc.status in _UNAVAILABLE:
            raise temporal_unavailable() from None
        raise
    except RPCTimeoutOrCancelledError:
        raise temporal_unavailable() from None
    except WorkflowQueryFailedError as exc:
        raise ApiError(409, "query_failed", f"查询失败：{exc}") from None
