"""评选表彰 rules as plan data: the three honours, their rubrics, quotas and the outlier rule.

Seed 002 §三 defines the standards — "五个好" for 先进基层党组织, "五带头" for 优秀共产党员,
"五个强" for 优秀党务工作者 — and §五(五) the procedure: party committees declare, the county
assessment group (县委考核组) scores against the county's scoring standard, the standing
committee approves (审定). The county's 评分标准 (the seed's 附表) is not part of the seed,
so :data:`SEED_002_RULES` gives every item the same weight and 20 points (a 100-point
sheet); a plan replaces any of it in its ``commendation`` section.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from domain.campaign_record import RecordWeights
from domain.organisation import SystemKey, system_label

_FROZEN = ConfigDict(frozen=True, extra="forbid")
_ID_PATTERN = r"^[a-z0-9][a-z0-9_\-]*$"


class HonourCategory(StrEnum):
    """What is commended: an organisation, or a person nominated by their organisation."""

    ADVANCED_ORGANISATION = "advanced_organisation"  # 先进基层党组织（五个好）
    OUTSTANDING_MEMBER = "outstanding_member"  # 优秀共产党员（五带头）
    OUTSTANDING_PARTY_WORKER = "outstanding_party_worker"  # 优秀党务工作者（五个强）

    @property
    def label(self) -> str:
        """The honour's Chinese title."""
        return CATEGORY_LABELS[self]

    @property
    def for_person(self) -> bool:
        """Whether the nominee is a person (else the declaring organisation itself)."""
        return self is not HonourCategory.ADVANCED_ORGANISATION


CATEGORY_LABELS: dict[HonourCategory, str] = {
    HonourCategory.ADVANCED_ORGANISATION: "先进基层党组织",
    HonourCategory.OUTSTANDING_MEMBER: "优秀共产党员",
    HonourCategory.OUTSTANDING_PARTY_WORKER: "优秀党务工作者",
}


class RubricItem(BaseModel):
    """One item of a scoring standard: an assessor gives 0..max_points; the sheet's total
    is the sum of weight × points."""

    model_config = _FROZEN

    id: str = Field(pattern=_ID_PATTERN)
    name: str = Field(min_length=1)
    weight: Decimal = Field(gt=0, le=100)
    max_points: Decimal = Field(gt=0, le=1000)
    guidance: str = ""


class CategoryRules(BaseModel):
    """One honour: its standard's items and how many may be commended per system."""

    model_config = _FROZEN

    category: HonourCategory
    standard: str = Field(min_length=1)  # 五个好 / 五带头 / 五个强
    items: tuple[RubricItem, ...]
    quota_per_system: int = Field(ge=0, le=10_000)
    # Systems with another quota than ``quota_per_system``.
    # Keys are guidance groups' keys (the county's data, issue 15: not only seed 002's six).
    quota_by_system: dict[SystemKey, int] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _items(self) -> CategoryRules:
        if not self.items:
            raise ValueError("评分标准至少需要一项")
        ids = [i.id for i in self.items]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"评分项编号重复：{', '.join(duplicates)}")
        if any(q < 0 for q in self.quota_by_system.values()):
            raise ValueError("名额不能为负数")
        return self

    @property
    def title(self) -> str:
        """The honour's Chinese title."""
        return self.category.label

    def quota(self, system: str) -> int:
        """How many of ``system`` may be commended."""
        return self.quota_by_system.get(system, self.quota_per_system)

    def max_total(self) -> Decimal:
        """The highest weighted total a sheet can reach."""
        return sum((i.weight * i.max_points for i in self.items), Decimal(0))

    def item(self, item_id: str) -> RubricItem | None:
        """An item by id."""
        return next((i for i in self.items if i.id == item_id), None)


class UnitConditions(BaseModel):
    """A unit's own 具体条件 for one honour (seed 002 §三: "各部门、各单位要结合自身实际，进一步
    明确…具体条件"): rubric items added for declarations from one township or one system,
    on top of the county's standard. Plan data, and only once the county office reviewed
    them (``reviewed_by``, ``reviewed_on``): a plan carrying a unit's conditions without the
    review is refused at load."""

    model_config = _FROZEN

    category: HonourCategory
    township: str | None = Field(default=None, min_length=1, max_length=200)
    system: SystemKey | None = None
    items: tuple[RubricItem, ...]
    # Who at the county office reviewed the unit's conditions, and when.
    reviewed_by: str = Field(min_length=2, max_length=100)
    reviewed_on: date

    @model_validator(mode="after")
    def _one_unit(self) -> UnitConditions:
        if (self.township is None) == (self.system is None):
            raise ValueError("具体条件须且只能属于一个单位：township（乡镇）或 system（系统）")
        if not self.items:
            raise ValueError("具体条件至少需要一项")
        ids = [i.id for i in self.items]
        if len(ids) != len(set(ids)):
            raise ValueError("具体条件的评分项编号重复")
        return self

    @property
    def unit(self) -> str:
        """The unit's name as the pages show it."""
        if self.township is not None:
            return self.township
        return system_label(self.system) if self.system is not None else ""

    def applies(self, category: HonourCategory, township: str, system: str) -> bool:
        """Whether these conditions count for a declaration of ``category`` from there."""
        return self.category is category and (
            self.township == township if self.township is not None else self.system == system
        )


