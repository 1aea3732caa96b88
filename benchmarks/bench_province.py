"""A province on one stack (issue 14): N organisations (full: 20,000) in K counties (default
10, ``--counties``), each county with its own roster, county office and round, kicked off
together and stormed at one shared deadline; then the per-organisation figures at that
scale. One dev server, one worker process, one API process (``benchmarks/stack.py``).

Raw baseline first, on the same server (as ``storm``; ``--no-baseline`` skips it): N
``BenchTimerWorkflow``s started (their ``start_workflow`` rate is the raw kick-off rate),
all firing at one instant; the raw storm is the time from that instant until the last one's
no-op activity ran.

Then the campaign: every county office signs in with its own account and creates and kicks
off its round through the API, all K at once, each round's first phase ending at the same
instant (the storm's spaced ladder: one wake-up per organisation there, for rung 0), placed
so that the kick-off of all N should be over by then (from the raw rate, or
``--kickoff-rate`` if lower). Measured: the kick-off rate until every organisation ran its
first activity, the time from the deadline to the last instructor notice (rung 0), the
notices and duplicates, and each county's last notice (the spread between counties).

Per organisation, on a sample spread over the counties (20): the Temporal history (bytes
and events, every run) after the kick-off and the first deadline against a raw timer
workflow's whole history, the read model's rows per table, and the JSON counts endpoint
(``/supervision/counts?by=township``) of one county's round as its county office while the
other counties are there, against the same grouped SQL run directly.

The worker caches 1.1 N + 100 workflows (the rule ``docs/scaling.md`` sizes workers by)
unless ``CZ_WORKER_MAX_CACHED_WORKFLOWS`` is set: with the default 3,000 a province's
deadline would replay every evicted organisation's history. The raw baseline's worker gets
the same cache (on a fresh stack; the smoke run's shared stack keeps its processes').

    python -m benchmarks --only province --kickoff-rate 25        # 20,000 in 10 counties
    python -m benchmarks --only province --orgs 5000 --counties 5 --no-baseline
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime

from sqlalchemy import inspect

from benchmarks.bench_storm import DUPLICATES, INSTRUCTOR_NOTICES, epoch, poll, start_timers
from benchmarks.context import Context
from benchmarks.report import BenchResult, pct
from benchmarks.rounds import history_size, new_round_id, plan_yaml
from benchmarks.stack import Api, Stack, generate_roster, rss_kib
from domain.organisation import Organisation
from workflows.ids import organisation_workflow_id

TITLE = "a province: N organisations in K counties kicked off and stormed"
RAW_TIMERS = "province-timer"
#: Organisations/s the raw starts are expected to reach when nothing says otherwise (a
#: quiet 2-core machine started 31/s at 2,000, a loaded one 3–5/s: docs/performance.md).
EXPECTED_RATE = 20.0
SAMPLE = 20
COUNTS_REQUESTS = 50
CACHE_VARIABLE = "CZ_WORKER_MAX_CACHED_WORKFLOWS"

# Each county's last instructor notice (rung 0), as the read model recorded it.
LAST_NOTICE = (
    "SELECT max(delivered_at) FROM notices WHERE round_id = :r AND kind = 'escalation' "
    "AND rung = 0 AND recipient_role = 'instructor'"
)
STARTED = "SELECT count(*) FROM campaign_status WHERE round_id = :r"
DEADLINES = (
    "SELECT min(deadline), max(deadline) FROM phase_status WHERE round_id = :r "
    "AND phase = 'mobilisation'"
)
# What ``/supervision/counts?by=township`` groups (api/routers/supervision.py), run directly.
GROUPED_COUNTS = (
    "SELECT township, phase, light, overdue, count(*) FROM campaign_status "
    "WHERE round_id = :r GROUP BY township, phase, light, overdue"
)


def county_code(index: int) -> str:
    return f"prov-{index + 1:02d}"


def province_rosters(n: int, counties: int) -> dict[str, list[Organisation]]:
    """``n`` organisations in ``counties`` counties (the first ones one larger when ``n``
    does not divide): each county a generated county of its size, its ids and township
    names made its own (``<code>-org-0001``, ``<i>县杏湾街道``), each organisation carrying
    its county."""
    rosters: dict[str, list[Organisation]] = {}
    for index in range(counties):
        size = n // counties + (1 if index < n % counties else 0)
        code = county_code(index)
        rosters[code] = [
            o.model_copy(
                update={
                    "id": f"{code}-{o.id}",
                    "township": f"{index + 1}县{o.township}",
                    "county": code,
                }
            )
            for o in generate_roster(size)
        ]
    return rosters


@contextlib.contextmanager
def worker_cache(workflows: int) -> Iterator[int]:
    """The worker processes started meanwhile cache ``workflows`` workflows, unless the
    caller's environment sets the cache; yields the size they get."""
    if CACHE_VARIABLE in os.environ:
        yield int(os.environ[CACHE_VARIABLE])
        return
    os.environ[CACHE_VARIABLE] = str(workflows)
    try:
        yield workflows
    finally:
        del os.environ[CACHE_VARIABLE]


