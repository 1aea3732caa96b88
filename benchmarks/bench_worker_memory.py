"""Worker memory per cached organisation workflow (issue 10, #4).

The project's worker runs in its own process (``chuangzheng worker``); a round of S
organisations is kicked off through the API (full: 100) and, once every one has run its
first activity and waits on its first deadline (so it sits in the worker's cache), the
worker's RSS is read from /proc; then a second round of B - S more (full: 880, so about
1,000 are cached, under the SDK's default cache of 1,000 with the two round workflows).
Per workflow: the RSS difference divided by B - S. The baseline worker (also its own
process) does the same with ``BenchBaselineWorkflow`` (one no-op activity, then waits).
"""

from __future__ import annotations

import asyncio
import statistics

from benchmarks.context import Context
from benchmarks.report import BenchResult
from benchmarks.rounds import kick_off, new_round_id
from benchmarks.stack import (
    Process,
    generate_roster,
    rss_kib,
    start_baselines,
)

TITLE = "worker RSS per cached organisation workflow"


async def settled_rss(process: Process, pause: float) -> float:
    """The median of five RSS readings (KiB), ``pause`` / 4 apart, after ``pause``."""
    await asyncio.sleep(pause)
    readings = []
    for _ in range(5):
        readings.append(rss_kib(process.pid))
        await asyncio.sleep(pause / 4)
    return float(statistics.median(readings))


async def run(ctx: Context) -> BenchResult:
    big = ctx.pick(smoke=12, full=980)
    small = max(2, big // 10)
    result = BenchResult("worker_memory", TITLE, ctx.scale, {"small": small, "big": big})
    pause = 0.4 if ctx.smoke else 2.0
    async with ctx.stack("memory") as stack:
        worker = await stack.start_worker()
        baseline = await stack.start_baseline_worker()

        await start_baselines(stack, small, prefix="mem")
        base_small = await settled_rss(baseline, pause)
        await start_baselines(stack, big - small, prefix="mem", first=small)
        base_big = await settled_rss(baseline, pause)

        organisations = generate_roster(big)
        rounds = [(organisations[:small], "memory-a"), (organisations[small:], "memory-b")]
        readings = []
        for orgs, label in rounds:
            round_id = new_round_id(label)
            await kick_off(stack, round_id, orgs)
            await stack.wait_started(round_id, len(orgs), timeout=max(300.0, len(orgs) * 1.5))
            readings.append(await settled_rss(worker, pause))
    per_base = (base_big - base_small) / (big - small)
    per_camp = (readings[1] - readings[0]) / (big - small)
    result.add("RSS per cached workflow", "KiB", per_camp, per_base, goal=1.5)
    result.add(f"worker RSS with {small} cached", "MiB", readings[0] / 1024, base_small / 1024)
    result.add(f"worker RSS with {big} cached", "MiB", readings[1] / 1024, base_big / 1024)
    return result
