"""What the workflows report: an organisation's read-model snapshot and its progress report
to the round, and the round's aggregates (progress, cohort members, 序时进度). Pure
functions of workflow state, time passed in."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from activities.contracts import CampaignSnapshot
from domain.campaign import Campaign
from domain.cohort import CohortMember
from domain.lights import phase_progress, pro_rata
from domain.phases import WORKING_PHASES, Phase
from domain.schedule import RoundSchedule
from domain.state import Outcome
from workflows.contracts import (
    OrgProgress,
    RoundExtensionRequest,
    RoundProgress,
    RoundWorkflowState,
)


def snapshot_of(campaign: Campaign, now: datetime) -> CampaignSnapshot:
    """Where the organisation stands, for the read model's status row."""
    state, org = campaign.state, campaign.org
    current = None if state.finished() else state.current()
    return CampaignSnapshot(
        round_id=state.round_id,
        org_id=org.id,
        org_name=org.name,
        township=org.township,
        system=org.system,
        org_type=org.type,
        phase=state.phase,
        phase_status=current.status if current else None,
        light=state.light,
        overdue=state.overdue,
        deadline=current.deadline if current else None,
        top_rung=max((e.rung for e in current.escalations), default=None) if current else None,
        closed=state.closed,
        event_seq=state.event_seq,
        updated_at=now,
        progress=phase_progress(current) if current else 1.0,
    )


def progress_of(campaign: Campaign) -> OrgProgress:
    """The organisation's report to its round (phase, light, outcomes, cohort keys)."""
    state, org = campaign.state, campaign.org
    return OrgProgress(
        org_id=state.org_id,
        phase=state.phase,
        light=state.light,
        overdue=state.overdue,
        closed=state.closed,
        outcomes={p.phase: p.outcome for p in state.phases},
        township=org.township,
        system=org.system,
        progress=phase_progress(state.current()),
    )


def aggregate_progress(state: RoundWorkflowState) -> RoundProgress:
    """The round's progress from its organisations' latest reports."""
    reports = list(state.progress.values())
    outcomes: dict[Phase, dict[Outcome, int]] = {p: {} for p in WORKING_PHASES}
    for report in reports:
        for phase, outcome in report.outcomes.items():
            if outcome is not None:
                outcomes[phase][outcome] = outcomes[phase].get(outcome, 0) + 1
    return RoundProgress(
        round_id=state.kickoff.round_id,
        total=state.total,
        started=len(state.started_ids),
        starting_done=state.starting_done,
        closed=state.close is not None,
        by_phase=dict(Counter(r.phase for r in reports)),
        by_light=dict(Counter(r.light for r in reports)),
        overdue=sum(1 for r in reports if r.overdue),
        outcomes=outcomes,
    )


def cohort_members(state: RoundWorkflowState) -> list[CohortMember]:
    """Every reporting organisation as a member of its township and system cohorts."""
    return [
        CohortMember(
            org_id=report.org_id,
            township=report.township,
            system=report.system,
            phase=report.phase,
            progress=report.progress,
            closed=report.closed,
        )
        for report in state.progress.values()
    ]


def schedule_pro_rata(
    schedule: RoundSchedule, extensions: Sequence[RoundExtensionRequest], now: datetime
) -> dict[Phase, float]:
    """序时进度 of each phase, with round-wide extensions moving its deadline (an
    organisation's own extension does not move the schedule its cohort keeps)."""
    deadlines = {window.phase: window.deadline for window in schedule.windows}
    for request in extensions:
        deadlines[request.phase] = max(deadlines[request.phase], request.new_deadline)
    return {
        window.phase: pro_rata(opens_at=window.opens_at, deadline=deadlines[window.phase], now=now)
        for window in schedule.windows
    }
