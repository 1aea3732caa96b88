"""The public 公示 page of commitments (no login).

Only published commitments are ever read: the query itself filters on ``published_at <=
now``, so a draft, a commitment awaiting 审诺 or a returned one cannot reach the page.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select

from activities.tables import CommitmentRow, OrganisationRow, RoundRow
from api.deps import SessionDep
from api.public.render import page
from api.responses import errors
from chuangzheng.services.commitments import commitment_document
from domain.commitments import CommitmentKind

router = APIRouter(
    prefix="/public/commitments", tags=["公开页面 public"], responses=errors(404, 422)
)


def _published(now: datetime) -> Any:
    return CommitmentRow.published_at.is_not(None) & (CommitmentRow.published_at <= now)


@router.get("", response_class=HTMLResponse, summary="承诺公示栏（无需登录）")
def index(request: Request, session: SessionDep) -> HTMLResponse:
    """Organisations with published commitments, newest publication first."""
    now = datetime.now(UTC)
    rows = session.execute(
        select(
            CommitmentRow.round_id,
            CommitmentRow.org_id,
            OrganisationRow.name,
            RoundRow.name,
            func.count(),
            func.max(CommitmentRow.published_at),
        )
        .join(OrganisationRow, OrganisationRow.org_id == CommitmentRow.org_id)
        .join(RoundRow, RoundRow.round_id == CommitmentRow.round_id)
        .where(_published(now))
        .group_by(CommitmentRow.round_id, CommitmentRow.org_id, OrganisationRow.name, RoundRow.name)
        .order_by(func.max(CommitmentRow.published_at).desc())
    ).all()
    entries = [
        {"round_id": r, "org_id": o, "org_name": on, "round_name": rn, "count": c, "at": at}
        for r, o, on, rn, c, at in rows
    ]
    return page(request, "commitments_index.html", {"entries": entries})


@router.get("/{round_id}/{org_id}", response_class=HTMLResponse, summary="组织承诺公示")
def organisation_page(
    round_id: str, org_id: str, request: Request, session: SessionDep
) -> HTMLResponse:
    """One organisation's published commitments with items, due dates and fulfilment."""
    now = datetime.now(UTC)
    rows = session.scalars(
        select(CommitmentRow).where(
            CommitmentRow.round_id == round_id, CommitmentRow.org_id == org_id, _published(now)
        )
    ).all()
    organisation = session.get(OrganisationRow, org_id)
    if not rows or organisation is None:
        return page(request, "commitments_missing.html", {}, status_code=404)
    ordered = sorted(rows, key=lambda r: (r.kind != CommitmentKind.ORGANISATION, r.member_name))
    commitments = [commitment_document(session, r) for r in ordered]
    round_row = session.get(RoundRow, round_id)
    return page(
        request,
        "commitments.html",
        {
            "organisation": organisation,
            "round_name": round_row.name if round_row else round_id,
            "commitments": commitments,
            "now": now,
        },
    )
