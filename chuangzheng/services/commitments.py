"""公开承诺 as a procedure: record → 审诺 → 公示 → 践诺 → 评诺, and the workflow step.

The secretary (or the county office) records the organisation's and each member's commitment
with items and due dates and submits them for 审诺; the upper level (instructor, township,
guidance group, county office) signs off or returns with a reason; either side publishes for
a notice period in working days. Members who make no commitment are covered by a recorded
absence; the 践诺 ledger holds what was done, with an uploaded file as evidence; 评诺 is the
upper level's verdict per occasion. :func:`submit_step` submits the workflow's
``member_commitments`` step with evidence built from the ledger, so the workflow's guard
checks the real roster.

Every use case checks the caller's scope on the organisation first (:class:`NotFound`
outside it, and for an unknown round), then the role (:class:`Refused` ``forbidden``); bad
fields are :class:`InvalidInput` naming the field, a missing reason :class:`Refused`
(``reason_required``), a move the commitment's state does not allow :class:`Refused`
(``invalid_transition``) and nothing to move :class:`Conflict` (``invalid_transition``). Each
change is one transaction with its audit row. The synchronous functions do database work
only: call them from a worker thread (the API's plain routes and its idempotency wrapper
do), never on an event loop.

Commitments are answered as documents (plain JSON values: the API's response models and the
public 公示 page show them as they are).
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import anyio.to_thread
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from activities.db import upsert_insert
from activities.member_store import active_members
from activities.tables import (
    AuditRow,
    CommitmentAbsenceRow,
    CommitmentItemRow,
    CommitmentReviewRow,
    CommitmentRow,
    FulfilmentEntryRow,
    PartyMemberRow,
    RoundDefinitionRow,
)
from chuangzheng.plans import parse_plan
from chuangzheng.services.callers import Caller, audit_row, require_role, visible_organisation
from chuangzheng.services.errors import Conflict, InvalidInput, NotFound, domain_refusals
from chuangzheng.services.evidence_checks import check_evidence, require_uploaded
from chuangzheng.services.idempotency import command_key
from chuangzheng.services.organisation_actions import OrganisationAction, perform
from domain.calendar import CalendarGap, local_date
from domain.commitments import (
    CommitmentKind,
    CommitmentStatus,
    ItemDraft,
    ReviewOccasion,
    RosteredCommitment,
    Verdict,
    check_commitment,
    check_fulfilment,
    check_optional_text,
    check_review,
    coverage,
    move,
    notice_ends,
    require_reason,
    step_evidence,
)
from domain.organisation import SUPERVISOR_ROLES, Role
from domain.plan import CampaignPlan, FieldKind, RoundPlan

#: Who records commitments, absences and the ledger (as for evidence).
RECORDERS = frozenset({Role.SECRETARY, Role.COUNTY_OFFICE})
#: Who signs off (审诺) and reviews (评诺): the upper levels.
SIGNERS = frozenset(SUPERVISOR_ROLES)
#: Who publishes (公示): either side.
PUBLISHERS = RECORDERS | SIGNERS
#: ``member_key`` of the organisation's own commitment.
ORGANISATION_KEY = ""
#: The workflow step a ledger is submitted as, unless the caller names another.
DEFAULT_STEP = "member_commitments"


@dataclass(frozen=True)
class CommitmentDraft:
    """What is recorded: the organisation's commitment (no ``member_id``) or a member's,
    with its concrete items and the day each is to be kept."""

    content: str
    items: tuple[ItemDraft, ...]
    member_id: str | None = None


@dataclass(frozen=True)
class Fulfilment:
    """A 践诺 entry: what was done, when, for which item (if one), with the uploaded file's
    ``{name, sha256}`` as evidence."""

    fulfilled_on: date
    description: str
    evidence: Mapping[str, Any]
    item_id: str | None = None


def _now() -> datetime:
    return datetime.now(UTC)


def _invalid(field: str, reason: str) -> InvalidInput:
    return InvalidInput("invalid", reason, [{"field": field, "reason": reason}])


# --- reading -------------------------------------------------------------------------------


def commitment_id(round_id: str, org_id: str, member_key: str) -> str:
    """Deterministic: recording the same member's commitment twice lands on the same row."""
    digest = hashlib.sha1(f"{round_id}\n{org_id}\n{member_key}".encode()).hexdigest()
    return f"c-{digest[:24]}"


