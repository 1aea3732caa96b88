"""评选表彰 settles the organisations' steps (issue 15, :mod:`domain.commendation_steps`): a
declaration for 先进基层党组织 settles its organisation's 申报 step, and the standing
committee's 审定 settles the 审定 step of every organisation that declared, with its outcome.

The records are :mod:`chuangzheng.services.commendation`'s; this module only carries what
they decided to the organisations' workflows, as an Update each (``submit_evidence`` with one
idempotency key per declaration, and per round and organisation). It runs after the write has
committed: a step the workflow refuses (the organisation's phase is not open, the step is
settled already) is reported in the answer, never undoes the write, and can be settled again
(:func:`resettle_declaration`, :func:`resettle_approval`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import anyio.to_thread
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from activities.roster_store import load_organisation
from activities.tables import (
    CommendationApprovalRow,
    CommendationDecisionRow,
    CommendationDeclarationRow,
    RoundDefinitionRow,
)
from chuangzheng.plans import parse_plan
from chuangzheng.services import workflow_calls
from chuangzheng.services.callers import Caller, require_role
from chuangzheng.services.commendation import (
    DECIDERS,
    DECLARERS,
    commendation_round,
    declaration_document,
    visible_declaration,
)
from chuangzheng.services.errors import Conflict, ServiceError
from domain.actions import SubmitEvidence
from domain.commendation_approval import DecisionKind
from domain.commendation_steps import (
    DECLARED_HONOUR,
    OrganisationOutcome,
    approval_actor,
    approval_key,
    declaration_actor,
    declaration_key,
    declaration_values,
    outcomes,
)
from domain.plan import StepProcedure
from domain.state import Actor
from workflows.contracts import ActionResult
from workflows.ids import organisation_workflow_id

#: How many organisations' 审定 steps are settled at once.
_SETTLING = 16


def _procedure_steps(
    session: Session, round_id: str, procedure: StepProcedure, org_ids: Sequence[str]
) -> dict[str, str]:
    """The id of the step ``procedure`` settles, per organisation (by its type), from the
    round's plan; organisations whose plan has no such step are left out."""
    definition = session.get(RoundDefinitionRow, round_id)
    if definition is None:
        return {}
    round_plan = parse_plan(definition.plan_yaml).round(definition.round_plan_id)
    steps: dict[str, str] = {}
    for org_id in org_ids:
        org = load_organisation(session, org_id)
        step = round_plan.procedure_step(procedure, org.type) if org is not None else None
        if step is not None:
            steps[org_id] = step.id
    return steps


async def _settle(temporal: Client, round_id: str, org_id: str, submission: SubmitEvidence) -> str:
    """Submit for the organisation's step; "settled", or why not (Chinese)."""
    try:
        await workflow_calls.update(
            temporal,
            organisation_workflow_id(round_id, org_id),
            "submit_evidence",
            submission,
            ActionResult,
        )
    except ServiceError as exc:
        return exc.message
    return "settled"


async def settle_declaration(
    temporal: Client,
    sessions: sessionmaker[Session],
    caller: Caller,
    round_id: str,
    declared: Mapping[str, Any],
) -> str | None:
    """Settle the 申报 step of the organisation a 先进基层党组织 declaration (the answer of
    :func:`declare`) is for: "settled", or why not (the organisation's phase is not open, the
    step is settled already); None when nothing is to settle (another honour, or a plan
    without the step). Once per declaration (its idempotency key)."""
    if declared["category"] != DECLARED_HONOUR.value:
        return None
    org_id, declaration_id = str(declared["org_id"]), str(declared["declaration_id"])

    def step_of() -> dict[str, str]:
        with sessions() as session:
            return _procedure_steps(session, round_id, StepProcedure.DECLARATION, [org_id])

    step = (await anyio.to_thread.run_sync(step_of)).get(org_id)
    if step is None:
        return None
    submission = SubmitEvidence(
        actor=declaration_actor(declaration_id, caller.actor),
        step_id=step,
        values=declaration_values(declaration_id, str(declared["deeds"])),
        idempotency_key=declaration_key(declaration_id),
    )
    return await _settle(temporal, round_id, org_id, submission)


