"""History per organisation for a whole seed-002 round (issue 10, benchmark 2).

Plays round one of seed 002 over the first N organisations of the demo county with the
simulation's scripts and players (virtual time, the project's real worker), ~80 % on time,
15 % late and 5 % rectified, each organisation workflow started directly so that only its
own history is measured; then fetches every organisation's history, every run of it
(following continue-as-new), and reports bytes (the protobuf size, what the server stores,
and the JSON of ``history.to_json()``) and events per organisation, by behaviour and by
event type. Also the serialized per-organisation input (``OrganisationCampaignInput``).

    .venv/bin/python -m benchmarks.org_history --orgs 20 [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import statistics
import tempfile
import uuid
from collections import defaultdict
from datetime import datetime, time
from typing import Any

import structlog
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import History
from temporalio.client import Client, WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from activities.db import create_schema, make_engine, session_factory
from activities.roster_files import read_roster_file
from chuangzheng.simulation import (
    DEFAULT_CALENDARS,
    DEFAULT_PLAN,
    DEFAULT_ROSTER,
    BehaviourMix,
    load_plan_files,
)
from chuangzheng.simulation.calendar import resolve_with_gaps
from chuangzheng.simulation.driver import Simulation
from chuangzheng.simulation.player import Player
from chuangzheng.simulation.scripts import Scripter, assign_behaviours
from chuangzheng.simulation.timers import TimerGuard, timer_instants
from chuangzheng.simulation.timing import Timing
from chuangzheng.temporal_server import data_converter, start_time_skipping_env
from domain.calendar import SHANGHAI
from domain.schedule import build_org_plan, resolve_schedule
from worker import build_worker
from workflows.contracts import OrganisationCampaignInput
from workflows.organisation import OrganisationCampaignWorkflow

# ~80 % on time, 15 % late, 5 % rectified (issue 10); no returns, no extensions.
MIX = BehaviourMix(late=0.15, laggard=0.05, returned=0.0, extensions=0)


async def workflow_histories(client: Client, workflow_id: str) -> list[WorkflowHistory]:
    """Every run's history of ``workflow_id``, first run first (follows continue-as-new)."""
    runs: list[WorkflowHistory] = []
    run_id: str | None = None
    while True:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        runs.append(history)
        started = history.events[0].workflow_execution_started_event_attributes
        if not started.continued_execution_run_id:
            return list(reversed(runs))
        run_id = started.continued_execution_run_id


def figures_of(runs: list[WorkflowHistory], by_type: dict[str, list[int]]) -> dict[str, int]:
    """Runs, events and bytes of one organisation; adds events and bytes per event type."""
    for history in runs:
        for event in history.events:
            name = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
            by_type.setdefault(name, [0, 0])
            by_type[name][0] += 1
            by_type[name][1] += event.ByteSize()
    return {
        "runs": len(runs),
        "events": sum(len(h.events) for h in runs),
        "proto_bytes": sum(History(events=list(h.events)).ByteSize() for h in runs),
        "json_bytes": sum(len(h.to_json().encode()) for h in runs),
    }


def input_bytes() -> int:
    """The serialized ``OrganisationCampaignInput`` of the first organisation in scope (the
    payload the client sends to start it, and that a continue-as-new carries again)."""
    plan = load_plan_files(DEFAULT_PLAN, DEFAULT_CALENDARS)
    round_plan = plan.rounds[0]
    schedule = resolve_schedule(
        plan, round_plan, datetime.combine(round_plan.starts_on, time(), tzinfo=SHANGHAI)
    )
    roster = read_roster_file(DEFAULT_ROSTER)
    org = roster.in_scope(types=round_plan.scope.types, townships=round_plan.scope.townships)[0]
    org_plan = build_org_plan(plan, round_plan, schedule, org, round_id="r-measure")
    converter = data_converter().payload_converter
    (payload,) = converter.to_payloads([OrganisationCampaignInput(plan=org_plan)])
    return payload.ByteSize()


