"""评选表彰's last steps: 审定 (the standing committee strikes proposed entries and adds
unproposed declarations, each with a reason) and the honours list it publishes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from domain.commendation import MIN_REASON, Assessment, Group
from domain.errors import FieldError, ValidationFailed
from domain.organisation import System
from domain.rubric import HonourCategory
from domain.text import free_text_problem

_FROZEN = ConfigDict(frozen=True)


class DecisionKind(StrEnum):
    """What 审定 does to one entry."""

    STRIKE = "strike"  # 取消入选
    ADD = "add"  # 增补

    @property
    def label(self) -> str:
        """The Chinese name."""
        return "取消入选" if self is DecisionKind.STRIKE else "增补"


class Decision(BaseModel):
    """One strike or addition at 审定, with its reason."""

    model_config = _FROZEN

    kind: DecisionKind
    declaration_id: str
    reason: str


class ApprovedEntry(BaseModel):
    """An entry of the approved list: ranked within quota, or added at 审定."""

    model_config = _FROZEN

    assessment: Assessment
    rank: int | None
    added: bool


def approve(
    groups: Sequence[Group],
    declarations: Mapping[str, Assessment],
    struck: Sequence[tuple[str, str]],
    added: Sequence[tuple[str, str]],
) -> tuple[list[ApprovedEntry], list[Decision]]:
    """The approved list: proposals minus ``struck`` plus ``added`` ((id, reason) pairs).

    Every problem is reported together; a missing reason names ``struck[i].reason`` or
    ``added[i].reason``."""
    proposed = {
        s.assessment.declaration.declaration_id: s
        for g in groups
        for s in g.standings
        if s.proposed
    }
    ranks = {s.assessment.declaration.declaration_id: s.rank for g in groups for s in g.standings}
    errors: list[FieldError] = []
    seen: set[str] = set()
    decisions: list[Decision] = []
    for field, pairs, kind in (
        ("struck", struck, DecisionKind.STRIKE),
        ("added", added, DecisionKind.ADD),
    ):
        for index, (declaration_id, reason) in enumerate(pairs):
            where = f"{field}[{index}]"
            # Counted as a reader sees it: spaces and zero-width characters are no reason.
            short = f"{kind.label}必须说明理由"
            if problem := free_text_problem(reason, minimum=MIN_REASON, short=short):
                errors.append(FieldError(f"{where}.reason", problem))
            if declaration_id in seen:
                errors.append(FieldError(f"{where}.declaration_id", "同一申报只能作一项决定"))
            elif declaration_id not in declarations:
                errors.append(FieldError(f"{where}.declaration_id", "本轮没有该申报"))
            elif kind is DecisionKind.STRIKE and declaration_id not in proposed:
                errors.append(FieldError(f"{where}.declaration_id", "该申报不在拟表彰名单中"))
            elif kind is DecisionKind.ADD and declaration_id in proposed:
                errors.append(FieldError(f"{where}.declaration_id", "该申报已在拟表彰名单中"))
            seen.add(declaration_id)
            decisions.append(
                Decision(kind=kind, declaration_id=declaration_id, reason=reason.strip())
            )
    if errors:
        raise ValidationFailed(errors)
    struck_ids = {d for d, _ in struck}
    entries = [
        ApprovedEntry(assessment=s.assessment, rank=s.rank, added=False)
        for d, s in proposed.items()
        if d not in struck_ids
    ]
    entries += [
        ApprovedEntry(assessment=declarations[d], rank=ranks.get(d), added=True) for d, _ in added
    ]
    return entries, decisions


class Honour(BaseModel):
    """One line of the published honours list (and its certificate)."""

    model_config = _FROZEN

    declaration_id: str
    category: HonourCategory
    title: str
    nominee: str
    org_id: str
    org_name: str
    system: str  # the guidance group's key
    rank: int | None
    score: Decimal | None
    added: bool
    certificate_no: str


_CATEGORY_CODES = {
    HonourCategory.ADVANCED_ORGANISATION: "ZZ",
    HonourCategory.OUTSTANDING_MEMBER: "DY",
    HonourCategory.OUTSTANDING_PARTY_WORKER: "DW",
}


def honours_list(round_id: str, approved: Sequence[ApprovedEntry]) -> list[Honour]:
    """The list to publish: by honour, system, rank (added entries after the ranked ones),
    numbered per honour for the certificates. Systems in seed 002's order, then a county's
    own groups by key (issue 15), so a seed county's numbers are what they always were."""
    categories = list(HonourCategory)
    seed = [s.value for s in System]

    def key(e: ApprovedEntry) -> tuple[int, tuple[int, str], int, int, datetime]:
        d = e.assessment.declaration
        return (
            categories.index(d.category),
            (seed.index(d.system), "") if d.system in seed else (len(seed), d.system),
            int(e.added),
            e.rank if e.rank is not None else 1_000_000,
            d.declared_at,
        )

    honours: list[Honour] = []
    counters: dict[HonourCategory, int] = {}
    for entry in sorted(approved, key=key):
        d = entry.assessment.declaration
        counters[d.category] = counters.get(d.category, 0) + 1
        number = f"{round_id}-{_CATEGORY_CODES[d.category]}-{counters[d.category]:03d}"
        honours.append(
            Honour(
                declaration_id=d.declaration_id,
                category=d.category,
                title=d.category.label,
                nominee=d.nominee,
                org_id=d.org_id,
                org_name=d.org_name,
                system=d.system,
                rank=entry.rank,
                score=entry.assessment.score,
                added=entry.added,
                certificate_no=number,
            )
        )
    return honours
