"""Failed notice deliveries (mail, WeCom, DingTalk) for the county office: see them with
their last error, and send them again once the cause is fixed."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from activities.channels import ChannelRouter, build_notifier
from activities.channels.deliveries import DeliveryStatus, failed_deliveries
from api.deps import CurrentUser, SessionsDep, SettingsDep, require_role
from api.responses import AUTHENTICATED, Timestamp, errors
from domain.organisation import Role

router = APIRouter(
    prefix="/api/v1/deliveries", tags=["通知送达 deliveries"], responses=errors(*AUTHENTICATED, 422)
)


class FailedDelivery(BaseModel):
    """A delivery an operator should look at: its channel, status and last error."""

    notice_id: str
    channel: str
    address: str
    status: DeliveryStatus
    status_label: str
    attempts: int
    last_error: str | None
    created_at: Timestamp
    updated_at: Timestamp
    sent_at: Timestamp | None


class RetryCounts(BaseModel):
    """How many deliveries went out on the retry and how many still fail."""

    sent: int
    still_failing: int


@router.get("/failed", summary="送达失败或结果不明的通知", response_model=list[FailedDelivery])
async def failed(
    sessions: SessionsDep,
    user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Failed and uncertain (interrupted robot posts) deliveries, oldest first, each with
    its channel, status (``status_label`` in Chinese) and last error."""
    require_role(user, Role.COUNTY_OFFICE)
    rows = await asyncio.to_thread(failed_deliveries, sessions, limit=limit, county=user.county)
    return [asdict(row) | {"status_label": row.status.label} for row in rows]


@router.post("/retry", summary="重新发送失败的通知", response_model=RetryCounts)
async def retry(
    sessions: SessionsDep,
    settings: SettingsDep,
    user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, int]:
    """Send failed and uncertain deliveries again through the configured channels (none:
    nothing to do); for an uncertain robot post this is the operator's decision to resend."""
    require_role(user, Role.COUNTY_OFFICE)
    notifier = await asyncio.to_thread(build_notifier, sessions, settings)  # reads its file
    if not isinstance(notifier, ChannelRouter):
        return {"sent": 0, "still_failing": 0}
    # The county office's own county only: another county's operator decides on theirs.
    sent, still_failing = await notifier.retry_failed(limit=limit, county=user.county)
    return {"sent": sent, "still_failing": still_failing}
