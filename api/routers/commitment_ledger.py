"""公开承诺 after the commitments are recorded: absences with reasons, the 践诺 ledger, 评诺,
and the workflow step.

The use cases are ``chuangzheng.services.commitments``; the ``/step`` route submits the
workflow's ``member_commitments`` step with evidence built from the ledger, so the workflow's
guard checks the real roster. Same prefix, scope rules and idempotency as
:mod:`api.routers.commitments`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from api.deps import CurrentUser, SessionsDep, TemporalClientDep
from api.idempotency import idempotency_key
from api.limits import check_evidence
from api.responses import AUTHENTICATED, TEMPORAL, WITH_BODY, errors
from api.routers import commitment_views as views
from api.routers.action_bodies import ActionResponse
from api.routers.commitment_bodies import AbsenceBody, LedgerBody, ReviewBody, StepBody
from api.routers.commitments import answer_once
from chuangzheng.services import commitments
from chuangzheng.services.callers import Caller

router = APIRouter(
    prefix="/api/v1/rounds/{round_id}/organisations/{org_id}/commitments",
    tags=["公开承诺 commitments"],
    responses=errors(*AUTHENTICATED, 404, 409, 422),
)


@router.post(
    "/absences",
    summary="登记党员缺席理由",
    response_model=views.CoverageView,
    responses=errors(*WITH_BODY),
)
async def record_absence(
    round_id: str, org_id: str, body: AbsenceBody, request: Request, sessions: SessionsDep,
    user: CurrentUser,
) -> Any:  # fmt: skip
    """A member who makes no commitment this round is covered by a recorded reason."""

    def call(caller: Caller) -> dict[str, Any]:
        return commitments.record_absence(
            sessions, caller, round_id, org_id, body.member_id, body.reason
        )

    return await answer_once(request, sessions, user, commitments.RECORDERS, round_id, org_id, call)


@router.post(
    "/{commitment_id}/ledger",
    status_code=201,
    summary="登记践诺",
    response_model=views.CommitmentView,
    responses=errors(*WITH_BODY),
)
async def add_fulfilment(
    round_id: str, org_id: str, commitment_id: str, body: LedgerBody, request: Request,
    sessions: SessionsDep, user: CurrentUser,
) -> Any:  # fmt: skip
    """A ledger entry of fulfilment, with a file uploaded through ``/files`` as evidence."""
    entry = commitments.Fulfilment(
        fulfilled_on=body.fulfilled_on,
        description=body.description,
        evidence=body.evidence,
        item_id=body.item_id,
    )
    key = idempotency_key(request)

    def call(caller: Caller) -> dict[str, Any]:
        return commitments.add_fulfilment(
            sessions, caller, round_id, org_id, commitment_id, entry, idempotency_key=key
        )

    return await answer_once(
        request, sessions, user, commitments.RECORDERS, round_id, org_id, call, status_code=201
    )


@router.post(
    "/{commitment_id}/reviews",
    summary="评诺",
    response_model=views.CommitmentView,
    responses=errors(*WITH_BODY),
)
async def review(
    round_id: str, org_id: str, commitment_id: str, body: ReviewBody, request: Request,
    sessions: SessionsDep, user: CurrentUser,
) -> Any:  # fmt: skip
    """The upper level's verdict; one per occasion (a later one on the same occasion wins)."""

    def call(caller: Caller) -> dict[str, Any]:
        return commitments.review(
            sessions, caller, round_id, org_id, commitment_id,
            occasion=body.occasion, verdict=body.verdict, comment=body.comment,
        )  # fmt: skip

    return await answer_once(request, sessions, user, commitments.SIGNERS, round_id, org_id, call)


@router.post(
    "/step",
    summary="以承诺台账提交“党员承诺”步骤",
    response_model=ActionResponse,
    responses=errors(*WITH_BODY, *TEMPORAL),
)
async def submit_step(
    round_id: str, org_id: str, body: StepBody, request: Request, sessions: SessionsDep,
    client: TemporalClientDep, user: CurrentUser,
) -> Any:  # fmt: skip
    """Submit the workflow's step with the roster snapshot, the counted commitments and the
    absences as evidence; the workflow's guard refuses while any member is uncovered."""
    key = idempotency_key(request)

    async def call(caller: Caller) -> dict[str, Any]:
        return await commitments.submit_step(
            sessions, client, caller, round_id, org_id,
            values_within_limits=check_evidence, step_id=body.step_id,
            values=body.values, idempotency_key=key,
        )  # fmt: skip

    return await answer_once(request, sessions, user, None, round_id, org_id, call)
