"""The round workflow's history and continue-as-new payload (issue 10, #3).

At N organisations (full: 1,000) for real: a round kicked off through the API, until every
organisation has run its first activity; then its history over all runs and the largest
run, and the input its latest run started with (what the last continue-as-new carried; the
kick-off input when it never continued). Where the API still starts the legacy round type
(``CampaignRoundWorkflow``), a second round of N is started with that contract's lowest
``history_limit`` so that it continues as new during the kick-off and the state it carries
is measured. At 10 N (full: 10,000) without running it: that
same payload, decoded, with every collection that holds one entry per organisation grown to
that count, and re-encoded as the data converter does (compact JSON). A state that does not
grow with the county has no such collection, so both sizes are equal.

The baseline is a raw fan-out round (``BenchFanoutWorkflow``: one activity per batch of
200 ``start_workflow`` calls) over the same N, on the same server.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from benchmarks.context import Context
from benchmarks.report import BenchResult
from benchmarks.rounds import (
    LEGACY_ROUND_WORKFLOW,
    history_size,
    kick_off,
    kick_off_direct,
    new_round_id,
    round_workflow_type,
)
from benchmarks.stack import generate_roster, write_roster_csv

TITLE = "round workflow history and continue-as-new payload"
GOAL_KB = 64.0


def _mentions(value: Any, ids: set[str]) -> bool:
    if isinstance(value, str):
        return value in ids
    if isinstance(value, dict):
        return any(isinstance(v, str) and v in ids for v in value.values())
    return False


def grow(value: Any, ids: set[str], factor: int) -> Any:
    """``value`` with every collection that holds one entry per organisation (keyed by, or
    entries naming, an organisation of ``ids``) grown ``factor``-fold by copies."""
    if isinstance(value, dict):
        grown = {k: grow(v, ids, factor) for k, v in value.items()}
        if len(value) >= 2 and sum(k in ids for k in value) >= 0.9 * len(value):
            for copy in range(1, factor):
                grown |= {f"{k}~{copy}": v for k, v in list(grown.items()) if "~" not in k}
        return grown
    if isinstance(value, list):
        items = [grow(v, ids, factor) for v in value]
        if len(value) >= 2 and sum(_mentions(v, ids) for v in value) >= 0.9 * len(value):
            items = items * factor
        return items
    return value


def encoded_size(value: Any) -> int:
    """Bytes of ``value`` as compact JSON (what the pydantic data converter writes)."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


async def run(ctx: Context) -> BenchResult:
    n = ctx.pick(smoke=5, full=1_000)
    big = n * 10 if ctx.smoke else max(10_000, n * 10)
    result = BenchResult("round_history", TITLE, ctx.scale, {"organisations": n, "grown_to": big})
    from workflows.ids import round_workflow_id

    async with ctx.stack("round-history") as stack:
        await stack.start_worker()
        await stack.start_baseline_worker()
        prefix, before = "fanout", stack.baseline_tally()[0]
        await stack.client.start_workflow(
            "BenchFanoutWorkflow",
            args=[prefix, n, 200],
            id=prefix,
            task_queue=stack.baseline_queue,
        )
        await stack.wait_baseline_tally(before + n, timeout=max(300.0, n * 0.5))
        await stack.client.get_workflow_handle(prefix).result()
        raw = await history_size(stack.client, prefix)

        organisations = generate_roster(n)
        round_id = new_round_id("roundhist")
        await kick_off(stack, round_id, organisations)
        try:
            await stack.wait_started(round_id, n, timeout=max(300.0, n * 1.5))
        except TimeoutError as exc:
            result.notes.append(f"did not finish: {exc}")
        await asyncio.sleep(3)  # the organisations' first reports (if any) reach the round
        kind = await round_workflow_type(stack, round_id)
        size = await history_size(stack.client, round_workflow_id(round_id))
        carried = size
        if kind == LEGACY_ROUND_WORKFLOW:
            # The legacy round continues as new only past 10,000 events: a second round with
            # the lowest limit shows the state it carries (its history is not reported).
            forced = new_round_id("roundcan")
            roster = write_roster_csv(organisations, stack.dir / "roster.csv")
            await kick_off_direct(stack, forced, roster, history_limit=100)
            try:
                await stack.wait_started(forced, n, timeout=max(300.0, n * 1.5))
            except TimeoutError as exc:
                result.notes.append(f"forced continue-as-new round: {exc}")
            await asyncio.sleep(3)
            carried = await history_size(stack.client, round_workflow_id(forced))
    result.params["round_workflow"] = kind

    payload = json.loads(carried.latest_input) if carried.latest_input else {}
    real_kb = encoded_size(payload) / 1024
    ids = {o.id for o in organisations}
    grown_kb = encoded_size(grow(payload, ids, big // n)) / 1024
    raw_input_kb = raw.start_input_bytes[0] / 1024 if raw.start_input_bytes else 0.0
    which = "continue-as-new" if carried.runs > 1 else "kick-off input (never continued)"
    result.params |= {"round_runs": size.runs, "carried": which}
    result.add(f"round history, all runs, {n} orgs", "KB", size.bytes / 1024, raw.bytes / 1024)
    result.add(f"round history, all runs, {n} orgs", "events", size.events, raw.events)
    result.add(
        f"largest run's history, {n} orgs",
        "KB",
        max(size.run_bytes) / 1024,
        max(raw.run_bytes) / 1024,
    )
    result.add(
        f"carried payload at {n} orgs",
        "KB",
        real_kb,
        raw_input_kb,
        goal=GOAL_KB,
        goal_on="value",
        note=which,
    )
    result.add(
        f"carried payload at {big} orgs (grown)",
        "KB",
        grown_kb,
        raw_input_kb,
        goal=GOAL_KB,
        goal_on="value",
    )
    result.add(f"payload growth {n} → {big} orgs", "KB", grown_kb, real_kb, goal=1.1)
    if carried.runs == 1:
        result.notes.append("the round never continued as new: its kick-off input is shown")
    return result
