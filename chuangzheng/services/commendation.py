"""评选表彰 (seed 002 §五(五)): declaring, scoring, the ranking, the standing committee's 审定,
publication of the honours list and the certificates.

Both ends settle the organisations' steps (issue 15): a declaration for 先进基层党组织
settles its 申报 step, and the 审定 the 审定 step of every organisation that declared. That
runs on the workflows once the write here has committed, and is
:mod:`chuangzheng.services.commendation_steps`'s (the API's routes call it after these); a
refusal there is reported in the answer, never undoes the write.

A secretary declares for their organisation and a township for the organisations of its
township (各级党委自行申报); the assessment group (县委考核组) scores, each assessor on their
own sheet, editable until submitted. The county office alone sees the ranking (so assessors
score without seeing each other's totals), records the 审定 (strikes and additions, each with
a reason) and publishes the list, which never changes afterwards.

The organisation a call names is checked for scope first (:class:`NotFound` outside it, the
same as for what does not exist), then the role (:class:`Refused` ``forbidden``), then the
stage (:class:`Conflict` ``commendation_<stage>``). Each write is one transaction with its
audit row, the round's row locked: nothing half-written, and a concurrent writer that lost
the race is :class:`Conflict`. Functions that take a session or a session factory do
database work only: call them from a worker thread, never on an event loop.

Declarations, sheets, the ranking and the honours are answered as documents (plain JSON
values, so the ranking an approval decided on can be stored as it was shown).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from activities.campaign_record_store import campaign_records
from activities.certificates import Certificate, render_certificate
from activities.commendation_store import RoundContext, Stage, load_round, stage, standings
from activities.guidance_groups import group_map
from activities.roster_store import load_organisation
from activities.tables import (
    CommendationApprovalRow,
    CommendationDecisionRow,
    CommendationDeclarationRow,
    CommendationHonourRow,
    CommendationPublicationRow,
    CommendationScoreSheetRow,
    OrganisationRow,
    RoundRow,
)
from chuangzheng.services.callers import Caller, audit_row, require_role, visible_organisation
from chuangzheng.services.errors import Conflict, NotFound, domain_refusals
from domain.campaign_record import RecordScore, record_score
from domain.campaign_record import explain as explain_record
from domain.commendation import (
    Group,
    Standing,
    check_declaration,
    check_scores,
    nominee_name,
    weighted_total,
)
from domain.commendation_approval import DecisionKind, approve, honours_list
from domain.errors import FieldError, ValidationFailed
from domain.organisation import DEFAULT_COUNTY, GuidanceGroup, Role, system_label
from domain.rubric import CategoryRules, CommendationRules, HonourCategory
from domain.text import free_text_problem

#: Who declares: a secretary for their organisation, a township for its organisations.
DECLARERS = frozenset({Role.SECRETARY, Role.TOWNSHIP})
#: Who scores.
ASSESSORS = frozenset({Role.ASSESSMENT_GROUP})
#: Who sees the ranking, records the 审定 and publishes.
DECIDERS = frozenset({Role.COUNTY_OFFICE})

_HONOUR_FIELDS = (
    "declaration_id", "category", "title", "nominee", "org_id", "org_name", "system", "rank",
    "score", "added", "certificate_no",
)  # fmt: skip


@dataclass(frozen=True)
class Declaration:
    """A 申报: ``nominee`` only for 优秀共产党员 and 优秀党务工作者."""

    category: HonourCategory
    org_id: str
    deeds: str
    nominee: str | None = None


@dataclass(frozen=True)
class Entry:
    """One strike or addition at 审定, with its reason (checked by the domain)."""

    declaration_id: str
    reason: str = ""


@dataclass(frozen=True)
class CertificateFile:
    """A certificate's PDF and the name it is downloaded as."""

    filename: str
    pdf: bytes


# --- documents -------------------------------------------------------------------------------


