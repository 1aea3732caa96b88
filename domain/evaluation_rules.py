"""群众评议 rules as plan data: who may rate, how many must vote, what counts as satisfied.

Seed 002 §五(四) only says that the upper level "适时组织党员、群众进行评议" of each
organisation and each organisation of its members; the numbers below are the product's
defaults for a county (documented in docs/procedures.md) and a plan may change every one
under its ``evaluation`` key. This module holds only the models so :mod:`domain.plan` can
import them; the rules that use them live in :mod:`domain.evaluation`.
"""

from __future__ import annotations

from enum import StrEnum

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
