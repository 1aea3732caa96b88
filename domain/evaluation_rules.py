"""群众评议 rules as plan data: who may rate, how many must vote, what counts as satisfied.

Seed 002 §五(四) only says that the upper level "适时组织党员、群众进行评议" of each
organisation and each organisation of its members; the numbers below are the product's
defaults for a county (documented in docs/procedures.md) and a plan may change every one
under its ``evaluation`` key. This module holds only the models so :mod:`domain.plan` can
import them; the rules that use them live in :mod:`domain.evaluation`. The one rule here,
:func:`ballot_step_problems`, checks a plan's ``ballot`` step, so :mod:`domain.plan` can call
it without importing :mod:`domain.evaluation` (which imports the plan through
:mod:`domain.evidence`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from domain.calendar import Span

_FROZEN = ConfigDict(frozen=True, extra="forbid")
_ID_PATTERN = r"^[a-z0-9][a-z0-9_\-]*$"


class EvaluationTarget(StrEnum):
    """Who is evaluated: the organisation (by the upper level) or one member (by the
    organisation)."""

    ORGANISATION = "organisation"
    MEMBER = "member"

    @property
    def label(self) -> str:
        """Chinese label."""
        return {"organisation": "基层党组织", "member": "党员"}[self.value]


class BallotItem(BaseModel):
    """One item a ballot rates, e.g. 领导班子好."""

    model_config = _FROZEN

    id: str = Field(pattern=_ID_PATTERN)
    label: str = Field(min_length=1)


class TargetRules(BaseModel):
    """The ballot and its pass mark for one kind of target."""

    model_config = _FROZEN

    items: tuple[BallotItem, ...]
    # At least this many ballots must be issued (seed plan: 参评人数 min 10).
    min_raters: int = Field(ge=1)
    # 群众 (non-members) must hold at least this share of the issued ballots.
    min_non_member_share: float = Field(ge=0, le=1)
    # (满意 + 比较满意) / ballots cast, over all items; below it a 整改通知 is issued.
    satisfaction_threshold: float = Field(gt=0, le=1)

    @model_validator(mode="after")
    def _items(self) -> TargetRules:
        if not self.items:
            raise ValueError("至少需要一个评议项目")
        ids = [i.id for i in self.items]
        if len(ids) != len(set(ids)):
            raise ValueError("评议项目编号重复")
        return self


# 五个好 (seed 002 §三 and domain.md), rated for organisations.
FIVE_GOODS: tuple[BallotItem, ...] = (
    BallotItem(id="leadership", label="领导班子好"),
    BallotItem(id="membership", label="党员队伍好"),
    BallotItem(id="mechanisms", label="工作机制好"),
    BallotItem(id="performance", label="工作业绩好"),
    BallotItem(id="public_response", label="群众反映好"),
)
# 五带头 (seed 002 §三), rated for members.
FIVE_LEADS: tuple[BallotItem, ...] = (
    BallotItem(id="study", label="带头学习提高"),
    BallotItem(id="excellence", label="带头争创佳绩"),
    BallotItem(id="service", label="带头服务群众"),
    BallotItem(id="discipline", label="带头遵纪守法"),
    BallotItem(id="integrity", label="带头弘扬正气"),
)


class EvaluationRules(BaseModel):
    """The plan's ``evaluation`` section (defaults: the seed-002 county)."""

    model_config = _FROZEN

    # How long the ballot stays open after it is opened.
    window: Span = Span(working_days=5)
    # Share of the issued ballots that must be cast for the result to count.
    # Two thirds, rounded down so 8 of 12 ballots count.
    quorum: float = Field(default=0.666, gt=0, le=1)
    # The 整改通知's own deadline; None: the ladder's rectification_period.
    rectification_period: Span | None = None
    organisation: TargetRules = TargetRules(
        items=FIVE_GOODS, min_raters=10, min_non_member_share=0.3333, satisfaction_threshold=0.7
    )
    member: TargetRules = TargetRules(
        items=FIVE_LEADS, min_raters=5, min_non_member_share=0.2, satisfaction_threshold=0.7
    )

    def for_target(self, target: EvaluationTarget) -> TargetRules:
        """The rules of one kind of target."""
        return self.organisation if target is EvaluationTarget.ORGANISATION else self.member


# ----- a plan's ``ballot`` step must accept what the published result submits -------------
# The evidence a published result submits to settle the step (domain.evaluation.step_values,
# which a test keeps equal to this table): field name -> the FieldKind value it must have.
# Kinds are plain strings: domain.plan imports this module, not the other way round.
BALLOT_STEP_FIELDS: Mapping[str, str] = {
    "evaluation_id": "text",
    "ballots": "ballots",
    "raters": "integer",
    "satisfaction": "scores",
}
# ``ev-`` and 16 hex digits (chuangzheng.services.evaluations): a longer min_length refuses it.
EVALUATION_ID_LENGTH = 19


