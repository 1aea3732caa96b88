"""The campaign record as rubric inputs of 评选表彰 (seed 002 §五(五)): the county's assessment
group scores "根据申报情况结合年度考核、日常检查" — the declaration, and what the campaign itself
recorded of the organisation: phases done on time or late, escalations it reached,
rectifications ordered and passed on re-check, its 群众评议 satisfaction and the verdicts of
spot checks (随机抽查).

Each input has a weight in the plan (``commendation.record``, :class:`RecordWeights`): points
per count (a phase late, a rung reached, …), or for satisfaction the points a 100 %
satisfaction is worth (× the share). Weights may be negative (a deduction). The record's
points are added to the mean of the assessors' sheets, for 先进基层党组织 declarations only:
the record is the organisation's, not a nominated person's.

Definitions (also in docs/procedures.md):

- A phase is **late** when its deadline passed before it was done (a ``deadline_passed``
  event); **on time** when it is done and never passed its deadline.
- An **escalation** is one rung of the ladder that fired for one phase.
- A **rectification ordered** is every order the campaign recorded (the ladder's top rung, a
  failed 群众评议, a supervisor's discretion, a spot check); **passed** is a re-check that
  passed one.
- **Satisfaction** is the organisation's latest published 群众评议 result (0–1); none yet
  counts nothing.
- **Spot checks** count each recorded verdict (pending ones do not count).

Pure: the caller reads the counts from the read model and passes them in.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from domain.inspection import InspectionVerdict

_FROZEN = ConfigDict(frozen=True, extra="forbid")
CENT = Decimal("0.01")
# A weight is points per count: a deduction of a hundred points per late phase would make
# every other input meaningless, so the bound is generous but finite.
Weight = Annotated[Decimal, Field(ge=Decimal(-100), le=Decimal(100))]


class RecordWeights(BaseModel):
    """The ``commendation.record`` section of a plan: each campaign-record input's weight.

    Unset inputs weigh 0 (they are shown to assessors, but count nothing)."""

    model_config = _FROZEN

    phase_on_time: Weight = Decimal(0)
    phase_late: Weight = Decimal(0)
    escalation: Weight = Decimal(0)
    rectification_ordered: Weight = Decimal(0)
    rectification_passed: Weight = Decimal(0)
    # Points for 100 % satisfaction; the organisation gets weight × its satisfaction.
    satisfaction: Weight = Decimal(0)
    spot_check_good: Weight = Decimal(0)
    spot_check_adequate: Weight = Decimal(0)
    spot_check_rectify: Weight = Decimal(0)


class CampaignRecord(BaseModel):
    """What the campaign recorded of one organisation in one round (from the read model)."""

    model_config = _FROZEN

    phases_on_time: int = Field(default=0, ge=0)
    phases_late: int = Field(default=0, ge=0)
    escalations: int = Field(default=0, ge=0)
    rectifications_ordered: int = Field(default=0, ge=0)
    rectifications_passed: int = Field(default=0, ge=0)
    satisfaction: Decimal | None = Field(default=None, ge=0, le=1)
    spot_checks: dict[InspectionVerdict, int] = Field(default_factory=dict)


class RecordLine(BaseModel):
    """One input of the record: what was counted, its weight and the points it gives."""

    model_config = _FROZEN

    key: str
    label: str
    value: Decimal  # a count, or the satisfaction share
    shown: str  # the value as the page shows it ("2 个", "86.5%", "无")
    weight: Decimal
    points: Decimal


class RecordScore(BaseModel):
    """The record's lines and their points (rounded half-up to two decimals)."""

    model_config = _FROZEN

    lines: tuple[RecordLine, ...]
    points: Decimal


def _count(key: str, label: str, count: int, unit: str, weight: Decimal) -> RecordLine:
    return RecordLine(
        key=key,
        label=label,
        value=Decimal(count),
        shown=f"{count}{unit}",
        weight=weight,
        points=weight * count,
    )


def record_score(weights: RecordWeights, record: CampaignRecord) -> RecordScore:
    """The record's points: Σ weight × count, plus weight × satisfaction."""
    checks = record.spot_checks
    lines = [
        _count(
            "phase_on_time", "按期完成的阶段", record.phases_on_time, "个", weights.phase_on_time
        ),
        _count("phase_late", "逾期的阶段", record.phases_late, "个", weights.phase_late),
        _count("escalation", "被督办（级次）", record.escalations, "次", weights.escalation),
        _count(
            "rectification_ordered",
            "被要求整改",
            record.rectifications_ordered,
            "次",
            weights.rectification_ordered,
        ),
        _count(
            "rectification_passed",
            "整改复查通过",
            record.rectifications_passed,
            "次",
            weights.rectification_passed,
        ),
    ]
    satisfaction = record.satisfaction
    lines.append(
        RecordLine(
            key="satisfaction",
            label="群众评议满意率",
            value=satisfaction if satisfaction is not None else Decimal(0),
            shown=f"{(satisfaction * 100).quantize(Decimal('0.1'))}%"
            if satisfaction is not None
            else "无（尚未公布评议结果）",
            weight=weights.satisfaction,
            points=weights.satisfaction * satisfaction if satisfaction is not None else Decimal(0),
        )
    )
    for verdict, weight in (
        (InspectionVerdict.GOOD, weights.spot_check_good),
        (InspectionVerdict.ADEQUATE, weights.spot_check_adequate),
        (InspectionVerdict.RECTIFY, weights.spot_check_rectify),
    ):
        lines.append(
            _count(
                f"spot_check_{verdict.value}",
                f"随机抽查结论“{verdict.label}”",
                checks.get(verdict, 0),
                "次",
                weight,
            )
        )
    rounded = tuple(
        line.model_copy(update={"points": line.points.quantize(CENT, rounding=ROUND_HALF_UP)})
        for line in lines
    )
    total = sum((line.points for line in rounded), Decimal(0))
    return RecordScore(lines=rounded, points=total)


def explain(weights: RecordWeights) -> list[str]:
    """The record's rule in Chinese, one sentence per weighted input, for the ranking page."""
    units = (
        ("phase_on_time", "每个按期完成的阶段"),
        ("phase_late", "每个逾期的阶段"),
        ("escalation", "每被督办一级"),
        ("rectification_ordered", "每被要求整改一次"),
        ("rectification_passed", "每次整改复查通过"),
        ("spot_check_good", "随机抽查每得一次“好”"),
        ("spot_check_adequate", "随机抽查每得一次“一般”"),
        ("spot_check_rectify", "随机抽查每得一次“差”"),
    )
    out = []
    for key, text in units:
        weight: Decimal = getattr(weights, key)
        if weight:
            out.append(f"{text}{'加' if weight > 0 else '减'}{abs(weight)}分")
    if weights.satisfaction:
        sign = "加" if weights.satisfaction > 0 else "减"
        out.append(f"群众评议满意率按比例{sign}分，满意率100%为{abs(weights.satisfaction)}分")
    return out
