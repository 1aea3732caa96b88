"""``chuangzheng simulate`` of seed-002 round one over N organisations (full: 1,000), in
virtual time on the time-skipping server: wall time and Updates per second, against raw
workflows with the same timers and Updates on the same server (issue 10, #5). The round is
played by :mod:`benchmarks.simrun` (shared with ``org_history``)."""

from __future__ import annotations

from benchmarks.context import Context
from benchmarks.report import BenchResult
from benchmarks.simrun import MIX, sim_pair

TITLE = "simulated seed-002 round one: wall time and Updates/s"


async def run(ctx: Context) -> BenchResult:
    n = ctx.pick(smoke=2, full=1_000)
    pair = await sim_pair(ctx, n)
    result = BenchResult(
        "simulate", TITLE, ctx.scale, {"organisations": pair.organisations, "mix": MIX}
    )
    rate = pair.updates / pair.wall_seconds
    raw_rate = pair.raw_updates / pair.raw_wall_seconds if pair.raw_wall_seconds else None
    result.add("Updates per second", "1/s", rate, raw_rate, goal=0.7, goal_op=">=")
    result.add("wall time", "s", pair.wall_seconds, pair.raw_wall_seconds)
    result.add("Updates", "", pair.updates, pair.raw_updates)
    # CPU per Update: what each side costs, less sensitive than wall time to the load.
    for label, mine, raw in (
        ("CPU per Update: worker and players", pair.cpu_seconds, pair.raw_cpu_seconds),
        ("CPU per Update: server", pair.server_cpu_seconds, pair.raw_server_cpu_seconds),
    ):
        result.add(
            label,
            "ms",
            1000 * mine / pair.updates if pair.updates else None,
            1000 * raw / pair.raw_updates if pair.raw_updates else None,
        )
    if not pair.all_completed:
        result.notes.append("not every organisation completed the round")
    result.notes += pair.warnings[:3]
    return result
