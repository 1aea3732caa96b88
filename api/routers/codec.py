"""The codec endpoint for the Temporal UI (``/codec/decode``, ``/codec/encode``).

With payload encryption on (``chuangzheng.payload_codec``) the Temporal UI shows ciphertext.
Its remote codec protocol lets the browser send the payloads it shows here to be decoded:
``POST /codec/decode`` with ``{"payloads": [{"metadata": {k: base64}, "data": base64}]}``
(Temporal's ``Payloads`` message in protobuf JSON), an ``X-Namespace`` header, and the same
shape back. ``/codec/encode`` is the reverse (the UI encodes what a person types to signal a
workflow). The codec is the one of this process's Temporal client, so the endpoint decodes
exactly what the worker and the API encrypt, with the same keys.

Who may decode: signed-in county office staff (县委活动办) only. The caller is named by a
bearer token (``Authorization``, as the API's clients send it) or by the pages' login cookie
(the UI configured with ``TEMPORAL_CODEC_INCLUDE_CREDENTIALS=true`` sends it when the UI and
this service share a site). Anonymous: 401; another role: 403; a namespace other than
``CZ_TEMPORAL_NAMESPACE``: 403. Cross-origin calls (CORS, with credentials) are answered for
``CZ_TEMPORAL_UI_ORIGIN`` only; a page of any other site is refused with 403, and so is the
sign-in cookie arriving without a page of this site or the UI naming itself (``Origin`` or
``Referer``): the endpoint is exempt from the pages' cross-site check
(:data:`api.security.CSRF_EXEMPT`) because it makes this one itself.
Nothing here is cached (``Cache-Control: no-store``); every decode is logged with who asked.

The routes stay out of the OpenAPI document: the protocol is Temporal's, not this API's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.converter import PayloadCodec

from api.auth import User, authenticate_token
from api.deps import SessionsDep, SettingsDep, bearer
from api.errors import ApiError
from api.security import same_site
from api.ui.session import COOKIE
from chuangzheng.payload_codec import PayloadDecryptionError
from chuangzheng.settings import Settings
from domain.organisation import Role

router = APIRouter(prefix="/codec", tags=["编解码 codec"], include_in_schema=False)
log = structlog.get_logger("chuangzheng.codec")

#: Who may see decoded payloads (they hold every organisation's evidence and decisions).
CODEC_ROLES: frozenset[Role] = frozenset({Role.COUNTY_OFFICE})
#: Request headers the Temporal UI sends to a codec server.
ALLOWED_HEADERS = "authorization, content-type, x-namespace"


def cors_headers(request: Request, settings: Settings) -> dict[str, str]:
    """CORS headers for the configured Temporal UI origin; none for any other origin."""
    origin = request.headers.get("origin", "").rstrip("/")
    if not origin or not settings.temporal_ui_origin or origin != settings.temporal_ui_origin:
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Vary": "Origin",
    }


def _refuse(status: int, code: str, message: str, cors: Mapping[str, str]) -> ApiError:
    return ApiError(status, code, message, headers={**cors, "Cache-Control": "no-store"})


def _check_origin(
    request: Request, settings: Settings, cors: Mapping[str, str], *, by_cookie: bool
) -> None:
    """403 for a browser page of another site. A browser names the page's site (``Origin``,
    else ``Referer``); the Temporal UI's origin and this site's own pages pass. A request
    carrying the sign-in cookie must name one of them (the browser attaches the cookie by
    itself); a bearer token without ``Origin`` is a program, not a page, and passes."""
    if cors:
        return
    origin = request.headers.get("origin")
    if (origin or by_cookie) and not same_site(request.headers, settings.public_base_url):
        raise _refuse(403, "forbidden", "此来源无权调用编解码服务", cors)


def codec_user(
    request: Request,
    sessions: SessionsDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> User:
    """The county office member calling, by bearer token or login cookie (a plain function:
    FastAPI runs it in the threadpool, where the account is read)."""
    cors = cors_headers(request, settings)
    bearer_token = (
        credentials.credentials
        if credentials is not None and credentials.scheme.lower() == "bearer"
        else None
    )
    token = bearer_token or request.cookies.get(COOKIE)
    _check_origin(request, settings, cors, by_cookie=bearer_token is None and token is not None)
    if not token:
        raise _refuse(401, "unauthorized", "请先登录", cors)
    try:
        with sessions() as session:
            user = authenticate_token(session, token, settings)
    except ApiError as refused:
        raise _refuse(refused.status_code, refused.code, refused.message, cors) from None
    if user.role not in CODEC_ROLES:
        raise _refuse(403, "forbidden", "仅县委活动办人员可查看解密后的工作流数据", cors)
    namespace = request.headers.get("x-namespace")
    if namespace is not None and namespace != settings.temporal_namespace:
        raise _refuse(
            403, "forbidden", f"编解码服务只服务命名空间 {settings.temporal_namespace}", cors
        )
    return user


CodecUser = Annotated[User, Depends(codec_user)]


def _codec(request: Request) -> PayloadCodec | None:
    codec: PayloadCodec | None = request.app.state.temporal.data_converter.payload_codec
    return codec


async def _payloads(request: Request, cors: Mapping[str, str]) -> list[Payload]:
    body = await request.body()
    message = Payloads()
    try:
        json_format.Parse(body, message)
    except (json_format.ParseError, UnicodeDecodeError, ValueError) as exc:
        raise ApiError(
            422,
            "invalid",
            '请求体应为 {"payloads": [...]}（Temporal 的 Payloads JSON）',
            [{"field": "payloads", "reason": str(exc)[:200]}],
            headers={**cors, "Cache-Control": "no-store"},
        ) from None
    return list(message.payloads)


def _answer(payloads: list[Payload], cors: Mapping[str, str]) -> JSONResponse:
    body = {"payloads": [json_format.MessageToDict(p) for p in payloads]}
    return JSONResponse(body, headers={**cors, "Cache-Control": "no-store"})


@router.post("/decode")
async def decode(request: Request, user: CodecUser, settings: SettingsDep) -> JSONResponse:
    """The payloads, decrypted (an unencrypted payload comes back as it was)."""
    cors = cors_headers(request, settings)
    payloads = await _payloads(request, cors)
    codec = _codec(request)
    try:
        decoded = await codec.decode(payloads) if codec is not None and payloads else payloads
    except PayloadDecryptionError as exc:
        log.warning("codec decode refused", user=user.username, key_id=exc.key_id)
        raise ApiError(
            422,
            "undecodable",
            "有载荷无法解密",
            [{"field": "payloads", "reason": str(exc)}],
            headers={**cors, "Cache-Control": "no-store"},
        ) from None
    log.info("codec decode", user=user.username, payloads=len(payloads))
    return _answer(decoded, cors)


@router.post("/encode")
async def encode(request: Request, user: CodecUser, settings: SettingsDep) -> JSONResponse:
    """The payloads, encrypted under the current key (as they are when encryption is off)."""
    cors = cors_headers(request, settings)
    payloads = await _payloads(request, cors)
    codec = _codec(request)
    encoded = await codec.encode(payloads) if codec is not None and payloads else payloads
    log.info("codec encode", user=user.username, payloads=len(payloads))
    return _answer(encoded, cors)


def _preflight(request: Request, settings: Settings) -> Response:
    cors = cors_headers(request, settings)
    if not cors:
        return Response(status_code=403, headers={"Cache-Control": "no-store"})
    return Response(
        status_code=204,
        headers={
            **cors,
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": ALLOWED_HEADERS,
            "Access-Control-Max-Age": "600",
        },
    )


@router.options("/decode")
async def decode_preflight(request: Request, settings: SettingsDep) -> Response:
    """CORS preflight: allowed for the Temporal UI's origin only."""
    return _preflight(request, settings)


@router.options("/encode")
async def encode_preflight(request: Request, settings: SettingsDep) -> Response:
    """CORS preflight: allowed for the Temporal UI's origin only."""
    return _preflight(request, settings)
