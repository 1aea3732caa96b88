"""Every error the API returns has one shape: ``{code, message, errors: [{field, reason}]}``.

``code`` is a stable English code for clients, ``message`` and ``reason`` are Chinese for
users. Domain refusals, workflow update refusals (the ``refusal()`` ApplicationError format
of ``workflows.organisation``), request validation and HTTP errors all end up here.

Temporal trouble is never a 500: a call that timed out, a deadline exceeded or a server that
cannot be reached answers 503 with ``Retry-After`` (:func:`temporal_unavailable`), whether a
route mapped it (``api.workflow_calls``) or it escaped to the handler installed here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as SqlalchemyTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.client import RPCTimeoutOrCancelledError
from temporalio.service import RPCError

from chuangzheng.services.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    ServiceError,
    TemporalUnavailable,
)
from chuangzheng.services.field_errors import reason
from chuangzheng.services.workflow_calls import unavailable_status, unconnected
from domain.errors import DomainError

# Refusal codes of the domain and workflows -> HTTP status. Unlisted codes are conflicts.
_STATUS_BY_CODE: dict[str, int] = {
    "invalid": 422,
    "invalid_evidence": 422,
    "invalid_plan": 422,
    "invalid_roster": 422,
    "invalid_deadline": 422,
    "reason_required": 422,
    "unknown_step": 422,
    "too_many_rows": 422,
    "too_many_cells": 422,
    "too_large": 413,
    "forbidden": 403,
    "not_found": 404,
    "unauthorized": 401,
}

_HTTP_MESSAGES: dict[int, tuple[str, str]] = {
    400: ("bad_request", "请求有误"),
    401: ("unauthorized", "请先登录"),
    403: ("forbidden", "无权执行此操作"),
    404: ("not_found", "对象不存在或无权查看"),
    405: ("method_not_allowed", "不支持此请求方法"),
    409: ("conflict", "当前状态不允许此操作"),
    413: ("too_large", "上传内容过大"),
    415: ("unsupported_media_type", "不支持的文件类型"),
    422: ("invalid", "请求参数有误"),
    503: ("unavailable", "服务暂时不可用，请稍后重试"),
}

log = structlog.get_logger(__name__)

#: Seconds a client should wait before retrying after a 503 (Temporal or the database busy
#: or unreachable).
RETRY_AFTER_SECONDS = 5


class ApiError(Exception):
    """An error raised by a route, rendered in the common shape."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        errors: Sequence[Mapping[str, Any]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.errors = [dict(e) for e in errors]
        self.headers = dict(headers or {})


def temporal_unavailable(message: str = "流程服务暂时繁忙或不可用，请稍后重试") -> ApiError:
    """503 with ``Retry-After``: Temporal timed out or could not be reached; nothing the
    client sent was wrong, and retrying later (with the same Idempotency-Key) is safe."""
    return ApiError(
        503, "temporal_unavailable", message, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
    )


