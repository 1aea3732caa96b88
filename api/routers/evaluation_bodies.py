"""Request and response bodies of the 群众评议 routes."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from api.responses import Timestamp
from chuangzheng.services.evaluations import EvaluationRequest
from domain.evaluation import EvaluationTarget, ItemTally, RaterKind, Verdict
from domain.text import Visible


class RaterCounts(BaseModel):
    """How many ballots for members and for the public."""

    model_config = ConfigDict(extra="forbid")

    member: int = Field(default=0, ge=0, le=5000)
    non_member: int = Field(default=0, ge=0, le=5000)


class RaterName(BaseModel):
    """A rater on a names list (used for counting; names are not stored)."""

    model_config = ConfigDict(extra="forbid")

    # Names are counted as a reader sees them (domain.text.Visible): a name of zero-width
    # characters is no rater.
    name: Annotated[str, Visible()] = Field(max_length=50)
    kind: RaterKind


class OpenEvaluation(BaseModel):
    """Open a ballot: rater counts by kind, or a names list."""

    model_config = ConfigDict(extra="forbid")

    target: EvaluationTarget = EvaluationTarget.ORGANISATION
    member: Annotated[str, Visible()] | None = Field(default=None, max_length=50)
    raters: RaterCounts | None = None
    rater_names: list[RaterName] | None = Field(default=None, max_length=5000)

    def request(self) -> EvaluationRequest:
        """What the service opens."""
        raters = None
        if self.raters is not None:
            raters = {RaterKind.MEMBER: self.raters.member,
                      RaterKind.NON_MEMBER: self.raters.non_member}  # fmt: skip
        names = None
        if self.rater_names is not None:
            names = [(r.name, r.kind) for r in self.rater_names]
        return EvaluationRequest(
            target=self.target, member=self.member, raters=raters, rater_names=names
        )


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
