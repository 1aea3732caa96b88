"""限期整改 at a supervisor's discretion (seed 002 §六(五)): the county office, a guidance
group or a township committee criticises an organisation for 思想上不重视、工作上不得力 (or
a spot check's finding) and orders rectification with a reason and a deadline.

The order goes through the organisation workflow's existing ``order_rectification`` Update
(source ``discretion`` or ``inspection``, reference the order's id), so it runs through the
same machinery as an order from a failed 群众评议: the 整改通知 to the secretary, the report,
the re-check, and the ladder's overdue notice when the deadline passes. The order's id is
derived from the caller and their idempotency key (or from the inspection), so a retried or
concurrent repeat of one request is one order: the workflow remembers the reference, and the
row here is keyed by it.

Only the roles of :data:`domain.inspection.DISCRETION_ROLES`, each within its scope (an
organisation outside it is :class:`NotFound`, as if it did not exist). Every order is
audited in the transaction that records it.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from activities.db import upsert_insert
from activities.tables import OrganisationRow, RectificationOrderRow, metadata
from chuangzheng.services import workflow_calls
from chuangzheng.services.callers import Caller, audit_row, require_role, visible_organisation
from chuangzheng.services.field_errors import invalid_input
from domain.calendar import Span
from domain.campaign_rules import CampaignStatus, OrderRectification
from domain.inspection import (
    DISCRETION_ROLES,
    DISCRETION_SOURCE,
    PERIOD_MAX_WORKING_DAYS,
    REASON_MAX,
    REASON_MIN,
    RectificationGround,
    order_reason,
)
from domain.machine import PhaseStatus
from domain.text import Visible
from workflows.contracts import ActionResult
from workflows.ids import organisation_workflow_id

_OPEN = frozenset({PhaseStatus.OPEN, PhaseStatus.OVERDUE, PhaseStatus.RECTIFYING})

#: The message of a role refusal.
FORBIDDEN = "只有县委活动办、指导小组和乡镇党委可以下达限期整改"


class OrderRequest(BaseModel):
    """What a supervisor orders: the ground, the reason in their words, the deadline."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ground: RectificationGround = Field(description="整改事由类别")
    # Counted as a reader sees it, direction overrides refused (domain.text.Visible).
    reason: Annotated[str, Visible(REASON_MIN)] = Field(
        max_length=REASON_MAX, description="问题与整改要求"
    )
    period_working_days: int = Field(
        ge=1, le=PERIOD_MAX_WORKING_DAYS, description="整改期限（工作日）"
    )


def parse_request(fields: dict[str, object]) -> OrderRequest:
    """The request from a form or a body; :class:`InvalidInput` naming each bad field."""
    try:
        return OrderRequest.model_validate(fields)
    except ValidationError as exc:
        raise invalid_input(exc, OrderRequest) from None


def order_id_for(username: str, idempotency_key: str | None) -> str:
    """The order's id: from the caller and their key (a repeat is the same order), else new."""
    if idempotency_key is None:
        return f"ro-{uuid.uuid4().hex[:24]}"
    digest = hashlib.sha256(f"{username}\n{idempotency_key}".encode()).hexdigest()
    return f"ro-{digest[:24]}"


@dataclass(frozen=True)
class OrderOutcome:
    """The order as recorded and the organisation's status after it."""

    order: RectificationOrderRow
    result: ActionResult
    status: CampaignStatus


def _check(sessions: sessionmaker[Session], caller: Caller, org_id: str) -> None:
    with sessions() as session:
        visible_organisation(session, caller, org_id)


def _record(
    sessions: sessionmaker[Session], caller: Caller, row: RectificationOrderRow
) -> RectificationOrderRow:
    """Store the order once (a concurrent twin of the same request inserts nothing) and
    audit it in the same transaction; the stored order either way."""
    table = metadata.tables[RectificationOrderRow.__tablename__]
    values = {c.key: getattr(row, c.key) for c in table.columns}
    with sessions.begin() as session:
        inserted = session.execute(
            upsert_insert(session, table)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["order_id"])
            .returning(table.c.order_id)
        ).first()
        if inserted is not None:
            session.add(
                audit_row(
                    caller,
                    "rectification_ordered",
                    round_id=row.round_id,
                    org_id=row.org_id,
                    detail={
                        "order_id": row.order_id,
                        "source": row.source,
                        "ground": row.ground,
                        "reason": row.reason,
                        "period_working_days": row.period_working_days,
                        "inspection_id": row.inspection_id,
                        **row.detail,
                    },
                    now=row.ordered_at,
                )
            )
        stored = session.get(RectificationOrderRow, row.order_id)
        assert stored is not None
        session.flush()
        session.expunge(stored)
        return stored


