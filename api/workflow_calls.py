"""Calls into workflows from routes and pages, with the service's errors as API errors.

The calls themselves (timeouts, which Temporal failure means what) live in
:mod:`chuangzheng.services.workflow_calls`; here each :class:`ServiceError` becomes its HTTP
status (:func:`api.errors.as_api_error`): a validator's refusal a 4xx with its code and field
errors, a missing workflow 404, a timeout or an unreachable server 503 with ``Retry-After``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TypeVar

from temporalio.client import Client

from api.errors import as_api_error
from chuangzheng.services import workflow_calls as calls
from chuangzheng.services.errors import ServiceError

T = TypeVar("T")


async def update(
    client: Client, workflow_id: str, name: str, arg: object, result_type: type[T]
) -> T:
    """Execute an Update; refusals and Temporal trouble become :class:`api.errors.ApiError`."""
    try:
        return await calls.update(client, workflow_id, name, arg, result_type)
    except ServiceError as exc:
        raise as_api_error(exc) from None


async def query(
    client: Client,
    workflow_id: str,
    name: str,
    result_type: type[T],
    *,
    rpc_timeout: timedelta = calls.QUERY_RPC_TIMEOUT,
) -> T:
    """Run a query; a missing workflow is a 404, an unanswered one a 503."""
    try:
        return await calls.query(client, workflow_id, name, result_type, rpc_timeout=rpc_timeout)
    except ServiceError as exc:
        raise as_api_error(exc) from None
