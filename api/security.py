"""What every response and every request to the service passes through: security headers,
the cross-site check of page forms, and ids in paths that cannot be ids.

Headers (:func:`security_headers`): a Content-Security-Policy that lets a page load only
this site's scripts and styles (the public pages' inline ``<style>`` blocks carry the
request's nonce, ``request.state.csp_nonce``), no framing (``frame-ancestors 'none'`` and
``X-Frame-Options: DENY``), ``nosniff``, ``Referrer-Policy: same-origin`` (``no-referrer``
on ballot pages, whose URL holds the one-time token), and ``Cache-Control: no-store`` on
signed-in pages, on answers to a bearer token and on downloads: shared computers and proxies
keep no copy of a person's data.

Cross-site forms (CSRF): a state-changing request to a page (anything outside ``/api/``)
must come from this site: a same-origin ``Origin`` header, or failing that a same-origin
``Referer``; with neither, or a foreign one, it is refused with a 403 page before any route
runs. The API is exempt: it authenticates with a bearer token that a browser never attaches
by itself. Casting a ballot is exempt too: its form posts the one-time token, a secret no
other site has, and the ballot page's ``no-referrer`` policy makes browsers send
``Origin: null``.

Paths and paging: a path with control characters (``/rounds/%0B/circulars``) names nothing
the service stores; it is refused with 422 here, once for every route, instead of reaching a
workflow. So is an ``offset`` or ``limit`` beyond :data:`MAX_PAGING` on any route (the
routes bound their own pages; this keeps a forgotten bound from overflowing the database's
integers, a 500).

NUL characters: in a query parameter (here) or in a JSON or form body (:func:`refuse_nul`, a
dependency of every route) they are refused with 422 naming the field: nobody types one, and
PostgreSQL text cannot hold it.
"""

from __future__ import annotations

import json
import re
import secrets
from urllib.parse import parse_qsl, urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ApiError

#: Methods that change nothing (RFC 9110 safe methods): never checked for their origin.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
#: Page paths whose forms carry their own secret (the ballot's one-time token), and the
#: Temporal UI's codec endpoint (``api.routers.codec``: it checks the origin itself).
CSRF_EXEMPT = frozenset({"/ballot", "/codec/decode", "/codec/encode"})
CSRF_MESSAGE = "跨站请求被拒绝：请在本站页面上提交表单"
#: The largest ``offset`` or ``limit`` any list accepts.
MAX_PAGING = 10_000_000
_PAGING = frozenset({"offset", "limit"})

# Swagger UI (FastAPI's /docs) loads its script and style from a CDN and starts with an
# inline script: the only pages allowed either.
_DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
_DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    "object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)


def content_security_policy(nonce: str) -> str:
    """The policy of every page but the API docs. Style attributes stay allowed
    (``style-src-attr``): the chart library sets them in its tooltips, and an attribute
    cannot run code; style elements need the nonce."""
    return (
        "default-src 'self'; script-src 'self'; "
        f"style-src 'self' 'nonce-{nonce}'; style-src-attr 'unsafe-inline'; "
        "img-src 'self' data:; object-src 'none'; base-uri 'self'; form-action 'self'; "
        "frame-ancestors 'none'"
    )


def _control_characters(path: str) -> bool:
    """Whether ``path`` (percent-decoded) holds C0/C1 control characters or DEL."""
    return any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in path)


def _paging_beyond_bounds(query_string: bytes) -> str | None:
    """The name of an ``offset``/``limit`` parameter whose integer exceeds
    :data:`MAX_PAGING`, if any."""
    try:
        params = parse_qsl(query_string.decode("latin-1"))
    except ValueError:
        return None
    for name, value in params:
        digits = value.strip().lstrip("+-")
        if name in _PAGING and digits.isdecimal() and int(digits) > MAX_PAGING:
            return name
    return None


def _nul_parameter(query_string: bytes) -> str | None:
    """The name of a query parameter whose (percent-decoded) value holds a NUL, if any."""
    if b"%00" not in query_string and b"\x00" not in query_string:
        return None
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if "\x00" in value or "\x00" in name:
            return name.replace("\x00", "")
    return None


#: ``\u0000`` in JSON text that is an escape (not an escaped backslash followed by "u0000").
JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_NUL_REASON = "不能包含空字符（\\u0000）"


def _nul_refused(field: str) -> ApiError:
    return ApiError(422, "invalid", "请求参数有误", [{"field": field, "reason": _NUL_REASON}])


