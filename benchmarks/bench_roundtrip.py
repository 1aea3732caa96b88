"""One submission through HTTP on a quiet server, p50/p95, against a raw no-op Update
(``bump`` of ``BenchBaselineWorkflow``) on the same server (issue 11, #2). Two kinds of
submission: the API's default answer (the Update's result only, what the pages' forms do;
sent with ``Prefer: return=minimal`` to say so) and the whole status after the Update
(``Prefer: return=representation``, read by a query). Calls alternate (default submission,
raw Update, whole-status submission, raw Update) so all see the same moment of a shared
machine; each submission is returned (untimed) so the step can be submitted again; the first
few are warm-up. The server's ``Server-Timing`` of each submission says where its time went
(in the notes)."""

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
        "roundtrip", TITLE, ctx.scale, {"submissions_per_kind": count, "organisations": len(orgs)}
    )
    campaign, full, raw = Timed(), Timed(), Timed()
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
                    campaign, full, raw = Timed(), Timed(), Timed()
                # One organisation for the default (minimal) answer, the next for the whole
                # status.
                for minimal, timed in ((True, campaign), (False, full)):
                    k = (2 * i + (0 if minimal else 1)) % len(orgs)
                    await submitter.cycle(orgs[k], bodies[k], timed, minimal=minimal)
                    await raw_update(handle, raw)
            await submitter.aclose()
    for label, timed in (("", campaign), (" with the whole status (return=representation)", full)):
        for q in (0.5, 0.95):
            value, base = pct(timed.latencies(), q), pct(raw.latencies(), q)
            result.add(
                f"p{int(q * 100)} latency{label}",
                "ms",
                value and value * 1000,
                base and base * 1000,
                goal=1.3 if q == 0.95 else None,
            )
    result.add(
        "errors + timeouts",
        "",
        len(campaign.errors) + campaign.timeouts + len(full.errors) + full.timeouts,
        len(raw.errors) + raw.timeouts,
    )
    for label, timed in (("default (return=minimal)", campaign), ("whole status", full)):
        phases = timed.phase_summary()
        if phases:
            result.notes.append(f"{label}: server phases p50/p95 (ms): {phases}")
    result.notes += (campaign.errors + full.errors)[:3]
    return result
