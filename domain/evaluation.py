"""群众评议 as a ballot: the composition of raters, the ballot, the tally and the verdict.

Pure rules shared by the API (checks when opening and casting), the activities (tally when
the window closes) and the workflow (whether a 整改通知 follows). Definitions:

* **composition** (checked when the evaluation is opened): at least ``min_raters`` ballots
  are issued, and non-members (群众) hold at least ``min_non_member_share`` of them; no more
  party-member ballots than the organisation has members, and at most :data:`MAX_RATERS`
  ballots in all (:func:`check_rater_limits`);
* **phase**: an evaluation is opened only while the organisation is in 群众评议
  (:data:`EVALUATION_PHASE`, :func:`phase_refusal`);
* **ballot**: rates every item of the target's ballot once, with 满意 / 比较满意 / 基本满意 /
  不满意; an incomplete or unknown rating refuses the whole ballot (nothing half-counted);
* **quorum**: ballots cast / ballots issued >= ``quorum``; below it the result is invalid
  (无效): tallied for the record, not published, no verdict, no rectification;
* **satisfaction** of an item: (满意 + 比较满意) / ballots cast; the evaluation's
  satisfaction is the same ratio over every rating of every item (all ballots rate every
  item, so it is the mean of the items' rates). Below ``satisfaction_threshold`` the verdict
  is 未达标 and a rectification order is issued; items below the threshold are named.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from domain.errors import FieldError
from domain.evaluation_rules import (
    BallotItem,
    EvaluationRules,
    EvaluationTarget,
    TargetRules,
)
from domain.evidence import BALLOT_KEYS
from domain.machine import PhaseStatus
from domain.phases import Phase
from domain.state import Actor

__all__ = [
    "EVALUATION_PHASE",
    "MAX_RATERS",
    "BallotItem",
    "EvaluationResult",
    "EvaluationRules",
    "EvaluationTarget",
    "ItemTally",
    "RaterKind",
    "Rating",
    "TargetRules",
    "Verdict",
    "check_ballot",
    "check_composition",
    "check_rater_limits",
    "evaluation_actor",
    "is_evaluation_actor",
    "judge",
    "phase_refusal",
    "rectification_reason",
    "satisfaction_of",
    "step_key",
    "step_values",
    "tally",
]

_FROZEN = ConfigDict(frozen=True)


class RaterKind(StrEnum):
    """Who holds a ballot token."""

    MEMBER = "member"
    NON_MEMBER = "non_member"

    @property
    def label(self) -> str:
        """Chinese label."""
        return {"member": "党员", "non_member": "群众"}[self.value]


class Rating(StrEnum):
    """A rating of one item; the values are ``domain.evidence.BALLOT_KEYS``."""

    SATISFIED = "satisfied"
    FAIRLY_SATISFIED = "fairly_satisfied"
    BASICALLY_SATISFIED = "basically_satisfied"
    UNSATISFIED = "unsatisfied"

    @property
    def label(self) -> str:
        """Chinese label."""
        return {
            "satisfied": "满意",
            "fairly_satisfied": "比较满意",
            "basically_satisfied": "基本满意",
            "unsatisfied": "不满意",
        }[self.value]

    @property
    def counts_as_satisfied(self) -> bool:
        """Whether the rating counts towards the satisfaction rate."""
        return self in (Rating.SATISFIED, Rating.FAIRLY_SATISFIED)


class Verdict(StrEnum):
    """The outcome of an evaluation."""

    SATISFACTORY = "satisfactory"
    BELOW_THRESHOLD = "below_threshold"
    NO_QUORUM = "no_quorum"

    @property
    def label(self) -> str:
        """Chinese label."""
        return {
            "satisfactory": "达标",
            "below_threshold": "未达标（整改）",
            "no_quorum": "未达到法定投票率，结果无效",
        }[self.value]


def check_composition(
    rules: TargetRules, raters: Mapping[RaterKind, int], field: str = "raters"
) -> list[FieldError]:
    """Refuse a set of raters the plan does not allow; every problem names its field."""
    errors: list[FieldError] = []
    for kind, count in raters.items():
        if count < 0:
            errors.append(FieldError(f"{field}.{kind.value}", "人数不能为负数"))
    if errors:
        return errors
    total = sum(raters.values())
    non_members = raters.get(RaterKind.NON_MEMBER, 0)
    if total < rules.min_raters:
        errors.append(FieldError(field, f"参评人数为 {total}，至少需要 {rules.min_raters} 人"))
    # Integer arithmetic would be exact, but shares are floats in the plan: compare with a
    # small tolerance so 1/3 of 30 counts as 10.
    if total and non_members < rules.min_non_member_share * total - 1e-9:
        needed = _ceil(rules.min_non_member_share * total)
        errors.append(
            FieldError(
                f"{field}.{RaterKind.NON_MEMBER.value}",
                f"群众（非党员）评议人为 {non_members} 人，占 {non_members / total:.0%}，"
                f"不得少于 {rules.min_non_member_share:.0%}（{total} 人中至少 {needed} 人）",
            )
        )
    return errors


# The most ballots one evaluation issues, whatever the organisation's size. Seed 002 §四 names
# the largest practice, "千人评议机关": a thousand raters for the county's organs, so a
# thousand covers any 群众评议 the rulebook knows of. It also bounds the slips printed and
# the tokens stored for one request (10 pages of api.routers.evaluation_slips).
MAX_RATERS = 1000


def check_rater_limits(
    raters: Mapping[RaterKind, int], member_count: int, field: str = "raters"
) -> list[FieldError]:
    """Refuse more ballots than can have holders: party-member ballots beyond the
    organisation's 党员人数 (the roster's ``member_count``), or more than :data:`MAX_RATERS`
    in all. Every problem names its field."""
    errors: list[FieldError] = []
    members = raters.get(RaterKind.MEMBER, 0)
    if members > member_count:
        errors.append(
            FieldError(
                f"{field}.{RaterKind.MEMBER.value}",
                f"党员评议人为 {members} 人，超过本组织党员人数 {member_count} 人",
            )
        )
    total = sum(raters.values())
    if total > MAX_RATERS:
        errors.append(
            FieldError(field, f"参评人数为 {total}，每次评议最多发放 {MAX_RATERS} 张选票")
        )
    return errors


#: The phase in which seed 002 §五(四) holds 群众评议, of organisations and of members alike.
EVALUATION_PHASE = Phase.PUBLIC_EVALUATION


def phase_refusal(
    org_name: str, phase: Phase | None, phase_status: PhaseStatus | None, closed: bool
) -> str | None:
    """Why an evaluation cannot be opened for an organisation whose campaign stands at
    ``phase`` (None: not started), or None if it can: only while it is in
    :data:`EVALUATION_PHASE` and the phase has opened, in a campaign still running. A
    result below the threshold orders rectification on the phase the organisation is in,
    so an evaluation held in another phase would order it on the wrong one."""
    must = f"群众评议须在“{EVALUATION_PHASE.label}”阶段开展"
    if phase is None:
        return f"{org_name}本轮活动尚未开始，{must}"
    if closed or phase is Phase.COMPLETED:
        return f"{org_name}本轮活动已结束，{must}"
    if phase is not EVALUATION_PHASE:
        return f"{org_name}目前处于“{phase.label}”阶段，{must}"
    if phase_status is PhaseStatus.PENDING:
        return f"{org_name}的“{phase.label}”阶段尚未开始，{must}"
    return None


def _ceil(value: float) -> int:
    whole = int(value)
    return whole if value - whole < 1e-9 else whole + 1


_RATING_CHOICES = "评价须为 满意/比较满意/基本满意/不满意"


def check_ballot(items: Iterable[BallotItem], ratings: Mapping[str, str]) -> list[FieldError]:
    """A ballot must rate every item exactly once with a known rating, and nothing else."""
    errors: list[FieldError] = []
    known = {item.id: item for item in items}
    for item_id, item in known.items():
        value = ratings.get(item_id)
        if value is None or value == "":
            errors.append(FieldError(f"ratings.{item_id}", f"请评价“{item.label}”"))
        elif value not in Rating.__members__.values():
            errors.append(
                FieldError(f"ratings.{item_id}", "评价须为 满意/比较满意/基本满意/不满意")
            )
    for item_id in ratings:
        if item_id not in known:
            errors.append(FieldError(f"ratings.{item_id}", "不是本次评议的项目"))
    return errors


class ItemTally(BaseModel):
    """The counts of one item."""

    model_config = _FROZEN

    item_id: str
    label: str
    counts: dict[Rating, int]
    ballots: int

    @property
    def satisfied(self) -> int:
        """满意 + 比较满意."""
        return sum(n for r, n in self.counts.items() if r.counts_as_satisfied)

    @property
    def satisfaction(self) -> float | None:
        """(满意 + 比较满意) / ballots; None without ballots."""
        return self.satisfied / self.ballots if self.ballots else None


def tally(items: Iterable[BallotItem], ballots: Iterable[Mapping[str, str]]) -> list[ItemTally]:
    """Count each item's ratings over the cast ballots (assumed checked by
    :func:`check_ballot`; a rating it would refuse raises ValueError)."""
    item_list = list(items)
    counts: dict[str, dict[Rating, int]] = {i.id: dict.fromkeys(Rating, 0) for i in item_list}
    cast = 0
    for ballot in ballots:
        cast += 1
        for item in item_list:
            counts[item.id][Rating(ballot[item.id])] += 1
    return [
        ItemTally(item_id=i.id, label=i.label, counts=counts[i.id], ballots=cast) for i in item_list
    ]


def satisfaction_of(tallies: Iterable[ItemTally]) -> float | None:
    """(满意 + 比较满意) over every rating of every item; None without ballots."""
    satisfied = ratings = 0
    for item in tallies:
        satisfied += item.satisfied
        ratings += item.ballots
    return satisfied / ratings if ratings else None


class EvaluationResult(BaseModel):
    """The tally and the verdict of one evaluation."""

    model_config = _FROZEN

    issued: int
    cast: int
    quorum: float
    threshold: float
    items: tuple[ItemTally, ...]
    satisfaction: float | None
    verdict: Verdict
    items_below: tuple[str, ...] = ()

    @property
    def turnout(self) -> float:
        """Ballots cast / ballots issued."""
        return self.cast / self.issued if self.issued else 0.0

    @property
    def valid(self) -> bool:
        """Whether the quorum was met (only then is the result published)."""
        return self.verdict is not Verdict.NO_QUORUM


def judge(
    rules: EvaluationRules, target: EvaluationTarget, issued: int, tallies: Iterable[ItemTally]
) -> EvaluationResult:
    """Quorum first (no verdict without it), then the satisfaction threshold."""
    target_rules = rules.for_target(target)
    items = tuple(tallies)
    cast = items[0].ballots if items else 0
    satisfaction = satisfaction_of(items)
    threshold = target_rules.satisfaction_threshold
    below = tuple(
        i.label for i in items if i.satisfaction is not None and i.satisfaction < threshold
    )
    # Exact comparison in integers: cast / issued >= quorum.
    if issued == 0 or cast < rules.quorum * issued - 1e-9:
        verdict = Verdict.NO_QUORUM
    elif satisfaction is not None and satisfaction < threshold:
        verdict = Verdict.BELOW_THRESHOLD
    else:
        verdict = Verdict.SATISFACTORY
    return EvaluationResult(
        issued=issued,
        cast=cast,
        quorum=rules.quorum,
        threshold=threshold,
        items=items,
        satisfaction=satisfaction,
        verdict=verdict,
        items_below=below,
    )


def rectification_reason(result: EvaluationResult, subject: str) -> str:
    """The reason a 整改通知 gives for an evaluation below the threshold (Chinese)."""
    rate = f"{result.satisfaction:.1%}" if result.satisfaction is not None else "—"
    named = f"，未达标项目：{'、'.join(result.items_below)}" if result.items_below else ""
    return (
        f"{subject}群众评议满意率（满意与比较满意票占比）为 {rate}，"
        f"低于 {result.threshold:.0%} 的标准（有效票 {result.cast} 张）{named}。"
    )


# ----- the published result settles the organisation's 群众评议 step ----------------------
# The evaluation acts on the organisation's campaign as an actor of its own: its ``user`` is
# ``evaluation/<id>`` ("evaluation" is StepPlan.procedure of a ballot step), which no account
# can have (usernames allow neither "/" nor ":", see domain.accounts.USERNAME_PATTERN), and
# its role is the role of whoever opened it.
_EVALUATION_USER = "evaluation/"


def evaluation_actor(evaluation_id: str, opened_by: Actor) -> Actor:
    """The actor an evaluation's published result submits as."""
    return Actor(
        user=f"{_EVALUATION_USER}{evaluation_id}", name="群众评议结果", role=opened_by.role
    )


def is_evaluation_actor(actor: Actor) -> bool:
    """Whether ``actor`` is an evaluation's published result, not a person."""
    return actor.user.startswith(_EVALUATION_USER)


def step_key(evaluation_id: str) -> str:
    """The idempotency key of the submission that settles the step: once per evaluation."""
    return f"evaluation:{evaluation_id}:step"


def _percent(rate: float | None) -> float:
    return round((rate or 0.0) * 100, 1)


def step_values(evaluation_id: str, result: EvaluationResult) -> dict[str, object]:
    """The 群众评议 step's evidence from a published result: the ballots (every rating of
    every item, 满意/比较满意/基本满意/不满意), the raters (ballots cast), the satisfaction
    overall and per item (in per cent, one decimal) and the evaluation's id."""
    ratings = dict.fromkeys(Rating, 0)
    for item in result.items:
        for rating, count in item.counts.items():
            ratings[rating] += count
    return {
        "evaluation_id": evaluation_id,
        "ballots": {key: ratings[Rating(key)] for key in BALLOT_KEYS},
        "raters": result.cast,
        "satisfaction": {"总体": _percent(result.satisfaction)}
        | {item.label: _percent(item.satisfaction) for item in result.items},
    }
