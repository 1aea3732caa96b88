"""Organisations that left the roster while a round was running: the county office lists the
pending ones and decides each, close or keep.

A roster import records a pending departure per running round and organisation it
deactivated (``chuangzheng.services.roster``). Who is in a round follows one rule, which
every list of a round keeps: an organisation takes part in a round when the round's
``campaign_status`` has its row. Leaving the roster does not take it out: until the county
office decides, it runs on (its escalations too) and lists show it with ``left_roster``
true and its departure ``pending``; ``keep`` lets it run to the end; ``close`` closes its
campaign with the reason (the organisation workflow's ``close_round`` signal, addressed to
that one organisation's workflow), after which its row says ``closed`` and its workflow
ends: no timer, no escalation, no notice for it any more.

Decisions are audited (``roster.departure``) and idempotent: deciding again the same way
changes nothing; deciding differently is a :class:`Conflict`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import anyio.to_thread
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities.db import write_lock
from activities.tables import AuditRow, OrganisationRow, RosterDepartureRow
from chuangzheng.services import workflow_calls
from chuangzheng.services.callers import account_county
from chuangzheng.services.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    Refused,
)
from chuangzheng.services.roster import DepartureDecision
from domain.actions import CloseRound
from domain.organisation import Role
from domain.state import Actor
from workflows.ids import organisation_workflow_id
from workflows.organisation import OrganisationCampaignWorkflow

#: The audit action of a decision.
DECISION_ACTION = "roster.departure"
#: The longest reason kept (the column is text; a page shows it whole).
MAX_REASON = 500


@dataclass(frozen=True)
class Departure:
    """An organisation that left the roster in a running round, and the decision."""

    round_id: str
    org_id: str
    org_name: str
    township: str
    detected_at: datetime
    decision: DepartureDecision
    reason: str | None
    decided_by: str | None
    decided_at: datetime | None


def _authorise(actor: Actor) -> None:
    if actor.role is not Role.COUNTY_OFFICE:
        raise Refused("forbidden", "当前角色无权执行此操作")


def _view(row: RosterDepartureRow, org: OrganisationRow | None) -> Departure:
    return Departure(
        round_id=row.round_id,
        org_id=row.org_id,
        org_name=org.name if org is not None else row.org_id,
        township=org.township if org is not None else "",
        detected_at=row.detected_at,
        decision=DepartureDecision(row.decision),
        reason=row.reason,
        decided_by=row.decided_by,
        decided_at=row.decided_at,
    )


def list_departures(
    session: Session, actor: Actor, *, decision: DepartureDecision | None = None
) -> list[Departure]:
    """Departures (only ``decision``'s when given), the oldest first."""
    _authorise(actor)
    # The county office's own county's organisations only (many counties, one deployment).
    stmt = (
        select(RosterDepartureRow, OrganisationRow)
        .join(OrganisationRow, OrganisationRow.org_id == RosterDepartureRow.org_id)
        .where(OrganisationRow.county == account_county(session, actor.user))
    )
    if decision is not None:
        stmt = stmt.where(RosterDepartureRow.decision == decision.value)
    stmt = stmt.order_by(
        RosterDepartureRow.detected_at, RosterDepartureRow.round_id, RosterDepartureRow.org_id
    )
    return [_view(row, org) for row, org in session.execute(stmt).all()]


def _check(decision: DepartureDecision, reason: str) -> str:
    reason = reason.strip()
    if decision is DepartureDecision.PENDING:
        raise InvalidInput(
            "invalid", "请求参数有误", [{"field": "decision", "reason": "决定应为 close 或 keep"}]
        )
    if decision is DepartureDecision.CLOSE and not reason:
        raise InvalidInput(
            "reason_required",
            "请求参数有误",
            [{"field": "reason", "reason": "关闭该组织的活动流程必须填写原因"}],
        )
    if len(reason) > MAX_REASON:
        raise InvalidInput(
            "invalid",
            "请求参数有误",
            [{"field": "reason", "reason": f"原因最多 {MAX_REASON} 个字符"}],
        )
    return reason


def _load(session: Session, round_id: str, org_id: str) -> RosterDepartureRow:
    row = session.get(RosterDepartureRow, (round_id, org_id))
    if row is None:
        raise NotFound("没有该组织在该轮次的退出名册记录")
    return row


class Departures:
    """The decisions, which reach Temporal (``close``): the read model and the client."""

    def __init__(self, sessions: sessionmaker[Session], temporal: Client) -> None:
        self.sessions = sessions
        self.temporal = temporal

    async def decide(
        self,
        actor: Actor,
        round_id: str,
        org_id: str,
        decision: DepartureDecision,
        reason: str = "",
    ) -> tuple[Departure, bool]:
        """Carry out the county office's ``decision``; returns the departure and whether
        anything changed (False: the same decision again, a no-op).

        ``close`` signals the organisation's workflow first and records the decision after,
        so a recorded ``close`` always means the signal was delivered; if Temporal fails
        in between, the departure stays pending and a retry sends the signal again (the
        workflow's close is idempotent: a closed campaign stays closed)."""
        _authorise(actor)
        reason = _check(decision, reason)
        current = await anyio.to_thread.run_sync(self._current, round_id, org_id)
        if current.decision is decision:
            return current, False
        if current.decision is not DepartureDecision.PENDING:
            raise Conflict(
                "already_decided",
                f"该组织已决定为“{current.decision.label}”，不能改为“{decision.label}”",
            )
        if decision is DepartureDecision.CLOSE:
            await self._close(actor, round_id, org_id, reason)
        return await anyio.to_thread.run_sync(
            self._record, actor, round_id, org_id, decision, reason
        )

    def _current(self, round_id: str, org_id: str) -> Departure:
        with self.sessions() as session:
            row = _load(session, round_id, org_id)
            return _view(row, session.get(OrganisationRow, org_id))

    async def _close(self, actor: Actor, round_id: str, org_id: str, reason: str) -> None:
        handle = self.temporal.get_workflow_handle_for(
            OrganisationCampaignWorkflow.run, organisation_workflow_id(round_id, org_id)
        )
        with workflow_calls.temporal_trouble("close_round", handle.id):
            try:
                await handle.signal(
                    OrganisationCampaignWorkflow.close_round,
                    CloseRound(actor=actor, reason=reason),
                )
            except RPCError as exc:
                if exc.status is not RPCStatusCode.NOT_FOUND:
                    raise
                # The workflow already ended (completed, or closed with its round): there
                # is nothing left to close, and recording the decision is all that remains.

    def _record(
        self,
        actor: Actor,
        round_id: str,
        org_id: str,
        decision: DepartureDecision,
        reason: str,
    ) -> tuple[Departure, bool]:
        now = datetime.now(UTC)
        with self.sessions.begin() as session:
            write_lock(session, RosterDepartureRow)  # one decision wins, on SQLite too
            row = session.get(RosterDepartureRow, (round_id, org_id), with_for_update=True)
            if row is None:
                raise NotFound("没有该组织在该轮次的退出名册记录")
            if row.decision == decision.value:  # a concurrent identical decision won
                return _view(row, session.get(OrganisationRow, org_id)), False
            if row.decision != DepartureDecision.PENDING.value:
                raise Conflict("already_decided", "该组织的去留已由他人决定")
            row.decision, row.reason = decision.value, reason or None
            row.decided_by, row.decided_at = actor.user, now
            session.add(
                AuditRow(
                    audit_id=f"departure/{round_id}/{org_id}",
                    user=actor.user,
                    role=actor.role.value,
                    action=DECISION_ACTION,
                    round_id=round_id,
                    org_id=org_id,
                    ip=actor.ip,
                    at=now,
                    detail={"decision": decision.value, "reason": reason},
                )
            )
            session.flush()
            return _view(row, session.get(OrganisationRow, org_id)), True


__all__ = ["DECISION_ACTION", "Departure", "Departures", "list_departures"]
