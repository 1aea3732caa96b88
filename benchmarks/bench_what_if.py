"""What-if at county scale: how long a rehearsal of N organisations takes on this machine.

The county is ``deploy/demo/make_roster.py``'s (N organisations), seed-002 round one
re-based to the time-skipping server's today; its live state is the rehearsal engine's own,
run from the kick-off to half-way through 公开承诺 (what the read model would show then:
organisations in 动员部署 late or under an order, in 公开承诺 at every stage, a few ahead).
Then the what-if the county office would run — 领导点评 extended by ten working days for
everyone — goes through :func:`chuangzheng.simulation.what_if_run.rehearse` exactly as the
page's job runs it: a fresh time-skipping server, both arms, batches of 150.

    .venv/bin/python -m benchmarks.bench_what_if --organisations 300 3000

Prints one JSON line per size: wall seconds (the rehearsal alone, and the preparation),
organisations, batches, the tallies' totals. Goal (issue 16): 3,000 in under 5 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time as wallclock
from datetime import timedelta

from benchmarks.bench_dashboard import generate_roster
from chuangzheng.simulation import DEFAULT_CALENDARS, DEFAULT_PLAN, load_plan_files
from chuangzheng.simulation.calendar import resolve_with_gaps
from chuangzheng.simulation.live_state import draw_paces, kickoff_starts
from chuangzheng.simulation.what_if_engine import BatchInput, CountyRun
from chuangzheng.simulation.what_if_run import rehearse
from chuangzheng.temporal_server import start_time_skipping_env
from domain.calendar import Span
from domain.phases import Phase
from domain.what_if import DraftChange, OrgStart, PhaseStart

GOAL_SECONDS = 300.0


def _carried(run: CountyRun) -> list[OrgStart]:
    """Each organisation as the read model would show it at the cut."""
    out = []
    for org in run.orgs:
        phases = []
        for phase in org.campaign.state.phases:
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


async def measure(organisations: int, seed: int) -> dict[str, object]:
    """One rehearsal of ``organisations``; its figures."""
    began = wallclock.monotonic()
    plan = load_plan_files(DEFAULT_PLAN, DEFAULT_CALENDARS)
    round_plan = plan.rounds[0]
    orgs = generate_roster(organisations)
    env = await start_time_skipping_env()
    try:
        starts_at = await env.get_current_time()
        resolved, schedule = resolve_with_gaps(
            plan, round_plan, starts_at, fill_gaps=True, warnings=[]
        )
        windows = {w.phase: (w.opens_at, w.deadline) for w in schedule.windows}
        kick = kickoff_starts(orgs, windows)
        paces, _ = draw_paces(kick, {}, now=starts_at, windows=windows, seed=seed)
        opens, deadline = windows[Phase.PUBLIC_COMMITMENT]
        cut = opens + (deadline - opens) / 2
        state = CountyRun(
            BatchInput(
                round_id="bench",
                plan=resolved,
                round_plan_id=round_plan.id,
                schedule=schedule,
                ladder=resolved.ladder_for(round_plan),
                starts_at=starts_at,
                organisations=tuple(kick),
                paces=tuple(paces),
            )
        )
        while (at := state.next_instant()) is not None and at <= cut:
            state.advance(at)
        live = _carried(state)
        prepared = wallclock.monotonic() - began
        load_before = os.getloadavg()[0]
        outcome = await rehearse(
            round_id="bench",
            plan=resolved,
            round_plan_id=round_plan.id,
            schedule=schedule,
            change=DraftChange(
                kind="extend_phase", phase=Phase.LEADERSHIP_REVIEW, by=Span(working_days=10)
            ),
            starts_at=cut + timedelta(seconds=1),
            starts=live,
            paces=paces,
            env=env,
        )
    finally:
        await env.shutdown()
    return {
        "organisations": organisations,
        "rehearsal_seconds": round(outcome.wall_seconds, 1),
        "preparation_seconds": round(prepared, 1),
        "batches": outcome.batches,
        "goal_seconds": GOAL_SECONDS,
        "load_before": round(load_before, 1),
        "load_after": round(os.getloadavg()[0], 1),
        "late_unchanged": outcome.unchanged.late_total,
        "late_changed": outcome.changed.late_total,
        "organisations_affected": outcome.difference.organisations_affected,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--organisations", type=int, nargs="+", default=[300, 3000])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    for n in args.organisations:
        print(json.dumps(asyncio.run(measure(n, args.seed)), ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
