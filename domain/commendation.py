"""评选表彰 as a procedure (seed 002 §五(五)): declaration, independent scoring, aggregation
with outliers flagged, ranking per system within quota, 审定 with strikes and additions, and
the honours list.

Definitions (also in docs/procedures.md):

- A sheet's **total** is Σ weight × points over the rubric's items (exact decimals).
- A declaration's **score** is the mean of its submitted sheets' totals, rounded half-up to
  two decimals; it is ranked only once it has ``min_sheets`` submitted sheets. When the
  plan weighs the campaign record (``commendation.record``), a 先进基层党组织 declaration's
  score adds the record's points (:mod:`domain.campaign_record`): "结合年度考核、日常检查".
- A sheet is an **outlier** when at least three sheets are submitted and its total deviates
  from the median of all submitted totals by more than ``outlier_points``. (Not the median
  of the *other* sheets: with three sheets that is the mean of the other two, which one
  wild sheet drags far enough to get its sound neighbours flagged too.) Outliers are
  flagged for the standing committee, not dropped: the score still counts every sheet.
- **Ranking** is per honour and system, by score, highest first. Equal scores (at two
  decimals) share a rank and the next rank skips (1, 1, 3); there is no tie-break. Entries
  ranked within the quota are proposed; a tie across the quota line proposes every tied
  entry and is flagged, leaving the choice to 审定.
- **审定** strikes proposed entries and adds unproposed declarations, each with a reason
  (:mod:`domain.commendation_approval`, with the honours list).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from pydantic import BaseModel, ConfigDict

from domain.campaign_record import CampaignRecord, RecordScore, record_score
from domain.errors import FieldError, ValidationFailed
from domain.organisation import System
from domain.rubric import CategoryRules, CommendationRules, HonourCategory
from domain.text import clean_name, free_text_problem, refusal, visible_length

_FROZEN = ConfigDict(frozen=True)
CENT = Decimal("0.01")
MIN_DEEDS = 10
MIN_REASON = 2


class Declaration(BaseModel):
    """A 申报: an organisation declared by its party committee, or a person nominated by
    their organisation. ``nominee`` is the organisation's name for organisations."""

    model_config = _FROZEN

    declaration_id: str
    category: HonourCategory
    org_id: str
    org_name: str
    # The organisation's guidance group's key (the county's data, issue 15).
    system: str
    township: str
    nominee: str
    deeds: str
    declared_at: datetime


def check_declaration(
    rules: CommendationRules, category: HonourCategory, nominee: str | None, deeds: str
) -> None:
    """Refuse a declaration that breaks the rules, naming every field. The nominee's name
    and the deeds are counted as a reader sees them (zero-width characters and spaces are
    not words) and refused with a direction override (:mod:`domain.text`)."""
    errors: list[FieldError] = []
    if rules.category(category) is None:
        errors.append(FieldError("category", f"本轮计划不评选{category.label}"))
    name = nominee or ""
    if reason := refusal(name):
        errors.append(FieldError("nominee", reason))
    elif category.for_person and not 2 <= visible_length(name) <= 30:
        errors.append(FieldError("nominee", f"申报{category.label}须填写被推荐人姓名（2–30字）"))
    elif not category.for_person and visible_length(name):
        errors.append(FieldError("nominee", "申报先进基层党组织时不填被推荐人，申报对象即本组织"))
    if problem := free_text_problem(deeds, minimum=MIN_DEEDS, short=f"主要事迹不少于{MIN_DEEDS}字"):
        errors.append(FieldError("deeds", problem))
    if errors:
        raise ValidationFailed(errors)


def nominee_name(nominee: str | None) -> str:
    """The nominee's name as stored and compared (:func:`domain.text.clean_name`): one
    person however their name was typed or pasted, so a look-alike (``王二\\u200b``) is the
    same nominee for the duplicate check. Call after :func:`check_declaration`."""
    return clean_name(nominee or "")


