"""Kick-off rate: a round of N organisations started through the round workflow, until every
organisation has run its first activity (its ``campaign_status`` row), against
``start_workflow`` of N trivial workflows that each run one no-op activity (issue 10, #1).

    .venv/bin/python -m benchmarks --only kickoff --orgs 1000
    .venv/bin/python -m benchmarks.bench_kickoff --organisations 1000   # the same
"""

from __future__ import annotations

import time

from benchmarks.context import Context
from benchmarks.report import BenchResult
from benchmarks.rounds import ROUND_WORKFLOW, history_size, kick_off_direct, new_round_id
from benchmarks.stack import generate_roster, start_baselines, write_roster_csv

TITLE = "kick-off until every organisation ran its first activity"


async def run(ctx: Context) -> BenchResult:
    n = ctx.pick(smoke=5, full=10_000)
    result = BenchResult("kickoff", TITLE, ctx.scale, {"organisations": n})
    async with ctx.stack("kickoff") as stack:
        await stack.start_worker()
        await stack.start_baseline_worker()
        base_s = await start_baselines(stack, n, prefix="kickoff")
        roster = write_roster_csv(generate_roster(n), stack.dir / "roster.csv")
        round_id = new_round_id("kickoff")
        started = time.time()
        await kick_off_direct(stack, round_id, roster)
        timeout = max(300.0, n * 1.5)
        try:
            done = await stack.wait_started(round_id, n, timeout=timeout)
            camp_s = done - started
            camp_rate = n / camp_s
        except TimeoutError as exc:
            have = stack.started_count(round_id)
            camp_s = time.time() - started
            camp_rate = have / camp_s
            result.notes.append(f"did not finish: {exc}; rate is of the {have} started")
        from workflows.ids import round_workflow_id

        size = await history_size(stack.client, round_workflow_id(round_id))
    result.add("organisations per second", "1/s", camp_rate, n / base_s, goal=0.8, goal_op=">=")
    result.add("time to all started", "s", camp_s, base_s)
    result.add("round workflow history", "KB", size.bytes / 1024, None)
    result.add("round workflow history", "events", size.events, None)
    result.params["round_workflow"] = ROUND_WORKFLOW
    return result


if __name__ == "__main__":
    import argparse
    import sys

    from benchmarks.__main__ import main

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--organisations", type=int, default=1000)
    parser.add_argument("--updates", type=int, default=0, help="ignored (see bench_roundtrip)")
    args = parser.parse_args()
    sys.exit(main(["--only", "kickoff", "--orgs", str(args.organisations)]))
