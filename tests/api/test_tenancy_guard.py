"""The county guard (``api.tenancy``) sits on routers whose every route has a signed-in
caller: a route without one (activation, sign-in) must not be behind it, or it would start
asking for a login. Checked on the routes as declared, no server needed."""

from __future__ import annotations

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from api import main
from api.deps import get_current_user
from api.tenancy import ui_county_guard
from api.ui import routes as ui_routes
from api.ui.session import ui_user


def _signed_in(dependant: Dependant) -> bool:
    return any(d.call is get_current_user or _signed_in(d) for d in dependant.dependencies)


def test_every_guarded_route_has_a_signed_in_caller() -> None:
    unguardable = [
        f"{sorted(route.methods)} {route.path}"
        for module in main._COUNTY_GUARDED
        for route in module.router.routes
        if isinstance(route, APIRoute) and not _signed_in(route.dependant)
    ]
    assert not unguardable
    assert len(main._COUNTY_GUARDED) >= 20


def test_every_guarded_page_has_a_signed_in_caller() -> None:
    guarded = [
        route
        for route in ui_routes.router.routes
        if isinstance(route, APIRoute) and _calls(route.dependant, ui_county_guard)
    ]
    unguardable = [
        f"{sorted(route.methods)} {route.path}"
        for route in guarded
        if not any(
            d.call is ui_user or _calls(d, ui_user)
            for d in route.dependant.dependencies
            if d.call is not ui_county_guard
        )
    ]
    assert guarded and not unguardable


def _calls(dependant: Dependant, call: object) -> bool:
    return any(d.call is call or _calls(d, call) for d in dependant.dependencies)
