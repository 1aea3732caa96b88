"""评选表彰 settles the organisation's steps (seed 002 §五(五), issue 15): the declaration
(申报, "由各级党委自行申报") settles the 申报 step, and the county's approval (审定, "报县委
常委会审定") settles the 审定 step of every organisation that declared, with its outcome:
入选 and the honours, or 未入选 and why. Both act on the organisation's campaign as actors of
their own (``declaration/<id>``, ``approval/<round>``; see ``StepPlan.procedure``), with one
idempotency key each, through the campaign's ``submit_evidence``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from domain.plan import StepProcedure
from domain.rubric import HonourCategory
from domain.state import Actor

_FROZEN = ConfigDict(frozen=True)

#: The honour whose declaration settles the organisation's 申报 step: the organisation's own
#: (先进基层党组织); nominating members (优秀共产党员、优秀党务工作者) is reported in the
#: 党员考评上报 step.
DECLARED_HONOUR = HonourCategory.ADVANCED_ORGANISATION


class Outcome(StrEnum):
    """What 审定 decided for one organisation."""

    SELECTED = "入选"
    NOT_SELECTED = "未入选"


def declaration_actor(declaration_id: str, declared_by: Actor) -> Actor:
    """The actor a declaration settles the 申报 step as (in the declarer's role)."""
    return Actor(
        user=f"{StepProcedure.DECLARATION.value}/{declaration_id}",
        name=declared_by.name or declared_by.user,
        role=declared_by.role,
        ip=declared_by.ip,
    )


def declaration_key(declaration_id: str) -> str:
    """One settlement per declaration."""
    return f"declaration:{declaration_id}:step"


def declaration_values(declaration_id: str, deeds: str) -> dict[str, object]:
    """The 申报 step's evidence: the declaration's id and its 事迹."""
    return {"declaration_id": declaration_id, "deeds": deeds}


def approval_actor(round_id: str, approved_by: Actor) -> Actor:
    """The actor the county's 审定 settles the 审定 steps as (the county office)."""
    return Actor(
        user=f"{StepProcedure.APPROVAL.value}/{round_id}",
        name=approved_by.name or approved_by.user,
        role=approved_by.role,
        ip=approved_by.ip,
    )


def approval_key(round_id: str, org_id: str) -> str:
    """One settlement per round and organisation."""
    return f"approval:{round_id}:{org_id}"


class OrganisationOutcome(BaseModel):
    """The 审定's outcome for one organisation that declared."""

    model_config = _FROZEN

    org_id: str
    outcome: Outcome
    honours: tuple[str, ...] = ()
    note: str = ""

    def values(self, meeting: str) -> dict[str, object]:
        """The 审定 step's evidence."""
        values: dict[str, object] = {"meeting": meeting, "outcome": self.outcome.value}
        if self.honours:
            values["honours"] = list(self.honours)
        if self.note:
            values["note"] = self.note
        return values


def outcomes(
    declared: Iterable[tuple[str, str]],
    honours: Iterable[Mapping[str, object]],
    struck: Mapping[str, str],
) -> list[OrganisationOutcome]:
    """Per organisation that declared (``(declaration_id, org_id)`` pairs), in the order of
    first declaration: 入选 with its honours (``title：nominee`` of the approved list), or 未入选
    with the reasons its declarations were struck (``struck``: declaration id → reason), else
    that they were not within the quota."""
    by_org: dict[str, list[str]] = {}
    for declaration_id, org_id in declared:
        by_org.setdefault(org_id, []).append(declaration_id)
    won: dict[str, list[str]] = {}
    for honour in honours:
        won.setdefault(str(honour["org_id"]), []).append(f"{honour['title']}：{honour['nominee']}")
    result: list[OrganisationOutcome] = []
    for org_id, declarations in by_org.items():
        if org_id in won:
            result.append(
                OrganisationOutcome(
                    org_id=org_id, outcome=Outcome.SELECTED, honours=tuple(won[org_id])
                )
            )
            continue
        reasons: Sequence[str] = [struck[d] for d in declarations if d in struck]
        note = "；".join(reasons) if reasons else "综合考评未进入名额"
        result.append(OrganisationOutcome(org_id=org_id, outcome=Outcome.NOT_SELECTED, note=note))
    return result
