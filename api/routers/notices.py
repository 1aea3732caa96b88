"""Each user's notice inbox (reminders, 督办, 通报, 整改通知) and marking notices read.

The inbox pages with a cursor: newest first, ordered by ``(created_at, notice_id)``, and the
cursor names the last notice returned, so the next page starts strictly after it. Notices
that arrive while a client pages (newer ones, at the top) never shift the pages still to
come: every notice present when paging started is returned exactly once. The body stays a
list (old clients keep working with ``limit``); the next page's cursor comes in the
``X-Next-Cursor`` header, absent on the last page.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel
from sqlalchemy import ColumnElement, and_, or_, select

from activities.tables import NoticeRow
from api.auth import User
from api.deps import CurrentUser, SessionDep
from api.errors import ApiError, not_found
from api.responses import AUTHENTICATED, Timestamp, errors
from api.scope import in_county, inbox_key
from domain.notices import NoticeKind
from domain.organisation import Role

#: The response header that carries the next page's cursor.
NEXT_CURSOR = "X-Next-Cursor"

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
        NoticeRow.recipient_role == user.role.value,
        NoticeRow.recipient_key == inbox_key(user),
        # Keys repeat across counties (``county``, 城关镇): keep to the user's counties.
        in_county(user, NoticeRow.org_id),
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


def encode_cursor(row: NoticeRow) -> str:
    """An opaque cursor naming ``row``'s place in the inbox's order."""
    raw = f"{row.created_at.astimezone(UTC).isoformat()}|{row.notice_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (created_at, notice_id) a cursor names, or 422."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, notice_id = raw.split("|", 1)
        created_at = datetime.fromisoformat(at)
        if created_at.tzinfo is None or not notice_id:
            raise ValueError(raw)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ApiError(
            422, "invalid", "请求参数有误", [{"field": "cursor", "reason": "分页游标无效"}]
        ) from None
    return created_at, notice_id


@router.get(
    "",
    summary="我的通知（分页：X-Next-Cursor）",
    response_model=list[NoticeView],
    responses={
        200: {
            "headers": {
                NEXT_CURSOR: {
                    "description": "下一页的游标（作为 cursor 参数传回）；最后一页没有",
                    "schema": {"type": "string"},
                }
            }
        }
    },
)
def inbox(
    response: Response,
    session: SessionDep,
    user: CurrentUser,
    unread: bool = False,
    read: bool | None = None,
    round_id: str | None = None,
    kind: NoticeKind | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    """The caller's notices, newest first; filters: round, kind, read state (``read``, or
    ``unread=true`` as before). Pass ``X-Next-Cursor`` back as ``cursor`` for the next page."""
    stmt = select(NoticeRow).where(_mine(user))
    if unread and read is True:
        raise ApiError(
            422, "invalid", "请求参数有误", [{"field": "read", "reason": "与 unread=true 矛盾"}]
        )
    if unread or read is False:
        stmt = stmt.where(NoticeRow.read_at.is_(None))
    elif read is True:
        stmt = stmt.where(NoticeRow.read_at.is_not(None))
    if round_id is not None:
        stmt = stmt.where(NoticeRow.round_id == round_id)
    if kind is not None:
        stmt = stmt.where(NoticeRow.kind == kind.value)
    if cursor is not None:
        at, last_id = decode_cursor(cursor)
        stmt = stmt.where(
            or_(
                NoticeRow.created_at < at,
                and_(NoticeRow.created_at == at, NoticeRow.notice_id < last_id),
            )
        )
    order = (NoticeRow.created_at.desc(), NoticeRow.notice_id.desc())
    rows = session.scalars(stmt.order_by(*order).limit(limit)).all()
    if len(rows) == limit:
        response.headers[NEXT_CURSOR] = encode_cursor(rows[-1])
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
