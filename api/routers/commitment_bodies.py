"""Request bodies of the commitment routes (validated to 422 with Chinese reasons)."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field

from api.limits import Evidence
from domain.commitments import DEFAULT_NOTICE_WORKING_DAYS, ReviewOccasion, Verdict


class ItemBody(BaseModel):
    """One concrete item and the day it is to be kept."""

    content: str = Field(max_length=2000)
    due: date


class RecordBody(BaseModel):
    """The organisation's commitment (no ``member_id``) or a member's."""

    member_id: str | None = Field(default=None, max_length=64)
    content: str = Field(max_length=2000)
    items: list[ItemBody] = Field(max_length=20)


class SubmitBody(BaseModel):
    """Which commitments go to 审诺; none given means every draft and returned one."""

    commitment_ids: list[str] | None = Field(default=None, max_length=1000)


class SignOffBody(BaseModel):
    """审诺: approve the named commitments, or return them with a reason."""

    commitment_ids: list[str] = Field(min_length=1, max_length=1000)
    approve: bool
    reason: str = Field(default="", max_length=2000)


class PublishBody(BaseModel):
    """公示 of every approved commitment, for a notice period in working days."""

    notice_working_days: int = Field(default=DEFAULT_NOTICE_WORKING_DAYS, ge=1, le=30)


class AbsenceBody(BaseModel):
    """A member who makes no commitment, and why."""

    member_id: str = Field(max_length=64)
    reason: str = Field(max_length=2000)


class LedgerBody(BaseModel):
    """践诺: what was done, when, and the uploaded evidence ``{name, sha256}``."""

    item_id: str | None = Field(default=None, max_length=64)
    fulfilled_on: date
    description: str = Field(max_length=2000)
    evidence: Evidence


class ReviewBody(BaseModel):
    """评诺 at the leadership review or the evaluation."""

    occasion: ReviewOccasion
    verdict: Verdict
    comment: str = Field(default="", max_length=2000)


class StepBody(BaseModel):
    """Submit the workflow step; ``values`` adds the step's other fields, if any."""

    step_id: str = Field(default="member_commitments", min_length=1, max_length=64)
    values: Evidence = Field(default_factory=dict)
