"""One simulated seed-002 round and its raw-Temporal replay, shared by the ``simulate`` and
``org_history`` benchmarks of a run (both need the same round; it is played once).

The project side is :func:`chuangzheng.simulation.simulate` (what ``chuangzheng simulate``
runs) on a time-skipping server the harness keeps, so every organisation's history can be
fetched afterwards. The raw side replays, on the same server, one ``BenchTimersWorkflow``
per organisation with the timers that fired in that organisation's history and as many
Updates, sent at the same virtual instants (shifted to the replay's start), 48 at once like
the simulation's players.
"""

from __future__ import annotations

import asyncio
import inspect
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from benchmarks.context import Context
from benchmarks.rounds import HistorySize, history_size
from benchmarks.stack import generate_roster, write_roster_csv

#: ~80 % on time, 15 % late, 5 % rectified (issue 10); no returns, no extensions.
MIX = {"late": 0.15, "laggard": 0.05, "returned": 0.0, "extensions": 0}
SEED = 2
CONCURRENCY = 48


@dataclass
class SimPair:
    organisations: int
    round_id: str
    wall_seconds: float
    updates: int
    all_completed: bool
    behaviours: dict[str, int]
    histories: dict[str, HistorySize] = field(default_factory=dict)
    behaviour_of: dict[str, str] = field(default_factory=dict)
    raw_wall_seconds: float = 0.0
    raw_updates: int = 0
    raw_histories: list[HistorySize] = field(default_factory=list)
    org_input_bytes: int = 0
    warnings: list[str] = field(default_factory=list)


async def sim_pair(ctx: Context, n: int) -> SimPair:
    """The pair for ``n`` organisations, played once per run."""
    key = f"simpair-{n}"
    if key not in ctx.cache:
        ctx.cache[key] = await _play(n)
    pair: SimPair = ctx.cache[key]
    return pair


async def _play(n: int) -> SimPair:
    import tempfile
    from pathlib import Path

    from chuangzheng import simulation
    from chuangzheng.temporal_server import start_time_skipping_env
    from workflows.ids import organisation_workflow_id

    env = await start_time_skipping_env()
    try:
        with tempfile.TemporaryDirectory(prefix="cz-sim-") as tmp:
            # A county big enough that N organisations are in round one's scope.
            roster = write_roster_csv(generate_roster(int(n * 1.4) + 10), Path(tmp) / "r.csv")
            options: dict[str, Any] = {"seed": SEED, "limit": n, "env": env}
            params = inspect.signature(simulation.simulate).parameters
            if "calendar_paths" in params and hasattr(simulation, "DEFAULT_CALENDARS"):
                options["calendar_paths"] = simulation.DEFAULT_CALENDARS
            if "mix" in params:
                options["mix"] = simulation.BehaviourMix(**MIX)
            began = time.monotonic()
            report = await simulation.simulate(simulation.DEFAULT_PLAN, None, roster, **options)
            wall = time.monotonic() - began
        pair = SimPair(
            organisations=report.organisations,
            round_id=report.round_id,
            wall_seconds=wall,
            updates=report.updates,
            all_completed=report.all_completed,
            behaviours={str(k): v for k, v in report.behaviours.items()},
            warnings=list(report.warnings),
        )
        for script in report.scripts:
            workflow_id = organisation_workflow_id(report.round_id, script.org_id)
            pair.histories[script.org_id] = await history_size(env.client, workflow_id)
            pair.behaviour_of[script.org_id] = str(script.behaviour)
        first = next(iter(pair.histories.values()), None)
        pair.org_input_bytes = first.start_input_bytes[0] if first else 0
        await _replay(env, pair)
    finally:
        await env.shutdown()
    return pair


async def _replay(env: Any, pair: SimPair) -> None:
    """The raw workflows: the same timers and Updates per organisation, in virtual time."""
    from benchmarks.baselines import baseline_worker

    histories = list(pair.histories.values())
    if not histories:
        return
    origin = min(min(h.timers_fired + h.updates_accepted, default=0.0) for h in histories)
    queue = f"sim-raw-{uuid.uuid4().hex[:8]}"
    async with baseline_worker(env.client, queue):
        start = (await env.get_current_time()).timestamp()
        shift = start - origin + 1.0
        began = time.monotonic()
        handles = []
        agenda: dict[float, list[tuple[int, int]]] = defaultdict(list)
        for i, h in enumerate(histories):
            instants = [t + shift for t in h.timers_fired]
            handles.append(
                await env.client.start_workflow(
                    "BenchTimersWorkflow",
                    args=[instants, len(h.updates_accepted)],
                    id=f"{queue}-{i}",
                    task_queue=queue,
                )
            )
            per_instant: dict[float, int] = defaultdict(int)
            for t in h.updates_accepted:
                per_instant[t + shift] += 1
            for at, count in per_instant.items():
                agenda[at].append((i, count))
        limiter = asyncio.Semaphore(CONCURRENCY)

        async def send(i: int, count: int) -> None:
            async with limiter:
                for _ in range(count):
                    await handles[i].execute_update("bump", 1)

        for at in sorted(agenda):
            now = (await env.get_current_time()).timestamp()
            if at > now:
                await env.sleep(at - now)
            await asyncio.gather(*(send(i, c) for i, c in agenda[at]))
            pair.raw_updates += sum(c for _, c in agenda[at])
        # Past the last timer in virtual time, then collect the results without skipping
        # (concurrent result() calls would each unlock time skipping).
        end = max((t + shift for h in histories for t in h.timers_fired), default=start)
        now = (await env.get_current_time()).timestamp()
        if end + 1 > now:
            await env.sleep(end + 1 - now)
        with env.auto_time_skipping_disabled():
            await asyncio.gather(*(h.result() for h in handles))
        pair.raw_wall_seconds = time.monotonic() - began
        for h in handles:
            pair.raw_histories.append(await history_size(env.client, h.id))