def _total(stack: Stack, sql: str, rounds: list[str]) -> int:
    return sum(int(stack.scalar(sql, r=r)) for r in rounds)


async def _raw(stack: Stack, n: int, ctx: Context, result: BenchResult) -> tuple[float, float]:
    """N timers at one instant: (start_workflow rate, instant → last activity)."""
    before = stack.baseline_tally()[0]
    expected = float(ctx.cache.get("kickoff_rate", EXPECTED_RATE))
    instant = time.time() + (5 if ctx.smoke else 30 + 1.3 * n / expected)
    began = time.time()
    await start_timers(stack, n, instant, prefix=RAW_TIMERS)
    start_s = time.time() - began
    if time.time() > instant:
        result.notes.append("raw: some timers were started after their instant")
    last = await stack.wait_baseline_tally(
        before + n, timeout=max(180.0, n * 0.5) + instant - time.time()
    )
    return n / start_s, last - instant


async def run(ctx: Context) -> BenchResult:
    n = ctx.pick(smoke=10, full=20_000)
    k = max(1, min(2 if ctx.smoke else ctx.counties, n))
    rosters = province_rosters(n, k)
    cache = math.ceil(1.1 * n) + 100
    result = BenchResult(
        "province",
        TITLE,
        ctx.scale,
        {"organisations": n, "counties": k, "per_county": n // k},
    )
    with worker_cache(cache) as cached:
        async with ctx.stack("province") as stack:
            # A shared stack's worker (smoke) was started earlier, with its own cache size.
            result.params["worker_cache"] = cached if stack.worker is None else "shared stack's"
            usernames = stack.seed_counties(rosters)
            await stack.start_worker()
            await stack.start_api()
            raw_rate = raw_storm = None
            if not ctx.no_baseline:
                await stack.start_baseline_worker()
                raw_rate, raw_storm = await _raw(stack, n, ctx, result)
            await _campaign(ctx, stack, rosters, usernames, raw_rate, raw_storm, result)
            assert stack.worker is not None
            result.params["worker_rss_mib"] = round(rss_kib(stack.worker.pid) / 1024)
    return result


async def _campaign(
    ctx: Context,
    stack: Stack,
    rosters: dict[str, list[Organisation]],
    usernames: dict[str, str],
    raw_rate: float | None,
    raw_storm: float | None,
    result: BenchResult,
) -> None:
    n = sum(len(r) for r in rosters.values())
    patience = max(180.0, n * 0.5)
    # The raw rate counts start_workflow answers only, cheaper than an organisation's start
    # with its first task and activity: three quarters of it, or --kickoff-rate if lower.
    rates = [r for r in (raw_rate and raw_rate * 0.75, ctx.cache.get("kickoff_rate")) if r]
    rate = float(min(rates)) if rates else EXPECTED_RATE
    lead = 8.0 if ctx.smoke else n / rate * 1.5 + 60  # seconds from kick-off to deadline
    minutes = max(4, math.ceil((lead + 60) / 60))
    starts_at = datetime.fromtimestamp(time.time() + lead - minutes * 60, UTC)
    result.params |= {"first_phase_minutes": minutes, "deadline_after_s": round(lead)}
    rounds = {code: new_round_id(code) for code in rosters}
    plan = plan_yaml(minutes, spaced_ladder=True)
    offices = {code: Api(stack.api_url, timeout=120, username=usernames[code]) for code in rosters}
    async with contextlib.AsyncExitStack() as exits:
        for api in offices.values():
            await exits.enter_async_context(api)
        kicked = time.time()
        await asyncio.gather(
            *(
                offices[code].create_and_kick_off(rounds[code], plan_yaml=plan, starts_at=starts_at)
                for code in rosters
            )
        )
        answered = time.time() - kicked
        ids = list(rounds.values())
        started_at, started = await poll(
            lambda: _total(stack, STARTED, ids), n, timeout=lead + patience
        )
        kickoff_s = started_at - kicked
        windows = [stack.rows(DEADLINES, r=r)[0] for r in ids]
        deadline = max(epoch(high) for _, high in windows)
        if len({epoch(v) for window in windows for v in window}) > 1:
            result.notes.append("the rounds' first deadlines differ (the latest is used)")
        if started_at > deadline:
            result.notes.append("campaign: the kick-off ran past the deadline (storm overlaps it)")
        done, notices = await poll(
            lambda: _total(stack, INSTRUCTOR_NOTICES, ids),
            n,
            timeout=max(0.0, deadline - time.time()) + patience,
        )
        duplicates = _total(stack, DUPLICATES, ids)
        lasts = {
            code: epoch(last) - deadline
            for code, r in rounds.items()
            if (last := stack.scalar(LAST_NOTICE, r=r)) is not None
        }
        first_code = next(iter(rosters))
        api_ms, sql_ms = await _counts_latency(ctx, stack, offices[first_code], rounds[first_code])
    storm = done - deadline
    result.add("kick-off rate", "1/s", started / kickoff_s, raw_rate)
    result.add("kick-off of all N", "s", kickoff_s, raw_rate and n / raw_rate)
    result.params["kickoff_requests_answered_s"] = round(answered, 2)
    result.add("deadline → last instructor notice", "s", storm, raw_storm, goal=1.5)
    if lasts:
        result.add(
            "slowest county: deadline → its last notice", "s", max(lasts.values()), raw_storm
        )
        result.add(
            "fastest county: deadline → its last notice", "s", min(lasts.values()), raw_storm
        )
        result.params["last_notice_by_county_s"] = {c: round(s, 1) for c, s in lasts.items()}
    result.add("instructor notices recorded", "", notices, n)
    result.add("duplicate notices", "", duplicates, 0, goal=0, goal_on="value")
    if started < n:
        result.notes.append(f"only {started}/{n} organisations started within the patience")
    if notices < n:
        result.notes.append(f"only {notices}/{n} instructor notices within the patience")
    result.notes.append(
        "raw kick-off rate: start_workflow of the raw timers answered; campaign: until every "
        "organisation ran its first activity (its campaign_status row)"
    )
    await _per_organisation(stack, rosters, rounds, result, raw_timers=raw_rate is not None)
    for q, label in ((0.5, "p50"), (0.95, "p95")):
        result.add(
            f"one county's counts JSON, {label}",
            "ms",
            pct(api_ms, q),
            pct(sql_ms, q),
        )
    result.notes.append(
        "counts JSON: /supervision/counts?by=township of one county's round as its county "
        "office, every county's rows present; baseline: the same grouped SQL run directly"
    )


async def _counts_latency(
    ctx: Context, stack: Stack, office: Api, round_id: str
) -> tuple[list[float], list[float]]:
    """Sequential ``GET /supervision/counts?by=township`` of the county office's round and
    the same grouped SQL directly, after a warm-up; wall times in ms."""
    requests = 10 if ctx.smoke else COUNTS_REQUESTS
    path = f"/api/v1/rounds/{round_id}/supervision/counts?by=township"
    api_ms: list[float] = []
    sql_ms: list[float] = []
    for index in range(requests + 5):
        began = time.perf_counter()
        response = await office.get(path)
        took = (time.perf_counter() - began) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"counts: {response.status_code} {response.text[:300]}")
        if index >= 5:
            api_ms.append(took)
        began = time.perf_counter()
        stack.rows(GROUPED_COUNTS, r=round_id)
        if index >= 5:
            sql_ms.append((time.perf_counter() - began) * 1000)
    return api_ms, sql_ms


