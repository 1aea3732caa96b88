"""Human actions on one organisation's campaign, each an Update on its workflow; plus
evidence file uploads.

Every route checks the caller's scope on the organisation first (404 outside it); the
workflow's validator then checks the role and the rules, and its refusal comes back as a
4xx with the validator's code and reason.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from api.auth import User
from api.deps import CurrentUser, SessionsDep, TemporalClientDep, client_ip
from api.idempotency import command_key, idempotency_key, idempotent
from api.routers.action_bodies import (
    Acknowledge,
    AskExtension,
    Decide,
    DecideExtension,
    Recheck,
    Report,
    Submit,
    Waive,
)
from api.routers.organisations import visible_organisation
from api.workflow_calls import update
from domain import actions
from domain.campaign_rules import CampaignStatus
from domain.state import Actor
from workflows.ids import organisation_workflow_id

router = APIRouter(prefix="/api/v1/rounds/{round_id}/organisations/{org_id}", tags=["操作 actions"])


async def _act(
    request: Request,
    sessions: SessionsDep,
    client: TemporalClientDep,
    user: User,
    round_id: str,
    org_id: str,
    update_name: str,
    build: Any,
) -> Any:
    """Check scope, build the command with the actor and key, run the Update idempotently."""
    with sessions() as session:
        visible_organisation(session, user, org_id)
    actor = Actor(user=user.username, name=user.display_name, role=user.role, ip=client_ip(request))
    cmd = build(actor, command_key(user, idempotency_key(request)))

    async def action() -> dict[str, Any]:
        status = await update(
            client, organisation_workflow_id(round_id, org_id), update_name, cmd, CampaignStatus
        )
        return status.model_dump(mode="json")

    return await idempotent(request, sessions, user, action)


@router.post("/submissions", summary="提交材料")
async def submit(
    round_id: str,
    org_id: str,
    body: Submit,
    request: Request,
    sessions: SessionsDep,
    client: TemporalClientDep,
    user: CurrentUser,
) -> Any:
    """The secretary submits evidence for a step of the current phase."""
    return await _act(
        request,
        sessions,
        client,
        user,
        round_id,
        org_id,
        "submit_evidence",
        lambda a, k: actions.SubmitEvidence(
            actor=a, step_id=body.step_id, values=body.values, idempotency_key=k
        ),
    )


@router.post("/decisions", summary="审核材料（通过/退回）")
async def decide(
    round_id: str,
    org_id: str,
    body: Decide,
    request: Request,
    sessions: SessionsDep,
    client: TemporalClientDep,
    user: CurrentUser,
) -> Any:
    """A supervisor accepts or returns the latest submission of a step."""
    return await _act(
        request,
        sessions,
        client,
        user,
        round_id,
        org_id,
        "decide_submission",
        lambda a, k: actions.DecideSubmission(
            actor=a, step_id=body.step_id, accept=body.accept, reason=body.reason, idempotency_key=k
        ),
    )


@router.post("/waivers", summary="免除步骤")
async def waive(
    round_id: str,
    org_id: str,
    body: Waive,
    request: Request,
    sessions: SessionsDep,
    client: TemporalClientDep,
    user: CurrentUser,
) -> Any:
    """A supervisor waives a step with a reason."""
    return await _act(
        request,
        sessions,
        client,
        user,
        round_id,
        org_id,
        "waive_step",
        lambda a, k: actions.WaiveStep(
            actor=a, step_id=body.step_id, reason=body.reason, idempotency_key=k
        ),
    )


@router.post("/extensions", summary="申请延期")
async def request_extension(
    round_id: str,
    org_id: str,
    body: AskExtension,
    request: Request,
    sessions: SessionsDep,
    client: TemporalClientDep,
    user: CurrentUser,
) -> Any:
    """The secretary asks to move the current phase's deadline."""
    return await _act(
        request,
        sessions,
        client,
        user,
        round_id,
        org_id,
        "request_extension",
        lambda a, k: actions.RequestExtension(
            actor=a, new_deadline=body.new_deadline, reason=body.reason, idempotency_key=k
        ),
    )


@router.post("/extensions/{extension_id}/decision", summary="审批延期")
async def decide_extension(
    round_id: str,
    org_id: str,
    extension_id: str,
    body: DecideExtension,
    request: Request,
    sessions: SessionsDep,
    client: TemporalClientDep,
    user: CurrentUser,
) -> Any:
    """A supervisor approves or rejects an extension request."""
    return await _act(
        request,
        sessions,
        client,
        user,
        round_id,
        org_id,
        "decide_extension",
        lambda a, k: actions.DecideExtension(
            actor=a,
            extension_id=extension_id,
            approve=body.approve,
            reason=body.reason,
            idempotency_key=k,
        ),
    )


@router.post("/acknowledgements", summary="签收督办通知")
async def acknowledge(
    round_id: str,
    org_id: str,
    body: Acknowledge,
    request: Request,
    sessions: SessionsDep,
    client: TemporalClientDep,
    user: CurrentUser,
) -> Any:
    """The rung's addressee signs for it (签收)."""
    return await _act(
        request,
        sessions,
        client,
        user,
        round_id,
        org_id,
        "acknowledge_escalation",
        lambda a, k: actions.AcknowledgeEscalation(
            actor=a, phase=body.phase, rung=body.rung, idempotency_key=k
        ),
    )


@router.post("/rectification/report", summary="提交整改报告")
async def report_rectification(
    round_id: str,
    org_id: str,
    body: Report,
    request: Request,
    sessions: SessionsDep,
    client: TemporalClientDep,
    user: CurrentUser,
) -> Any:
    """The secretary reports what was rectified."""
    return await _act(
        request,
        sessions,
        client,
        user,
        round_id,
        org_id,
        "report_rectification",
        lambda a, k: actions.ReportRectification(
            actor=a, phase=body.phase, report=body.report, idempotency_key=k
        ),
    )


@router.post("/rectification/recheck", summary="复查整改")
async def recheck(
    round_id: str,
    org_id: str,
    body: Recheck,
    request: Request,
    sessions: SessionsDep,
    client: TemporalClientDep,
    user: CurrentUser,
) -> Any:
    """A supervisor re-checks the rectification (passed, or back with notes)."""
    return await _act(
        request,
        sessions,
        client,
        user,
        round_id,
        org_id,
        "recheck_rectification",
        lambda a, k: actions.RecheckRectification(
            actor=a, phase=body.phase, passed=body.passed, notes=body.notes, idempotency_key=k
        ),
    )
