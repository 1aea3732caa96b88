"""Login and logout pages, the landing redirect and the vendored static files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from api.auth import issue_token, login, record_login
from api.deps import SessionDep, SettingsDep, client_ip
from api.errors import ApiError, not_found
from api.ui.render import page
from api.ui.session import COOKIE, UiRoute, UiUser, redirect, same_origin
from domain.organisation import Role

router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)
STATIC = (Path(__file__).parent.parent / "static").resolve()
_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


def _safe_next(target: str) -> str:
    """Only a path of this site (never another host) may follow a login."""
    return target if target.startswith("/ui") and not target.startswith("//") else "/ui/"


@router.get("/login")
def login_form(request: Request, next: str = "/ui/") -> Response:
    return page(request, "login.html", {"next": _safe_next(next), "error": ""})


@router.post("/login")
def login_submit(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/ui/",
) -> Response:
    """Check the password as the API does; set the same signed token as a cookie."""
    same_origin(request)
    try:
        user = login(session, username.strip(), password)
    except ApiError as exc:
        context = {"next": _safe_next(next), "error": exc.message, "username": username}
        return page(request, "login.html", context, status_code=401)
    record_login(session, user, ip=client_ip(request), via="ui")
    session.commit()
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        COOKIE,
        issue_token(user, settings),
        httponly=True,
        samesite="lax",
        secure=settings.public_base_url.startswith("https"),
        max_age=12 * 3600,
        path="/",
    )
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    same_origin(request)
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/")
def home(user: UiUser) -> Response:
    """Secretaries land on their tasks, supervisors on the county overview."""
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
