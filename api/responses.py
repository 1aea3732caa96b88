"""The error statuses a route documents in OpenAPI, all with the common error body.

Routers declare what their routes can answer with :func:`errors` (``responses=``), e.g.
``APIRouter(responses=errors(*AUTHENTICATED, 404))`` and, per route,
``@router.post(..., responses=errors(*WITH_BODY, *TEMPORAL))``. ``tests/api/test_openapi.py``
checks every operation of ``/openapi.json`` against what the route actually depends on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, PlainSerializer


class FieldProblem(BaseModel):
    """One problem with one field (``reason`` in Chinese)."""

    field: str
    reason: str


class ErrorBody(BaseModel):
    """Every error the API returns: a stable English ``code``, a Chinese ``message``."""

    code: str = Field(examples=["invalid"])
    message: str = Field(examples=["请求参数有误"])
    errors: list[FieldProblem] = Field(default_factory=list)


DESCRIPTIONS: dict[int, str] = {
    401: "未登录或登录已过期（unauthorized）",
    403: "当前角色无权执行此操作（forbidden）",
    404: "对象不存在或不在权限范围内（not_found）",
    409: "当前状态不允许此操作（conflict、completed 等）",
    413: "请求或上传文件超过大小上限，上限写在 message 中（too_large）",
    415: "不支持的文件类型（unsupported_media_type）",
    422: "请求参数有误，errors 逐项列出字段与原因（invalid 等）",
    503: "流程服务（Temporal）或数据库繁忙、不可用，按 Retry-After 秒数后重试"
    "（temporal_unavailable、database_unavailable）",
}

#: Routes that need a login (bearer token or the pages' cookie) and check a role or scope.
AUTHENTICATED = (401, 403)
#: Routes with a request body (validated; capped by ``api.limits.BodySizeLimit``).
WITH_BODY = (413, 422)
#: Routes that call Temporal (timeouts and an unreachable server are 503).
TEMPORAL = (503,)
#: Routes that take an uploaded file.
UPLOAD = (413, 415, 422)


_RETRY_AFTER = {"description": "建议重试前等待的秒数", "schema": {"type": "integer"}}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for ``statuses``, each with the common error body."""
    documented: dict[int | str, dict[str, Any]] = {}
    for status in sorted(set(statuses)):
        entry: dict[str, Any] = {"model": ErrorBody, "description": DESCRIPTIONS[status]}
        if status == 503:
            entry["headers"] = {"Retry-After": _RETRY_AFTER}
        documented[status] = entry
    return documented


def document_unavailable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (the app's OpenAPI document) with 503 on every operation: every route reads
    or writes the database, which can be locked past its busy timeout or unreachable
    (``database_unavailable``), besides Temporal for the routes that call it. Declared here
    once rather than on every router."""
    # The common error body is a component already: the 4xx entries of every router use it.
    body = {"$ref": "#/components/schemas/ErrorBody"}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            responses.setdefault(
                "503",
                {
                    "description": DESCRIPTIONS[503],
                    "headers": {"Retry-After": _RETRY_AFTER},
                    "content": {"application/json": {"schema": body}},
                },
            )
    return schema


#: A moment in a response model, written as ``datetime.isoformat()`` (``+00:00``) like the
#: routes' untyped answers always were (pydantic alone would write ``Z``).
Timestamp = Annotated[
    datetime, PlainSerializer(lambda moment: moment.isoformat(), return_type=str, when_used="json")
]


def file_response(*media_types: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` of a route that answers with a file (or page) of one of
    ``media_types`` instead of JSON; the route also sets ``response_class``."""
    return {200: {"content": {m: {} for m in media_types}, "description": "文件"}}
