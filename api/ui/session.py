"""Cookie login for the pages: the same signed token as the API (``api.auth``), carried in
an HttpOnly, SameSite=Lax cookie, checked by the same :func:`api.auth.authenticate_token`.

Tokens are short-lived; the cookie renews itself (sliding): a page request made when more
than half of the token's life is spent renews the session and sends a fresh cookie, up to
the session's maximum, after which the person signs in again.

Pages use :data:`UiUser`; an absent or bad cookie redirects to the login page instead of
answering 401. Routers built with :class:`UiRoute` render refusals (``ApiError``: 404 outside
the scope, 403, 409, 422) as a Chinese HTML page with the same status code.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute
from starlette.routing import Match

from api.auth import User, authenticate_checked
from api.deps import SessionDep, SettingsDep
from api.errors import ApiError
from api.ui.render import (
    FLASH_KEYS,
    FLASH_SIGNATURE,
    flash_key,
    flash_signature,
    page,
    remember_system_names,
)
from chuangzheng.services import sign_in
from chuangzheng.services.sign_in import SignedIn, SignInRefused
from chuangzheng.settings import Settings

COOKIE = "cz_token"


class LoginRequired(Exception):
    """The request carries no valid login cookie."""


def set_login_cookie(response: Response, signed_in: SignedIn, settings: Settings) -> None:
    """Carry ``signed_in``'s token in the login cookie, kept as long as the token lives."""
    max_age = int((signed_in.expires_at - datetime.now(UTC)).total_seconds())
    response.set_cookie(
        COOKIE,
        signed_in.token,
        httponly=True,
        samesite="lax",
        secure=settings.public_base_url.startswith("https"),
        max_age=max(max_age, 1),
        path="/",
    )


def ui_user(request: Request, session: SessionDep, settings: SettingsDep) -> User:
    """The caller named by the login cookie; role and scope are read fresh from ``users``.
    Past half its life the token is renewed and :class:`UiRoute` sends the new cookie."""
    token = request.cookies.get(COOKIE)
    if not token:
        raise LoginRequired
    try:
        current = authenticate_checked(session, token, settings)
    except ApiError:
        raise LoginRequired from None
    left = current.expires_at - datetime.now(UTC)
    if left < sign_in.token_lifetime(settings) / 2:
        # At the session's maximum renewal is refused: the token serves until it expires.
        with contextlib.suppress(SignInRefused):
            request.state.renewed_login = sign_in.renew(session, token, settings)
    # The county's guidance group names for the page (issue 15), read here, off the loop.
    remember_system_names(request, session, current.user.counties)
    return current.user


UiUser = Annotated[User, Depends(ui_user)]


def same_origin(request: Request) -> None:
    """Refuse a cross-site form post (the cookie is SameSite=Lax; this is the second lock)."""
    origin = request.headers.get("origin")
    if origin and origin.rstrip("/") != f"{request.url.scheme}://{request.url.netloc}":
        raise ApiError(403, "forbidden", "跨站请求被拒绝")


def error_page(request: Request, exc: ApiError) -> Response:
    """A refusal as a page: the message, the field errors, the status code (and headers,
    e.g. a 503's Retry-After) kept."""
    response = page(
        request,
        "error.html",
        {"status": exc.status_code, "message": exc.message, "errors": exc.errors},
        status_code=exc.status_code,
    )
    response.headers.update(exc.headers)
    return response


def _is_page(request: Request, path: str) -> bool:
    """Whether a GET of ``path`` reaches a route of the app (a page, not a POST-only action)."""
    scope = {**request.scope, "method": "GET", "path": path, "root_path": ""}
    return any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes)


def after_login(request: Request) -> str:
    """The page to return to once signed in again. A GET comes back to itself; a form post
    whose session lapsed cannot be replayed by the browser (it would GET the action's URL:
    405), so it returns to the page the form was on (the Referer, when it is a page of
    this site under /ui), else to the action's page (``/ui/my/submit`` -> ``/ui/my``),
    else to /ui/."""
    url = request.url
    if request.method in ("GET", "HEAD"):
        return url.path + (f"?{url.query}" if url.query else "")
    referer = urlsplit(request.headers.get("referer", ""))
    # Host only, as api.security.same_site compares: behind a TLS-terminating proxy the app
    # sees http where the browser's Referer says https. Only its path and query are used.
    if (
        referer.netloc == url.netloc
        and referer.path.startswith("/ui/")
        and not referer.path.startswith("/ui/login")
        and _is_page(request, referer.path)
    ):
        return referer.path + (f"?{referer.query}" if referer.query else "")
    path = url.path.rstrip("/")
    while path.startswith("/ui/") and "/" in path[len("/ui/") :]:
        path = path.rsplit("/", 1)[0]
        if _is_page(request, path):
            return path
    return "/ui/"


class UiRoute(APIRoute):
    """A page route: login redirects and refusals rendered as HTML, not JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            # The key :func:`redirect` signs flash messages with, for this request only
            # (tests run apps of different keys in one process).
            flash_key.set(request.app.state.settings.secret_key)
            try:
                response = await handler(request)
            except LoginRequired:
                target = after_login(request)
                return RedirectResponse(f"/ui/login?next={quote(target)}", status_code=303)
            except ApiError as exc:
                response = error_page(request, exc)
            renewed: SignedIn | None = getattr(request.state, "renewed_login", None)
            if renewed is not None:
                set_login_cookie(response, renewed, request.app.state.settings)
            return response

        return page_handler


def redirect(path: str, **params: Any) -> RedirectResponse:
    """303 to ``path`` with query parameters (None values left out). The flash messages
    (``msg``, ``error``) are signed: pages show only signed ones (:func:`api.ui.render.page`),
    so a link cannot put words in the system's mouth. Messages already in ``path`` (a
    posted back URL) are dropped."""
    given = {k: str(v) for k, v in params.items() if v not in (None, "")}
    base, _, old = path.partition("?")
    kept = [(k, v) for k, v in parse_qsl(old, keep_blank_values=True) if k not in _FLASH_PARAMS]
    key = flash_key.get()
    flashes = [given.get(k, "") for k in FLASH_KEYS]
    if key is not None and any(flashes):
        given[FLASH_SIGNATURE] = flash_signature(key, *flashes)
    query = urlencode([*kept, *given.items()], quote_via=quote)
    return RedirectResponse(base + (f"?{query}" if query else ""), status_code=303)


_FLASH_PARAMS = (*FLASH_KEYS, FLASH_SIGNATURE)
