"""Size limits on what clients send, checked before anything reaches Temporal.

Every byte of an Update's argument is stored in the workflow's history, for every
organisation, and Temporal refuses payloads over 2MB (the gRPC message limit is 4MB): an
oversized evidence used to fail workflow tasks (``PAYLOADS_TOO_LARGE``) and come back as a
wrong 409 after 20 s. So free-form values are bounded here, in the request models (422 naming
the field, in Chinese), and whole request bodies by :class:`BodySizeLimit` (413).

=====================================  ==========================================
Limit                                  Value
=====================================  ==========================================
JSON or form body                      1MB (:data:`MAX_JSON_BODY_BYTES`)
multipart upload body                  25MB (:data:`MAX_MULTIPART_BODY_BYTES`)
evidence values, as compact JSON       256KB (:data:`MAX_EVIDENCE_BYTES`)
one text inside evidence               10,000 characters (:data:`MAX_EVIDENCE_TEXT`)
items of one list or object            1,000 (:data:`MAX_EVIDENCE_ITEMS`)
nesting of evidence values             4 levels (:data:`MAX_EVIDENCE_DEPTH`)
numbers inside evidence                finite (no NaN, no infinity)
reasons, comments, notes               2,000 characters (the body models' ``max_length``)
rectification report                   20,000 characters
=====================================  ==========================================
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

from fastapi import HTTPException
from pydantic import AfterValidator
from pydantic_core import PydanticCustomError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ApiError, body

MIB = 1024 * 1024
MAX_JSON_BODY_BYTES = 1 * MIB
MAX_MULTIPART_BODY_BYTES = 25 * MIB
#: A refused body up to this size is read and dropped before the 413 is sent (a client
#: still writing its body would otherwise see a reset connection instead of the answer).
MAX_DRAINED_BYTES = 64 * MIB
MAX_EVIDENCE_BYTES = 256 * 1024
MAX_EVIDENCE_TEXT = 10_000
MAX_EVIDENCE_ITEMS = 1_000
MAX_EVIDENCE_DEPTH = 4
MAX_KEY_LENGTH = 64


def _too_large(reason: str) -> PydanticCustomError:
    return PydanticCustomError("value_too_large", reason)


def _check(value: Any, path: str, depth: int) -> None:
    if depth > MAX_EVIDENCE_DEPTH:
        raise _too_large(f"{path}：嵌套超过 {MAX_EVIDENCE_DEPTH} 层")
    if isinstance(value, float) and not math.isfinite(value):
        # JSON has no NaN or infinity; Python's parser accepts them, and the payload would
        # carry them as null: refused rather than stored as something the secretary did not
        # send.
        raise PydanticCustomError("value_not_finite", f"{path}：数值无效（不是有限数）")
    if isinstance(value, str):
        if len(value) > MAX_EVIDENCE_TEXT:
            raise _too_large(f"{path}：文本超过上限 {MAX_EVIDENCE_TEXT} 字（当前 {len(value)} 字）")
    elif isinstance(value, dict):
        if len(value) > MAX_EVIDENCE_ITEMS:
            raise _too_large(f"{path}：超过上限 {MAX_EVIDENCE_ITEMS} 项")
        for key, item in value.items():
            if len(str(key)) > MAX_KEY_LENGTH:
                raise _too_large(f"{path}：字段名超过 {MAX_KEY_LENGTH} 个字符")
            _check(item, f"{path}.{key}", depth + 1)
    elif isinstance(value, list):
        if len(value) > MAX_EVIDENCE_ITEMS:
            raise _too_large(f"{path}：超过上限 {MAX_EVIDENCE_ITEMS} 项（当前 {len(value)} 项）")
        for index, item in enumerate(value):
            _check(item, f"{path}[{index}]", depth + 1)


def check_evidence(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` if every text, list and object in it, and the whole, are within limits."""
    _check(values, "材料", 0)
    size = len(json.dumps(values, ensure_ascii=False, separators=(",", ":")).encode())
    if size > MAX_EVIDENCE_BYTES:
        raise _too_large(
            f"材料内容超过上限 {MAX_EVIDENCE_BYTES // 1024}KB（当前 {size // 1024}KB），"
            "大段文字请作为文件上传"
        )
    return values


def evidence_within_limits(values: dict[str, Any], *, field: str) -> dict[str, Any]:
    """:func:`check_evidence` for values the API assembled itself (e.g. from the ledger):
    a 422 naming ``field`` instead of a payload Temporal would refuse."""
    try:
        return check_evidence(values)
    except PydanticCustomError as exc:
        raise ApiError(
            422, "invalid", "请求参数有误", [{"field": field, "reason": str(exc)}]
        ) from None


#: Free-form evidence (a step's values, a ledger entry's evidence): bounded as above.
Evidence = Annotated[dict[str, Any], AfterValidator(check_evidence)]


def _limit_text(limit: int) -> str:
    return f"{limit // MIB}MB"


class BodySizeLimit:
    """ASGI middleware: refuse a request body over the cap with 413 before it is read whole
    (by its Content-Length, or by counting when the body is streamed)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        json_max: int = MAX_JSON_BODY_BYTES,
        multipart_max: int = MAX_MULTIPART_BODY_BYTES,
    ) -> None:
        self.app = app
        self.json_max = json_max
        self.multipart_max = multipart_max

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope["headers"]}
        multipart = headers.get(b"content-type", b"").startswith(b"multipart/")
        limit = self.multipart_max if multipart else self.json_max
        message = f"请求内容超过上限 {_limit_text(limit)}"
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            if int(declared) <= MAX_DRAINED_BYTES:
                await _drain(receive)  # clients that cannot read early answers still get it
            await _send_413(send, message)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            event = await receive()
            if event["type"] == "http.request":
                received += len(event.get("body", b""))
                if received > limit:
                    if event.get("more_body", False):
                        await _drain(receive)
                    # FastAPI re-raises its HTTPException from body parsing; the error
                    # handler renders it in the common shape.
                    raise HTTPException(413, detail=message)
            return event

        await self.app(scope, counted, send)


async def _drain(receive: Receive) -> None:
    """Read and drop the rest of a refused body (at most :data:`MAX_DRAINED_BYTES`)."""
    drained = 0
    while drained <= MAX_DRAINED_BYTES:
        event = await receive()
        if event["type"] != "http.request":
            return
        drained += len(event.get("body", b""))
        if not event.get("more_body", False):
            return


async def _send_413(send: Send, message: str) -> None:
    content = json.dumps(body("too_large", message), ensure_ascii=False).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(content)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": content})
