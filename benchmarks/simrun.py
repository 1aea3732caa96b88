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
import os
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
    #: CPU seconds over each side's wall time: this process (the worker and the players, or
    #: the raw worker and its senders) and the time-skipping server (a child process). Less
    #: sensitive than wall time to other processes on a loaded machine.
    cpu_seconds: float = 0.0
    server_cpu_seconds: float = 0.0
    raw_cpu_seconds: float = 0.0
    raw_server_cpu_seconds: float = 0.0


def _cpu() -> tuple[float, float]:
    """CPU seconds (user + system) used so far by this process and by its child processes
    still running (the time-skipping server), from ``/proc``; zeros where it is missing."""
    own = time.process_time()
    children = 0.0
    me = str(os.getpid())
    ticks = os.sysconf("SC_CLK_TCK")
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return own, 0.0
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == me:  # ppid; then utime, stime are fields 11 and 12 after ")"
            children += (int(fields[11]) + int(fields[12])) / ticks
    return own, children


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
    from chuangzheng.cli import _quiet_logging
    from chuangzheng.temporal_server import start_time_skipping_env
    from workflows.ids import organisation_workflow_id

    # As ``chuangzheng simulate`` runs it: warnings only (the worker logs every activity at
    # INFO; unconfigured, structlog printed each to stdout, some 10 % of the process's time).
    _quiet_logging(False)
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
            began, cpu_began = time.monotonic(), _cpu()
            report = await simulation.simulate(simulation.DEFAULT_PLAN, None, roster, **options)
            wall, cpu_ended = time.monotonic() - began, _cpu()
        pair = SimPair(
            organisations=report.organisations,
            round_id=report.round_id,
            wall_seconds=wall,
            updates=report.updates,
            all_completed=report.all_completed,
            behaviours={str(k): v for k, v in report.behaviours.items()},
            warnings=list(report.warnings),
            cpu_seconds=cpu_ended[0] - cpu_began[0],
            server_cpu_seconds=cpu_ended[1] - cpu_began[1],
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
        began, cpu_began = time.monotonic(), _cpu()
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
        cpu_ended = _cpu()
        pair.raw_cpu_seconds = cpu_ended[0] - cpu_began[0]
        pair.raw_server_cpu_seconds = cpu_ended[1] - cpu_began[1]
        for h in handles:
            pair.raw_histories.append(await history_size(env.client, h.id))
