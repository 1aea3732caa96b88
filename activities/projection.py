"""Project campaign events into the read model's detail tables, in ``record_events``'s
transaction: phase and step status, submissions, escalations, and the audit log.

Every write is idempotent and ordered: rows keyed by (round, organisation, phase[, step]) are
only overwritten by an event with a sequence number not lower than the one that wrote them,
and rows keyed by an event id are inserted once. A retried or late batch therefore changes
nothing that a newer batch wrote.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, update
from sqlalchemy.orm import Session

from activities.contracts import CampaignSnapshot
from activities.db import upsert_insert
from activities.tables import (
    OrganisationRow,
    audit_log,
    escalations,
    phase_status,
    step_status,
    submissions,
)
from domain.machine import PhaseStatus, StepStatus
from domain.organisation import Role
from domain.state import CampaignEvent

# What each kind of event does to its phase's status (None: leave it).
_PHASE_STATUS: dict[str, PhaseStatus | None] = {
    "phase_opened": PhaseStatus.OPEN,
    "deadline_passed": PhaseStatus.OVERDUE,
    "rectification_ordered": PhaseStatus.RECTIFYING,
    "phase_completed": PhaseStatus.DONE,
    "extension_approved": None,
    "round_extension_applied": None,
    "calendar_updated": None,  # a calendar update moves the phase's deadline
}
_STEP_STATUS: dict[str, StepStatus] = {
    "submitted": StepStatus.SUBMITTED,
    "accepted": StepStatus.ACCEPTED,
    "returned": StepStatus.RETURNED,
    "waived": StepStatus.WAIVED,
}


def _guarded_upsert(
    session: Session, table: Table, keys: Sequence[str], values: dict[str, Any]
) -> None:
    """Insert, or update the columns given if the stored row is not newer (``event_seq``)."""
    stmt = upsert_insert(session, table).values(values)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=list(keys),
            set_={k: stmt.excluded[k] for k in values if k not in keys},
            where=table.c.event_seq <= stmt.excluded.event_seq,
        )
    )


def _insert_once(session: Session, table: Table, key: str, values: dict[str, Any]) -> None:
    stmt = upsert_insert(session, table).values(values)
    session.execute(stmt.on_conflict_do_nothing(index_elements=[key]))


class _Projector:
    """Applies one batch of events; holds what every handler needs."""

    def __init__(self, session: Session, snapshot: CampaignSnapshot) -> None:
        self.session = session
        self.snapshot = snapshot
        self._org: OrganisationRow | None = session.get(OrganisationRow, snapshot.org_id)

    def recipient_key(self, role: Role) -> str:
        """The addressee's key as ``domain.organisation.supervisors_of`` builds it."""
        org = self._org
        return {
            Role.SECRETARY: org.secretary if org else "",
            Role.INSTRUCTOR: org.instructor if org else "",
            Role.TOWNSHIP: self.snapshot.township,
            Role.GUIDANCE_GROUP: self.snapshot.system,
            Role.COUNTY_OFFICE: "county",
        }.get(role, "")

    def phase(self, event: CampaignEvent, seq: int) -> None:
        if event.phase is None:
            return
        values: dict[str, Any] = {
            "round_id": event.round_id,
            "org_id": event.org_id,
            "phase": event.phase.value,
            "event_seq": seq,
        }
        status = _PHASE_STATUS[event.kind]
        if status is not None:
            values["status"] = status.value
        detail = event.detail
        if "deadline" in detail and event.kind == "phase_opened":
            values["deadline"] = datetime.fromisoformat(detail["deadline"])
        if "new_deadline" in detail:
            values["deadline"] = datetime.fromisoformat(detail["new_deadline"])
        if event.kind == "phase_opened":
            values["opened_at"] = event.at
        if event.kind == "phase_completed":
            values["completed_at"] = event.at
            values["outcome"] = detail.get("outcome")
        # An update that arrives before the phase row exists still needs a status to insert.
        values.setdefault("status", PhaseStatus.OPEN.value)
        _guarded_upsert(self.session, phase_status, ("round_id", "org_id", "phase"), values)

    def step(self, event: CampaignEvent, seq: int) -> None:
        if event.phase is None or event.step_id is None:
            return
        keys = ("round_id", "org_id", "phase", "step_id")
        reason = str(event.detail.get("reason", ""))
        values = {
            "round_id": event.round_id,
            "org_id": event.org_id,
            "phase": event.phase.value,
            "step_id": event.step_id,
            "status": _STEP_STATUS[event.kind].value,
            "reason": reason,
            "event_seq": seq,
            "updated_at": event.at,
        }
        _guarded_upsert(self.session, step_status, keys, values)
        actor = event.actor.user if event.actor else ""
        if event.kind == "submitted":
            _insert_once(
                self.session,
                submissions,
                "event_id",
                {
                    "event_id": event.event_id,
                    "round_id": event.round_id,
                    "org_id": event.org_id,
                    "phase": event.phase.value,
                    "step_id": event.step_id,
                    "seq": int(event.detail.get("seq", 0)),
                    "evidence": event.model_dump(mode="json")["detail"].get("values", {}),
                    "submitted_by": actor,
                    "submitted_at": event.at,
                    "decision": None,
                    "reason": "",
                    "decided_by": None,
                    "decided_at": None,
                },
            )
        elif event.kind in ("accepted", "returned"):
            c = submissions.c
            self.session.execute(
                update(submissions)
                .where(
                    and_(
                        c.round_id == event.round_id,
                        c.org_id == event.org_id,
                        c.step_id == event.step_id,
                        c.phase == event.phase.value,
                        c.seq == int(event.detail.get("seq", 0)),
                    )
                )
                .values(decision=event.kind, reason=reason, decided_by=actor, decided_at=event.at)
            )

    def escalation(self, event: CampaignEvent, _seq: int) -> None:
        if event.phase is None:
            return
        detail = event.detail
        key_values = {
            "round_id": event.round_id,
            "org_id": event.org_id,
            "phase": event.phase.value,
            "rung": int(detail["rung"]),
        }
        if event.kind == "acknowledged":
            c = escalations.c
            self.session.execute(
                update(escalations)
                .where(and_(*(c[k] == v for k, v in key_values.items())))
                .values(acknowledged_by=event.actor.user if event.actor else None)
                .values(acknowledged_at=event.at)
            )
            return
        role = Role(detail["recipient"])
        stmt = upsert_insert(self.session, escalations).values(
            {
                **key_values,
                "name": detail.get("name", ""),
                "recipient_role": role.value,
                "recipient_key": self.recipient_key(role),
                "fired_at": event.at,
                "working_days_overdue": int(detail.get("working_days_overdue", 0)),
                "acknowledged_by": None,
                "acknowledged_at": None,
            }
        )
        self.session.execute(stmt.on_conflict_do_nothing(index_elements=list(key_values)))

    def audit(self, event: CampaignEvent) -> None:
        """Human actions (events with an actor) go to the audit log, once per event."""
        actor = event.actor
        if actor is None:
            return
        _insert_once(
            self.session,
            audit_log,
            "audit_id",
            {
                "audit_id": event.event_id,
                "user": actor.user,
                "role": actor.role.value,
                "action": event.kind,
                "round_id": event.round_id,
                "org_id": event.org_id,
                "ip": actor.ip,
                "at": event.at,
                "detail": {
                    "phase": event.phase.value if event.phase else None,
                    "step_id": event.step_id,
                    **event.model_dump(mode="json")["detail"],
                },
            },
        )


_HANDLERS: dict[str, Callable[[_Projector, CampaignEvent, int], None]] = {
    **{kind: _Projector.phase for kind in _PHASE_STATUS},
    **{kind: _Projector.step for kind in _STEP_STATUS},
    "escalated": _Projector.escalation,
    "acknowledged": _Projector.escalation,
}


def project_events(
    session: Session, events: Sequence[CampaignEvent], snapshot: CampaignSnapshot
) -> None:
    """Apply ``events`` (in order) to the detail tables inside the caller's transaction.

    The batch is contiguous and ends at ``snapshot.event_seq`` (the workflow drains its
    whole outbox, then takes the snapshot), which gives each event its sequence number.
    """
    projector = _Projector(session, snapshot)
    first_seq = snapshot.event_seq - len(events) + 1
    for offset, event in enumerate(events):
        handler = _HANDLERS.get(event.kind)
        if handler is not None:
            handler(projector, event, first_seq + offset)
        projector.audit(event)


__all__ = ["project_events"]