async def _per_organisation(
    stack: Stack,
    rosters: dict[str, list[Organisation]],
    rounds: dict[str, str],
    result: BenchResult,
    *,
    raw_timers: bool,
) -> None:
    """History and read-model rows of a sample spread over the counties, against a raw
    timer workflow's history and every organisation's rows."""
    everyone = [(code, o.id) for code, roster in rosters.items() for o in roster]
    size = min(SAMPLE, len(everyone))
    sample = [everyone[i * len(everyone) // size] for i in range(size)]
    histories = [
        await history_size(stack.client, organisation_workflow_id(rounds[code], org))
        for code, org in sample
    ]
    raw = (
        [await history_size(stack.client, f"{RAW_TIMERS}-{i}") for i in range(min(3, size))]
        if raw_timers
        else []
    )

    def mean(values: list[float]) -> float | None:
        return statistics.mean(values) if values else None

    result.add(
        f"history per organisation, mean of {size}",
        "KB",
        mean([h.bytes / 1024 for h in histories]),
        mean([h.bytes / 1024 for h in raw]),
    )
    result.add(
        f"history per organisation, max of {size}",
        "KB",
        max(h.bytes / 1024 for h in histories),
        max((h.bytes / 1024 for h in raw), default=None),
    )
    result.add(
        "events per organisation, mean",
        "",
        mean([h.events for h in histories]),
        mean([h.events for h in raw]),
    )
    result.notes.append(
        "history: after the kick-off and the first deadline (rung 0), every run; raw: a "
        "timer workflow's whole history (start, timer, one activity)"
    )
    assert stack.engine is not None
    tables = [
        t
        for t in inspect(stack.engine).get_table_names()
        if any(c["name"] == "org_id" for c in inspect(stack.engine).get_columns(t))
    ]
    ids = [org for _, org in sample]
    marks = ", ".join(f":o{i}" for i in range(len(ids)))
    binds = {f"o{i}": org for i, org in enumerate(ids)}
    round_ids = list(rounds.values())
    every_org = ", ".join(f":r{i}" for i in range(len(round_ids)))
    round_binds = {f"r{i}": r for i, r in enumerate(round_ids)}
    n = len(everyone)
    sampled: dict[str, float] = {}
    overall: dict[str, float] = {}
    for table in tables:
        sampled[table] = (
            int(stack.scalar(f'SELECT count(*) FROM "{table}" WHERE org_id IN ({marks})', **binds))
            / size
        )
        overall[table] = (
            int(
                stack.scalar(
                    f'SELECT count(*) FROM "{table}" WHERE org_id IN (SELECT org_id FROM '
                    f"campaign_status WHERE round_id IN ({every_org}))",
                    **round_binds,
                )
            )
            / n
        )
    result.add(
        "read-model rows per org., sample (all N)",
        "",
        sum(sampled.values()),
        sum(overall.values()),
    )
    result.notes.append(
        "rows per organisation by table (sample): "
        + ", ".join(f"{t} {v:.1f}" for t, v in sorted(sampled.items(), key=lambda kv: -kv[1]) if v)
    )
