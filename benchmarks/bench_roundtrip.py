"""One submission through HTTP on a quiet server, p50/p95, against a raw no-op Update
(``bump`` of ``BenchBaselineWorkflow``) on the same server (issue 11, #2). Calls alternate
(submission, raw Update) so both see the same moment of a shared machine; each submission is
returned (untimed) so the step can be submitted again; the first few are warm-up."""

from __future__ import annotations

import asyncio

from benchmarks.context import Context
from benchmarks.report import BenchResult, pct
from benchmarks.rounds import new_round_id, plan_yaml
from benchmarks.stack import Api, generate_roster
from benchmarks.submissions import Submitter, Timed, raw_update

TITLE = "one submission through HTTP on a quiet server vs a raw no-op Update"
WARMUP = 5


async def run(ctx: Context) -> BenchResult:
    count = ctx.pick(smoke=10, full=300)
    orgs = generate_roster(3 if ctx.smoke else 20)
    result = BenchResult(
        "roundtrip", TITLE, ctx.scale, {"submissions": count, "organisations": len(orgs)}
    )
    campaign, raw = Timed(), Timed()
    async with ctx.stack("roundtrip") as stack:
        stack.seed_county(orgs)
        await stack.start_worker()
        await stack.start_baseline_worker()
        await stack.start_api()
        before = stack.baseline_tally()[0]
        handle = await stack.client.start_workflow(
            "BenchBaselineWorkflow", 0, id="roundtrip-raw", task_queue=stack.baseline_queue
        )
        await stack.wait_baseline_tally(before + 1, timeout=120)
        round_id = new_round_id("roundtrip")
        text = plan_yaml(24 * 60)
        async with Api(stack.api_url) as api:
            await api.create_and_kick_off(round_id, plan_yaml=text)
            await stack.wait_started(round_id, len(orgs), timeout=300)
            await asyncio.sleep(1)
            submitter = Submitter(stack, api, round_id, text)
            bodies = [submitter.body(org) for org in orgs]
            for i in range(count + WARMUP):
                if i == WARMUP:
                    campaign, raw = Timed(), Timed()
                org = orgs[i % len(orgs)]
                await submitter.cycle(org, bodies[i % len(orgs)], campaign)
                await raw_update(handle, raw)
    for q in (0.5, 0.95):
        value, base = pct(campaign.latencies(), q), pct(raw.latencies(), q)
        result.add(
            f"p{int(q * 100)} latency",
            "ms",
            value and value * 1000,
            base and base * 1000,
            goal=1.3 if q == 0.95 else None,
        )
    result.add(
        "errors + timeouts",
        "",
        len(campaign.errors) + campaign.timeouts,
        len(raw.errors) + raw.timeouts,
    )
    result.notes += campaign.errors[:3]
    return result