async def resettle_declaration(
    temporal: Client,
    sessions: sessionmaker[Session],
    caller: Caller,
    round_id: str,
    declaration_id: str,
) -> str | None:
    """Settle a declaration's 申报 step again: for a declaration made before the
    organisation's commendation phase opened (refused then), or after a failure. The
    declarer's side (secretary, township) or the county office; once per declaration."""

    def load() -> dict[str, Any]:
        with sessions() as session:
            row = visible_declaration(session, caller, round_id, declaration_id)
            require_role(caller, DECLARERS | DECIDERS)
            return declaration_document(row, None)

    declared = await anyio.to_thread.run_sync(load)
    return await settle_declaration(temporal, sessions, caller, round_id, declared)


async def settle_approval(
    temporal: Client,
    sessions: sessionmaker[Session],
    approved_by: Actor,
    round_id: str,
) -> dict[str, str]:
    """Settle the 审定 step of every organisation that declared in the round, with its
    outcome (入选 and its honours, 未入选 and why), after the 审定 was recorded: per
    organisation, "settled" or why not. Once per round and organisation (idempotency keys),
    so running it again (a retry) settles what is left and changes nothing else.
    :class:`NotFound` for an unknown round, :class:`Conflict` before the 审定."""

    def load() -> tuple[str, list[tuple[OrganisationOutcome, str | None]]]:
        with sessions() as session:
            # An unknown round is NotFound, as everywhere in 评选表彰, not "not approved yet".
            commendation_round(session, round_id)
            approval = session.get(CommendationApprovalRow, round_id)
            if approval is None:
                raise Conflict("commendation_open", "名单尚未审定")
            declared = session.execute(
                select(CommendationDeclarationRow.declaration_id, CommendationDeclarationRow.org_id)
                .where(CommendationDeclarationRow.round_id == round_id)
                .order_by(CommendationDeclarationRow.declared_at)
            ).all()
            struck = {
                d.declaration_id: d.reason
                for d in session.scalars(
                    select(CommendationDecisionRow).where(
                        CommendationDecisionRow.round_id == round_id,
                        CommendationDecisionRow.kind == DecisionKind.STRIKE.value,
                    )
                )
            }
            found = outcomes([(d, o) for d, o in declared], approval.approved["honours"], struck)
            steps = _procedure_steps(
                session, round_id, StepProcedure.APPROVAL, [o.org_id for o in found]
            )
            return approval.meeting, [(o, steps.get(o.org_id)) for o in found]

    meeting, found = await anyio.to_thread.run_sync(load)
    actor = approval_actor(round_id, approved_by)
    results: dict[str, str] = {}
    limiter = anyio.Semaphore(_SETTLING)

    async def one(outcome: OrganisationOutcome, step: str | None) -> None:
        if step is None:
            return
        async with limiter:
            results[outcome.org_id] = await _settle(
                temporal,
                round_id,
                outcome.org_id,
                SubmitEvidence(
                    actor=actor,
                    step_id=step,
                    values=outcome.values(meeting),
                    idempotency_key=approval_key(round_id, outcome.org_id),
                ),
            )

    async with anyio.create_task_group() as group:
        for outcome, step in found:
            group.start_soon(one, outcome, step)
    return results


async def resettle_approval(
    temporal: Client, sessions: sessionmaker[Session], caller: Caller, round_id: str
) -> dict[str, str]:
    """The county office settles the 审定 steps again (after a failure part-way through
    :func:`settle_approval`); each step still once."""
    require_role(caller, DECIDERS)
    return await settle_approval(temporal, sessions, caller.actor, round_id)
