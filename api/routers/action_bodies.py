"""Request bodies of the action routes (one model per action, validated to 422).

Each becomes an Update's argument, stored in the workflow's history: every free-form field is
bounded (see ``api.limits``), so an oversized one is a 422 naming it, before Temporal is called.
"""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, Field

from api.limits import Evidence
from domain.campaign_rules import CampaignStatus
from domain.phases import Phase
from workflows.contracts import ActionResult


class Submit(BaseModel):
    """Evidence for a step: field name -> value (a document is ``{"name", "sha256"}``)."""

    step_id: str = Field(min_length=1, max_length=64)
    values: Evidence


class Decide(BaseModel):
    """Accept or return (退回, with a reason) a step's latest submission."""

    step_id: str = Field(min_length=1, max_length=64)
    accept: bool
    reason: str = Field(default="", max_length=2000)


class Waive(BaseModel):
    """Waive a step, with a reason."""

    step_id: str = Field(min_length=1, max_length=64)
    reason: str = Field(max_length=2000)


class AskExtension(BaseModel):
    """Ask for a later deadline of the current phase."""

    new_deadline: AwareDatetime
    reason: str = Field(max_length=2000)


class DecideExtension(BaseModel):
    """Approve or reject an extension request."""

    approve: bool
    reason: str = Field(default="", max_length=2000)


class Acknowledge(BaseModel):
    """Sign for a rung's notice."""

    phase: Phase
    rung: int = Field(ge=0, le=20)


class Report(BaseModel):
    """Report on a rectification order."""

    phase: Phase
    report: str = Field(max_length=20_000)


class Recheck(BaseModel):
    """Re-check a rectification report."""

    phase: Phase
    passed: bool
    notes: str = Field(default="", max_length=2000)


class ActionResponse(CampaignStatus):
    """The answer to an action: the organisation's whole status after it (the workflow's
    ``status`` query) and the Update's own small ``result``."""

    result: ActionResult


class MinimalActionResponse(BaseModel):
    """The answer with ``Prefer: return=minimal``: the Update's result only (no query)."""

    result: ActionResult
