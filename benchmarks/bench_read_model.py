"""Benchmark: the read model's write path alone under a deadline storm.

    .venv/bin/python -m benchmarks.bench_read_model --organisations 2000
    .venv/bin/python -m benchmarks.bench_read_model --databases sqlite --label after

N organisations of a generated county (``deploy/demo/make_roster.py``) on the demo plan
all pass the first deadline at once. Each one's batch is what its workflow records at that
moment, built by the domain itself: ``deadline_passed`` and ``escalated`` (rung 0), the
status snapshot and the two notices (instructor, secretary). The batches go through the
activities exactly as the worker calls them, at most ``--concurrency`` at a time (the
worker's ``max_concurrent_activities``):

- ``record``: N concurrent ``record_events`` (events, status, detail tables, the outbox);
- ``deliver``: then N concurrent ``deliver_notices`` with the in-app inbox as the only
  channel (what the embedded default runs);
- ``storm``: N organisations each doing ``record_events`` then ``deliver_notices``, as
  their workflows do, on a fresh database.

Before the storm, the read model holds the roster and each organisation's opened phase (the
kick-off batches, not timed). After each run the row counts are checked: every event,
status row and notice exactly once. Prints a table and writes JSON (``--output``). Not a
test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url

from activities.contracts import EventBatch, NoticeBatch
from activities.db import create_schema, make_engine, session_factory
from activities.notifier import InboxNotifier
from activities.recording import RecordingActivities
from activities.roster_files import read_roster_file
from activities.roster_store import store_roster
from activities.tables import campaign_events, campaign_status, notices
from domain.campaign import Campaign
from domain.campaign_rules import new_state
from domain.plan_loader import load_plan
from domain.schedule import build_org_plan, is_rebased, resolve_schedule
from workflows.reporting import snapshot_of

ROOT = Path(__file__).resolve().parents[1]
ROUND = "bench-storm"
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True)
class Storm:
    """Each organisation's kick-off batch (untimed) and its batches at the deadline."""

    kickoff: list[EventBatch]
    deadline: list[EventBatch]
    notices: list[NoticeBatch]

    @property
    def expected_events(self) -> int:
        return sum(len(b.events) for b in (*self.kickoff, *self.deadline))

    @property
    def expected_notices(self) -> int:
        return len({n.notice_id for b in self.notices for n in b.notices})


@dataclass(frozen=True)
class Result:
    """One timed phase on one database."""

    database: str
    phase: str
    calls: int
    seconds: float
    calls_per_second: float
    p50_ms: float
    p95_ms: float
    max_ms: float


def build_storm(organisations: int, workdir: Path) -> Storm:
    """The batches of ``organisations`` campaigns opening their first phase and missing it."""
    roster_path = workdir / "roster.csv"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "deploy/demo/make_roster.py"),
            *("--count", str(organisations), "--output", str(roster_path)),
        ],
        check=True,
    )
    plan = load_plan((ROOT / "plans/demo.yaml").read_text("utf-8"))
    round_plan = plan.rounds[0]
    starts = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    schedule = resolve_schedule(plan, round_plan, starts, rebased=is_rebased(round_plan, starts))
    kickoff: list[EventBatch] = []
    deadline: list[EventBatch] = []
    notice_batches: list[NoticeBatch] = []
    for org in read_roster_file(roster_path).organisations:
        org_plan = build_org_plan(plan, round_plan, schedule, org, round_id=ROUND)
        campaign = Campaign(org_plan, new_state(org_plan))
        opened = starts + timedelta(seconds=1)
        campaign.settle(opened)
        campaign.tick(opened)
        events, outbox = campaign.take_outbox()
        kickoff.append(
            EventBatch(events=events, snapshot=snapshot_of(campaign, opened), notices=outbox)
        )
        late = campaign.state.current().deadline + timedelta(seconds=1)
        campaign.settle(late)
        campaign.tick(late)
        events, outbox = campaign.take_outbox()
        deadline.append(
            EventBatch(events=events, snapshot=snapshot_of(campaign, late), notices=outbox)
        )
        notice_batches.append(NoticeBatch(notices=outbox))
    return Storm(kickoff=kickoff, deadline=deadline, notices=notice_batches)


@contextmanager
def database(kind: str, workdir: Path) -> Iterator[str]:
    """A URL to an empty database: a SQLite file, or a fresh PostgreSQL schema."""
    if kind == "sqlite":
        path = workdir / f"read-{uuid.uuid4().hex[:8]}.db"
        yield f"sqlite:///{path}"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    admin_url = os.environ.get("CZ_BENCH_POSTGRES_URL", POSTGRES_URL)
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(admin_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


async def timed_calls(
    calls: list[Callable[[], Awaitable[object]]], concurrency: int
) -> tuple[float, list[float]]:
    """Run every call concurrently, at most ``concurrency`` at once; wall time and latencies."""
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(call: Callable[[], Awaitable[object]]) -> None:
        async with gate:
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(one(call) for call in calls))
    return time.perf_counter() - started, latencies


