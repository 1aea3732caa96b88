"""Each user's notice inbox (reminders, 督办, 通报, 整改通知) and marking notices read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import ColumnElement, and_, select

from activities.tables import NoticeRow
from api.auth import User
from api.deps import CurrentUser, SessionDep
from api.errors import not_found
from api.responses import AUTHENTICATED, Timestamp, errors
from api.scope import inbox_key
from domain.organisation import Role

router = APIRouter(
    prefix="/api/v1/notices", tags=["通知 notices"], responses=errors(*AUTHENTICATED, 404, 422)
)


class NoticeView(BaseModel):
    """A notice in the caller's inbox (``read_at`` null while unread)."""

    notice_id: str
    round_id: str
    org_id: str
    org_name: str
    phase: str
    kind: str
    rung: int | None
    title: str
    body: str
    link_path: str
    created_at: Timestamp
    read_at: Timestamp | None


def _mine(user: User) -> ColumnElement[bool]:
    """Notices addressed to the user's role and key; a secretary's are keyed by the
    secretary's name, so they are found through the organisation instead."""
    if user.role is Role.SECRETARY:
        return and_(
            NoticeRow.recipient_role == Role.SECRETARY.value, NoticeRow.org_id == user.scope_key
        )
    return and_(
        NoticeRow.recipient_role == user.role.value, NoticeRow.recipient_key == inbox_key(user)
    )


def _view(row: NoticeRow) -> dict[str, Any]:
    return {
        "notice_id": row.notice_id,
        "round_id": row.round_id,
        "org_id": row.org_id,
        "org_name": row.org_name,
        "phase": row.phase,
        "kind": row.kind,
        "rung": row.rung,
        "title": row.title,
        "body": row.body,
        "link_path": row.link_path,
        "created_at": row.created_at,
        "read_at": row.read_at,
    }


@router.get("", summary="我的通知", response_model=list[NoticeView])
def inbox(
    session: SessionDep,
    user: CurrentUser,
    unread: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    """The caller's notices, newest first."""
    stmt = select(NoticeRow).where(_mine(user))
    if unread:
        stmt = stmt.where(NoticeRow.read_at.is_(None))
    rows = session.scalars(stmt.order_by(NoticeRow.created_at.desc()).limit(limit)).all()
    return [_view(r) for r in rows]


@router.post("/{notice_id:path}/read", summary="标记已读", response_model=NoticeView)
def mark_read(notice_id: str, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """Mark one of the caller's notices read (idempotent: the first read time stays)."""
    row = session.scalars(
        select(NoticeRow).where(NoticeRow.notice_id == notice_id, _mine(user))
    ).first()
    if row is None:
        raise not_found()
    if row.read_at is None:
        row.read_at = datetime.now(UTC)
        session.commit()
    return _view(row)