def round_plan(session: Session, round_id: str) -> tuple[CampaignPlan, RoundPlan]:
    """The plan a round was created from (:class:`NotFound` for an unknown round)."""
    definition = session.get(RoundDefinitionRow, round_id)
    if definition is None:
        raise NotFound("轮次不存在")
    with domain_refusals():
        plan = parse_plan(definition.plan_yaml)
        return plan, plan.round(definition.round_plan_id)


def load_commitment(
    session: Session, round_id: str, org_id: str, commitment_id: str
) -> CommitmentRow:
    """A commitment of this organisation and round (:class:`NotFound` otherwise)."""
    row = session.get(CommitmentRow, commitment_id)
    if row is None or row.round_id != round_id or row.org_id != org_id:
        raise NotFound("承诺不存在")
    return row


def org_commitments(session: Session, round_id: str, org_id: str) -> list[CommitmentRow]:
    """The organisation's commitment first, then members' by name."""
    rows = session.scalars(
        select(CommitmentRow).where(
            CommitmentRow.round_id == round_id, CommitmentRow.org_id == org_id
        )
    ).all()
    return sorted(rows, key=lambda r: (r.kind != CommitmentKind.ORGANISATION, r.member_name))


def absences(session: Session, round_id: str, org_id: str) -> list[CommitmentAbsenceRow]:
    """Recorded absences of the organisation in the round."""
    return list(
        session.scalars(
            select(CommitmentAbsenceRow)
            .where(CommitmentAbsenceRow.round_id == round_id, CommitmentAbsenceRow.org_id == org_id)
            .order_by(CommitmentAbsenceRow.member_id)
        )
    )


def items_of(session: Session, commitment_id: str) -> list[CommitmentItemRow]:
    """A commitment's items in order."""
    return list(
        session.scalars(
            select(CommitmentItemRow)
            .where(CommitmentItemRow.commitment_id == commitment_id)
            .order_by(CommitmentItemRow.position)
        )
    )


def ledger_of(session: Session, commitment_id: str) -> list[FulfilmentEntryRow]:
    """A commitment's fulfilment entries, oldest first."""
    return list(
        session.scalars(
            select(FulfilmentEntryRow)
            .where(FulfilmentEntryRow.commitment_id == commitment_id)
            .order_by(FulfilmentEntryRow.fulfilled_on, FulfilmentEntryRow.recorded_at)
        )
    )


def commitment_document(session: Session, row: CommitmentRow) -> dict[str, Any]:
    """A commitment with its items, ledger and reviews, labels in Chinese (``member_id``
    None for the organisation's own)."""
    reviews = session.scalars(
        select(CommitmentReviewRow)
        .where(CommitmentReviewRow.commitment_id == row.commitment_id)
        .order_by(CommitmentReviewRow.reviewed_at)
    ).all()
    return {
        "commitment_id": row.commitment_id,
        "kind": row.kind,
        "kind_label": CommitmentKind(row.kind).label,
        "member_id": row.member_key or None,
        "member_name": row.member_name,
        "content": row.content,
        "status": row.status,
        "status_label": CommitmentStatus(row.status).label,
        "return_reason": row.return_reason,
        "decided_by": row.decided_by,
        "decided_at": row.decided_at,
        "published_at": row.published_at,
        "notice_ends_at": row.notice_ends_at,
        "items": [
            {"item_id": i.item_id, "content": i.content, "due": i.due}
            for i in items_of(session, row.commitment_id)
        ],
        "ledger": [
            {
                "entry_id": e.entry_id,
                "item_id": e.item_id,
                "fulfilled_on": e.fulfilled_on,
                "description": e.description,
                "evidence": e.evidence,
                "recorded_by": e.recorded_by,
            }
            for e in ledger_of(session, row.commitment_id)
        ],
        "reviews": [
            {
                "occasion": r.occasion,
                "occasion_label": ReviewOccasion(r.occasion).label,
                "verdict": r.verdict,
                "verdict_label": Verdict(r.verdict).label,
                "comment": r.comment,
                "reviewer": r.reviewer,
                "reviewed_at": r.reviewed_at,
            }
            for r in reviews
        ],
    }


def counted_member_commitments(
    session: Session, rows: list[CommitmentRow]
) -> list[RosteredCommitment]:
    """Members' commitments that count for coverage, with their latest due date."""
    counted = []
    for row in rows:
        if (
            row.kind != CommitmentKind.MEMBER
            or not CommitmentStatus(row.status).counts_for_coverage
        ):
            continue
        due = max(i.due for i in items_of(session, row.commitment_id))
        counted.append(RosteredCommitment(row.member_key, row.member_name, row.content, due))
    return counted