def database_unavailable() -> ApiError:
    """503 with ``Retry-After``: the read model could not be reached or stayed locked past its
    busy timeout (a deadline storm's writes on SQLite, a PostgreSQL restart). The request's
    transaction was rolled back; retrying later (with the same Idempotency-Key) is safe."""
    return ApiError(
        503,
        "database_unavailable",
        "数据库暂时繁忙或不可用，请稍后重试",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def not_found(message: str = "对象不存在或无权查看") -> ApiError:
    """404: used also for objects outside the caller's scope, so they do not leak."""
    return ApiError(404, "not_found", message)


def refused(code: str, message: str, errors: Sequence[Mapping[str, Any]] = ()) -> ApiError:
    """A business refusal with the status its code calls for."""
    return ApiError(_STATUS_BY_CODE.get(code, 409), code, message, errors)


def from_domain(exc: DomainError) -> ApiError:
    """A domain refusal, with every field error it carries."""
    errors = [{"field": e.field, "reason": e.reason} for e in getattr(exc, "errors", [])]
    if not errors and exc.field is not None:
        errors = [{"field": exc.field, "reason": exc.reason}]
    return refused(exc.code, exc.reason, errors)


def as_api_error(exc: ServiceError) -> ApiError:
    """A service's refusal as the API's error: one HTTP status per error class (a workflow's
    refusal takes the status its code calls for, see ``api.errors.refused``)."""
    if isinstance(exc, TemporalUnavailable):
        return temporal_unavailable(exc.message)
    if isinstance(exc, NotFound):
        return not_found(exc.message)
    if isinstance(exc, InvalidInput):
        return ApiError(422, exc.code, exc.message, exc.errors)
    if isinstance(exc, Conflict):
        return ApiError(409, exc.code, exc.message, exc.errors)
    return refused(exc.code, exc.message, exc.errors)


def body(code: str, message: str, errors: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The common error body."""
    return {"code": code, "message": message, "errors": list(errors)}


def _field(loc: Sequence[Any]) -> str:
    # Drop the "body"/"query"/"path" prefix: clients name fields, not request parts.
    parts = [str(p) for p in loc[1:]] if len(loc) > 1 else [str(p) for p in loc]
    return ".".join(parts)


def validation_errors(raw: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """pydantic/FastAPI errors as ``{field, reason}`` with Chinese reasons (the services'
    translation, ``chuangzheng.services.field_errors``: one table for every caller)."""
    return [{"field": _field(e.get("loc", ())), "reason": reason(e)} for e in raw]


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error the common shape."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            body(exc.code, exc.message, exc.errors),
            status_code=exc.status_code,
            headers=exc.headers or None,
        )

    async def _temporal(request: Request, exc: Exception) -> JSONResponse:
        # A Temporal call no service mapped: still a 503 for the caller. The operator reads
        # what it was: busy or out of reach (a warning, like the services' own), or
        # anything else, which retrying will not cure (a refused namespace, a malformed
        # request: an error to look into).
        status = unavailable_status(exc)
        (log.warning if status is not None else log.error)(
            "temporal_call_failed",
            path=request.url.path,
            error=type(exc).__name__,
            status=status or (exc.status.name if isinstance(exc, RPCError) else ""),
            message=str(exc)[:300],
        )
        return await _api_error(request, temporal_unavailable())

    for temporal_error in (RPCError, RPCTimeoutOrCancelledError, TimeoutError):
        app.add_exception_handler(temporal_error, _temporal)

    async def _runtime(request: Request, exc: Exception) -> JSONResponse:
        # A client that has not reached Temporal yet (the API started while it was down)
        # fails every call with a bare RuntimeError: the same 503. Anything else is a bug.
        if unconnected(exc):
            return await _temporal(request, exc)
        raise exc

    app.add_exception_handler(RuntimeError, _runtime)

    async def _database(request: Request, exc: Exception) -> JSONResponse:
        # Operational errors are the database's state, not the request's (connection lost,
        # server restarting, SQLite's lock held past the busy timeout, a pool with no free
        # connection): the caller retries later. Logged, so a persistent one is seen.
        log.warning(
            "database_unavailable",
            path=request.url.path,
            error=type(exc).__name__,
            message=str(exc).splitlines()[0][:300] if str(exc) else "",
        )
        return await _api_error(request, database_unavailable())

    for database_error in (OperationalError, SqlalchemyTimeoutError):
        app.add_exception_handler(database_error, _database)

    @app.exception_handler(DomainError)
    async def _domain_error(_: Request, exc: DomainError) -> JSONResponse:
        err = from_domain(exc)
        return JSONResponse(body(err.code, err.message, err.errors), status_code=err.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = validation_errors(exc.errors())
        return JSONResponse(body("invalid", "请求参数有误", errors), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:
            # Only the framework answers 400 (routes raise ApiError): a body it could not
            # parse (JSON that is not UTF-8, a broken multipart form). That is invalid input
            # like any other malformed body: 422, as every route with a body documents.
            problem = {"field": "body", "reason": "请求体格式不正确"}
            return JSONResponse(body("invalid", "请求参数有误", [problem]), status_code=422)
        code, message = _HTTP_MESSAGES.get(exc.status_code, ("error", "请求失败"))
        if isinstance(exc.detail, str) and exc.detail and not exc.detail.isascii():
            message = exc.detail  # a Chinese detail given by the route
        return JSONResponse(body(code, message), status_code=exc.status_code, headers=exc.headers)
