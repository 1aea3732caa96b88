"""Digests and circulars (通报): each supervisor's daily digests, a round's circulars on
demand, and the circular's spreadsheet for download."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from activities.tables import CircularRow, DigestRow, RoundRow
from api.blocking import run_sync
from api.deps import (
    CurrentUser,
    SessionDep,
    SessionsDep,
    SettingsDep,
    TemporalClientDep,
    require_role,
)
from api.errors import not_found
from api.idempotency import idempotency_key
from api.responses import AUTHENTICATED, TEMPORAL, Timestamp, errors, file_response
from api.scope import inbox_key, round_in_county
from domain.organisation import ABOVE_COUNTY_ROLES, Role
from workflows.digest import CircularInput, CircularReport, CircularWorkflow

router = APIRouter(
    prefix="/api/v1", tags=["简报与通报 reports"], responses=errors(*AUTHENTICATED, 404, 422)
)

# Who may read a round's circulars: those it is addressed to and those who supervise.
CIRCULAR_READERS = frozenset(
    {Role.COUNTY_OFFICE, Role.GUIDANCE_GROUP, Role.TOWNSHIP, Role.ASSESSMENT_GROUP}
    # The offices above the county read their counties' circulars (never publish one).
    | ABOVE_COUNTY_ROLES
)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class DigestView(BaseModel):
    """A daily digest or circular notice addressed to the caller."""

    message_id: str
    kind: str
    round_id: str
    local_date: str
    title: str
    body: str
    link_path: str
    created_at: Timestamp


class CircularView(BaseModel):
    """A published circular and where to download its spreadsheet."""

    circular_id: str
    title: str
    created_at: Timestamp
    xlsx_sha256: str
    download: str


class PublishedCircular(BaseModel):
    """The circular just published (or already published under the same key)."""

    circular_id: str
    xlsx_sha256: str
    notices_sent: int
    already_published: bool
    download: str


@router.get("/digests", summary="我的每日简报与通报", response_model=list[DigestView])
def my_digests(
    session: SessionDep, user: CurrentUser, limit: Annotated[int, Query(ge=1, le=500)] = 60
) -> list[dict[str, Any]]:
    """Digests and circular notices addressed to the caller, newest first."""
    rows = session.scalars(
        select(DigestRow)
        .where(DigestRow.recipient_role == user.role.value)
        .where(DigestRow.recipient_key == inbox_key(user))
        # Keys repeat across counties: the digests of the user's counties' rounds only.
        .where(round_in_county(user, DigestRow.round_id))
        .order_by(DigestRow.created_at.desc())
        .limit(limit)
    ).all()
    return [
        {
            "message_id": r.message_id,
            "kind": r.kind,
            "round_id": r.round_id,
            "local_date": r.local_date,
            "title": r.title,
            "body": r.body,
            "link_path": r.link_path,
            "created_at": r.created_at,
        }
        for r in rows
    ]


@router.get(
    "/rounds/{round_id}/circulars", summary="本轮通报列表", response_model=list[CircularView]
)
def circulars(round_id: str, session: SessionDep, user: CurrentUser) -> list[dict[str, Any]]:
    """A round's circulars, newest first."""
    if user.role not in CIRCULAR_READERS:
        raise not_found()
    rows = session.scalars(
        select(CircularRow)
        .where(CircularRow.round_id == round_id)
        .order_by(CircularRow.created_at.desc())
    ).all()
    return [
        {
            "circular_id": r.circular_id,
            "title": r.title,
            "created_at": r.created_at,
            "xlsx_sha256": r.xlsx_sha256,
            "download": f"/api/v1/circulars/{r.circular_id}/file",
        }
        for r in rows
    ]


def _round_missing(sessions: sessionmaker[Session], round_id: str) -> bool:
    with sessions() as session:
        return session.get(RoundRow, round_id) is None


@router.post(
    "/rounds/{round_id}/circulars",
    status_code=201,
    summary="即时发布通报",
    response_model=PublishedCircular,
    responses=errors(*TEMPORAL),
)
async def publish(
    round_id: str,
    request: Request,
    user: CurrentUser,
    client: TemporalClientDep,
    settings: SettingsDep,
    sessions: SessionsDep,
) -> dict[str, Any]:
    """Publish a circular now (county office). The Idempotency-Key, if given, names it, so
    a retried request publishes it once. An unknown round is 404 before any workflow starts."""
    require_role(user, Role.COUNTY_OFFICE)
    if await run_sync(_round_missing, sessions, round_id):
        raise not_found("轮次不存在")
    key = idempotency_key(request) or datetime.now(UTC).strftime("on-demand-%Y%m%d%H%M%S")
    report: CircularReport = await client.execute_workflow(
        CircularWorkflow.run,
        CircularInput(round_id=round_id, key=key),
        id=f"circular/{round_id}/{key}",
        task_queue=settings.task_queue,
    )
    # Server paths stay on the server: clients download through the API.
    return report.model_dump(mode="json", exclude={"xlsx_path", "text_path"}) | {
        "download": f"/api/v1/circulars/{report.circular_id}/file"
    }


@router.get(
    "/circulars/{circular_id:path}/file",
    summary="下载通报（Excel）",
    response_class=FileResponse,
    responses=file_response(XLSX),
)
def download(circular_id: str, session: SessionDep, user: CurrentUser) -> FileResponse:
    """The circular's spreadsheet."""
    row = session.get(CircularRow, circular_id)
    if row is None or user.role not in CIRCULAR_READERS or not Path(row.xlsx_path).is_file():
        raise not_found()
    county = session.scalar(select(RoundRow.county).where(RoundRow.round_id == row.round_id))
    if county is not None and county not in user.counties:
        raise not_found()  # another county's circular
    return FileResponse(
        row.xlsx_path,
        media_type=XLSX,
        filename=f"{row.circular_id.replace('/', '_')}.xlsx",
    )
