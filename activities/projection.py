"""Project campaign events into the read model's detail tables, in ``record_events``'s
transaction: phase and step status, submissions, escalations, and the audit log.

Every write is idempotent and ordered: rows keyed by (round, organisation, phase[, step]) are
only overwritten by an event with a sequence number not lower than the one that wrote them,
and rows keyed by an event id are inserted once. A retried or late batch therefore changes
nothing that a newer batch wrote.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Executable, Table, bindparam, select, update
from sqlalchemy.orm import Session

from activities.contracts import CampaignSnapshot
from activities.db import dialect_insert
from activities.tables import (
    audit_log,
    escalations,
    organisations,
    phase_status,
    step_status,
    submissions,
)
from domain.events import EventKind
from domain.machine import PhaseStatus, StepStatus
from domain.organisation import Role
from domain.state import CampaignEvent

# What each kind of event does to its phase's status (None: leave it).
_PHASE_STATUS: dict[EventKind, PhaseStatus | None] = {
    EventKind.PHASE_OPENED: PhaseStatus.OPEN,
    EventKind.DEADLINE_PASSED: PhaseStatus.OVERDUE,
    EventKind.RECTIFICATION_ORDERED: PhaseStatus.RECTIFYING,
    EventKind.PHASE_COMPLETED: PhaseStatus.DONE,
    EventKind.EXTENSION_APPROVED: None,
    EventKind.ROUND_EXTENSION_APPLIED: None,
    EventKind.CALENDAR_UPDATED: None,  # a calendar update moves the phase's deadline
    # A plan version moves the deadline; the event carries the phase's status after it.
    EventKind.PLAN_VERSION_APPLIED: None,
}
_STEP_STATUS: dict[EventKind, StepStatus] = {
    EventKind.SUBMITTED: StepStatus.SUBMITTED,
    EventKind.ACCEPTED: StepStatus.ACCEPTED,
    EventKind.RETURNED: StepStatus.RETURNED,
    EventKind.WAIVED: StepStatus.WAIVED,
}


@dataclass(frozen=True)
class Write:
    """One statement of the projection and its parameters.

    The statements are built once per dialect and shape (cached below) and take their values
    as parameters, so SQLAlchemy compiles each once, and writes of the same statement from
    many batches go to the database as one ``executemany``.
    """

    statement: Executable
    params: dict[str, Any]


class Standing(Protocol):
    """What the projection needs of where the organisation stands after a batch: its last
    sequence number, township and system (a :class:`CampaignSnapshot` has them)."""

    @property
    def event_seq(self) -> int: ...

    @property
    def township(self) -> str: ...

    @property
    def system(self) -> str: ...


@dataclass(frozen=True)
class Addressees:
    """What the projection needs of an organisation's roster row: who its people are."""

    secretary: str
    instructor: str


@functools.cache
def guarded_upsert(
    dialect: str, table: Table, keys: tuple[str, ...], columns: tuple[str, ...]
) -> Executable:
    """Insert, or update ``columns`` if the stored row is not newer (``event_seq``)."""
    stmt = dialect_insert(dialect, table)
    return stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={k: stmt.excluded[k] for k in columns if k not in keys},
        where=table.c.event_seq <= stmt.excluded.event_seq,
    )


@functools.cache
def insert_once(dialect: str, table: Table, key: str) -> Executable:
    """Insert unless a row with the same ``key`` exists."""
    return dialect_insert(dialect, table).on_conflict_do_nothing(index_elements=[key])


@functools.cache
def _decide_submission() -> Executable:
    c = submissions.c
    return (
        update(submissions)
        .where(
            c.round_id == bindparam("k_round_id"),
            c.org_id == bindparam("k_org_id"),
            c.step_id == bindparam("k_step_id"),
            c.phase == bindparam("k_phase"),
            c.seq == bindparam("k_seq"),
        )
        .values(
            decision=bindparam("v_decision"),
            reason=bindparam("v_reason"),
            decided_by=bindparam("v_decided_by"),
            decided_at=bindparam("v_decided_at"),
        )
    )


