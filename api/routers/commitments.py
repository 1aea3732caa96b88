"""公开承诺 as a procedure: record → 审诺 → 公示 → 践诺 → 评诺, and the workflow step.

The use cases are ``chuangzheng.services.commitments``; the routes parse the request, call
them and map their errors to HTTP (``api.errors.as_api_error``). Recording, 审诺 and 公示
are here; absences, the 践诺 ledger, 评诺 and the workflow step in
:mod:`api.routers.commitment_ledger`. Every write runs once per Idempotency-Key, and the
caller's scope and role are checked before a stored answer is replayed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session

from api.auth import User
from api.callers import service_caller
from api.deps import CurrentUser, SessionsDep
from api.errors import as_api_error
from api.idempotency import idempotent
from api.responses import AUTHENTICATED, WITH_BODY, errors
from api.routers import commitment_views as views
from api.routers.commitment_bodies import (
    PublishBody,
    RecordBody,
    SignOffBody,
    SubmitBody,
)
from chuangzheng.services import commitments
from chuangzheng.services.callers import Caller
from chuangzheng.services.errors import ServiceError
from domain.commitments import ItemDraft
from domain.organisation import Role

router = APIRouter(
    prefix="/api/v1/rounds/{round_id}/organisations/{org_id}/commitments",
    tags=["公开承诺 commitments"],
    responses=errors(*AUTHENTICATED, 404, 409, 422),
)


async def answer_once(
    request: Request,
    sessions: SessionsDep,
    user: User,
    roles: Collection[Role] | None,
    round_id: str,
    org_id: str,
    call: Callable[[Caller], Any],
    *,
    status_code: int = 200,
) -> Response:
    """Run the use case ``call`` once per Idempotency-Key, its errors mapped to HTTP; the
    caller's scope, the round and the role (``roles``) are checked first, so a refusal wins
    over a stored answer."""
    caller = service_caller(user, request)

    def check(session: Session) -> None:
        try:
            commitments.check_caller(session, caller, round_id, org_id, roles)
        except ServiceError as exc:
            raise as_api_error(exc) from None

    def action() -> Any:
        try:
            return call(caller)
        except ServiceError as exc:
            raise as_api_error(exc) from None

    async def temporal_action() -> Any:
        try:
            return await call(caller)
        except ServiceError as exc:
            raise as_api_error(exc) from None

    # A use case that calls Temporal is awaited on the loop; the others (database work
    # only) run in the threadpool.
    run = temporal_action if inspect.iscoroutinefunction(call) else action
    return await idempotent(request, sessions, user, run, status_code=status_code, check=check)


@router.get("", summary="承诺台账（含覆盖情况）", response_model=views.LedgerView)
def ledger(
    round_id: str, org_id: str, request: Request, sessions: SessionsDep, user: CurrentUser
) -> dict[str, Any]:
    """Every commitment of the organisation in the round, and who is still uncovered."""
    try:
        return commitments.ledger(sessions, service_caller(user, request), round_id, org_id)
    except ServiceError as exc:
        raise as_api_error(exc) from None


@router.post(
    "",
    summary="登记承诺（党组织或党员）",
    response_model=views.CommitmentView,
    responses=errors(*WITH_BODY),
)
async def record(
    round_id: str,
    org_id: str,
    body: RecordBody,
    request: Request,
    sessions: SessionsDep,
    user: CurrentUser,
) -> Any:
    """Create or revise a draft (or returned) commitment with its items."""
    draft = commitments.CommitmentDraft(
        content=body.content,
        items=tuple(ItemDraft(i.content, i.due) for i in body.items),
        member_id=body.member_id,
    )

    def call(caller: Caller) -> dict[str, Any]:
        return commitments.record(sessions, caller, round_id, org_id, draft)

    return await answer_once(request, sessions, user, commitments.RECORDERS, round_id, org_id, call)


@router.post(
    "/submit",
    summary="提交审诺",
    response_model=list[views.CommitmentView],
    responses=errors(*WITH_BODY),
)
async def submit(
    round_id: str, org_id: str, body: SubmitBody, request: Request, sessions: SessionsDep,
    user: CurrentUser,
) -> Any:  # fmt: skip
    """Send commitments to the upper level for 审诺 (all or none)."""

    def call(caller: Caller) -> list[dict[str, Any]]:
        return commitments.submit(sessions, caller, round_id, org_id, body.commitment_ids)

    return await answer_once(request, sessions, user, commitments.RECORDERS, round_id, org_id, call)


@router.post(
    "/signoff",
    summary="审诺（通过或退回）",
    response_model=list[views.CommitmentView],
    responses=errors(*WITH_BODY),
)
async def sign_off(
    round_id: str, org_id: str, body: SignOffBody, request: Request, sessions: SessionsDep,
    user: CurrentUser,
) -> Any:  # fmt: skip
    """The upper level approves the named commitments, or returns them with a reason."""

    def call(caller: Caller) -> list[dict[str, Any]]:
        return commitments.sign_off(
            sessions, caller, round_id, org_id, body.commitment_ids,
            approve=body.approve, reason=body.reason,
        )  # fmt: skip

    return await answer_once(request, sessions, user, commitments.SIGNERS, round_id, org_id, call)


@router.post(
    "/publish",
    summary="公示承诺",
    response_model=list[views.CommitmentView],
    responses=errors(*WITH_BODY),
)
async def publish(
    round_id: str, org_id: str, body: PublishBody, request: Request, sessions: SessionsDep,
    user: CurrentUser,
) -> Any:  # fmt: skip
    """Publish every approved commitment on the public page for the notice period."""

    def call(caller: Caller) -> list[dict[str, Any]]:
        return commitments.publish(sessions, caller, round_id, org_id, body.notice_working_days)

    return await answer_once(
        request, sessions, user, commitments.PUBLISHERS, round_id, org_id, call
    )
