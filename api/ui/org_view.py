"""One organisation in one round as its page shows it: phases, steps and submissions from
the workflow's ``status`` query (authoritative, with step names), and the recorded timeline,
escalations, notices and uploaded files from the read model; the timeline also shows the
supervision records (座谈会, 督查) that covered the organisation in the round."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from temporalio.client import Client

from activities.tables import (
    CampaignEventRow,
    CampaignStatusRow,
    EscalationRow,
    NoticeRow,
    SubmissionRow,
    SupervisionRecordOrgRow,
    SupervisionRecordRow,
)
from api.errors import ApiError
from api.workflow_calls import query
from domain.calendar import SHANGHAI
from domain.campaign_rules import CampaignStatus
from domain.events import EventKind
from domain.organisation import Organisation
from domain.state import CampaignState, ExtensionStatus
from workflows.ids import organisation_workflow_id

# Labels of the campaign's event kinds, and of the outcome rows the exports add.
EVENT_LABELS: dict[str, str] = {
    **{kind.value: kind.label for kind in EventKind},
    "outcome": "阶段结果",
}


@dataclass
class OrgView:
    """Everything the organisation page and the secretary page render."""

    org: Organisation
    round_id: str
    status: CampaignStatusRow | None
    state: CampaignState | None
    events: list[CampaignEventRow] = field(default_factory=list)
    escalations: list[EscalationRow] = field(default_factory=list)
    notices: list[NoticeRow] = field(default_factory=list)
    submissions: list[SubmissionRow] = field(default_factory=list)
    supervision: list[SupervisionRecordRow] = field(default_factory=list)
    query_error: str = ""

    def timeline(self) -> list[tuple[str, Any]]:
        """The recorded events and the supervision records in one list, oldest first, each
        as ``("event", CampaignEventRow)`` or ``("supervision", SupervisionRecordRow)``. A
        record carries a local date only: it is placed at the start of its day."""

        def when(entry: tuple[str, Any]) -> datetime:
            kind, row = entry
            if kind == "event":
                at: datetime = row.at
                return at
            return datetime.combine(date.fromisoformat(row.held_on), time(0), SHANGHAI)

        entries: list[tuple[str, Any]] = [("event", e) for e in self.events]
        entries += [("supervision", r) for r in self.supervision]
        return sorted(entries, key=when)

    def step_names(self) -> dict[str, str]:
        """Step ids to their Chinese names (from the workflow's state)."""
        if self.state is None:
            return {}
        return {s.step_id: s.name for p in self.state.phases for s in p.steps}

    def pending_extensions(self) -> list[Any]:
        if self.state is None:
            return []
        return [e for e in self.state.extensions if e.status is ExtensionStatus.REQUESTED]


def documents(values: dict[str, Any]) -> list[dict[str, str]]:
    """The uploaded files among a submission's values (``{"name", "sha256"}``)."""
    return [
        {"field": k, "name": str(v.get("name", "")), "sha256": str(v["sha256"])}
        for k, v in values.items()
        if isinstance(v, dict) and isinstance(v.get("sha256"), str)
    ]


#: How long a page waits for the workflow's state. In a deadline storm the query waits
#: behind the storm's workflow tasks; the page then shows what the read model holds and
#: says the step details will follow (``OrgView.query_error``) rather than hanging for the
#: query's full 10 s (issue 11: the organisation page after an action).
PAGE_QUERY_TIMEOUT = timedelta(seconds=3)


async def load_state(
    client: Client, round_id: str, org_id: str, *, timeout: timedelta = PAGE_QUERY_TIMEOUT
) -> CampaignState | None:
    """The workflow's state, or None when the organisation is not (yet) in the round."""
    try:
        status = await query(
            client,
            organisation_workflow_id(round_id, org_id),
            "status",
            CampaignStatus,
            rpc_timeout=timeout,
        )
    except ApiError as exc:
        if exc.status_code == 404:
            return None
        raise
    return status.state


def load_records(session: Session, view: OrgView) -> None:
    """Fill the read-model parts of ``view`` (timeline, escalations, notices, submissions)."""
    key = {"round_id": view.round_id, "org_id": view.org.id}
    view.status = session.get(CampaignStatusRow, (view.round_id, view.org.id))
    view.events = list(
        session.scalars(
            select(CampaignEventRow)
            .filter_by(**key)
            .order_by(CampaignEventRow.at, CampaignEventRow.recorded_at)
        ).all()
    )
    view.escalations = list(
        session.scalars(select(EscalationRow).filter_by(**key).order_by(EscalationRow.fired_at))
    )
    view.notices = list(
        session.scalars(
            select(NoticeRow).filter_by(**key).order_by(NoticeRow.created_at.desc()).limit(200)
        )
    )
    view.submissions = list(
        session.scalars(select(SubmissionRow).filter_by(**key).order_by(SubmissionRow.submitted_at))
    )
    view.supervision = list(
        session.scalars(
            select(SupervisionRecordRow)
            .join(
                SupervisionRecordOrgRow,
                SupervisionRecordOrgRow.record_id == SupervisionRecordRow.record_id,
            )
            .where(
                SupervisionRecordRow.round_id == view.round_id,
                SupervisionRecordOrgRow.org_id == view.org.id,
            )
            .order_by(SupervisionRecordRow.held_on, SupervisionRecordRow.recorded_at)
        )
    )
