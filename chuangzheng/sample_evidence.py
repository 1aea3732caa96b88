"""Plausible evidence for any step, generated from its field rules.

Used by the simulation command and by tests to act as a diligent secretary would; the
values satisfy every rule of :mod:`domain.evidence` for the organisation and phase window.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime
from typing import Any

from domain.calendar import deadline_day, local_date
from domain.evaluation import evaluation_actor
from domain.evidence import BALLOT_KEYS
from domain.organisation import Organisation, Role
from domain.plan import EvidenceField, FieldKind, StepPlan
from domain.state import Actor


def _value(
    spec: EvidenceField, org: Organisation, opens_at: datetime, deadline: datetime, now: datetime
) -> Any:
    if spec.kind is FieldKind.DATE:
        # Today, kept inside the phase window the rules check against, but never later than
        # today (the rules refuse a future date): an organisation that entered the phase
        # before its planned opening (``opens_at``) dates it today, inside its actual window.
        first, last, today = local_date(opens_at), deadline_day(deadline), local_date(now)
        return min(today, max(first, min(last, today))).isoformat()
    if spec.kind is FieldKind.INTEGER:
        low = spec.min or 0
        if spec.min_share_of_members is not None:
            low = max(low, math.ceil(org.member_count * spec.min_share_of_members))
        high = spec.max if spec.max is not None else low + 5
        if spec.max_share_of_members is not None:
            high = min(high, org.member_count * spec.max_share_of_members)
        return int(max(low, min(high, max(low, 1))))
    if spec.kind is FieldKind.TEXT:
        sentence = (
            f"{org.name}按照县委部署认真落实{spec.label}，做到规定动作不走样、自选动作有创新。"
        )
        return sentence * max(1, math.ceil((spec.min_length or 1) / len(sentence)))
    if spec.kind is FieldKind.DOCUMENT:
        digest = hashlib.sha256(f"{org.id}/{spec.name}".encode()).hexdigest()
        return {"name": f"{spec.label}.pdf", "sha256": digest}
    if spec.kind is FieldKind.PEOPLE:
        return [f"{org.secretary}{i}" if i else org.secretary for i in range(spec.min_items or 1)]
    if spec.kind is FieldKind.MEMBER_COMMITMENTS:
        due = deadline_day(deadline).isoformat()
        return [
            {"member": f"党员{i + 1:03d}", "content": "带头服务群众，每月走访困难户", "due": due}
            for i in range(org.member_count)
        ]
    if spec.kind is FieldKind.BALLOTS:
        return dict(zip(BALLOT_KEYS, (30, 8, 2, 0), strict=True))
    if spec.kind is FieldKind.SCORES:
        score = spec.max if spec.max is not None else 90
        return {"领导班子好": score, "党员队伍好": score}
    assert spec.choices is not None
    return spec.choices[0]


def sample_evidence(
    step: StepPlan, org: Organisation, *, opens_at: datetime, deadline: datetime, now: datetime
) -> dict[str, Any]:
    """Values for every field of ``step`` (required and optional) that pass its rules."""
    return {spec.name: _value(spec, org, opens_at, deadline, now) for spec in step.evidence}


# The roles a diligent county picks first when the plan allows several.
_PREFERRED = (Role.SECRETARY, Role.INSTRUCTOR, Role.TOWNSHIP, Role.GUIDANCE_GROUP)


def _person(role: Role, org: Organisation) -> Actor:
    key = {
        Role.SECRETARY: org.secretary,
        Role.INSTRUCTOR: org.instructor,
        Role.TOWNSHIP: org.township,
        Role.GUIDANCE_GROUP: org.system,
    }.get(role, "county")
    return Actor(user=key, name=key, role=role)


def _first(roles: frozenset[Role]) -> Role:
    return next((r for r in _PREFERRED if r in roles), Role.COUNTY_OFFICE)


def sample_actors(step: StepPlan, org: Organisation) -> tuple[Actor, Actor | None]:
    """Who submits ``step`` for ``org`` and who then decides on it, as the plan says (the
    secretary and the instructor unless it names others: 领导点评 is written by the instructor
    and signed for by the secretary). A step a procedure settles (a ballot, a declaration,
    the county's approval) is submitted by a stand-in for the procedure: no decision (None)."""
    if step.ballot is not None:
        township = _person(Role.TOWNSHIP, org)
        return evaluation_actor(f"sample-{org.id}-{step.id}", township), None
    if step.procedure is not None:  # a declaration, the county's approval
        role = Role.SECRETARY if step.procedure == "declaration" else Role.COUNTY_OFFICE
        stand_in = Actor(user=f"{step.procedure}/sample-{org.id}", role=role)
        return stand_in, None
    return _person(_first(step.submitters), org), _person(_first(step.deciders), org)
