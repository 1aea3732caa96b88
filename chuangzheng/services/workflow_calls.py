"""Updates and queries on workflows, with Temporal's failures turned into service errors.

A rejected Update (its validator raised the ``refusal()`` ApplicationError of
``workflows.organisation``) becomes :class:`Refused` with the validator's code, message and
field errors; a workflow that does not exist (round not kicked off, organisation not in the
round) is :class:`NotFound`; a call that times out or cannot reach the server is
:class:`TemporalUnavailable`, never a bare RPC error or a misleading conflict.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, TypeVar

import structlog
from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from chuangzheng.services.errors import Conflict, NotFound, Refused, TemporalUnavailable

T = TypeVar("T")
log = structlog.get_logger(__name__)

#: How long an Update may take before the caller is told to retry (a deadline storm queues
#: them; the retry carries the same idempotency key, which the workflow deduplicates).
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
_NOT_IN_ROUND = "该组织不在本轮活动中或本轮尚未启动"


def unconnected(exc: BaseException) -> bool:
    """Whether ``exc`` is a client's failure to reach the server at all: a client connected
    lazily (the API's, when Temporal was down at its start) raises a bare ``RuntimeError``
    on each call until the server answers, where a connected client raises ``RPCError``."""
    return isinstance(exc, RuntimeError) and str(exc).startswith("Failed client connect")


def unavailable_status(exc: BaseException) -> str | None:
    """The one answer to "does ``exc`` mean Temporal is busy or out of reach?": the status
    an operator reads in the log if it does (``UNAVAILABLE``, ``RPC_TIMEOUT``,
    ``NOT_CONNECTED``, …), None if it means anything else (a refusal, a missing workflow, a
    bug), which the caller must handle or let through."""
    if isinstance(exc, RPCError):
        return exc.status.name if exc.status in _UNAVAILABLE else None
    if isinstance(exc, RPCTimeoutOrCancelledError):
        return "RPC_TIMEOUT"
    if isinstance(exc, TimeoutError):
        return "TIMEOUT"
    if unconnected(exc):
        return "NOT_CONNECTED"
    return None


@contextlib.contextmanager
def temporal_trouble(call: str, workflow_id: str = "") -> Iterator[None]:
    """Around any call to Temporal: busy or out of reach (:func:`unavailable_status`) becomes
    :class:`TemporalUnavailable` (503 with ``Retry-After`` in the API), logged for the
    operator; everything else passes through unchanged."""
    try:
        yield
    except Exception as exc:
        status = unavailable_status(exc)
        if status is None:
            raise
        _unavailable(call, workflow_id, status, str(exc))
        raise TemporalUnavailable() from None


def _refused(exc: ApplicationError) -> Refused:
    errors: list[dict[str, Any]] = []
    if exc.details and isinstance(exc.details[0], dict):
        errors = list(exc.details[0].get("errors", []))
    return Refused(exc.type or "rejected", exc.message or "操作被拒绝", errors)


async def update(
    client: Client, workflow_id: str, name: str, arg: object, result_type: type[T]
) -> T:
    """Execute the Update ``name`` with ``arg``; refusals and Temporal trouble become
    service errors."""
    handle = client.get_workflow_handle(workflow_id)
    with temporal_trouble(name, workflow_id):
        try:
            result: T = await handle.execute_update(
                name, arg, result_type=result_type, rpc_timeout=UPDATE_RPC_TIMEOUT
            )
            return result
        except WorkflowUpdateFailedError as exc:
            if isinstance(exc.cause, ApplicationError):
                raise _refused(exc.cause) from None
            raise
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                raise NotFound(_NOT_IN_ROUND) from None
            if exc.status is RPCStatusCode.FAILED_PRECONDITION:
                raise Conflict("completed", "该活动流程已结束，不能再操作") from None
            raise


def _unavailable(name: str, workflow_id: str, status: str, message: str) -> None:
    """The operator's record of a 503: which call, and what the server said (the caller
    gets only "busy, retry"; a storm's 503s are told apart by this status)."""
    log.warning(
        "temporal_unavailable", call=name, workflow_id=workflow_id, status=status,
        message=message[:300],
    )  # fmt: skip


async def query(
    client: Client,
    workflow_id: str,
    name: str,
    result_type: type[T],
    *,
    rpc_timeout: timedelta = QUERY_RPC_TIMEOUT,
) -> T:
    """Run the query ``name``; a missing workflow is :class:`NotFound`."""
    handle = client.get_workflow_handle(workflow_id)
    with temporal_trouble(name, workflow_id):
        try:
            result: T = await handle.query(name, result_type=result_type, rpc_timeout=rpc_timeout)
            return result
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                raise NotFound(_NOT_IN_ROUND) from None
            raise
        except WorkflowQueryFailedError as exc:
            raise Conflict("query_failed", f"查询失败：{exc}") from None