def ledger_evidence(session: Session, round_id: str, org_id: str) -> dict[str, Any]:
    """Roster, counted commitments and absences: what the ``member_commitments`` step gets."""
    members = [(m.member_id, m.name) for m in active_members(session, org_id)]
    # Members who left the roster since they committed are out of the snapshot and its count.
    current = {member_id for member_id, _ in members}
    counted = counted_member_commitments(session, org_commitments(session, round_id, org_id))
    excused = [(a.member_id, a.reason) for a in absences(session, round_id, org_id)]
    return step_evidence(
        members,
        [c for c in counted if c.member_id in current],
        [(m, reason) for m, reason in excused if m in current],
    )


def coverage_document(session: Session, round_id: str, org_id: str) -> dict[str, Any]:
    """Who is covered, excused, or neither (for the secretary's to-do list)."""
    members = active_members(session, org_id)
    names = {m.member_id: m.name for m in members}
    counted = counted_member_commitments(session, org_commitments(session, round_id, org_id))
    excused = absences(session, round_id, org_id)
    result = coverage(
        names,
        (c.member_id for c in counted if c.member_id in names),
        (a.member_id for a in excused if a.member_id in names),
    )
    return {
        "members": len(members),
        "covered": result.covered,
        "uncovered": [{"member_id": m, "name": names[m]} for m in result.uncovered],
        "absences": [
            {"member_id": a.member_id, "name": names.get(a.member_id, ""), "reason": a.reason}
            for a in excused
        ],
    }


# --- the use cases -------------------------------------------------------------------------


def check_caller(
    session: Session,
    caller: Caller,
    round_id: str,
    org_id: str,
    roles: Collection[Role] | None = None,
) -> None:
    """The caller's scope on the organisation and the round's existence (:class:`NotFound`),
    then, if ``roles`` are named, the role (:class:`Refused`). Every use case runs it; a
    caller may run it first too, e.g. so a refusal wins over replaying a stored answer."""
    visible_organisation(session, caller, org_id)
    if session.get(RoundDefinitionRow, round_id) is None:
        raise NotFound("轮次不存在")
    if roles is not None:
        require_role(caller, roles)


def _audit(
    caller: Caller, action: str, round_id: str, org_id: str, detail: dict[str, Any], now: datetime
) -> Any:
    return audit_row(
        caller, f"commitment_{action}", round_id=round_id, org_id=org_id, detail=detail, now=now
    )


def _member(session: Session, org_id: str, member_id: str) -> PartyMemberRow:
    row = session.get(PartyMemberRow, (org_id, member_id))
    if row is None or not row.active:
        raise _invalid("member_id", "不在本组织党员名册中")
    return row


def ledger(
    sessions: sessionmaker[Session], caller: Caller, round_id: str, org_id: str
) -> dict[str, Any]:
    """Every commitment of the organisation in the round (``commitments``) and who is still
    uncovered (``coverage``)."""
    with sessions() as session:
        check_caller(session, caller, round_id, org_id)
        rows = org_commitments(session, round_id, org_id)
        return {
            "commitments": [commitment_document(session, r) for r in rows],
            "coverage": coverage_document(session, round_id, org_id),
        }


def record(
    sessions: sessionmaker[Session],
    caller: Caller,
    round_id: str,
    org_id: str,
    draft: CommitmentDraft,
) -> dict[str, Any]:
    """Create or revise a draft (or returned) commitment with its items; a member who
    commits is no longer absent."""
    items = [ItemDraft(i.content.strip(), i.due) for i in draft.items]
    now = _now()
    with sessions() as session:
        check_caller(session, caller, round_id, org_id, RECORDERS)
    with domain_refusals():
        check_commitment(draft.content, items, today=local_date(now))
    try:
        return _write_draft(sessions, caller, round_id, org_id, draft, items, now)
    except IntegrityError:
        # Two first recordings of the same commitment raced (a double click without an
        # Idempotency-Key): the loser finds the winner's row now and revises it.
        return _write_draft(sessions, caller, round_id, org_id, draft, items, now)