def _points(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    try:
        points = Decimal(str(value))
    except InvalidOperation:
        return None
    return points if points.is_finite() else None


def check_scores(
    rules: CategoryRules, scores: Mapping[str, object], *, complete: bool
) -> dict[str, Decimal]:
    """Scores within each item's bounds, at most one decimal; all items when ``complete``
    (a sheet being submitted). Returns the scores as exact decimals."""
    errors: list[FieldError] = []
    parsed: dict[str, Decimal] = {}
    for item_id, raw in scores.items():
        item = rules.item(item_id)
        if item is None:
            errors.append(FieldError(f"scores.{item_id}", "评分标准中没有该项"))
            continue
        points = _points(raw)
        if points is None:
            errors.append(FieldError(f"scores.{item_id}", "应为数字"))
        elif not 0 <= points <= item.max_points:
            errors.append(
                FieldError(f"scores.{item_id}", f"{item.name}应在 0–{item.max_points} 分之间")
            )
        elif points != points.quantize(Decimal("0.1")):
            errors.append(FieldError(f"scores.{item_id}", "分数最多保留一位小数"))
        else:
            parsed[item_id] = points
    if complete:
        errors.extend(
            FieldError(f"scores.{i.id}", f"提交前须为“{i.name}”评分")
            for i in rules.items
            if i.id not in scores
        )
    if errors:
        raise ValidationFailed(errors)
    return parsed


def weighted_total(rules: CategoryRules, scores: Mapping[str, Decimal]) -> Decimal:
    """Σ weight × points (items not scored count 0)."""
    return sum((i.weight * scores.get(i.id, Decimal(0)) for i in rules.items), Decimal(0))


class SheetResult(BaseModel):
    """One submitted sheet's total and whether it is flagged as an outlier."""

    model_config = _FROZEN

    assessor: str
    total: Decimal
    median: Decimal | None  # of all submitted totals; None with fewer than three
    outlier: bool


class Assessment(BaseModel):
    """A declaration with its submitted sheets aggregated."""

    model_config = _FROZEN

    declaration: Declaration
    sheets: tuple[SheetResult, ...]
    score: Decimal | None  # None until ``min_sheets`` sheets are submitted
    # The sheets' mean alone, and the campaign record's part (None: the plan or the honour
    # does not weigh it); ``score`` is their sum.
    sheet_score: Decimal | None = None
    record: RecordScore | None = None

    @property
    def outliers(self) -> int:
        """How many sheets are flagged."""
        return sum(1 for s in self.sheets if s.outlier)


def assess(
    rules: CommendationRules,
    declaration: Declaration,
    submitted: Mapping[str, Mapping[str, Decimal]],
    record: CampaignRecord | None = None,
) -> Assessment:
    """Aggregate the submitted sheets (assessor -> scores) of one declaration, adding the
    organisation's campaign ``record`` when the plan weighs it and the honour is the
    organisation's own (先进基层党组织)."""
    category = rules.rubric_for(
        declaration.category, township=declaration.township, system=declaration.system
    )
    if category is None:
        raise ValueError(f"no rules for {declaration.category}")
    totals = {a: weighted_total(category, s) for a, s in sorted(submitted.items())}
    results: list[SheetResult] = []
    median = statistics.median(totals.values()) if len(totals) >= 3 else None
    for assessor, total in totals.items():
        results.append(
            SheetResult(
                assessor=assessor,
                total=total,
                median=median,
                outlier=median is not None and abs(total - median) > rules.outlier_points,
            )
        )
    score = None
    if totals and len(totals) >= rules.min_sheets:
        mean = sum(totals.values(), Decimal(0)) / len(totals)
        score = mean.quantize(CENT, rounding=ROUND_HALF_UP)
    weighed = (
        record_score(rules.record, record or CampaignRecord())
        if rules.record is not None and not declaration.category.for_person
        else None
    )
    return Assessment(
        declaration=declaration,
        sheets=tuple(results),
        score=score + weighed.points if score is not None and weighed is not None else score,
        sheet_score=score,
        record=weighed,
    )


class Standing(BaseModel):
    """One declaration's place in its honour and system."""

    model_config = _FROZEN

    assessment: Assessment
    rank: int | None  # None: not enough sheets yet
    shares_rank: bool  # another entry has the same score
    proposed: bool  # ranked within the quota
    tied_at_quota_line: bool  # proposed only because it ties the last place within quota


class Group(BaseModel):
    """The standings of one honour in one system."""

    model_config = _FROZEN

    category: HonourCategory
    system: str
    quota: int
    standings: tuple[Standing, ...]

    @property
    def over_quota_by_tie(self) -> bool:
        """A tie at the quota line proposes more entries than the quota."""
        return sum(1 for s in self.standings if s.proposed) > self.quota


def rank(
    rules: CommendationRules, assessments: Iterable[Assessment], order: Sequence[str] = ()
) -> list[Group]:
    """Group per honour and system; competition ranking (1, 1, 3); proposals within quota.

    Groups come in ``order`` (the county's guidance groups' keys), then seed 002's, then
    any other key alphabetically. Display order among equal scores is declaration order;
    it does not affect the rank."""
    buckets: dict[tuple[HonourCategory, str], list[Assessment]] = {}
    for a in assessments:
        buckets.setdefault((a.declaration.category, a.declaration.system), []).append(a)
    named = list(dict.fromkeys([*order, *(s.value for s in System)]))
    systems = named + sorted({system for _, system in buckets} - set(named))
    groups: list[Group] = []
    for category_rules in rules.categories:
        for system in systems:
            members = buckets.get((category_rules.category, system))
            if not members:
                continue
            quota = category_rules.quota(system)
            groups.append(
                Group(
                    category=category_rules.category,
                    system=system,
                    quota=quota,
                    standings=_standings(members, quota),
                )
            )
    return groups


def _standings(members: list[Assessment], quota: int) -> tuple[Standing, ...]:
    def order(a: Assessment) -> tuple[datetime, str]:
        return (a.declaration.declared_at, a.declaration.declaration_id)

    scored = sorted(
        (a for a in members if a.score is not None),
        key=lambda a: (-(a.score or Decimal(0)), order(a)),
    )
    unscored = sorted((a for a in members if a.score is None), key=order)
    counts: dict[Decimal, int] = {}
    for a in scored:
        counts[a.score or Decimal(0)] = counts.get(a.score or Decimal(0), 0) + 1
    out: list[Standing] = []
    for position, a in enumerate(scored, start=1):
        score = a.score or Decimal(0)
        first = next(i for i, b in enumerate(scored, start=1) if b.score == score)
        proposed = first <= quota
        out.append(
            Standing(
                assessment=a,
                rank=first,
                shares_rank=counts[score] > 1,
                proposed=proposed,
                tied_at_quota_line=proposed and position > quota,
            )
        )
    out.extend(
        Standing(
            assessment=a, rank=None, shares_rank=False, proposed=False, tied_at_quota_line=False
        )
        for a in unscored
    )
    return tuple(out)