@functools.cache
def _acknowledge_escalation() -> Executable:
    c = escalations.c
    return (
        update(escalations)
        .where(
            c.round_id == bindparam("k_round_id"),
            c.org_id == bindparam("k_org_id"),
            c.phase == bindparam("k_phase"),
            c.rung == bindparam("k_rung"),
        )
        .values(
            acknowledged_by=bindparam("v_acknowledged_by"),
            acknowledged_at=bindparam("v_acknowledged_at"),
        )
    )


def _upsert(dialect: str, table: Table, keys: tuple[str, ...], values: dict[str, Any]) -> Write:
    return Write(guarded_upsert(dialect, table, keys, tuple(sorted(values))), values)


class _Projector:
    """Turns one batch of events into writes; holds what every handler needs."""

    def __init__(self, dialect: str, snapshot: Standing, org: Addressees | None) -> None:
        self.dialect = dialect
        self.snapshot = snapshot
        self._org = org
        self.writes: list[Write] = []

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
        if "deadline" in detail and event.kind == EventKind.PHASE_OPENED:
            values["deadline"] = datetime.fromisoformat(detail["deadline"])
        if "new_deadline" in detail:
            values["deadline"] = datetime.fromisoformat(detail["new_deadline"])
        if event.kind == EventKind.PLAN_VERSION_APPLIED and "status" in detail:
            # An overdue phase whose deadline moved past now is open again; one still past
            # its (new) deadline stays overdue: the workflow says which.
            values["status"] = PhaseStatus(detail["status"]).value
        if event.kind == EventKind.PHASE_OPENED:
            values["opened_at"] = event.at
        if event.kind == EventKind.PHASE_COMPLETED:
            values["completed_at"] = event.at
            values["outcome"] = detail.get("outcome")
        # An update that arrives before the phase row exists still needs a status to insert.
        values.setdefault("status", PhaseStatus.OPEN.value)
        self.writes.append(
            _upsert(self.dialect, phase_status, ("round_id", "org_id", "phase"), values)
        )

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
        self.writes.append(_upsert(self.dialect, step_status, keys, values))
        actor = event.actor.user if event.actor else ""
        if event.kind == EventKind.SUBMITTED:
            self.writes.append(
                Write(
                    insert_once(self.dialect, submissions, "event_id"),
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
            )
        elif event.kind in (EventKind.ACCEPTED, EventKind.RETURNED):
            self.writes.append(
                Write(
                    _decide_submission(),
                    {
                        "k_round_id": event.round_id,
                        "k_org_id": event.org_id,
                        "k_step_id": event.step_id,
                        "k_phase": event.phase.value,
                        "k_seq": int(event.detail.get("seq", 0)),
                        "v_decision": event.kind,
                        "v_reason": reason,
                        "v_decided_by": actor,
                        "v_decided_at": event.at,
                    },
                )
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
        if event.kind == EventKind.ACKNOWLEDGED:
            self.writes.append(
                Write(
                    _acknowledge_escalation(),
                    {
                        **{f"k_{k}": v for k, v in key_values.items()},
                        "v_acknowledged_by": event.actor.user if event.actor else None,
                        "v_acknowledged_at": event.at,
                    },
                )
            )
            return
        role = Role(detail["recipient"])
        self.writes.append(
            Write(
                insert_once_keys(self.dialect, escalations, tuple(key_values)),
                {
                    **key_values,
                    "name": detail.get("name", ""),
                    "recipient_role": role.value,
                    "recipient_key": self.recipient_key(role),
                    "fired_at": event.at,
                    "working_days_overdue": int(detail.get("working_days_overdue", 0)),
                    "acknowledged_by": None,
                    "acknowledged_at": None,
                },
            )
        )

    def audit(self, event: CampaignEvent) -> None:
        """Human actions (events with an actor) go to the audit log, once per event."""
        actor = event.actor
        if actor is None:
            return
        self.writes.append(
            Write(
                insert_once(self.dialect, audit_log, "audit_id"),
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
        )


@functools.cache
def insert_once_keys(dialect: str, table: Table, keys: tuple[str, ...]) -> Executable:
    """Insert unless a row with the same ``keys`` exists."""
    return dialect_insert(dialect, table).on_conflict_do_nothing(index_elements=list(keys))


_HANDLERS: dict[EventKind, Callable[[_Projector, CampaignEvent, int], None]] = {
    **{kind: _Projector.phase for kind in _PHASE_STATUS},
    **{kind: _Projector.step for kind in _STEP_STATUS},
    EventKind.ESCALATED: _Projector.escalation,
    EventKind.ACKNOWLEDGED: _Projector.escalation,
}


def needs_addressees(events: Sequence[CampaignEvent]) -> bool:
    """Whether projecting ``events`` needs the organisation's people (an escalation does)."""
    return any(event.kind == EventKind.ESCALATED for event in events)


def load_addressees(session: Session, org_ids: set[str]) -> dict[str, Addressees]:
    """The secretary and instructor of each organisation in ``org_ids`` that is on the roster."""
    if not org_ids:
        return {}
    c = organisations.c
    rows = session.execute(
        select(c.org_id, c.secretary, c.instructor).where(c.org_id.in_(sorted(org_ids)))
    )
    return {row.org_id: Addressees(row.secretary, row.instructor) for row in rows}


def projection_writes(
    dialect: str,
    events: Sequence[CampaignEvent],
    snapshot: Standing,
    org: Addressees | None,
) -> list[Write]:
    """The writes that apply ``events`` (in order) to the detail tables.

    The batch is contiguous and ends at ``snapshot.event_seq`` (the workflow drains its
    whole outbox, then takes the snapshot), which gives each event its sequence number.
    ``org`` is the organisation's roster entry (escalations name its people), if any.
    """
    projector = _Projector(dialect, snapshot, org)
    first_seq = snapshot.event_seq - len(events) + 1
    for offset, event in enumerate(events):
        handler = _HANDLERS.get(event.kind)
        if handler is not None:
            handler(projector, event, first_seq + offset)
        projector.audit(event)
    return projector.writes


def execute_writes(session: Session, sequences: Sequence[Sequence[Write]]) -> None:
    """Run several independent sequences of writes, batching the same statements together.

    Each sequence keeps its order (the ordering guards compare whole rows, so a phase's
    ``phase_opened`` must land before its ``deadline_passed``), and sequences must touch
    disjoint rows (one sequence per organisation). The n-th writes of all sequences form a
    layer; within a layer, the writes of one statement run as one ``executemany``.
    """
    depth = max((len(seq) for seq in sequences), default=0)
    for layer in range(depth):
        by_statement: dict[int, tuple[Executable, list[dict[str, Any]]]] = {}
        for seq in sequences:
            if layer < len(seq):
                write = seq[layer]
                entry = by_statement.setdefault(id(write.statement), (write.statement, []))
                entry[1].append(write.params)
        for statement, params in by_statement.values():
            session.execute(statement, params)


def project_events(
    session: Session, events: Sequence[CampaignEvent], snapshot: CampaignSnapshot
) -> None:
    """Apply ``events`` (in order) to the detail tables inside the caller's transaction."""
    org = None
    if needs_addressees(events):
        org = load_addressees(session, {snapshot.org_id}).get(snapshot.org_id)
    dialect = session.get_bind().dialect.name
    execute_writes(session, [projection_writes(dialect, events, snapshot, org)])


__all__ = [
    "Addressees",
    "Standing",
    "Write",
    "execute_writes",
    "load_addressees",
    "needs_addressees",
    "project_events",
    "projection_writes",
]
