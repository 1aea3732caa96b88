"""座谈会 and 督查 visits: supervision records per round, for organisations in the caller's
scope; listed per round or per organisation (its timeline). See
``chuangzheng.services.supervision_records``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from api.blocking import run_sync
from api.callers import service_caller
from api.deps import CurrentUser, SessionDep, SessionsDep
from api.errors import as_api_error
from api.idempotency import idempotent
from api.responses import AUTHENTICATED, WITH_BODY, errors
from chuangzheng.services import supervision_records
from chuangzheng.services.errors import ServiceError
from chuangzheng.services.supervision_records import RecordRequest

router = APIRouter(
    prefix="/api/v1", tags=["督促检查 supervision"], responses=errors(*AUTHENTICATED, 404, 422)
)


class SupervisionRecordView(BaseModel):
    """A 座谈会 or 督查 record."""

    record_id: str
    round_id: str
    kind: str
    kind_label: str
    held_on: str
    title: str
    supervisors: list[str]
    org_ids: list[str]
    findings: str
    follow_ups: str
    recorded_by: str
    recorded_by_role: str
    recorded_at: datetime


@router.post(
    "/rounds/{round_id}/supervision-records",
    status_code=201,
    summary="记录座谈会或督查情况",
    response_model=SupervisionRecordView,
    responses=errors(*WITH_BODY),
)
async def create_record(
    round_id: str, body: RecordRequest, request: Request, user: CurrentUser, sessions: SessionsDep
) -> Any:
    """Date, supervisors, organisations covered (each in the caller's scope and the round),
    findings and follow-ups; audited."""
    caller = service_caller(user, request)
    try:
        checked = supervision_records.parse_request(body.model_dump())
    except ServiceError as exc:
        raise as_api_error(exc) from None

    def store() -> dict[str, Any]:
        try:
            with sessions.begin() as session:
                return supervision_records.record(session, caller, round_id, checked).document()
        except ServiceError as exc:
            raise as_api_error(exc) from None

    async def action() -> dict[str, Any]:
        return await run_sync(store)

    return await idempotent(request, sessions, user, action, status_code=201)


@router.get(
    "/rounds/{round_id}/supervision-records",
    summary="本轮座谈会和督查记录",
    response_model=list[SupervisionRecordView],
)
def list_records(
    round_id: str,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    org_id: str | None = None,
) -> list[dict[str, Any]]:
    """Records covering organisations in the caller's scope (``org_id``: that one's)."""
    try:
        found = supervision_records.list_records(
            session, service_caller(user, request), round_id, org_id=org_id
        )
    except ServiceError as exc:
        raise as_api_error(exc) from None
    return [r.document() for r in found]