class CommendationRules(BaseModel):
    """The ``commendation`` section of a plan."""

    model_config = _FROZEN

    # Submitted sheets a declaration needs before it is ranked (several assessors score
    # each declaration independently).
    min_sheets: int = Field(default=3, ge=1, le=50)
    # A sheet whose weighted total deviates from the median of all submitted totals by more
    # than this many points is flagged (needs at least three submitted sheets).
    outlier_points: Decimal = Field(default=Decimal(10), gt=0)
    # Who commends (seed 002 §五(五) "县委将表彰"); printed on the certificates. The seed
    # anonymises the county as "XX县".
    issuer: str = Field(default="中共XX县委", min_length=2, max_length=50)
    categories: tuple[CategoryRules, ...]
    # The campaign record's weights (domain.campaign_record), added to the sheets' mean for
    # 先进基层党组织; None: the sheets alone decide, as before the rule.
    record: RecordWeights | None = None
    # "MM-DD": the commendation phase must end before this day of its deadline's year
    # (seed 002 §五(五) "2012年'七一'前" is "07-01"); checked when the plan is loaded
    # (domain.plan_loader.check_calendar). None: no such rule.
    deadline_before: str | None = Field(default=None, pattern=r"^\d{2}-\d{2}$")
    # Units' own 具体条件 (seed 002 §三), reviewed by the county office: assessors score a
    # declaration against its honour's items plus those of its township and its system.
    unit_conditions: tuple[UnitConditions, ...] = ()

    @field_validator("deadline_before")
    @classmethod
    def _month_day(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                date(2000, int(value[:2]), int(value[3:]))  # a leap year: 02-29 is a day
            except ValueError:
                raise ValueError(f"“{value}”不是有效的月-日（MM-DD）") from None
        return value

    def deadline_limit(self, year: int) -> date | None:
        """The day the commendation phase must end before, in ``year``; None: no limit."""
        if self.deadline_before is None:
            return None
        month, day = int(self.deadline_before[:2]), int(self.deadline_before[3:])
        if (month, day) == (2, 29) and not (year % 4 == 0 and (year % 100 or year % 400 == 0)):
            return date(year, 3, 1)
        return date(year, month, day)

    @model_validator(mode="after")
    def _categories(self) -> CommendationRules:
        kinds = [c.category for c in self.categories]
        if not kinds:
            raise ValueError("至少需要一类表彰")
        if len(kinds) != len(set(kinds)):
            raise ValueError("表彰类别重复")
        seen: set[tuple[HonourCategory, str | None, str | None]] = set()
        for index, conditions in enumerate(self.unit_conditions):
            base = self.category(conditions.category)
            where = f"unit_conditions[{index}]"
            if base is None:
                raise ValueError(f"{where}：本计划不评选{conditions.category.label}")
            clash = sorted({i.id for i in base.items} & {i.id for i in conditions.items})
            if clash:
                raise ValueError(f"{where}：评分项编号与县委评分标准重复：{', '.join(clash)}")
            key = (conditions.category, conditions.township, conditions.system)
            if key in seen:
                raise ValueError(f"{where}：同一单位同一表彰的具体条件重复")
            seen.add(key)
        return self

    def category(self, category: HonourCategory) -> CategoryRules | None:
        """The rules of one honour, or None when the plan does not award it."""
        return next((c for c in self.categories if c.category is category), None)

    def conditions_for(
        self, category: HonourCategory, township: str, system: str
    ) -> tuple[UnitConditions, ...]:
        """The units' conditions that count for a declaration from ``township``/``system``."""
        return tuple(c for c in self.unit_conditions if c.applies(category, township, system))

    def rubric_for(
        self, category: HonourCategory, *, township: str, system: str
    ) -> CategoryRules | None:
        """The combined rubric a declaration is scored against: the honour's items, then
        those of its township's and its system's own conditions; None when not awarded."""
        base = self.category(category)
        if base is None:
            return None
        extra = tuple(i for c in self.conditions_for(category, township, system) for i in c.items)
        return base.model_copy(update={"items": base.items + extra}) if extra else base


def _items(rows: tuple[tuple[str, str, str], ...]) -> tuple[RubricItem, ...]:
    return tuple(
        RubricItem(id=i, name=n, weight=Decimal(1), max_points=Decimal(20), guidance=g)
        for i, n, g in rows
    )


# Wording from seed 002 §三 (the standards' five items each, with their guidance).
FIVE_GOOD: tuple[tuple[str, str, str], ...] = (
    (
        "leadership",
        "领导班子好",
        "领导班子能深入学习实践科学发展观，认真贯彻党的路线方针政策，"
        "团结协作，求真务实，勤政廉洁，有较强的凝聚力和战斗力。",
    ),
    (
        "membership",
        "党员队伍好",
        "党员素质优良，有较强的党员意识，能够充分发挥先锋模范作用。",
    ),
    (
        "mechanism",
        "工作机制好",
        "规章制度完善，管理措施到位，工作运行顺畅有序。",
    ),
    (
        "performance",
        "工作业绩好",
        "本地区本部门本单位各项工作成绩显著，围绕中心、服务大局事迹突出。",
    ),
    (
        "public_opinion",
        "群众反映好",
        "基层党组织在群众中有较高威信，党员在群众中有良好形象，党群干群关系密切。",
    ),
)

FIVE_LEADS: tuple[tuple[str, str, str], ...] = (
    (
        "study",
        "带头学习提高",
        "认真学习实践科学发展观，自觉坚定理想信念；认真学习科学文化知识，成为本职工作的行家里手。",
    ),
    (
        "achievement",
        "带头争创佳绩",
        "具有强烈的事业心和责任感，埋头苦干、开拓创新、无私奉献，在本职岗位上做出显著成绩。",
    ),
    (
        "service",
        "带头服务群众",
        "积极帮助群众解决实际困难，自觉维护群众正当权益。",
    ),
    (
        "discipline",
        "带头遵纪守法",
        "自觉遵守党的纪律，模范遵守国家法律法规。",
    ),
    (
        "integrity",
        "带头弘扬正气",
        "发扬社会主义新风尚，敢于同不良风气、违纪违法行为作斗争。",
    ),
)

FIVE_STRONG: tuple[tuple[str, str, str], ...] = (
    (
        "party_spirit",
        "党性观念强",
        "认真学习实践科学发展观，"
        "善于用马克思主义立场、观点、方法分析和解决实际问题，"
        "经得起各种风浪的考验。",
    ),
    (
        "competence",
        "能力素质强",
        "热爱和熟悉党务工作，模范执行党的路线方针政策，有较强的宣传教育、组织协调、群众工作能力。",
    ),
    (
        "innovation",
        "创新意识强",
        "解放思想、开拓创新，积极探索新形势下党务工作的方法和途径，创造性地开展工作。",
    ),
    (
        "style",
        "工作作风强",
        "求真务实、脚踏实地、埋头苦干，真心实意为党员群众服务，在党员和群众中有较高威信。",
    ),
    (
        "self_discipline",
        "自律意识强",
        "依法办事、清正廉洁、为人正派，自觉接受党和人民的监督，不滥用职权，不谋求私利。",
    ),
)


# Quotas are the county office's to set: the seed gives no numbers.
SEED_002_RULES = CommendationRules(
    min_sheets=3,
    outlier_points=Decimal(10),
    # §五(五) "2012年'七一'前" and "结合年度考核、日常检查" (the weights are the county's choice).
    deadline_before="07-01",
    record=RecordWeights(
        phase_on_time=Decimal(1),
        phase_late=Decimal(-2),
        escalation=Decimal(-1),
        rectification_ordered=Decimal(-3),
        rectification_passed=Decimal(1),
        satisfaction=Decimal(10),
        spot_check_good=Decimal(2),
        spot_check_adequate=Decimal(0),
        spot_check_rectify=Decimal(-3),
    ),
    categories=(
        CategoryRules(
            category=HonourCategory.ADVANCED_ORGANISATION,
            standard="五个好",
            quota_per_system=3,
            items=_items(FIVE_GOOD),
        ),
        CategoryRules(
            category=HonourCategory.OUTSTANDING_MEMBER,
            standard="五带头",
            quota_per_system=5,
            items=_items(FIVE_LEADS),
        ),
        CategoryRules(
            category=HonourCategory.OUTSTANDING_PARTY_WORKER,
            standard="五个强",
            quota_per_system=2,
            items=_items(FIVE_STRONG),
        ),
    ),
)


def rules_or_default(rules: CommendationRules | None) -> CommendationRules:
    """A plan's commendation rules; seed 002's when the plan has no such section."""
    return rules if rules is not None else SEED_002_RULES
