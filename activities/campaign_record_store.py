"""Reading an organisation's campaign record (:class:`domain.campaign_record.CampaignRecord`)
from the read model: phases on time or late, escalations, rectifications ordered and passed,
the latest published 群众评议 satisfaction and the spot-check verdicts.

Everything here is a projection of the organisations' workflows and the supervisors'
records, so the record an assessor sees is the one the dashboards show. One query per
input for a whole set of organisations (a round's declarations), never one per
organisation.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from activities.tables import (
    CampaignEventRow,
    EscalationRow,
    EvaluationRow,
    InspectionRow,
    PhaseStatusRow,
)
from domain.campaign_record import CampaignRecord
from domain.evaluation_rules import EvaluationTarget
from domain.events import EventKind
from domain.inspection import InspectionVerdict
from domain.machine import PhaseStatus
from workflows.evaluation_contracts import EvaluationStage

#: Events that order rectification (an order on an overdue phase, or one on an open phase).
_ORDERS = (EventKind.RECTIFICATION_ORDERED.value, EventKind.RECTIFICATION_REQUIRED.value)


def campaign_records(
    session: Session, round_id: str, org_ids: Collection[str]
) -> dict[str, CampaignRecord]:
    """The campaign record of each of ``org_ids`` in ``round_id`` (an organisation with
    nothing recorded gets an empty record)."""
    if not org_ids:
        return {}
    ids = sorted(set(org_ids))
    late: dict[str, set[str]] = {}
    for org_id, phase in session.execute(
        select(CampaignEventRow.org_id, CampaignEventRow.phase)
        .where(CampaignEventRow.round_id == round_id)
        .where(CampaignEventRow.org_id.in_(ids))
        .where(CampaignEventRow.kind == EventKind.DEADLINE_PASSED.value)
    ):
        if phase is not None:
            late.setdefault(org_id, set()).add(phase)
    done: dict[str, set[str]] = {}
    for org_id, phase in session.execute(
        select(PhaseStatusRow.org_id, PhaseStatusRow.phase)
        .where(PhaseStatusRow.round_id == round_id)
        .where(PhaseStatusRow.org_id.in_(ids))
        .where(PhaseStatusRow.status == PhaseStatus.DONE.value)
    ):
        done.setdefault(org_id, set()).add(phase)
    escalations: dict[str, int] = dict(
        session.execute(
            select(EscalationRow.org_id, func.count())
            .where(EscalationRow.round_id == round_id)
            .where(EscalationRow.org_id.in_(ids))
            .group_by(EscalationRow.org_id)
        ).all()
    )
    ordered: Counter[str] = Counter()
    passed: Counter[str] = Counter()
    for org_id, kind, detail in session.execute(
        select(CampaignEventRow.org_id, CampaignEventRow.kind, CampaignEventRow.detail)
        .where(CampaignEventRow.round_id == round_id)
        .where(CampaignEventRow.org_id.in_(ids))
        .where(CampaignEventRow.kind.in_((*_ORDERS, EventKind.RECHECKED.value)))
    ):
        if kind in _ORDERS:
            ordered[org_id] += 1
        elif (detail or {}).get("passed") is True:
            passed[org_id] += 1
    satisfaction: dict[str, Decimal] = {}
    for org_id, value in session.execute(
        select(EvaluationRow.org_id, EvaluationRow.satisfaction)
        .where(EvaluationRow.round_id == round_id)
        .where(EvaluationRow.org_id.in_(ids))
        .where(EvaluationRow.target == EvaluationTarget.ORGANISATION.value)
        .where(EvaluationRow.status == EvaluationStage.PUBLISHED.value)
        .where(EvaluationRow.satisfaction.is_not(None))
        .order_by(EvaluationRow.org_id, EvaluationRow.seq)
    ):
        # The latest run counts (a re-run after an invalid one has the next number); a float
        # column, so cut to four decimals before it becomes an exact Decimal.
        if value is not None:
            satisfaction[org_id] = Decimal(str(round(float(value), 4)))
    checks: dict[str, Counter[InspectionVerdict]] = {}
    for org_id, verdict in session.execute(
        select(InspectionRow.org_id, InspectionRow.verdict)
        .where(InspectionRow.round_id == round_id)
        .where(InspectionRow.org_id.in_(ids))
        .where(InspectionRow.verdict != InspectionVerdict.PENDING.value)
    ):
        checks.setdefault(org_id, Counter())[InspectionVerdict(verdict)] += 1
    return {
        org_id: CampaignRecord(
            phases_on_time=len(done.get(org_id, set()) - late.get(org_id, set())),
            phases_late=len(late.get(org_id, set())),
            escalations=escalations.get(org_id, 0),
            rectifications_ordered=ordered[org_id],
            rectifications_passed=passed[org_id],
            satisfaction=satisfaction.get(org_id),
            spot_checks=dict(checks.get(org_id, {})),
        )
        for org_id in ids
    }
