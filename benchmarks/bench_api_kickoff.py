"""Kick-off of N organisations through the API (full: 2,000): ``POST /rounds`` and
``POST /rounds/{id}/kickoff`` as the county office, until every organisation has run its
first activity (its ``campaign_status`` row), against raw ``start_workflow`` of N trivial
workflows with one no-op activity on the same server (issue 11, #3). Worker and API each in
their own process. :func:`measure` is shared with the ``kickoff`` benchmark."""

from __future__ import annotations

import time

from benchmarks.context import Context
from benchmarks.report import BenchResult
from benchmarks.rounds import kick_off, new_round_id, round_workflow_type
from benchmarks.stack import generate_roster, start_baselines

TITLE = "kick-off through the API until every organisation ran its first activity"


async def measure(ctx: Context, result: BenchResult, n: int, label: str) -> None:
    """Raw starts, then the campaign's kick-off of ``n``; adds the measures to ``result``."""
    async with ctx.stack(label) as stack:
        organisations = generate_roster(n)
        stack.seed_county(organisations)
        await stack.start_worker()
        await stack.start_baseline_worker()
        await stack.start_api()
        base_s = await start_baselines(stack, n, prefix=label)
        round_id = new_round_id(label)
        started = time.time()
        answered = await kick_off(stack, round_id)
        try:
            camp_s = await stack.wait_started(round_id, n, timeout=max(300.0, n * 1.5))
            camp_s -= started
            rate = n / camp_s
        except TimeoutError as exc:
            camp_s = time.time() - started
            rate = stack.started_count(round_id) / camp_s
            result.notes.append(f"did not finish: {exc}")
        result.params["round_workflow"] = await round_workflow_type(stack, round_id)
    ctx.cache["kickoff_rate"] = rate
    result.add("organisations per second", "1/s", rate, n / base_s, goal=0.8, goal_op=">=")
    result.add("time to all started", "s", camp_s, base_s)
    result.add("create + kick-off requests answered", "s", answered, base_s / n)
    result.notes.append("baseline of 'answered': one raw start_workflow (mean of the N)")


async def run(ctx: Context) -> BenchResult:
    n = ctx.pick(smoke=5, full=2_000)
    result = BenchResult("api_kickoff", TITLE, ctx.scale, {"organisations": n})
    await measure(ctx, result, n, "apikick")
    return result
