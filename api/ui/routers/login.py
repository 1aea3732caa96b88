"""Login and logout pages (password and, when configured, the county's OpenID Connect
provider), the landing redirect and the vendored static files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import structlog
from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.routing import APIRoute

from api.deps import SessionDep, SettingsDep, client_ip
from api.errors import not_found
from api.ui.render import page
from api.ui.session import COOKIE, UiRoute, UiUser, redirect, same_origin, set_login_cookie
from chuangzheng import oidc
from chuangzheng.services import sign_in
from chuangzheng.services.sign_in import SignInRefused, SignInVia, Throttled
from chuangzheng.settings import Settings
from domain.organisation import ABOVE_COUNTY_ROLES, Role

router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)
STATIC = (Path(__file__).parent.parent / "static").resolve()
_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
#: The cookie that remembers state, nonce and PKCE verifier while the person is at the
#: identity provider (signed, short-lived, sent back only to the callback).
OIDC_COOKIE = "cz_oidc"
OIDC_PATH = "/ui/login/oidc"
_log = structlog.get_logger(__name__)


def _safe_next(target: str) -> str:
    """Only a path of this site (never another host) may follow a login."""
    return target if target.startswith("/ui") and not target.startswith("//") else "/ui/"


def _login_page(
    request: Request, settings: Settings, *, next: str, error: str = "", username: str = "",
    status_code: int = 200,
) -> Response:  # fmt: skip
    context = {
        "next": _safe_next(next),
        "error": error,
        "username": username,
        "oidc": settings.oidc_enabled,
    }
    return page(request, "login.html", context, status_code=status_code)


@router.get("/login")
def login_form(request: Request, settings: SettingsDep, next: str = "/ui/") -> Response:
    return _login_page(request, settings, next=next)


@router.post("/login")
def login_submit(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/ui/",
) -> Response:
    """Check the password as the API does (throttled alike); set the same token as a cookie."""
    same_origin(request)
    try:
        signed_in = sign_in.sign_in(
            session,
            username=username.strip(),
            password=password,
            ip=client_ip(request),
            via=SignInVia.PAGE,
            settings=settings,
        )
    except Throttled as exc:
        response = _login_page(
            request, settings, next=next, error=exc.message, username=username, status_code=429
        )
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except SignInRefused as exc:
        return _login_page(
            request, settings, next=next, error=exc.message, username=username, status_code=401
        )
    response = RedirectResponse(_safe_next(next), status_code=303)
    set_login_cookie(response, signed_in, settings)
    return response


@router.get("/login/oidc")
def oidc_start(request: Request, settings: SettingsDep, next: str = "/ui/") -> Response:
    """Send the person to the identity provider (authorization code flow with PKCE)."""
    if not settings.oidc_enabled:
        raise not_found()
    try:
        url, pending = oidc.begin(settings, _safe_next(next))
    except oidc.SingleSignOnFailed as exc:
        _log.warning("oidc_start_failed", detail=exc.errors)
        return _login_page(request, settings, next=next, error=exc.message, status_code=502)
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        OIDC_COOKIE,
        oidc.seal(pending, settings),
        httponly=True,
        # Lax: the provider's redirect back is a top-level GET, which carries it.
        samesite="lax",
        secure=settings.public_base_url.startswith("https"),
        max_age=int(oidc.PENDING_LIFETIME.total_seconds()),
        path=OIDC_PATH,
    )
    return response


@router.get("/login/oidc/callback")
def oidc_callback(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    code: str = "",
    state: str = "",
    error: str = "",
) -> Response:
    """Back from the provider: verify, map the identity to an account, sign in."""
    if not settings.oidc_enabled:
        raise not_found()
    sealed = request.cookies.get(OIDC_COOKIE)
    next_path = "/ui/"
    try:
        pending = oidc.unseal(sealed, settings)
        next_path = pending.next_path
        if error:
            raise oidc.SingleSignOnFailed("统一身份认证未完成登录（已取消或被拒绝）", error)
        claims = oidc.finish(settings, pending, code=code, state=state)
    except oidc.SingleSignOnFailed as exc:
        _log.warning("oidc_callback_failed", detail=exc.errors)
        response = _login_page(
            request, settings, next=next_path, error=exc.message, status_code=400
        )
        response.delete_cookie(OIDC_COOKIE, path=OIDC_PATH)
        return response
    username = claims.get(settings.oidc_username_claim)
    try:
        signed_in = sign_in.sign_in_with_identity(
            session,
            username=username if isinstance(username, str) else "",
            issuer=str(claims["iss"]),
            subject=str(claims["sub"]),
            ip=client_ip(request),
            settings=settings,
        )
    except SignInRefused as exc:
        response = _login_page(
            request, settings, next=next_path, error=exc.message, status_code=403
        )
        response.delete_cookie(OIDC_COOKIE, path=OIDC_PATH)
        return response
    response = RedirectResponse(_safe_next(next_path), status_code=303)
    response.delete_cookie(OIDC_COOKIE, path=OIDC_PATH)
    set_login_cookie(response, signed_in, settings)
    return response


@router.post("/logout")
def logout(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """Revoke the cookie's session (its token stops working everywhere) and drop the cookie."""
    same_origin(request)
    token = request.cookies.get(COOKIE)
    if token:
        sign_in.sign_out(session, token, settings, ip=client_ip(request), strict=False)
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/")
def home(user: UiUser) -> Response:
    """Secretaries land on their tasks, the offices above the county on their counties side
    by side, supervisors on the county overview."""
    if user.role in ABOVE_COUNTY_ROLES:
        return redirect("/ui/counties")
    return redirect("/ui/my" if user.role is Role.SECRETARY else "/ui/overview")


@router.get("/static/{path:path}")
def static(path: str) -> Response:
    """A file under ``api/ui/static`` (vendored from npm at install; never a CDN)."""
    target = (STATIC / path).resolve()
    if not target.is_file() or not target.is_relative_to(STATIC):
        raise not_found()
    return FileResponse(
        target,
        media_type=_TYPES.get(target.suffix),
        headers={"Cache-Control": "public, max-age=3600"},
    )


def favicon() -> Response:
    """The site icon at the path browsers ask for by themselves (pages link
    ``/ui/static/favicon.svg``; this answers the rest, e.g. the API docs, instead of 404)."""
    return static("favicon.svg")


# Outside the router's /ui prefix: /favicon.ico is fixed by the browsers.
router.routes.append(APIRoute("/favicon.ico", favicon, methods=["GET"], include_in_schema=False))