def result(kind: str, phase: str, seconds: float, latencies: list[float]) -> Result:
    """Summarise one phase."""
    ordered = sorted(latencies)
    return Result(
        database=kind,
        phase=phase,
        calls=len(latencies),
        seconds=round(seconds, 3),
        calls_per_second=round(len(latencies) / seconds, 1),
        p50_ms=round(statistics.median(ordered) * 1000, 1),
        p95_ms=round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 1),
        max_ms=round(ordered[-1] * 1000, 1),
    )


def check_counts(engine: Engine, storm: Storm) -> None:
    """Every event, status row and notice is in the read model exactly once."""
    with engine.connect() as conn:
        events = conn.scalar(select(func.count()).select_from(campaign_events))
        statuses = conn.scalar(select(func.count()).select_from(campaign_status))
        inbox = conn.scalar(select(func.count()).select_from(notices))
        not_red = campaign_status.c.light != "red"
        stale = conn.scalar(select(func.count()).select_from(campaign_status).where(not_red))
    expected = (storm.expected_events, len(storm.deadline), storm.expected_notices, 0)
    if (events, statuses, inbox, stale) != expected:
        raise SystemExit(
            f"wrong read model: events/status/notices/not-red {(events, statuses, inbox, stale)}"
            f", expected {expected}"
        )


async def run_database(
    kind: str, storm: Storm, roster_path: Path, workdir: Path, concurrency: int
) -> list[Result]:
    """The three phases on one kind of database."""
    results: list[Result] = []
    roster = read_roster_file(roster_path)
    with database(kind, workdir) as url:
        engine = make_engine(url)
        create_schema(engine)
        sessions = session_factory(engine)
        with sessions.begin() as session:
            store_roster(session, roster)
        recording = RecordingActivities(sessions, InboxNotifier(sessions))
        for batch in storm.kickoff:
            await recording.record_events(batch)
        seconds, latencies = await timed_calls(
            [lambda b=b: recording.record_events(b) for b in storm.deadline], concurrency
        )
        results.append(result(kind, "record", seconds, latencies))
        seconds, latencies = await timed_calls(
            [lambda b=b: recording.deliver_notices(b) for b in storm.notices], concurrency
        )
        results.append(result(kind, "deliver", seconds, latencies))
        check_counts(engine, storm)
        engine.dispose()
    with database(kind, workdir) as url:
        engine = make_engine(url)
        create_schema(engine)
        sessions = session_factory(engine)
        with sessions.begin() as session:
            store_roster(session, roster)
        recording = RecordingActivities(sessions, InboxNotifier(sessions))
        for batch in storm.kickoff:
            await recording.record_events(batch)
        gate = asyncio.Semaphore(concurrency)

        async def organisation(record: EventBatch, deliver: NoticeBatch) -> None:
            # Each activity takes a worker slot of its own, as in the worker.
            async with gate:
                await recording.record_events(record)
            async with gate:
                await recording.deliver_notices(deliver)

        seconds, latencies = await timed_calls(
            [
                lambda r=r, d=d: organisation(r, d)
                for r, d in zip(storm.deadline, storm.notices, strict=True)
            ],
            len(storm.deadline),
        )
        results.append(result(kind, "storm", seconds, latencies))
        check_counts(engine, storm)
        engine.dispose()
    return results


def print_table(results: list[Result]) -> None:
    """The figures, one line per database and phase."""
    header = f"{'database':<9} {'phase':<8} {'calls':>6} {'seconds':>8} {'calls/s':>8} "
    header += f"{'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}"
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.database:<9} {r.phase:<8} {r.calls:>6} {r.seconds:>8.2f} "
            f"{r.calls_per_second:>8.1f} {r.p50_ms:>8.1f} {r.p95_ms:>8.1f} {r.max_ms:>8.1f}"
        )


async def main(args: argparse.Namespace) -> list[Result]:
    """Build the storm once, run it on each database."""
    # The figures are the database's; log lines would measure the console instead.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with tempfile.TemporaryDirectory(prefix="bench-read-model-") as tmp:
        workdir = Path(tmp)
        storm = build_storm(args.organisations, workdir)
        results: list[Result] = []
        for kind in args.databases:
            results += await run_database(
                kind, storm, workdir / "roster.csv", workdir, args.concurrency
            )
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--organisations", type=int, default=2000)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=50,
        help="activities at once (the worker's max_concurrent_activities)",
    )
    parser.add_argument(
        "--databases", nargs="+", choices=["sqlite", "postgres"], default=["sqlite", "postgres"]
    )
    parser.add_argument("--label", default="", help="stored in the JSON, e.g. before/after")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="where the JSON goes (default benchmarks/results/read_model-<time>.json)",
    )
    return parser.parse_args(argv)


def run(argv: list[str] | None = None) -> None:
    """Entry point: run, print the table, write the JSON."""
    args = parse_args(argv)
    results = asyncio.run(main(args))
    print_table(results)
    if args.output is None:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        args.output = ROOT / "benchmarks" / "results" / f"read_model-{stamp}.json"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {
        "benchmark": "read_model",
        "label": args.label,
        "organisations": args.organisations,
        "concurrency": args.concurrency,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "results": [asdict(r) for r in results],
    }
    args.output.write_text(json.dumps(payload, indent=2, ensure_ascii=False), "utf-8")
    print(f"\nJSON written to {args.output}")


if __name__ == "__main__":
    run()
