"""The county guard (``api.tenancy``) sits on routers whose every route has a signed-in
caller: a route without one (activation, sign-in) must not be behind it, or it would start
asking for a login. Checked on the routes as declared, no server needed."""

from __future__ import annotations

import importlib
import pkgutil

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from api import main
from api.deps import get_current_user
from api.ui import routers as ui_routers
from api.ui.session import ui_user


def _signed_in(dependant: Dependant) -> bool:
    return any(d.call is get_current_user or _signed_in(d) for d in dependant.dependencies)


def test_every_guarded_route_has_a_signed_in_caller() -> None:
    unguardable = [
        f"{sorted(route.methods or ())} {route.path}"
        for module in main._COUNTY_GUARDED
        for route in module.router.routes
        if isinstance(route, APIRoute) and not _signed_in(route.dependant)
    ]
    assert not unguardable
    assert len(main._COUNTY_GUARDED) >= 20


def test_every_guarded_page_has_a_signed_in_caller() -> None:
    """``api.ui.routes`` guards every page router but sign-in, activation (the accounts
    pages) and the short links: each of their routes has the login cookie's account."""
    unguardable = []
    for info in pkgutil.iter_modules(ui_routers.__path__):
        if info.name in _OPEN_PAGES:
            continue
        module = importlib.import_module(f"api.ui.routers.{info.name}")
        unguardable += [
            f"{sorted(route.methods or ())} {route.path}"
            for route in module.router.routes
            if isinstance(route, APIRoute) and not _calls(route.dependant, ui_user)
        ]
    assert not unguardable


#: The page routers ``api.ui.routes`` leaves unguarded.
_OPEN_PAGES = {"login", "accounts", "links"}


def _calls(dependant: Dependant, call: object) -> bool:
    return any(d.call is call or _calls(d, call) for d in dependant.dependencies)
