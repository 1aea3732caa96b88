"""The published honours lists (评选表彰 名单), without login.

Only rounds with a publication row appear; a round whose list is not published answers 404
with the same page as a round that does not exist, so nothing leaks before publication.
"""

from __future__ import annotations

from itertools import groupby

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from activities.guidance_groups import group_map
from activities.tables import CommendationHonourRow, CommendationPublicationRow, RoundRow
from api.deps import SessionDep
from api.public.render import page
from domain.organisation import DEFAULT_COUNTY, system_label

router = APIRouter(prefix="/public/honours", tags=["公开栏 public"], include_in_schema=False)


@router.get("", response_class=HTMLResponse)
def index(request: Request, session: SessionDep) -> HTMLResponse:
    """Every published honours list, newest first."""
    publications = session.scalars(
        select(CommendationPublicationRow).order_by(CommendationPublicationRow.published_at.desc())
    ).all()
    return page(request, "honours_index.html", {"publications": publications})


@router.get("/{round_id}", response_class=HTMLResponse)
def honours(round_id: str, request: Request, session: SessionDep) -> HTMLResponse:
    """One round's published list, grouped by honour and system."""
    publication = session.get(CommendationPublicationRow, round_id)
    if publication is None:
        return page(request, "honours_missing.html", {}, status_code=404)
    rows = session.scalars(
        select(CommendationHonourRow)
        .where(CommendationHonourRow.round_id == round_id)
        .order_by(CommendationHonourRow.position)
    ).all()
    # The guidance groups' names are the round's county's data (issue 15).
    county = session.scalar(select(RoundRow.county).where(RoundRow.round_id == round_id))
    groups = group_map(session, {county or DEFAULT_COUNTY})
    sections = [
        (title, [(system_label(r.system, groups), r) for r in entries])
        for title, entries in groupby(rows, key=lambda r: r.title)
    ]
    return page(request, "honours.html", {"publication": publication, "sections": sections})
