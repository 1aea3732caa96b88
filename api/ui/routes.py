"""The dashboard's router: every page router under ``/ui`` (registered in ``api.main``)."""

from __future__ import annotations

from fastapi import APIRouter

from api.ui.routers import (
    accounts,
    audit,
    exports,
    laggards,
    links,
    login,
    organisation,
    overview,
    secretary,
    supervision,
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
):
    router.include_router(_module.router)
# Outside /ui: the short paths messages link to.
router.include_router(links.router)