async def refuse_nul(request: Request) -> None:
    """A dependency of every route: 422 for a NUL character in a JSON or form body.

    NUL is in nothing a person types, and PostgreSQL text cannot hold it: a reason with one
    reached a workflow's history and then failed the read model's every write for that
    organisation. The body is already read (FastAPI reads it before the dependencies run,
    and keeps it), so this costs a search over bytes in memory."""
    if request.method in SAFE_METHODS:
        return
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        if JSON_NUL.search(await request.body()):
            raise _nul_refused("body")
    elif content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        for name, value in form.multi_items():
            if isinstance(value, str) and "\x00" in value:
                raise _nul_refused(name)


def _ballot_path(path: str) -> bool:
    # The ballot page and the printed slips (``/api/v1/evaluations/{id}/tokens``).
    return path.startswith(("/ballot", "/public/ballot")) or path.endswith("/tokens")


def _no_store(scope: Scope, headers: Headers, response: MutableHeaders) -> bool:
    path: str = scope["path"]
    if path.startswith("/ui/static/"):
        return False
    if path.startswith("/ui/") or _ballot_path(path) or "authorization" in headers:
        return True
    return response.get("content-disposition", "").lower().startswith("attachment")


def same_site(headers: Headers, public_base_url: str | None = None) -> bool:
    """Whether the request comes from a page of this site: its ``Origin`` (or, without one,
    its ``Referer``) names the host the request was sent to (``Host``, or the proxy's
    ``X-Forwarded-Host``; a browser's form cannot set either) or the site's public address
    (``CZ_PUBLIC_BASE_URL``). Only host and port are compared: behind a TLS-terminating
    proxy the app may see ``http`` where the browser says ``https``."""
    ours = {headers.get("host", ""), headers.get("x-forwarded-host", "").split(",")[0].strip()}
    if public_base_url:
        ours.add(urlsplit(public_base_url).netloc)
    ours = {host.lower() for host in ours if host}
    origin = headers.get("origin")
    source = origin if origin and origin != "null" else headers.get("referer")
    if not source:
        return False
    try:
        netloc = urlsplit(source).netloc.lower()
    except ValueError:
        return False
    return bool(netloc) and netloc in ours


def _public_base_url(scope: Scope) -> str | None:
    """The configured public address, once the app's lifespan has read the settings."""
    app = scope.get("app")
    settings = getattr(getattr(app, "state", None), "settings", None)
    return getattr(settings, "public_base_url", None)


class SecurityMiddleware:
    """ASGI middleware: refuses bad paths (422) and cross-site page posts (403), and adds the
    security headers to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        nonce = secrets.token_urlsafe(16)
        scope.setdefault("state", {})["csp_nonce"] = nonce
        headers = Headers(scope=scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                response = MutableHeaders(scope=message)
                security_headers(scope, headers, response, nonce)
            await send(message)

        if _control_characters(path):
            await _refuse(send_with_headers, "path", "路径中含有控制字符，不是有效的编号")
            return
        nul = _nul_parameter(scope.get("query_string", b""))
        if nul is not None:
            await _refuse(send_with_headers, nul, _NUL_REASON)
            return
        paging = _paging_beyond_bounds(scope.get("query_string", b""))
        if paging is not None:
            await _refuse(send_with_headers, paging, f"应为不超过 {MAX_PAGING} 的整数")
            return
        if (
            scope["method"] not in SAFE_METHODS
            and not path.startswith("/api/")
            and path not in CSRF_EXEMPT
            and not same_site(headers, _public_base_url(scope))
        ):
            await _refuse_cross_site(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


def security_headers(scope: Scope, headers: Headers, response: MutableHeaders, nonce: str) -> None:
    """Set the security headers on ``response`` (see the module's docstring)."""
    path: str = scope["path"]
    response["Content-Security-Policy"] = (
        _DOCS_CSP if path in _DOCS_PATHS else content_security_policy(nonce)
    )
    response["X-Frame-Options"] = "DENY"
    response["X-Content-Type-Options"] = "nosniff"
    response["Referrer-Policy"] = "no-referrer" if _ballot_path(path) else "same-origin"
    if _no_store(scope, headers, response):
        response["Cache-Control"] = "no-store"


async def _refuse(send: Send, field: str, reason: str) -> None:
    """422 in the API's error shape, naming ``field``."""
    body = json.dumps(
        {
            "code": "invalid",
            "message": "请求参数有误",
            "errors": [{"field": field, "reason": reason}],
        },
        ensure_ascii=False,
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 422,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _refuse_cross_site(scope: Scope, receive: Receive, send: Send) -> None:
    # The dashboard's error page (imported here: the templates load with the UI package).
    from api.ui.render import page

    response = page(
        Request(scope, receive),
        "error.html",
        {"status": 403, "message": CSRF_MESSAGE, "errors": []},
        status_code=403,
    )
    await response(scope, receive, send)
