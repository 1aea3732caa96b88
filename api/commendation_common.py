"""Shared pieces of the commendation routes: the round, its stage, scope and audit."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from activities.commendation_store import RoundContext, Stage, load_round, stage
from activities.roster_store import load_organisation
from activities.tables import AuditRow, CommendationDeclarationRow
from api.auth import User
from api.deps import client_ip
from api.errors import ApiError, not_found
from api.scope import covers


def commendation_round(session: Session, round_id: str, *, lock: bool = False) -> RoundContext:
    context = load_round(session, round_id, lock=lock)
    if context is None:
        raise not_found("轮次不存在")
    return context


def audit_row(
    user: User,
    request: Request,
    action: str,
    round_id: str,
    org_id: str | None,
    detail: dict[str, Any],
) -> AuditRow:
    return AuditRow(
        audit_id=f"commendation/{action}/{uuid.uuid4().hex}",
        user=user.username,
        role=user.role.value,
        action=f"commendation_{action}",
        round_id=round_id,
        org_id=org_id,
        ip=client_ip(request),
        at=datetime.now(UTC),
        detail=detail,
    )


def require_stage(session: Session, round_id: str, wanted: Stage, message: str) -> None:
    current = stage(session, round_id)
    if current is not wanted:
        raise ApiError(409, f"commendation_{current.value}", message)


@contextmanager
def one_writer() -> Iterator[None]:
    """A concurrent writer that won the primary key (SQLite has no row locks): 409."""
    try:
        yield
    except IntegrityError:
        raise ApiError(409, "conflict", "该操作已由他人完成，请刷新后查看") from None


def visible_declaration(
    session: Session, user: User, round_id: str, declaration_id: str
) -> CommendationDeclarationRow:
    row = session.get(CommendationDeclarationRow, declaration_id)
    org = load_organisation(session, row.org_id) if row is not None else None
    if row is None or row.round_id != round_id or org is None or not covers(user, org):
        raise not_found()
    return row
