"""Calls into workflows with their refusals turned into API errors.

A rejected Update (its validator raised the ``refusal()`` ApplicationError) becomes a 4xx
with the validator's code, message and field errors; a workflow that does not exist (round
not kicked off, organisation not in the round) becomes a 404.
"""

from __future__ import annotations

from typing import Any, TypeVar

from temporalio.client import Client, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.errors import ApiError, not_found, refused

T = TypeVar("T")


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
        result: T = await handle.execute_update(name, arg, result_type=result_type)
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
        raise


async def query(client: Client, workflow_id: str, name: str, result_type: type[T]) -> T:
    """Run a query; a missing workflow is a 404."""
    handle = client.get_workflow_handle(workflow_id)
    try:
        result: T = await handle.query(name, result_type=result_type)
        return result
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            raise not_found("该组织不在本轮活动中或本轮尚未启动") from None
        raise
    except WorkflowQueryFailedError as exc:
        raise ApiError(409, "query_failed", f"查询失败：{exc}") from None