def _issued(status: CampaignStatus) -> dict[str, str]:
    """The phase the order sits on and its deadline, from the status after the Update."""
    for phase in status.state.phases:
        if phase.rectification is not None and phase.status in _OPEN:
            return {
                "phase": phase.phase.value,
                "deadline": phase.rectification.deadline.isoformat(),
            }
    return {}


async def order_rectification(
    sessions: sessionmaker[Session],
    temporal: Client,
    caller: Caller,
    *,
    round_id: str,
    org_id: str,
    request: OrderRequest,
    idempotency_key: str | None = None,
    source: str = DISCRETION_SOURCE,
    order_id: str | None = None,
    inspection_id: str | None = None,
) -> OrderOutcome:
    """Order ``org_id`` to rectify in ``round_id`` for ``caller``.

    Raises :class:`Refused` (``forbidden``) for another role, :class:`NotFound` outside the
    caller's scope or when the organisation is not in the round, :class:`Refused` when the
    workflow refuses (e.g. its campaign is finished: :class:`Conflict`), and
    :class:`TemporalUnavailable` when Temporal does not answer (a retry with the same key
    is safe)."""
    require_role(caller, DISCRETION_ROLES, FORBIDDEN)
    await anyio.to_thread.run_sync(functools.partial(_check, sessions, caller, org_id))
    order_id = order_id or order_id_for(caller.username, idempotency_key)
    reason = order_reason(request.ground, request.reason)
    command = OrderRectification(
        actor=caller.actor,
        source=source,
        reference=order_id,
        reason=reason,
        period=Span(working_days=request.period_working_days),
    )
    workflow_id = organisation_workflow_id(round_id, org_id)
    result = await workflow_calls.update(
        temporal, workflow_id, "order_rectification", command, ActionResult
    )
    status = await workflow_calls.query(temporal, workflow_id, "status", CampaignStatus)
    row = RectificationOrderRow(
        order_id=order_id,
        round_id=round_id,
        org_id=org_id,
        source=source,
        ground=request.ground.value,
        reason=reason,
        period_working_days=request.period_working_days,
        inspection_id=inspection_id,
        ordered_by=caller.username,
        ordered_by_role=caller.role.value,
        ordered_at=datetime.now(UTC),
        detail=_issued(status),
    )
    recorded = await anyio.to_thread.run_sync(functools.partial(_record, sessions, caller, row))
    return OrderOutcome(order=recorded, result=result, status=status)


def list_orders(
    session: Session, caller: Caller, round_id: str, *, org_id: str | None = None
) -> list[RectificationOrderRow]:
    """The round's supervisor orders within ``caller``'s scope, newest first (an
    organisation outside it: :class:`NotFound`)."""
    query = (
        select(RectificationOrderRow)
        .join(OrganisationRow, OrganisationRow.org_id == RectificationOrderRow.org_id)
        .where(RectificationOrderRow.round_id == round_id, caller.condition)
        .order_by(RectificationOrderRow.ordered_at.desc())
    )
    if org_id is not None:
        visible_organisation(session, caller, org_id)
        query = query.where(RectificationOrderRow.org_id == org_id)
    return list(session.scalars(query))


def order_document(row: RectificationOrderRow) -> dict[str, object]:
    """An order as the API and pages show it."""
    ground = RectificationGround(row.ground)
    return {
        "order_id": row.order_id,
        "round_id": row.round_id,
        "org_id": row.org_id,
        "source": row.source,
        "ground": ground.value,
        "ground_label": ground.label,
        "reason": row.reason,
        "period_working_days": row.period_working_days,
        "inspection_id": row.inspection_id,
        "ordered_by": row.ordered_by,
        "ordered_by_role": row.ordered_by_role,
        "ordered_at": row.ordered_at,
        "phase": row.detail.get("phase"),
        "deadline": row.detail.get("deadline"),
    }