class _EvidenceSpec(Protocol):
    """What :func:`ballot_step_problems` reads of a ``domain.plan.EvidenceField``."""

    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def required(self) -> bool: ...
    @property
    def min(self) -> float | None: ...
    @property
    def max(self) -> float | None: ...
    @property
    def min_length(self) -> int | None: ...
    @property
    def min_share_of_members(self) -> float | None: ...
    @property
    def max_share_of_members(self) -> float | None: ...


class _BallotStep(Protocol):
    """What :func:`ballot_step_problems` reads of a ``domain.plan.StepPlan``."""

    @property
    def ballot(self) -> EvaluationTarget | None: ...
    @property
    def evidence(self) -> Sequence[_EvidenceSpec]: ...


def _smallest_valid_cast(rules: EvaluationRules | None, target: EvaluationTarget) -> int:
    """The fewest ballots a result that met its quorum can have (it is published only then):
    at least one; with the plan's rules, the quorum of the fewest ballots that may be issued."""
    if rules is None:
        return 1
    needed = rules.quorum * rules.for_target(target).min_raters - 1e-9
    whole = int(needed)
    return max(1, whole if needed - whole <= 0 else whole + 1)


def _field_problem(
    spec: _EvidenceSpec, kind: str, rules: EvaluationRules | None, target: EvaluationTarget
) -> str | None:
    """Why the result's value of ``spec`` could be refused by the step's own rule, or None."""
    name = spec.name
    if spec.kind != kind:
        return f"证据字段 {name} 的类型应为 {kind}（群众评议结果以此类型提交），不能是 {spec.kind}"
    if kind == "integer":  # raters: the ballots cast, members and the public alike
        if spec.max is not None or spec.max_share_of_members or spec.min_share_of_members:
            return (
                f"证据字段 {name}（有效票数）不能设 max、min_share_of_members 或 "
                "max_share_of_members：评议人包括群众，票数不按党员人数计"
            )
        least = _smallest_valid_cast(rules, target)
        if spec.min is not None and spec.min > least:
            return (
                f"证据字段 {name} 的 min 为 {spec.min:g}，但达到投票率的评议结果最少只有 "
                f"{least} 张有效票，该结果将无法完成本步骤"
            )
    if kind == "scores" and (
        (spec.min is not None and spec.min > 0) or (spec.max is not None and spec.max < 100)
    ):
        return f"证据字段 {name}（满意率，0–100）的 min 不能大于 0，max 不能小于 100"
    if kind == "text" and spec.min_length is not None and spec.min_length > EVALUATION_ID_LENGTH:
        return f"证据字段 {name} 的 min_length 不能大于 {EVALUATION_ID_LENGTH}（评议编号的长度）"
    return None


def ballot_step_problems(step: _BallotStep, rules: EvaluationRules | None = None) -> list[str]:
    """Why a ``ballot`` step's evidence would refuse the published result that is meant to
    settle it (then only a waiver could): every field the result submits
    (:data:`BALLOT_STEP_FIELDS`) must be declared with its kind and no rule a valid result can
    break, and every other field must be optional (the result cannot fill it in). Empty for
    a step without ``ballot``, and for a good one. ``rules``: the plan's ``evaluation``
    section, when known, for the fewest ballots a valid result has (else one)."""
    if step.ballot is None:
        return []
    problems: list[str] = []
    declared = {spec.name: spec for spec in step.evidence}
    missing = [name for name in BALLOT_STEP_FIELDS if name not in declared]
    if missing:
        wanted = "、".join(f"{name}（{BALLOT_STEP_FIELDS[name]}）" for name in missing)
        problems.append(
            f"由群众评议结果完成的步骤（ballot）须声明证据字段 {wanted}：评议结果会提交这些项"
        )
    for spec in step.evidence:
        kind = BALLOT_STEP_FIELDS.get(spec.name)
        if kind is None:
            if spec.required:
                problems.append(
                    f"证据字段 {spec.name} 须设为 required: false：群众评议结果不提供此项"
                )
            continue
        problem = _field_problem(spec, kind, rules, step.ballot)
        if problem is not None:
            problems.append(problem)
    return problems


def require_valid_ballot_step(step: _BallotStep) -> None:
    """:func:`ballot_step_problems` as a model validator's ValueError (one message)."""
    problems = ballot_step_problems(step)
    if problems:
        raise ValueError("；".join(problems))