async def play_round(env: WorkflowEnvironment, orgs: int, seed: int) -> list[tuple[str, str]]:
    """Play round one of seed 002 over the first ``orgs`` organisations in scope, each
    workflow started directly (no round workflow: only the organisation's own history is
    measured, whatever the round does); returns (workflow id, behaviour) per organisation."""
    plan = load_plan_files(DEFAULT_PLAN, DEFAULT_CALENDARS)
    round_plan = plan.rounds[0]
    roster = read_roster_file(DEFAULT_ROSTER)
    scope = roster.in_scope(types=round_plan.scope.types, townships=round_plan.scope.townships)
    organisations = scope[:orgs]
    starts_at = await env.get_current_time()
    plan, schedule = resolve_with_gaps(plan, round_plan, starts_at, fill_gaps=True, warnings=[])
    round_plan = plan.round(round_plan.id)
    ladder = plan.ladder_for(round_plan)
    # The round's pinned calendar where the code pins one, else the plan's.
    calendar = getattr(schedule, "calendar", None) or plan.calendar.build()
    rng = random.Random(seed)
    behaviours = assign_behaviours([o.id for o in organisations], MIX, rng)
    scripter = Scripter(Timing(ladder, calendar), schedule, rng, starts_at)
    scripts = [scripter.script(org, behaviours[org.id]) for org in organisations]
    guard = TimerGuard(timer_instants(schedule, scripts, ladder, calendar))
    round_id = f"measure-{uuid.uuid4().hex[:8]}"
    players = [
        Player(
            env.client, build_org_plan(plan, round_plan, schedule, org, round_id=round_id), s, guard
        )
        for org, s in zip(organisations, scripts, strict=True)
    ]
    task_queue = f"measure-{uuid.uuid4()}"
    with tempfile.TemporaryDirectory() as workdir:
        engine = make_engine(f"sqlite:///{workdir}/readmodel.db")
        create_schema(engine)
        async with build_worker(
            env.client, task_queue=task_queue, sessions=session_factory(engine)
        ):
            for player in players:
                await env.client.start_workflow(
                    OrganisationCampaignWorkflow.run,
                    OrganisationCampaignInput(plan=player.plan),
                    id=player.handle.id,
                    task_queue=task_queue,
                )
            # The simulation's own loop: skip to each planned instant and act there.
            driver = Simulation.__new__(Simulation)
            driver.env, driver.concurrency, driver.on_message = env, 16, None
            await driver._play(players, guard)
            with env.auto_time_skipping_disabled():
                async with asyncio.timeout(180):
                    await asyncio.gather(*(p.handle.result() for p in players))
        engine.dispose()
    failures = [p.failed for p in players if p.failed]
    if failures:
        raise RuntimeError(f"organisations failed: {failures}")
    return [(p.handle.id, s.behaviour.value) for p, s in zip(players, scripts, strict=True)]


async def measure(orgs: int, seed: int) -> dict[str, Any]:
    """Play the round and collect the per-organisation figures."""
    env = await start_time_skipping_env()
    try:
        played = await play_round(env, orgs, seed)
        by_behaviour: dict[str, list[dict[str, int]]] = defaultdict(list)
        by_type: dict[str, list[int]] = {}
        for workflow_id, behaviour in played:
            runs = await workflow_histories(env.client, workflow_id)
            by_behaviour[behaviour].append(figures_of(runs, by_type))
    finally:
        await env.shutdown()
    every = [f for group in by_behaviour.values() for f in group]
    count = len(every)
    return {
        "organisations": count,
        "input_bytes": input_bytes(),
        "mean": _summary(every),
        "by_behaviour": {
            b: _summary(group) | {"count": len(group)} for b, group in by_behaviour.items()
        },
        # Per organisation, on average: how many events of each type and their proto bytes.
        "by_event_type": {
            name: {"events": round(n / count, 1), "proto_bytes": round(size / count)}
            for name, (n, size) in sorted(by_type.items(), key=lambda kv: -kv[1][1])
        },
    }


def _summary(group: list[dict[str, int]]) -> dict[str, float]:
    return {
        key: round(statistics.mean(f[key] for f in group), 1)
        for key in ("runs", "events", "proto_bytes", "json_bytes")
    }


def main() -> None:
    """Print the figures (and write them as JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orgs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    # The activities log every batch; only the figures matter here.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    figures = asyncio.run(measure(args.orgs, args.seed))
    text = json.dumps(figures, ensure_ascii=False, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
