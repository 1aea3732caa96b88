"""The links notices, digests and circular notices carry, sent to the pages that show them.

Notices are composed in the workflow (``domain.notices``) with short, stable paths that do
not depend on how the dashboard is laid out (``/orgs/{org}?round=``, ``/rounds/{round}``,
``/rounds/{round}/circulars/{key}``); already-sent mail and robot messages keep them for
ever, so they are redirects here rather than baked-in page URLs.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import RedirectResponse

router = APIRouter(include_in_schema=False)


@router.get("/orgs/{org_id}")
def organisation(org_id: str, round: str = "") -> RedirectResponse:
    """A notice's link: the organisation's page in the round."""
    return RedirectResponse(f"/ui/orgs/{quote(org_id)}?round={quote(round)}", status_code=307)


@router.get("/rounds/{round_id}")
def round_laggards(round_id: str, light: str = "") -> RedirectResponse:
    """A digest's link: the round's laggards (filtered by light when given)."""
    query = f"round={quote(round_id)}" + (f"&light={quote(light)}" if light else "")
    return RedirectResponse(f"/ui/laggards?{query}", status_code=307)


@router.get("/rounds/{round_id}/circulars/{key}")
def round_circular(round_id: str, key: str) -> RedirectResponse:
    """A circular notice's link: that published 通报 (its spreadsheet, as the API serves it),
    for the readers of circulars."""
    return RedirectResponse(
        f"/ui/export/circulars/{quote(round_id, safe='')}/{quote(key, safe='')}",
        status_code=307,
    )
