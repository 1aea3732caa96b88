"""JSON views of the commendation rows and standings (plain str/int/bool values, so a view
can also be stored as a JSON column, e.g. the ranking an approval decided on)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from activities.commendation_store import RoundContext, Stage
from activities.tables import (
    CommendationApprovalRow,
    CommendationDecisionRow,
    CommendationDeclarationRow,
    CommendationHonourRow,
    CommendationScoreSheetRow,
)
from domain.commendation import Group, Standing, weighted_total
from domain.commendation_approval import DecisionKind
from domain.organisation import System
from domain.rubric import CategoryRules, HonourCategory


def _number(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def declaration_view(
    row: CommendationDeclarationRow, sheet: CommendationScoreSheetRow | None
) -> dict[str, Any]:
    """A declaration; ``my_sheet`` is the caller's sheet state for assessors."""
    view: dict[str, Any] = {
        "declaration_id": row.declaration_id,
        "round_id": row.round_id,
        "category": row.category,
        "category_label": HonourCategory(row.category).label,
        "org_id": row.org_id,
        "org_name": row.org_name,
        "system": row.system,
        "system_label": System(row.system).label,
        "township": row.township,
        "nominee": row.nominee,
        "deeds": row.deeds,
        "declared_by": row.declared_by,
        "declared_at": row.declared_at.isoformat(),
    }
    if sheet is not None:
        view["my_sheet"] = "submitted" if sheet.submitted_at is not None else "draft"
    return view


def sheet_view(rules: CategoryRules, sheet: CommendationScoreSheetRow) -> dict[str, Any]:
    """One assessor's sheet with its weighted total."""
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


def _standing_view(s: Standing) -> dict[str, Any]:
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


def ranking_view(
    context: RoundContext,
    current: Stage,
    groups: list[Group],
    approval: CommendationApprovalRow | None,
    decisions: list[CommendationDecisionRow],
) -> dict[str, Any]:
    """The ranking per honour and system, and the 审定 once recorded."""
    return {
        "round_id": context.round_id,
        "stage": current.value,
        "stage_label": current.label,
        "min_sheets": context.rules.min_sheets,
        "outlier_points": str(context.rules.outlier_points),
        "groups": [
            {
                "category": g.category.value,
                "title": g.category.label,
                "system": g.system.value,
                "system_label": g.system.label,
                "quota": g.quota,
                "over_quota_by_tie": g.over_quota_by_tie,
                "entries": [_standing_view(s) for s in g.standings],
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


def honour_view(row: CommendationHonourRow) -> dict[str, Any]:
    """One line of the published list, with its certificate's download path."""
    return {
        "declaration_id": row.declaration_id,
        "position": row.position,
        "category": row.category,
        "title": row.title,
        "nominee": row.nominee,
        "org_id": row.org_id,
        "org_name": row.org_name,
        "system": row.system,
        "system_label": System(row.system).label,
        "rank": row.rank,
        "score": row.score,
        "added": row.added,
        "certificate_no": row.certificate_no,
        "certificate": (
            f"/api/v1/rounds/{row.round_id}/commendation/honours/{row.declaration_id}/certificate"
        ),
    }
