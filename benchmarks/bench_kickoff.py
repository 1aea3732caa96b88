"""Benchmark: kick off a round of N organisations and act on them, against a raw-Temporal
baseline in the same run, on the real Temporal dev server.

    .venv/bin/python -m benchmarks.bench_kickoff --organisations 1000

Prints wall times, per-update latency percentiles and ratios (campaign / baseline), and the
worker process's peak RSS growth. Not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from temporalio.client import Client
from temporalio.worker import Worker

from activities.db import create_schema, make_engine, session_factory
from benchmarks.baseline import RECORDED, BaselineWorkflow, baseline_record
from chuangzheng.sample_evidence import sample_evidence
from chuangzheng.temporal_server import start_dev_server_env
from domain.actions import SubmitEvidence
from domain.organisation import Role
from domain.plan_loader import load_plan
from domain.state import Actor
from worker import build_worker
from workflows.contracts import RoundInput, RoundKickoff
from workflows.ids import organisation_workflow_id, round_workflow_id
from workflows.organisation import OrganisationCampaignWorkflow
from workflows.round import CampaignRoundWorkflow

ROOT = Path(__file__).resolve().parents[1]
COUNTY = Actor(user="county", role=Role.COUNTY_OFFICE)


def rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of ``values``, in milliseconds."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def baseline(client: Client, n: int, updates: int) -> tuple[float, list[float]]:
    """Start n baseline workflows (20 at a time) and time ``updates`` updates."""
    queue = f"baseline-{uuid.uuid4()}"
    limiter = asyncio.Semaphore(20)
    async with Worker(
        client, task_queue=queue, workflows=[BaselineWorkflow], activities=[baseline_record]
    ):
        started = time.perf_counter()

        async def start(i: int) -> None:
            async with limiter:
                await client.start_workflow(
                    BaselineWorkflow.run, i, id=f"base-{queue}-{i}", task_queue=queue
                )

        await asyncio.gather(*(start(i) for i in range(n)))
        # Comparable with the campaign's "every organisation has reported": all have run
        # their first activity (counted in-process, so measuring costs nothing).
        while len(RECORDED) < n:
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        latencies = []
        for i in range(updates):
            handle = client.get_workflow_handle(f"base-{queue}-{i}")
            t0 = time.perf_counter()
            await handle.execute_update(BaselineWorkflow.bump, 1)
            latencies.append(time.perf_counter() - t0)
        return elapsed, latencies


async def campaign(client: Client, n: int, updates: int, data: Path) -> tuple[float, list[float]]:
    """Kick off a demo-plan round of n organisations; time until every one has reported."""
    roster = data / f"roster-{n}.csv"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "deploy/demo/make_roster.py"),
            "--count",
            str(n),
            "--output",
            str(roster),
        ],
        check=True,
    )
    engine = make_engine(f"sqlite:///{data / 'bench.db'}")
    create_schema(engine)
    plan = load_plan((ROOT / "plans/demo.yaml").read_text("utf-8"))
    # Long phases so nothing escalates during the measurement.
    queue = f"campaign-{uuid.uuid4()}"
    round_id = f"bench-{uuid.uuid4().hex[:8]}"
    async with build_worker(client, task_queue=queue, sessions=session_factory(engine)):
        started = time.perf_counter()
        handle = await client.start_workflow(
            CampaignRoundWorkflow.run,
            RoundInput(
                kickoff=RoundKickoff(
                    round_id=round_id,
                    plan=plan,
                    round_plan_id="demo",
                    roster_source=str(roster),
                    actor=COUNTY,
                )
            ),
            id=round_workflow_id(round_id),
            task_queue=queue,
        )
        while True:
            progress = await handle.query(CampaignRoundWorkflow.progress)
            if progress.starting_done and sum(progress.by_phase.values()) >= n:
                break
            await asyncio.sleep(0.2)
        elapsed = time.perf_counter() - started
        latencies = []
        for i in range(updates):
            org_handle = client.get_workflow_handle_for(
                OrganisationCampaignWorkflow.run,
                organisation_workflow_id(round_id, f"org-{i + 1:04d}"),
            )
            status = await org_handle.query(OrganisationCampaignWorkflow.status)
            phase = status.state.current()
            step = plan.rounds[0].phase(phase.phase).steps_for(status.organisation.type)[0]
            values = sample_evidence(
                step,
                status.organisation,
                opens_at=phase.opens_at,
                deadline=phase.deadline,
                now=phase.opens_at,
            )
            actor = Actor(user=status.organisation.secretary, role=Role.SECRETARY)
            t0 = time.perf_counter()
            await org_handle.execute_update(
                OrganisationCampaignWorkflow.submit_evidence,
                SubmitEvidence(actor=actor, step_id=step.id, values=values),
            )
            latencies.append(time.perf_counter() - t0)
        await handle.terminate("benchmark finished")
    engine.dispose()
    return elapsed, latencies


async def main(n: int, updates: int) -> None:
    env = await start_dev_server_env()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            rss0 = rss_mb()
            base_time, base_lat = await baseline(env.client, n, updates)
            rss1 = rss_mb()
            camp_time, camp_lat = await campaign(env.client, n, updates, Path(tmp))
            rss2 = rss_mb()
    finally:
        await env.shutdown()
    rows = [
        ("start+first activity (s)", base_time, camp_time),
        ("workflows per second", n / base_time, n / camp_time),
        ("update p50 (ms)", pct(base_lat, 0.5), pct(camp_lat, 0.5)),
        ("update p95 (ms)", pct(base_lat, 0.95), pct(camp_lat, 0.95)),
        ("update mean (ms)", statistics.mean(base_lat) * 1000, statistics.mean(camp_lat) * 1000),
        ("peak RSS growth (MiB)", rss1 - rss0, rss2 - rss1),
    ]
    print(f"organisations: {n}; updates timed: {updates}; worker in this process")
    print(f"{'measure':<26}{'baseline':>10}{'campaign':>10}{'ratio':>8}")
    for label, base, camp in rows:
        print(f"{label:<26}{base:>10.1f}{camp:>10.1f}{camp / base:>7.1f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--organisations", type=int, default=1000)
    parser.add_argument("--updates", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(main(args.organisations, args.updates))
