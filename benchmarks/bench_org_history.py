"""History per organisation for a whole seed-002 round with a simulated mix (~80 % on time,
15 % late, 5 % rectified): bytes (protobuf, every run) and events, against the raw workflow
with the same timers and Updates (issue 10, #2). Played by :mod:`benchmarks.simrun`."""

from __future__ import annotations

import statistics

from benchmarks.context import Context
from benchmarks.report import BenchResult
from benchmarks.simrun import MIX, sim_pair

TITLE = "history per organisation, seed-002 round, simulated mix"
GOAL_KB = 100.0


async def run(ctx: Context) -> BenchResult:
    n = ctx.pick(smoke=2, full=1_000)
    pair = await sim_pair(ctx, n)
    result = BenchResult(
        "org_history", TITLE, ctx.scale, {"organisations": pair.organisations, "mix": MIX}
    )
    sizes = list(pair.histories.values())
    raw = pair.raw_histories

    def mean(values: list[float]) -> float | None:
        return statistics.mean(values) if values else None

    raw_kb = mean([h.bytes / 1024 for h in raw])
    result.add(
        "history per organisation, mean",
        "KB",
        mean([h.bytes / 1024 for h in sizes]),
        raw_kb,
        goal=GOAL_KB,
        goal_on="value",
    )
    result.add(
        "history per organisation, max",
        "KB",
        max((h.bytes / 1024 for h in sizes), default=None),
        max((h.bytes / 1024 for h in raw), default=None),
        goal=GOAL_KB,
        goal_on="value",
    )
    result.add(
        "events per organisation, mean",
        "",
        mean([h.events for h in sizes]),
        mean([h.events for h in raw]),
    )
    result.add(
        "Update results per organisation",
        "KB",
        mean([h.update_result_bytes / 1024 for h in sizes]),
        mean([h.update_result_bytes / 1024 for h in raw]),
    )
    result.add(
        "start input per organisation",
        "KB",
        pair.org_input_bytes / 1024,
        mean([h.start_input_bytes[0] / 1024 for h in raw if h.start_input_bytes]),
    )
    for behaviour in sorted(set(pair.behaviour_of.values())):
        group = [h for o, h in pair.histories.items() if pair.behaviour_of[o] == behaviour]
        result.add(
            f"history, {behaviour} ({len(group)})",
            "KB",
            mean([h.bytes / 1024 for h in group]),
            raw_kb,
        )
    by_type: dict[str, int] = {}
    for h in sizes:
        for name, count in h.bytes_by_type.items():
            by_type[name] = by_type.get(name, 0) + count
    top = sorted(by_type.items(), key=lambda kv: -kv[1])[:4]
    if sizes:
        result.params["kb_per_org_by_event_type"] = {
            name: round(total / 1024 / len(sizes), 1) for name, total in top
        }
    runs = max((h.runs for h in sizes), default=0)
    result.params["max_runs"] = runs
    return result