def _number(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def declaration_document(
    row: CommendationDeclarationRow,
    sheet: CommendationScoreSheetRow | None,
    groups: Mapping[str, GuidanceGroup] | None = None,
) -> dict[str, Any]:
    """A declaration; ``my_sheet`` is the caller's sheet state, for assessors; the system's
    label from ``groups`` (the county's guidance groups, issue 15)."""
    document: dict[str, Any] = {
        "declaration_id": row.declaration_id,
        "round_id": row.round_id,
        "category": row.category,
        "category_label": HonourCategory(row.category).label,
        "org_id": row.org_id,
        "org_name": row.org_name,
        "system": row.system,
        "system_label": system_label(row.system, groups),
        "township": row.township,
        "nominee": row.nominee,
        "deeds": row.deeds,
        "declared_by": row.declared_by,
        "declared_at": row.declared_at.isoformat(),
    }
    if sheet is not None:
        document["my_sheet"] = "submitted" if sheet.submitted_at is not None else "draft"
    return document


def sheet_document(rules: CategoryRules, sheet: CommendationScoreSheetRow) -> dict[str, Any]:
    """One assessor's sheet with its weighted total (numbers as decimal strings)."""
    scores = {k: Decimal(str(v)) for k, v in sheet.scores.items()}
    return {
        "declaration_id": sheet.declaration_id,
        "assessor": sheet.assessor,
        "scores": {k: str(v) for k, v in scores.items()},
        "total": str(weighted_total(rules, scores)),
        "max_total": str(rules.max_total()),
        "submitted": sheet.submitted_at is not None,
        "updated_at": sheet.updated_at.isoformat(),
        "submitted_at": sheet.submitted_at.isoformat() if sheet.submitted_at else None,
    }


def record_document(record: RecordScore | None) -> dict[str, Any] | None:
    """The campaign record's lines (what was counted, the weight, the points) and total."""
    if record is None:
        return None
    return {
        "points": str(record.points),
        "lines": [
            {
                "key": line.key,
                "label": line.label,
                "value": str(line.value),
                "shown": line.shown,
                "weight": str(line.weight),
                "points": str(line.points),
            }
            for line in record.lines
        ],
    }


def score_rule(rules: CommendationRules) -> list[str]:
    """How a declaration's score is made, in Chinese, for the ranking page."""
    out = [
        f"评分表得分：考核组成员各自评分，至少{rules.min_sheets}份评分表提交后取各表总分的平均值"
        "（四舍五入保留两位小数）。"
    ]
    if rules.record is not None:
        weighted = "；".join(explain_record(rules.record)) or "各项权重均为0，不计分"
        out.append(
            "先进基层党组织另加活动记录分（结合年度考核、日常检查）：" + weighted + "。"
            "综合得分 = 评分表得分 + 活动记录分。"
        )
    return out


def _standing_document(s: Standing) -> dict[str, Any]:
    a = s.assessment
    d = a.declaration
    return {
        "declaration_id": d.declaration_id,
        "nominee": d.nominee,
        "org_id": d.org_id,
        "org_name": d.org_name,
        "township": d.township,
        "rank": s.rank,
        "shares_rank": s.shares_rank,
        "proposed": s.proposed,
        "tied_at_quota_line": s.tied_at_quota_line,
        "score": _number(a.score),
        "sheet_score": _number(a.sheet_score),
        "record": record_document(a.record),
        "sheets_submitted": len(a.sheets),
        "outliers": a.outliers,
        "sheets": [
            {
                "assessor": r.assessor,
                "total": str(r.total),
                "median": _number(r.median),
                "outlier": r.outlier,
            }
            for r in a.sheets
        ],
    }


def ranking_document(
    context: RoundContext,
    current: Stage,
    groups: list[Group],
    approval: CommendationApprovalRow | None,
    decisions: Sequence[CommendationDecisionRow],
    labels: Mapping[str, GuidanceGroup] | None = None,
) -> dict[str, Any]:
    """The ranking per honour and system, and the 审定 once recorded (None before); the
    systems' labels from ``labels`` (the county's guidance groups, issue 15)."""
    return {
        "round_id": context.round_id,
        "stage": current.value,
        "stage_label": current.label,
        "min_sheets": context.rules.min_sheets,
        "outlier_points": str(context.rules.outlier_points),
        "score_rule": score_rule(context.rules),
        "groups": [
            {
                "category": g.category.value,
                "title": g.category.label,
                "system": g.system,
                "system_label": system_label(g.system, labels),
                "quota": g.quota,
                "over_quota_by_tie": g.over_quota_by_tie,
                "entries": [_standing_document(s) for s in g.standings],
            }
            for g in groups
        ],
        "approval": None
        if approval is None
        else {
            "meeting": approval.meeting,
            "approved_by": approval.approved_by,
            "approved_at": approval.approved_at.isoformat(),
            "honours": approval.approved["honours"],
            "decisions": [
                {
                    "declaration_id": d.declaration_id,
                    "kind": d.kind,
                    "kind_label": DecisionKind(d.kind).label,
                    "reason": d.reason,
                }
                for d in decisions
            ],
        },
    }


def honour_document(
    row: CommendationHonourRow, groups: Mapping[str, GuidanceGroup] | None = None
) -> dict[str, Any]:
    """One line of the published list, with its certificate's download path (the system's
    label from ``groups``, the county's guidance groups)."""
    return {
        "declaration_id": row.declaration_id,
        "position": row.position,
        "category": row.category,
        "title": row.title,
        "nominee": row.nominee,
        "org_id": row.org_id,
        "org_name": row.org_name,
        "system": row.system,
        "system_label": system_label(row.system, groups),
        "rank": row.rank,
        "score": row.score,
        "added": row.added,
        "certificate_no": row.certificate_no,
        "certificate": (
            f"/api/v1/rounds/{row.round_id}/commendation/honours/{row.declaration_id}/certificate"
        ),
    }


# --- shared checks ---------------------------------------------------------------------------


def commendation_round(session: Session, round_id: str, *, lock: bool = False) -> RoundContext:
    """The round's commendation context (its plan's rules); :class:`NotFound` for an unknown
    round. ``lock`` takes the round's row for the writer's transaction."""
    context = load_round(session, round_id, lock=lock)
    if context is None:
        raise NotFound("轮次不存在")
    return context


def require_stage(session: Session, round_id: str, wanted: Stage, message: str) -> None:
    """:class:`Conflict` (``commendation_<stage>``) unless the round's commendation is at
    ``wanted``."""
    current = stage(session, round_id)
    if current is not wanted:
        raise Conflict(f"commendation_{current.value}", message)


@contextmanager
def _one_writer() -> Iterator[None]:
    """A concurrent writer that won the primary key (SQLite has no row locks): Conflict."""
    try:
        yield
    except IntegrityError:
        raise Conflict("conflict", "该操作已由他人完成，请刷新后查看") from None


def _rubric(context: RoundContext, row: CommendationDeclarationRow) -> CategoryRules | None:
    """The combined rubric of a declaration: its honour's items and its units' conditions."""
    return context.rules.rubric_for(
        HonourCategory(row.category), township=row.township, system=row.system
    )


def conditions_document(context: RoundContext, row: CommendationDeclarationRow) -> list[Any]:
    """The units' own conditions (具体条件) a declaration is also scored on."""
    return [
        {
            "unit": c.unit,
            "reviewed_by": c.reviewed_by,
            "reviewed_on": c.reviewed_on.isoformat(),
            "items": [i.model_dump(mode="json") for i in c.items],
        }
        for c in context.rules.conditions_for(
            HonourCategory(row.category), row.township, row.system
        )
    ]


def visible_declaration(
    session: Session, caller: Caller, round_id: str, declaration_id: str
) -> CommendationDeclarationRow:
    """A declaration of the round whose organisation ``caller`` covers; :class:`NotFound`
    otherwise."""
    row = session.get(CommendationDeclarationRow, declaration_id)
    org = load_organisation(session, row.org_id) if row is not None else None
    if row is None or row.round_id != round_id or org is None or not caller.covers(org):
        raise NotFound()
    return row


def _audit(
    caller: Caller, action: str, round_id: str, org_id: str | None, detail: dict[str, Any]
) -> Any:
    return audit_row(
        caller, f"commendation_{action}", round_id=round_id, org_id=org_id, detail=detail
    )


# --- declaring and scoring -------------------------------------------------------------------


def rules(session: Session, round_id: str) -> dict[str, Any]:
    """The round's rubrics, quotas and outlier rule (from its plan), and its ``stage``."""
    context = commendation_round(session, round_id)
    return context.rules.model_dump(mode="json") | {"stage": stage(session, round_id).value}


def declare(
    sessions: sessionmaker[Session], caller: Caller, round_id: str, declaration: Declaration
) -> dict[str, Any]:
    """Declare an organisation, or a person it nominates, for an honour (:class:`Conflict`
    ``duplicate`` when the same nominee is declared for it already)."""
    with _one_writer(), sessions.begin() as session, domain_refusals():
        context = commendation_round(session, round_id, lock=True)
        org = visible_organisation(session, caller, declaration.org_id)
        require_role(caller, DECLARERS)
        require_stage(session, round_id, Stage.OPEN, "本轮评选表彰已审定，不能再申报")
        category = declaration.category
        check_declaration(context.rules, category, declaration.nominee, declaration.deeds)
        if not context.covers(org):
            raise ValidationFailed([FieldError("org_id", "该组织不在本轮活动范围内")])
        nominee = nominee_name(declaration.nominee) if category.for_person else org.name
        duplicate = session.scalar(
            select(CommendationDeclarationRow.declaration_id).where(
                CommendationDeclarationRow.round_id == round_id,
                CommendationDeclarationRow.category == category.value,
                CommendationDeclarationRow.org_id == org.id,
                CommendationDeclarationRow.nominee == nominee,
            )
        )
        if duplicate is not None:
            raise Conflict("duplicate", f"{nominee}已申报{category.label}")
        row = CommendationDeclarationRow(
            declaration_id=f"dec-{uuid.uuid4().hex[:16]}",
            round_id=round_id,
            category=category.value,
            org_id=org.id,
            org_name=org.name,
            system=org.system,
            township=org.township,
            nominee=nominee,
            deeds=declaration.deeds.strip(),
            declared_by=caller.username,
            declared_role=caller.role.value,
            declared_at=datetime.now(UTC),
        )
        session.add(row)
        detail = {"declaration_id": row.declaration_id}
        session.add(_audit(caller, "declared", round_id, org.id, detail))
        return declaration_document(row, None, group_map(session, {org.county}))


def declarations(session: Session, caller: Caller, round_id: str) -> list[dict[str, Any]]:
    """The declarations whose organisations ``caller`` covers; an assessor also sees their
    own sheet's state (``my_sheet``) and, beside it, the organisation's campaign record
    (``record``) for a 先进基层党组织 declaration when the plan weighs it."""
    context = commendation_round(session, round_id)
    rows = session.scalars(
        select(CommendationDeclarationRow)
        .join(OrganisationRow, OrganisationRow.org_id == CommendationDeclarationRow.org_id)
        .where(CommendationDeclarationRow.round_id == round_id)
        .where(caller.condition)
        .order_by(CommendationDeclarationRow.declared_at)
    ).all()
    sheets: dict[str, CommendationScoreSheetRow] = {}
    if caller.role in ASSESSORS:
        sheets = {
            s.declaration_id: s
            for s in session.scalars(
                select(CommendationScoreSheetRow)
                .where(CommendationScoreSheetRow.round_id == round_id)
                .where(CommendationScoreSheetRow.assessor == caller.username)
            )
        }
    groups = group_map(session, {context.row.county})
    documents = [declaration_document(r, sheets.get(r.declaration_id), groups) for r in rows]
    if context.rules.unit_conditions and caller.role in ASSESSORS | DECIDERS:
        for row, document in zip(rows, documents, strict=True):
            document["conditions"] = conditions_document(context, row)
    weights = context.rules.record
    if weights is not None and caller.role in ASSESSORS | DECIDERS:
        records = campaign_records(session, round_id, {r.org_id for r in rows})
        for row, document in zip(rows, documents, strict=True):
            if not HonourCategory(row.category).for_person:
                document["record"] = record_document(record_score(weights, records[row.org_id]))
    return documents


def score(
    sessions: sessionmaker[Session],
    caller: Caller,
    round_id: str,
    declaration_id: str,
    scores: Mapping[str, Any],
    *,
    submit: bool = False,
) -> dict[str, Any]:
    """Save the caller's sheet; ``submit`` needs every item and closes the sheet for good
    (:class:`Conflict` ``sheet_submitted`` afterwards)."""
    with _one_writer(), sessions.begin() as session, domain_refusals():
        context = commendation_round(session, round_id, lock=True)
        row = visible_declaration(session, caller, round_id, declaration_id)
        require_role(caller, ASSESSORS)
        require_stage(session, round_id, Stage.OPEN, "本轮评选表彰已审定，评分已锁定")
        category = _rubric(context, row)
        if category is None:
            raise Conflict("not_awarded", "本轮计划不再评选该项表彰")
        sheet = session.get(CommendationScoreSheetRow, (declaration_id, caller.username))
        if sheet is not None and sheet.submitted_at is not None:
            raise Conflict("sheet_submitted", "评分表已提交，不能修改")
        checked = check_scores(category, dict(scores), complete=submit)
        now = datetime.now(UTC)
        if sheet is None:
            sheet = CommendationScoreSheetRow(
                declaration_id=declaration_id, assessor=caller.username, round_id=round_id
            )
            session.add(sheet)
        sheet.scores = {k: str(v) for k, v in checked.items()}
        sheet.updated_at = now
        sheet.submitted_at = now if submit else None
        kind = "sheet_submitted" if submit else "sheet_saved"
        detail = {"declaration_id": declaration_id, "scores": sheet.scores}
        session.add(_audit(caller, kind, round_id, row.org_id, detail))
        return sheet_document(category, sheet)


def my_sheet(
    session: Session, caller: Caller, round_id: str, declaration_id: str
) -> dict[str, Any]:
    """The caller's own sheet (assessors never see each other's sheets here);
    :class:`NotFound` before the caller has scored."""
    context = commendation_round(session, round_id)
    row = visible_declaration(session, caller, round_id, declaration_id)
    sheet = session.get(CommendationScoreSheetRow, (declaration_id, caller.username))
    category = _rubric(context, row)
    if sheet is None or category is None:
        raise NotFound("尚未评分")
    return sheet_document(category, sheet)


# --- deciding --------------------------------------------------------------------------------


def ranking(session: Session, caller: Caller, round_id: str) -> dict[str, Any]:
    """Scores, outlier flags and ranks per honour and system, with the 审定 once recorded
    (the county office only)."""
    context = commendation_round(session, round_id)
    require_role(caller, DECIDERS)
    _, groups = standings(session, context)
    approval = session.get(CommendationApprovalRow, round_id)
    decisions = session.scalars(
        select(CommendationDecisionRow).where(CommendationDecisionRow.round_id == round_id)
    ).all()
    labels = group_map(session, {context.row.county})
    return ranking_document(context, stage(session, round_id), groups, approval, decisions, labels)


def record_approval(
    sessions: sessionmaker[Session],
    caller: Caller,
    round_id: str,
    *,
    meeting: str,
    struck: Sequence[Entry] = (),
    added: Sequence[Entry] = (),
) -> dict[str, Any]:
    """The standing committee's 审定 of the proposed list, striking and adding entries,
    each with a reason, at ``meeting`` (not blank); recorded once (:class:`Conflict`
    afterwards)."""
    with _one_writer(), sessions.begin() as session, domain_refusals():
        context = commendation_round(session, round_id, lock=True)
        require_role(caller, DECIDERS)
        require_stage(session, round_id, Stage.OPEN, "本轮名单已审定，不能再次审定")
        # Checked as a reader sees it (zero-width characters are no meeting) and stored
        # stripped: the 审定 is recorded once, and its 审定 steps carry the meeting.
        if problem := free_text_problem(meeting, short="请填写审定会议"):
            raise ValidationFailed([FieldError("meeting", problem)])
        meeting = meeting.strip()
        by_id, groups = standings(session, context)
        approved, decisions = approve(
            groups,
            by_id,
            [(e.declaration_id, e.reason) for e in struck],
            [(e.declaration_id, e.reason) for e in added],
        )
        honours = honours_list(round_id, approved)
        now = datetime.now(UTC)
        session.add(
            CommendationApprovalRow(
                round_id=round_id,
                meeting=meeting,
                approved_by=caller.username,
                approved_at=now,
                proposal=ranking_document(
                    context, Stage.OPEN, groups, None, [], group_map(session, {context.row.county})
                ),
                approved={"honours": [h.model_dump(mode="json") for h in honours]},
            )
        )
        session.add_all(
            CommendationDecisionRow(
                round_id=round_id,
                declaration_id=d.declaration_id,
                kind=d.kind.value,
                reason=d.reason,
                decided_by=caller.username,
                decided_at=now,
            )
            for d in decisions
        )
        detail = {"meeting": meeting, "decisions": len(decisions)}
        session.add(_audit(caller, "approved", round_id, None, detail))
        return {
            "round_id": round_id,
            "meeting": meeting,
            "approved_at": now,
            "honours": [h.model_dump(mode="json") for h in honours],
            "decisions": [d.model_dump(mode="json") for d in decisions],
        }


def publish(sessions: sessionmaker[Session], caller: Caller, round_id: str) -> dict[str, Any]:
    """Publish the approved list: public from now on, and never changed afterwards
    (:class:`Conflict` before the 审定 and once published)."""
    with _one_writer(), sessions.begin() as session:
        context = commendation_round(session, round_id, lock=True)
        require_role(caller, DECIDERS)
        current = stage(session, round_id)
        if current is Stage.PUBLISHED:
            raise Conflict("commendation_published", "名单已公布，不能更改")
        approval = session.get(CommendationApprovalRow, round_id)
        if current is Stage.OPEN or approval is None:
            raise Conflict("commendation_open", "名单尚未审定，不能公布")
        now = datetime.now(UTC)
        session.add(
            CommendationPublicationRow(
                round_id=round_id,
                round_name=context.row.name,
                published_by=caller.username,
                published_at=now,
            )
        )
        rows = [
            CommendationHonourRow(
                round_id=round_id,
                position=position,
                published_at=now,
                **{k: h[k] for k in _HONOUR_FIELDS},
            )
            for position, h in enumerate(approval.approved["honours"], start=1)
        ]
        session.add_all(rows)
        session.add(_audit(caller, "published", round_id, None, {"count": len(rows)}))
        labels = group_map(session, {context.row.county})
        return {
            "round_id": round_id,
            "published_at": now,
            "honours": [honour_document(r, labels) for r in rows],
        }


def published_honours(session: Session, round_id: str) -> dict[str, Any]:
    """The published list of a round (:class:`NotFound` before publication)."""
    publication = session.get(CommendationPublicationRow, round_id)
    if publication is None:
        raise NotFound("名单尚未公布")
    rows = session.scalars(
        select(CommendationHonourRow)
        .where(CommendationHonourRow.round_id == round_id)
        .order_by(CommendationHonourRow.position)
    ).all()
    county = session.scalar(select(RoundRow.county).where(RoundRow.round_id == round_id))
    labels = group_map(session, {county or DEFAULT_COUNTY})
    return {
        "round_id": round_id,
        "round_name": publication.round_name,
        "published_at": publication.published_at,
        "honours": [honour_document(r, labels) for r in rows],
    }


def certificate(
    session: Session, caller: Caller, round_id: str, declaration_id: str
) -> CertificateFile:
    """An honour's certificate (PDF), for those whose scope covers the organisation;
    :class:`NotFound` before publication and outside the scope."""
    row = session.get(CommendationHonourRow, declaration_id)
    org = load_organisation(session, row.org_id) if row is not None else None
    publication = session.get(CommendationPublicationRow, round_id)
    if (
        row is None
        or publication is None
        or row.round_id != round_id
        or org is None
        or not caller.covers(org)
    ):
        raise NotFound()
    category = HonourCategory(row.category)
    context = commendation_round(session, round_id)
    category_rules = context.rules.category(category)
    pdf = render_certificate(
        Certificate(
            certificate_no=row.certificate_no,
            nominee=row.nominee,
            org_name=row.org_name,
            title=row.title,
            standard=category_rules.standard if category_rules else "",
            round_name=publication.round_name,
            for_person=category.for_person,
            issuer=context.rules.issuer,
            published_at=row.published_at,
        )
    )
    return CertificateFile(filename=f"{row.certificate_no}.pdf", pdf=pdf)
