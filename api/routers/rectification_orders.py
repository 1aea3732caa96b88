"""限期整改 at a supervisor's discretion: the county office, a guidance group or a township
orders an organisation in its scope to rectify, with a ground, a reason and a deadline in
working days (``chuangzheng.services.rectification_orders``). Outside the scope: 404.

A retry with the same ``Idempotency-Key`` gets the first answer; two concurrent retries are
still one order (the order's id comes from the key, and the workflow remembers it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from api.callers import service_caller
from api.deps import CurrentUser, SessionDep, SessionsDep, TemporalClientDep
from api.errors import as_api_error
from api.idempotency import idempotency_key, idempotent
from api.responses import AUTHENTICATED, TEMPORAL, WITH_BODY, errors
from chuangzheng.services import rectification_orders
from chuangzheng.services.errors import ServiceError
from chuangzheng.services.rectification_orders import OrderRequest
from domain.campaign_rules import CampaignStatus

router = APIRouter(
    prefix="/api/v1", tags=["督促检查 supervision"], responses=errors(*AUTHENTICATED, 404, 409, 422)
)


class RectificationOrderView(BaseModel):
    """A supervisor's rectification order as recorded."""

    order_id: str
    round_id: str
    org_id: str
    source: str
    ground: str
    ground_label: str
    reason: str
    period_working_days: int
    inspection_id: str | None
    ordered_by: str
    ordered_by_role: str
    ordered_at: datetime
    phase: str | None
    deadline: str | None


class OrderedRectification(BaseModel):
    """The order and the organisation's status after it (the phase's ``rectification``)."""

    order: RectificationOrderView
    status: CampaignStatus


@router.post(
    "/rounds/{round_id}/organisations/{org_id}/rectification-orders",
    status_code=201,
    summary="限期整改（督导人员责令整改）",
    response_model=OrderedRectification,
    responses=errors(*WITH_BODY, *TEMPORAL),
)
async def order_rectification(
    round_id: str,
    org_id: str,
    body: OrderRequest,
    request: Request,
    user: CurrentUser,
    sessions: SessionsDep,
    client: TemporalClientDep,
) -> Any:
    """Order rectification (思想上不重视、工作上不得力 …) through the organisation's workflow:
    the secretary gets a 整改通知, reports, a supervisor re-checks, the ladder follows an
    overdue order."""
    caller = service_caller(user, request)
    key = idempotency_key(request)

    async def action() -> dict[str, Any]:
        try:
            outcome = await rectification_orders.order_rectification(
                sessions,
                client,
                caller,
                round_id=round_id,
                org_id=org_id,
                request=body,
                idempotency_key=key,
            )
        except ServiceError as exc:
            raise as_api_error(exc) from None
        return {
            "order": rectification_orders.order_document(outcome.order),
            "status": outcome.status.model_dump(mode="json"),
        }

    return await idempotent(request, sessions, user, action, status_code=201)


@router.get(
    "/rounds/{round_id}/rectification-orders",
    summary="督导人员下达的整改通知",
    response_model=list[RectificationOrderView],
)
def list_orders(
    round_id: str,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    org_id: str | None = None,
) -> list[dict[str, Any]]:
    """The round's discretionary and spot-check orders in the caller's scope."""
    try:
        rows = rectification_orders.list_orders(
            session, service_caller(user, request), round_id, org_id=org_id
        )
    except ServiceError as exc:
        raise as_api_error(exc) from None
    return [rectification_orders.order_document(r) for r in rows]
