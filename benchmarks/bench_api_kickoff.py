"""Kick-off of N organisations through the API (full: 2,000): ``POST /rounds`` and
``POST /rounds/{id}/kickoff`` as the county office, until every organisation has run its
first activity, against raw ``start_workflow`` of N trivial workflows with one no-op
activity on the same server (issue 11, #3). Worker and API each in their own process."""

from __future__ import annotations

import time

from benchmarks.context import Context
from benchmarks.report import BenchResult
from benchmarks.rounds import new_round_id, plan_yaml
from benchmarks.stack import Api, generate_roster, start_baselines

TITLE = "kick-off through the API until every organisation ran its first activity"


async def run(ctx: Context) -> BenchResult:
    n = ctx.pick(smoke=5, full=2_000)
    result = BenchResult("api_kickoff", TITLE, ctx.scale, {"organisations": n})
    async with ctx.stack("api-kickoff") as stack:
        stack.seed_county(generate_roster(n))
        await stack.start_worker()
        await stack.start_baseline_worker()
        await stack.start_api()
        base_s = await start_baselines(stack, n, prefix="apikick")
        round_id = new_round_id("apikick")
        async with Api(stack.api_url) as api:
            started = time.time()
            await api.create_and_kick_off(round_id, plan_yaml=plan_yaml(24 * 60))
            answered = time.time() - started
            try:
                camp_s = await stack.wait_started(round_id, n, timeout=max(300.0, n * 1.5))
                camp_s -= started
                rate = n / camp_s
            except TimeoutError as exc:
                camp_s = time.time() - started
                rate = stack.started_count(round_id) / camp_s
                result.notes.append(f"did not finish: {exc}")
    ctx.cache["kickoff_rate"] = rate
    result.add("organisations per second", "1/s", rate, n / base_s, goal=0.8, goal_op=">=")
    result.add("time to all started", "s", camp_s, base_s)
    result.add("create + kick-off answered", "s", answered, base_s / n)
    result.notes.append("baseline of 'answered': one start_workflow call (mean)")
    return result