def _write_draft(
    sessions: sessionmaker[Session],
    caller: Caller,
    round_id: str,
    org_id: str,
    draft: CommitmentDraft,
    items: list[ItemDraft],
    now: datetime,
) -> dict[str, Any]:
    with sessions.begin() as session, domain_refusals():
        kind, key, name = CommitmentKind.ORGANISATION, ORGANISATION_KEY, ""
        if draft.member_id is not None:
            member = _member(session, org_id, draft.member_id)
            kind, key, name = CommitmentKind.MEMBER, member.member_id, member.name
        cid = commitment_id(round_id, org_id, key)
        row = session.get(CommitmentRow, cid)
        if row is None:
            row = CommitmentRow(
                commitment_id=cid, round_id=round_id, org_id=org_id, kind=kind,
                member_key=key, status=CommitmentStatus.DRAFTED, return_reason="",
            )  # fmt: skip
            session.add(row)
        else:
            row.status = move(CommitmentStatus(row.status), "revise")
        row.member_name, row.content = name, draft.content.strip()
        row.recorded_by, row.updated_at = caller.username, now
        session.flush()
        session.execute(delete(CommitmentItemRow).where(CommitmentItemRow.commitment_id == cid))
        session.add_all(
            CommitmentItemRow(
                item_id=f"{cid}-{n}", commitment_id=cid, position=n, content=i.content, due=i.due
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
        session.add(
            _audit(caller, "recorded", round_id, org_id, {"commitment_id": cid, "member_id": key},
                   now)
        )  # fmt: skip
        session.flush()
        return commitment_document(session, row)


def _select(
    session: Session,
    round_id: str,
    org_id: str,
    ids: Sequence[str] | None,
    wanted: set[CommitmentStatus],
) -> list[CommitmentRow]:
    if ids is None:
        return [r for r in org_commitments(session, round_id, org_id) if r.status in wanted]
    return [load_commitment(session, round_id, org_id, cid) for cid in dict.fromkeys(ids)]


def submit(
    sessions: sessionmaker[Session],
    caller: Caller,
    round_id: str,
    org_id: str,
    commitment_ids: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Send commitments to the upper level for 审诺, all or none; none named means every
    draft and returned one (:class:`Conflict` when there is none)."""
    with sessions.begin() as session, domain_refusals():
        check_caller(session, caller, round_id, org_id, RECORDERS)
        wanted = {CommitmentStatus.DRAFTED, CommitmentStatus.RETURNED}
        rows = _select(session, round_id, org_id, commitment_ids, wanted)
        if not rows:
            raise Conflict("invalid_transition", "没有可提交审诺的承诺")
        now = _now()
        for row in rows:
            row.status, row.updated_at = move(CommitmentStatus(row.status), "submit"), now
        ids = [r.commitment_id for r in rows]
        session.add(_audit(caller, "submitted", round_id, org_id, {"commitment_ids": ids}, now))
        return [commitment_document(session, r) for r in rows]


def sign_off(
    sessions: sessionmaker[Session],
    caller: Caller,
    round_id: str,
    org_id: str,
    commitment_ids: Sequence[str],
    *,
    approve: bool,
    reason: str = "",
) -> list[dict[str, Any]]:
    """审诺: approve the named commitments, or return them with a reason (:class:`Conflict`
    when none is named)."""
    with sessions.begin() as session, domain_refusals():
        check_caller(session, caller, round_id, org_id, SIGNERS)
        if approve:
            reason = check_optional_text(reason, "reason")
        else:
            reason = require_reason(reason, "退回承诺")
        trigger = "approve" if approve else "return_commitment"
        rows = _select(session, round_id, org_id, commitment_ids, set())
        if not rows:  # else an audit row would record a 审诺 of nothing
            raise Conflict("invalid_transition", "没有指定要审诺的承诺")
        now = _now()
        for row in rows:
            row.status = move(CommitmentStatus(row.status), trigger)
            row.return_reason = "" if approve else reason
            row.decided_by, row.decided_at = caller.username, now
            row.updated_at = now
        detail = {
            "commitment_ids": [r.commitment_id for r in rows],
            "approve": approve,
            "reason": reason,
        }
        session.add(_audit(caller, "signed_off", round_id, org_id, detail, now))
        return [commitment_document(session, r) for r in rows]


def publish(
    sessions: sessionmaker[Session],
    caller: Caller,
    round_id: str,
    org_id: str,
    notice_working_days: int,
) -> list[dict[str, Any]]:
    """Publish every approved commitment on the public page for ``notice_working_days``
    working days of the round's calendar (:class:`Conflict` when none is approved)."""
    now = _now()
    with sessions.begin() as session, domain_refusals():
        check_caller(session, caller, round_id, org_id, PUBLISHERS)
        plan, _ = round_plan(session, round_id)
        try:
            ends = notice_ends(now, notice_working_days, plan.calendar.build())
        except CalendarGap as exc:
            raise _invalid("notice_working_days", str(exc)) from None
        rows = _select(session, round_id, org_id, None, {CommitmentStatus.APPROVED})
        if not rows:
            raise Conflict("invalid_transition", "没有审诺通过、待公示的承诺")
        for row in rows:
            row.status = move(CommitmentStatus(row.status), "publish")
            row.published_by, row.published_at, row.notice_ends_at = caller.username, now, ends
            row.updated_at = now
        detail = {
            "commitment_ids": [r.commitment_id for r in rows],
            "notice_ends_at": ends.isoformat(),
        }
        session.add(_audit(caller, "published", round_id, org_id, detail, now))
        return [commitment_document(session, r) for r in rows]


def record_absence(
    sessions: sessionmaker[Session],
    caller: Caller,
    round_id: str,
    org_id: str,
    member_id: str,
    reason: str,
) -> dict[str, Any]:
    """A member who makes no commitment this round is covered by a recorded reason; the
    answer is the organisation's coverage afterwards."""
    now = _now()
    with sessions.begin() as session, domain_refusals():
        check_caller(session, caller, round_id, org_id, RECORDERS)
        reason = require_reason(reason, "登记缺席")
        member = _member(session, org_id, member_id)
        if session.get(CommitmentRow, commitment_id(round_id, org_id, member.member_id)):
            raise _invalid("member_id", "该党员已登记承诺，不能再登记缺席")
        session.merge(
            CommitmentAbsenceRow(
                round_id=round_id, org_id=org_id, member_id=member.member_id, reason=reason,
                recorded_by=caller.username, recorded_at=now,
            )
        )  # fmt: skip
        detail = {"member_id": member.member_id, "reason": reason}
        session.add(_audit(caller, "absence_recorded", round_id, org_id, detail, now))
    with sessions() as session:
        return coverage_document(session, round_id, org_id)


def fulfilment_entry_id(username: str, idempotency_key: str | None) -> str:
    """A ledger entry's id: derived from the caller's idempotency key, so two concurrent
    retries write one entry; fresh without a key."""
    key = command_key(username, idempotency_key)
    return "f-" + (uuid.uuid5(uuid.NAMESPACE_URL, key).hex if key else uuid.uuid4().hex)


def add_fulfilment(
    sessions: sessionmaker[Session],
    caller: Caller,
    round_id: str,
    org_id: str,
    commitment_id: str,
    entry: Fulfilment,
    *,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """A 践诺 ledger entry, with a file uploaded beforehand as evidence; the same
    ``idempotency_key`` writes one entry however often it is sent."""
    entry_id = fulfilment_entry_id(caller.username, idempotency_key)
    now = _now()
    with sessions.begin() as session, domain_refusals():
        check_caller(session, caller, round_id, org_id, RECORDERS)
        row = load_commitment(session, round_id, org_id, commitment_id)
        check_fulfilment(
            CommitmentStatus(row.status), fulfilled_on=entry.fulfilled_on,
            description=entry.description, evidence=dict(entry.evidence), today=local_date(now),
        )  # fmt: skip
        sha256 = entry.evidence["sha256"]
        require_uploaded(session, round_id, org_id, sha256, field="evidence.sha256")
        items = {i.item_id for i in items_of(session, commitment_id)}
        if entry.item_id is not None and entry.item_id not in items:
            raise _invalid("item_id", "不是该承诺的承诺事项")
        # ON CONFLICT DO NOTHING: a concurrent retry with the same key writes nothing.
        table = FulfilmentEntryRow.__table__
        session.execute(
            upsert_insert(session, table)  # type: ignore[arg-type]
            .values(
                entry_id=entry_id, commitment_id=commitment_id, item_id=entry.item_id,
                fulfilled_on=entry.fulfilled_on, description=entry.description.strip(),
                evidence={"name": entry.evidence["name"], "sha256": sha256},
                recorded_by=caller.username, recorded_at=now,
            )
            .on_conflict_do_nothing(index_elements=["entry_id"])
        )  # fmt: skip
        # One audit row per entry, however many retries raced to write it.
        audit = audit_row(
            caller, "commitment_fulfilment_recorded", round_id=round_id, org_id=org_id,
            detail={"commitment_id": commitment_id, "entry_id": entry_id}, now=now,
        )  # fmt: skip
        session.execute(
            upsert_insert(session, AuditRow.__table__)  # type: ignore[arg-type]
            .values(
                audit_id=f"commitment_fulfilment_recorded/{entry_id}", user=audit.user,
                role=audit.role, action=audit.action, round_id=round_id, org_id=org_id,
                ip=audit.ip, at=now, detail=audit.detail,
            )
            .on_conflict_do_nothing(index_elements=["audit_id"])
        )  # fmt: skip
        session.flush()
        return commitment_document(session, row)


def review(
    sessions: sessionmaker[Session],
    caller: Caller,
    round_id: str,
    org_id: str,
    commitment_id: str,
    *,
    occasion: ReviewOccasion,
    verdict: Verdict,
    comment: str = "",
) -> dict[str, Any]:
    """评诺: the upper level's verdict; one per occasion (a later one on the same occasion
    wins)."""
    now = _now()
    with sessions.begin() as session, domain_refusals():
        check_caller(session, caller, round_id, org_id, SIGNERS)
        check_review(verdict, comment)
        row = load_commitment(session, round_id, org_id, commitment_id)
        row.status, row.updated_at = move(CommitmentStatus(row.status), "review"), now
        session.merge(
            CommitmentReviewRow(
                review_id=f"{commitment_id}:{occasion.value}",
                commitment_id=commitment_id, occasion=occasion.value,
                verdict=verdict.value, comment=comment.strip(),
                reviewer=caller.username, reviewed_at=now,
            )
        )  # fmt: skip
        detail = {"commitment_id": commitment_id, "occasion": occasion.value,
                  "verdict": verdict.value}  # fmt: skip
        session.add(_audit(caller, "reviewed", round_id, org_id, detail, now))
        session.flush()
        return commitment_document(session, row)


def _step_values(
    sessions: sessionmaker[Session],
    caller: Caller,
    round_id: str,
    org_id: str,
    step_id: str,
    values: Mapping[str, Any],
) -> dict[str, Any]:
    with sessions() as session:
        org = visible_organisation(session, caller, org_id)
        _, plan = round_plan(session, round_id)
        steps = [
            s
            for p in plan.phases
            for s in p.steps_for(org.type, ethnic_area=org.ethnic_area)
            if s.id == step_id
        ]
        fields = [f for s in steps for f in s.evidence if f.kind is FieldKind.MEMBER_COMMITMENTS]
        if not fields:
            raise InvalidInput(
                "unknown_step",
                f"本轮计划中没有含党员承诺的步骤 {step_id}",
                [{"field": "step_id", "reason": f"本轮计划中没有含党员承诺的步骤 {step_id}"}],
            )
        # The caller's other values (a file, say) are checked as any submission's are.
        check_evidence(session, round_id, org_id, values)
        return dict(values) | {fields[0].name: ledger_evidence(session, round_id, org_id)}


async def submit_step(
    sessions: sessionmaker[Session],
    temporal: Client,
    caller: Caller,
    round_id: str,
    org_id: str,
    *,
    values_within_limits: Callable[[dict[str, Any]], dict[str, Any]],
    step_id: str = DEFAULT_STEP,
    values: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """Submit the workflow's step with the roster snapshot, the counted commitments and the
    absences as evidence (plus the step's other ``values``); the workflow's guard refuses
    while any member is uncovered. The assembled evidence must pass
    ``values_within_limits`` (it raises ``ValueError`` with the reason: a 2MB Temporal
    payload limit is no place to find out) before anything reaches Temporal. The answer
    is the organisation's status after the Update, with its ``result``; the workflow
    applies each ``idempotency_key`` once."""
    evidence = await anyio.to_thread.run_sync(
        functools.partial(_step_values, sessions, caller, round_id, org_id, step_id, values or {})
    )
    try:
        evidence = values_within_limits(evidence)
    except ValueError as exc:
        raise InvalidInput(
            "invalid", "请求参数有误", [{"field": "values", "reason": str(exc)}]
        ) from None
    answer = await perform(
        temporal,
        actor=caller.actor,
        round_id=round_id,
        org_id=org_id,
        action=OrganisationAction.SUBMIT_EVIDENCE,
        fields={"step_id": step_id, "values": evidence},
        idempotency_key=idempotency_key,
        with_status=True,
    )
    return answer.document()
