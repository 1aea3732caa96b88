"""Reading the commendation tables into the domain's objects (declarations, assessments,
standings) and the round's commendation rules from its stored plan."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from functools import lru_cache

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from activities.campaign_record_store import campaign_records
from activities.db import write_lock
from activities.tables import (
    CommendationApprovalRow,
    CommendationDeclarationRow,
    CommendationPublicationRow,
    CommendationScoreSheetRow,
    RoundDefinitionRow,
    RoundRow,
)
from domain.commendation import Assessment, Declaration, Group, assess, rank
from domain.organisation import Organisation
from domain.plan import CampaignPlan, RoundPlan
from domain.rubric import CommendationRules, HonourCategory, rules_or_default


class Stage(StrEnum):
    """Where a round's commendation stands; each stage closes what the previous allowed."""

    OPEN = "open"  # declaring and scoring
    APPROVED = "approved"  # 审定 recorded: declarations and sheets frozen
    PUBLISHED = "published"  # honours list public, immutable

    @property
    def label(self) -> str:
        """The Chinese name."""
        return {"open": "申报与评分", "approved": "已审定", "published": "已公布"}[self.value]


@lru_cache(maxsize=32)
def _plan(text: str) -> CampaignPlan:
    # The round's YAML was fully checked (calendar included) when the round was created and
    # never changes; here only the models are needed.
    return CampaignPlan.model_validate(yaml.safe_load(text))


class RoundContext:
    """A round's rows, plan and commendation rules."""

    def __init__(self, row: RoundRow, definition: RoundDefinitionRow) -> None:
        self.row = row
        self.definition = definition
        self.plan = _plan(definition.plan_yaml)
        self.round_plan: RoundPlan = self.plan.round(definition.round_plan_id)
        self.rules: CommendationRules = rules_or_default(self.plan.commendation)

    @property
    def round_id(self) -> str:
        """The round's id."""
        return self.row.round_id

    def covers(self, org: Organisation) -> bool:
        """Whether ``org`` is in the round's scope (types and townships)."""
        scope = self.round_plan.scope
        return (scope.types is None or org.type in scope.types) and (
            scope.townships is None or org.township in scope.townships
        )


def load_round(session: Session, round_id: str, *, lock: bool = False) -> RoundContext | None:
    """The round, or None. ``lock`` takes a row lock (PostgreSQL) so that the round's
    commendation writes are serialised: a sheet cannot slip in while 审定 is recorded
    (on SQLite, the database's write lock: ``activities.db.write_lock``)."""
    if lock:
        write_lock(session, RoundRow)
    row = session.get(RoundRow, round_id, with_for_update=lock)
    definition = session.get(RoundDefinitionRow, round_id)
    if row is None or definition is None:
        return None
    return RoundContext(row, definition)


def stage(session: Session, round_id: str) -> Stage:
    """The round's commendation stage."""
    if session.get(CommendationPublicationRow, round_id) is not None:
        return Stage.PUBLISHED
    if session.get(CommendationApprovalRow, round_id) is not None:
        return Stage.APPROVED
    return Stage.OPEN


def to_declaration(row: CommendationDeclarationRow) -> Declaration:
    """The domain's view of a stored declaration."""
    return Declaration(
        declaration_id=row.declaration_id,
        category=HonourCategory(row.category),
        org_id=row.org_id,
        org_name=row.org_name,
        system=row.system,
        township=row.township,
        nominee=row.nominee,
        deeds=row.deeds,
        declared_at=row.declared_at,
    )


def declarations(session: Session, round_id: str) -> list[CommendationDeclarationRow]:
    """The round's declarations in declaration order."""
    return list(
        session.scalars(
            select(CommendationDeclarationRow)
            .where(CommendationDeclarationRow.round_id == round_id)
            .order_by(
                CommendationDeclarationRow.declared_at, CommendationDeclarationRow.declaration_id
            )
        ).all()
    )


def assessments(session: Session, context: RoundContext) -> dict[str, Assessment]:
    """Every declaration of the round aggregated over its submitted sheets, with its
    organisation's campaign record when the plan weighs it."""
    submitted: dict[str, dict[str, dict[str, Decimal]]] = {}
    for sheet in session.scalars(
        select(CommendationScoreSheetRow)
        .where(CommendationScoreSheetRow.round_id == context.round_id)
        .where(CommendationScoreSheetRow.submitted_at.is_not(None))
    ):
        scores = {k: Decimal(str(v)) for k, v in sheet.scores.items()}
        submitted.setdefault(sheet.declaration_id, {})[sheet.assessor] = scores
    rows = declarations(session, context.round_id)
    records = (
        campaign_records(session, context.round_id, {r.org_id for r in rows})
        if context.rules.record is not None
        else {}
    )
    result: dict[str, Assessment] = {}
    for row in rows:
        declaration = to_declaration(row)
        if context.rules.category(declaration.category) is None:
            continue  # the plan no longer awards it (declarations are checked when made)
        result[row.declaration_id] = assess(
            context.rules,
            declaration,
            submitted.get(row.declaration_id, {}),
            records.get(row.org_id),
        )
    return result


def standings(session: Session, context: RoundContext) -> tuple[dict[str, Assessment], list[Group]]:
    """The round's assessments and their ranking per honour and system."""
    by_id = assessments(session, context)
    return by_id, rank(context.rules, by_id.values())
