"""The dashboard's router: every page router under ``/ui`` (registered in ``api.main``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from api.tenancy import ui_county_guard
from api.ui.routers import (
    accounts,
    audit,
    briefings,
    commendation,
    counties,
    exports,
    laggards,
    links,
    login,
    organisation,
    overview,
    plan_versions,
    secretary,
    supervision,
    systems,
    what_if,
)

router = APIRouter()
for _module in (
    login,
    overview,
    laggards,
    organisation,
    secretary,
    exports,
    accounts,
    audit,
    supervision,
    briefings,
    commendation,
    counties,
    plan_versions,
    what_if,
    systems,
):
    # Many counties (api.tenancy): pages that name a round or an organisation check its
    # county, and an office above the county cannot post. Sign-in and activation (no
    # account yet) are left out; the accounts pages keep to the county in their service.
    guarded = _module not in (login, accounts)
    router.include_router(
        _module.router, dependencies=[Depends(ui_county_guard)] if guarded else []
    )
# Outside /ui: the short paths messages link to.
router.include_router(links.router)
