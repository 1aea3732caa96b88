"""公开承诺 as a procedure: record → 审诺 → 公示 → 践诺 → 评诺, and the workflow step.

The secretary (or the county office) records the organisation's and each member's
commitment with items and due dates and submits for 审诺; the upper level (instructor,
township, guidance group, county office) signs off or returns with a reason; either side
publishes. Absences, the 践诺 ledger, 评诺 and the workflow step are in
:mod:`api.routers.commitment_ledger`. Every route checks scope first (404 outside it); every
write runs once per Idempotency-Key.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from activities.tables import (
    CommitmentAbsenceRow,
    CommitmentItemRow,
    CommitmentRow,
    PartyMemberRow,
)
from api.auth import User
from api.blocking import run_sync
from api.deps import CurrentUser, SessionsDep, require_role
from api.errors import ApiError
from api.idempotency import idempotent
from api.responses import AUTHENTICATED, WITH_BODY, errors
from api.routers import commitment_views as views
from api.routers.commitment_bodies import (
    PublishBody,
    RecordBody,
    SignOffBody,
    SubmitBody,
)
from api.routers.organisations import visible_organisation
from domain.calendar import CalendarGap, local_date
from domain.commitments import (
    CommitmentKind,
    CommitmentStatus,
    ItemDraft,
    check_commitment,
    move,
    notice_ends,
    require_reason,
)
from domain.errors import DomainError
from domain.organisation import SUPERVISOR_ROLES, Role

router = APIRouter(
    prefix="/api/v1/rounds/{round_id}/organisations/{org_id}/commitments",
    tags=["公开承诺 commitments"],
    responses=errors(*AUTHENTICATED, 404, 409, 422),
)

# Who records (as for evidence), who signs off and reviews (the upper levels), who publishes.
RECORDERS = (Role.SECRETARY, Role.COUNTY_OFFICE)
SIGNERS = tuple(sorted(SUPERVISOR_ROLES))
PUBLISHERS = tuple(sorted(set(RECORDERS) | SUPERVISOR_ROLES))


def _now() -> datetime:
    return datetime.now(UTC)


def _scoped(sessions: SessionsDep, user: User, round_id: str, org_id: str) -> None:
    with sessions() as session:
        visible_organisation(session, user, org_id)
        views.round_plan(session, round_id)


def _member(session: Session, org_id: str, member_id: str) -> PartyMemberRow:
    row = session.get(PartyMemberRow, (org_id, member_id))
    if row is None or not row.active:
        raise DomainError("不在本组织党员名册中", code="invalid", field="member_id")
    return row


@router.get("", summary="承诺台账（含覆盖情况）", response_model=views.LedgerView)
def ledger(round_id: str, org_id: str, sessions: SessionsDep, user: CurrentUser) -> dict[str, Any]:
    """Every commitment of the organisation in the round, and who is still uncovered."""
    _scoped(sessions, user, round_id, org_id)
    with sessions() as session:
        rows = views.org_commitments(session, round_id, org_id)
        return {
            "commitments": [views.commitment_view(session, r) for r in rows],
            "coverage": views.coverage_view(session, round_id, org_id),
        }


@router.post(
    "",
    summary="登记承诺（党组织或党员）",
    response_model=views.CommitmentView,
    responses=errors(*WITH_BODY),
)
async def record(
    round_id: str,
    org_id: str,
    body: RecordBody,
    request: Request,
    sessions: SessionsDep,
    user: CurrentUser,
) -> Any:
    """Create or revise a draft (or returned) commitment with its items."""
    await run_sync(_scoped, sessions, user, round_id, org_id)
    require_role(user, *RECORDERS)
    items = [ItemDraft(i.content.strip(), i.due) for i in body.items]

    def write(now: datetime) -> dict[str, Any]:
        with sessions.begin() as session:
            kind, key, name = CommitmentKind.ORGANISATION, views.ORGANISATION_KEY, ""
            if body.member_id is not None:
                member = _member(session, org_id, body.member_id)
                kind, key, name = CommitmentKind.MEMBER, member.member_id, member.name
            cid = views.commitment_id(round_id, org_id, key)
            row = session.get(CommitmentRow, cid)
            if row is None:
                row = CommitmentRow(
                    commitment_id=cid, round_id=round_id, org_id=org_id, kind=kind,
                    member_key=key, status=CommitmentStatus.DRAFTED, return_reason="",
                )  # fmt: skip
                session.add(row)
            else:
                row.status = move(CommitmentStatus(row.status), "revise")
            row.member_name, row.content = name, body.content.strip()
            row.recorded_by, row.updated_at = user.username, now
            session.flush()
            session.execute(delete(CommitmentItemRow).where(CommitmentItemRow.commitment_id == cid))
            session.add_all(
                CommitmentItemRow(
                    item_id=f"{cid}-{n}",
                    commitment_id=cid,
                    position=n,
                    content=i.content,
                    due=i.due,
                )
                for n, i in enumerate(items)
            )
            if key:  # a member who commits is no longer absent
                session.execute(
                    delete(CommitmentAbsenceRow).where(
                        CommitmentAbsenceRow.round_id == round_id,
                        CommitmentAbsenceRow.org_id == org_id,
                        CommitmentAbsenceRow.member_id == key,
                    )
                )
            session.flush()
            return views.commitment_view(session, row)

    def action() -> dict[str, Any]:
        now = _now()
        check_commitment(body.content, items, today=local_date(now))
        try:
            return write(now)
        except IntegrityError:
            # Two first recordings of the same commitment raced (a double click without an
            # Idempotency-Key): the loser finds the winner's row now and revises it.
            return write(now)

    return await idempotent(request, sessions, user, action)


def _select(
    session: Session,
    round_id: str,
    org_id: str,
    ids: list[str] | None,
    wanted: set[CommitmentStatus],
) -> list[CommitmentRow]:
    if ids is None:
        return [r for r in views.org_commitments(session, round_id, org_id) if r.status in wanted]
    return [views.load_commitment(session, round_id, org_id, cid) for cid in dict.fromkeys(ids)]


@router.post(
    "/submit",
    summary="提交审诺",
    response_model=list[views.CommitmentView],
    responses=errors(*WITH_BODY),
)
async def submit(
    round_id: str, org_id: str, body: SubmitBody, request: Request, sessions: SessionsDep,
    user: CurrentUser,
) -> Any:  # fmt: skip
    """Send commitments to the upper level for 审诺 (all or none)."""
    await run_sync(_scoped, sessions, user, round_id, org_id)
    require_role(user, *RECORDERS)

    def action() -> list[dict[str, Any]]:
        with sessions.begin() as session:
            wanted = {CommitmentStatus.DRAFTED, CommitmentStatus.RETURNED}
            rows = _select(session, round_id, org_id, body.commitment_ids, wanted)
            if not rows:
                raise ApiError(409, "invalid_transition", "没有可提交审诺的承诺")
            for row in rows:
                row.status, row.updated_at = move(CommitmentStatus(row.status), "submit"), _now()
            return [views.commitment_view(session, r) for r in rows]

    return await idempotent(request, sessions, user, action)


@router.post(
    "/signoff",
    summary="审诺（通过或退回）",
    response_model=list[views.CommitmentView],
    responses=errors(*WITH_BODY),
)
async def sign_off(
    round_id: str, org_id: str, body: SignOffBody, request: Request, sessions: SessionsDep,
    user: CurrentUser,
) -> Any:  # fmt: skip
    """The upper level approves the named commitments, or returns them with a reason."""
    await run_sync(_scoped, sessions, user, round_id, org_id)
    require_role(user, *SIGNERS)
    reason = body.reason.strip() if body.approve else require_reason(body.reason, "退回承诺")

    def action() -> list[dict[str, Any]]:
        trigger = "approve" if body.approve else "return_commitment"
        with sessions.begin() as session:
            rows = _select(session, round_id, org_id, body.commitment_ids, set())
            for row in rows:
                row.status = move(CommitmentStatus(row.status), trigger)
                row.return_reason = "" if body.approve else reason
                row.decided_by, row.decided_at = user.username, _now()
                row.updated_at = row.decided_at
            return [views.commitment_view(session, r) for r in rows]

    return await idempotent(request, sessions, user, action)


@router.post(
    "/publish",
    summary="公示承诺",
    response_model=list[views.CommitmentView],
    responses=errors(*WITH_BODY),
)
async def publish(
    round_id: str, org_id: str, body: PublishBody, request: Request, sessions: SessionsDep,
    user: CurrentUser,
) -> Any:  # fmt: skip
    """Publish every approved commitment on the public page for the notice period."""
    await run_sync(_scoped, sessions, user, round_id, org_id)
    require_role(user, *PUBLISHERS)

    def action() -> list[dict[str, Any]]:
        now = _now()
        with sessions.begin() as session:
            plan, _ = views.round_plan(session, round_id)
            try:
                ends = notice_ends(now, body.notice_working_days, plan.calendar.build())
            except CalendarGap as exc:
                raise DomainError(str(exc), code="invalid", field="notice_working_days") from None
            wanted = {CommitmentStatus.APPROVED}
            rows = _select(session, round_id, org_id, None, wanted)
            if not rows:
                raise ApiError(409, "invalid_transition", "没有审诺通过、待公示的承诺")
            for row in rows:
                row.status = move(CommitmentStatus(row.status), "publish")
                row.published_by, row.published_at, row.notice_ends_at = user.username, now, ends
                row.updated_at = now
            return [views.commitment_view(session, r) for r in rows]

    return await idempotent(request, sessions, user, action)
