"""Request bodies of the 群众评议 routes and the rater counts they imply."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from api.responses import Timestamp
from domain.errors import FieldError, ValidationFailed
from domain.evaluation import EvaluationTarget, ItemTally, RaterKind, Verdict


class RaterCounts(BaseModel):
    """How many ballots for members and for the public."""

    model_config = ConfigDict(extra="forbid")

    member: int = Field(default=0, ge=0, le=5000)
    non_member: int = Field(default=0, ge=0, le=5000)


class RaterName(BaseModel):
    """A rater on a names list (used for counting; names are not stored)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=50)
    kind: RaterKind


class OpenEvaluation(BaseModel):
    """Open a ballot: rater counts by kind, or a names list."""

    model_config = ConfigDict(extra="forbid")

    target: EvaluationTarget = EvaluationTarget.ORGANISATION
    member: str | None = Field(default=None, min_length=1, max_length=50)
    raters: RaterCounts | None = None
    rater_names: list[RaterName] | None = Field(default=None, max_length=5000)


class Issued(BaseModel):
    """Ballots issued by rater kind."""

    member: int
    non_member: int


class EvaluationLinks(BaseModel):
    """Where to print the slips and read the public result."""

    tokens_html: str
    tokens_pdf: str
    public_results: str


class EvaluationResultView(BaseModel):
    """The tally and verdict, with the turnout (cast / issued)."""

    issued: int
    cast: int
    quorum: float
    threshold: float
    items: list[ItemTally]
    satisfaction: float | None
    verdict: Verdict
    items_below: list[str]
    turnout: float


class EvaluationView(BaseModel):
    """An evaluation; ``result`` only once tallied (absent before, not null)."""

    evaluation_id: str
    round_id: str
    org_id: str
    target: str
    subject: str
    seq: int
    status: str
    issued: Issued
    opens_at: Timestamp | None
    closes_at: Timestamp | None
    closed_at: Timestamp | None
    published_at: Timestamp | None
    votes_so_far: int | None
    valid: bool | None
    verdict: str | None
    satisfaction: float | None
    rectification: str | None
    links: EvaluationLinks
    result: EvaluationResultView | None = None


class ClosedEvaluation(BaseModel):
    """The evaluation's stage after closing (tallying follows)."""

    evaluation_id: str
    stage: str


def rater_counts(body: OpenEvaluation) -> tuple[dict[RaterKind, int], str]:
    """Raters by kind and the field they came from; refuses a bad request naming fields."""
    errors: list[FieldError] = []
    if (body.raters is None) == (body.rater_names is None):
        errors.append(FieldError("raters", "请给出各类评议人数或评议人名单（二选一）"))
    if body.target is EvaluationTarget.MEMBER and not (body.member or "").strip():
        errors.append(FieldError("member", "党员评议须写明被评议党员姓名"))
    if body.target is EvaluationTarget.ORGANISATION and body.member is not None:
        errors.append(FieldError("member", "评议基层党组织时不填党员姓名"))
    if errors:
        raise ValidationFailed(errors)
    if body.raters is not None:
        return {
            RaterKind.MEMBER: body.raters.member,
            RaterKind.NON_MEMBER: body.raters.non_member,
        }, "raters"
    names = body.rater_names or []
    seen: set[str] = set()
    for index, rater in enumerate(names):
        if rater.name.strip() in seen:
            errors.append(FieldError(f"rater_names[{index}].name", "姓名重复"))
        seen.add(rater.name.strip())
    if errors:
        raise ValidationFailed(errors)
    counts = dict.fromkeys(RaterKind, 0)
    for rater in names:
        counts[rater.kind] += 1
    return counts, "rater_names"
