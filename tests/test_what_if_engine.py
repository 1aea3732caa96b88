"""The what-if's rehearsal engine without a server (the server test is
``tests/workflows/test_what_if.py``): an extension for everyone gives fewer late
organisations, a run is a function of its inputs, and an organisation carried in
half-way through the round ends as it would have ended had the rehearsal run from the
kick-off (the carried state loses nothing the ladder and the outcomes need)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import NormalDist

import pytest

from activities.roster_files import read_roster_file
from chuangzheng.simulation import DEFAULT_CALENDARS, DEFAULT_PLAN, DEFAULT_ROSTER, load_plan_files
from chuangzheng.simulation.calendar import resolve_with_gaps
from chuangzheng.simulation.live_state import draw_paces, kickoff_starts, log_pace_for
from chuangzheng.simulation.model import PaceModel
from chuangzheng.simulation.what_if_engine import BatchInput, CountyRun, OrgPace
from domain.calendar import Span
from domain.machine import PhaseStatus
from domain.phases import WORKING_PHASES, Phase
from domain.plan import CampaignPlan, RoundPlan
from domain.schedule import RoundSchedule
from domain.what_if import DraftChange, OrgStart, PhaseStart, changed_ladder

ORGS = 120
SEED = 5


@dataclass(frozen=True)
class County:
    plan: CampaignPlan
    round_plan: RoundPlan
    schedule: RoundSchedule
    starts_at: datetime
    starts: list[OrgStart]
    paces: list[OrgPace]


@pytest.fixture(scope="module")
def county() -> County:
    """seed-002 round one re-based to a fixed day, the demo county's first organisations,
    their kick-off state and paces from the paced simulation's mix (no forecast model)."""
    plan = load_plan_files(DEFAULT_PLAN, DEFAULT_CALENDARS)
    round_plan = plan.rounds[0]
    starts_at = datetime.fromisoformat("2026-12-01T02:00:00+00:00")
    plan, schedule = resolve_with_gaps(plan, round_plan, starts_at, fill_gaps=True, warnings=[])
    orgs = read_roster_file(DEFAULT_ROSTER).in_scope(
        types=round_plan.scope.types, townships=round_plan.scope.townships
    )[:ORGS]
    windows = {w.phase: (w.opens_at, w.deadline) for w in schedule.windows}
    starts = kickoff_starts(orgs, windows)
    paces, by_forecast = draw_paces(starts, {}, now=starts_at, windows=windows, seed=SEED)
    assert by_forecast == 0
    return County(plan, round_plan, schedule, starts_at, starts, paces)


def _batch(
    county: County,
    change: DraftChange | None = None,
    *,
    starts: list[OrgStart] | None = None,
    at: datetime | None = None,
) -> BatchInput:
    ladder = county.plan.ladder_for(county.round_plan)
    return BatchInput(
        round_id="what-if-test",
        plan=county.plan,
        round_plan_id=county.round_plan.id,
        schedule=county.schedule,
        ladder=changed_ladder(ladder, change) if change else ladder,
        change=change,
        starts_at=at or county.starts_at,
        organisations=tuple(starts or county.starts),
        paces=tuple(county.paces),
    )


def test_an_extension_for_everyone_gives_fewer_late_organisations(county: County) -> None:
    before = CountyRun(_batch(county)).run_to_end()
    change = DraftChange(kind="extend_phase", phase=Phase.MOBILISATION, by=Span(working_days=10))
    after = CountyRun(_batch(county, change)).run_to_end()
    late = before.tally.phase(Phase.MOBILISATION)
    later = after.tally.phase(Phase.MOBILISATION)
    assert late.late + late.after_rectification > 0
    assert later.late + later.after_rectification < late.late + late.after_rectification
    assert before.tally.notice_count("指导员督促", Phase.MOBILISATION) > after.tally.notice_count(
        "指导员督促", Phase.MOBILISATION
    )
    # Everyone finishes every phase in both arms (nobody is left stuck).
    for tallied in (before.tally, after.tally):
        assert all(p.unfinished == 0 for p in tallied.phases)


def test_the_same_inputs_give_the_same_tallies(county: County) -> None:
    change = DraftChange(kind="rectification_period", period=Span(working_days=5))
    first = CountyRun(_batch(county, change)).run_to_end()
    second = CountyRun(_batch(county, change)).run_to_end()
    assert first.tally == second.tally and first.outcomes == second.outcomes


def _carried(run: CountyRun) -> list[OrgStart]:
    """Each organisation as the read model would show it now (what ``read_live`` reads)."""
    out = []
    for org in run.orgs:
        state = org.campaign.state
        phases = []
        for phase in state.phases:
            order = phase.rectification
            phases.append(
                PhaseStart(
                    phase=phase.phase,
                    status=phase.status,
                    deadline=phase.deadline,
                    opened_at=phase.opened_at,
                    completed_at=phase.completed_at,
                    outcome=phase.outcome,
                    settled_steps=tuple(s.step_id for s in phase.steps if s.settled),
                    rungs_fired=tuple((e.name, e.fired_at) for e in phase.escalations),
                    rectification_issued_at=order.issued_at if order else None,
                )
            )
        out.append(OrgStart(organisation=org.plan.organisation, phases=tuple(phases)))
    return out


def test_an_organisation_carried_in_mid_round_ends_as_it_would_have(county: County) -> None:
    schedule = county.schedule
    whole = CountyRun(_batch(county)).run_to_end()
    # Halfway through 领导点评's window: some organisations overdue, under an order, ahead.
    opens, deadline = (
        schedule.window(Phase.LEADERSHIP_REVIEW).opens_at,
        schedule.window(Phase.LEADERSHIP_REVIEW).deadline,
    )
    cut = opens + (deadline - opens) / 2
    first = CountyRun(_batch(county))
    while (at := first.next_instant()) is not None and at <= cut:
        first.advance(at)
    carried = _carried(first)
    statuses = {s.phase(s.current).status for s in carried if s.current is not Phase.COMPLETED}
    assert PhaseStatus.OPEN in statuses
    rest = CountyRun(_batch(county, starts=carried, at=cut + timedelta(seconds=1))).run_to_end()
    differ = [o for o in whole.outcomes if whole.outcomes[o] != rest.outcomes[o]]
    # A submission returned just before the cut is returned again after it (the pace says
    # "one return in this phase" and the carried state does not say it happened): at most
    # that few organisations may end differently.
    assert len(differ) <= max(2, ORGS // 50), differ
    for phase in WORKING_PHASES[:2]:  # finished before the cut: carried as they were
        assert whole.tally.phase(phase) == rest.tally.phase(phase)


def test_a_forecast_probability_becomes_a_pace_that_misses_as_often() -> None:
    pace = PaceModel()
    for p in (0.05, 0.3, 0.7):
        mu = log_pace_for(p, pace)
        sigma = math.hypot(pace.phase_sd, pace.finish_sd)
        assert 1 - NormalDist(mu, sigma).cdf(0.0) == pytest.approx(p, abs=1e-9)
        rng = random.Random(1)
        misses = sum(
            math.exp(mu + rng.gauss(0, pace.phase_sd) + rng.gauss(0, pace.finish_sd)) > 1
            for _ in range(20_000)
        )
        assert misses / 20_000 == pytest.approx(p, abs=0.015)
