"""What one organisation costs over a whole round (docs/scaling.md, F1–F6): one simulated
seed-002 round one, as ``chuangzheng simulate`` plays it with the benchmarks' mix
(``benchmarks.simrun.MIX``), then, per organisation: history bytes and events by type,
Temporal Cloud's action categories counted from the histories, and the read model's rows
per table; and the round workflow's own history. Prints JSON; not a test.

    .venv/bin/python -m benchmarks.round_costs 300 > /tmp/round-300.json

The simulation keeps its read model in a temporary directory it removes when it returns;
this script hands it a directory that stays (``_Keep``) so the rows can be counted after.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import types
from collections import Counter
from pathlib import Path

from sqlalchemy import create_engine, inspect, text
from temporalio.api.enums.v1 import EventType


class _Keep:
    """Stands in for ``tempfile.TemporaryDirectory`` in the simulation: the same directory,
    kept after the simulation returns."""

    path: Path

    def __init__(self, prefix: str = "") -> None:
        pass

    def __enter__(self) -> str:
        return str(self.path)

    def __exit__(self, *exc: object) -> None:
        return None


async def main(n: int, keep: Path) -> None:
    from benchmarks.simrun import MIX, SEED
    from benchmarks.stack import generate_roster, write_roster_csv
    from chuangzheng import simulation
    from chuangzheng.cli import _quiet_logging
    from chuangzheng.simulation import environment as envmod
    from chuangzheng.temporal_server import start_time_skipping_env
    from workflows.ids import organisation_workflow_id, round_workflow_id

    _Keep.path = keep
    vars(envmod)["tempfile"] = types.SimpleNamespace(TemporaryDirectory=_Keep)
    _quiet_logging(False)
    load_start = os.getloadavg()
    env = await start_time_skipping_env()
    try:
        roster = write_roster_csv(generate_roster(int(n * 1.4) + 10), keep / "roster-in.csv")
        began = time.monotonic()
        report = await simulation.simulate(
            simulation.DEFAULT_PLAN,
            None,
            roster,
            seed=SEED,
            limit=n,
            env=env,
            calendar_paths=simulation.DEFAULT_CALENDARS,
            mix=simulation.BehaviourMix(**MIX),
        )
        wall = time.monotonic() - began
        types_count: Counter[str] = Counter()
        bytes_by_type: Counter[str] = Counter()
        markers: Counter[str] = Counter()
        per_org_bytes: list[int] = []
        per_org_events: list[int] = []
        runs = 0
        for script in report.scripts:
            wid = organisation_workflow_id(report.round_id, script.org_id)
            run_id = None
            total_b = total_e = 0
            while True:
                history = await env.client.get_workflow_handle(wid, run_id=run_id).fetch_history()
                runs += 1
                for event in history.events:
                    name = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
                    types_count[name] += 1
                    bytes_by_type[name] += event.ByteSize()
                    total_b += event.ByteSize()
                    total_e += 1
                    if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
                        markers[event.marker_recorded_event_attributes.marker_name] += 1
                started = history.events[0].workflow_execution_started_event_attributes
                if not started.continued_execution_run_id:
                    break
                run_id = started.continued_execution_run_id
            per_org_bytes.append(total_b)
            per_org_events.append(total_e)
        # The round workflow's own history (every run).
        rid = round_workflow_id(report.round_id)
        round_events = round_bytes = round_runs = 0
        run_id = None
        while True:
            history = await env.client.get_workflow_handle(rid, run_id=run_id).fetch_history()
            round_runs += 1
            round_events += len(history.events)
            round_bytes += sum(e.ByteSize() for e in history.events)
            started = history.events[0].workflow_execution_started_event_attributes
            if not started.continued_execution_run_id:
                break
            run_id = started.continued_execution_run_id
    finally:
        await env.shutdown()
    n = len(per_org_bytes)
    local = markers.get("core_local_activity", 0)
    actions = {
        "workflow started (incl. continue-as-new)": types_count["WORKFLOW_EXECUTION_STARTED"],
        "activities (scheduled)": types_count["ACTIVITY_TASK_SCHEDULED"],
        "local activities (markers)": local,
        "timers started": types_count["TIMER_STARTED"],
        "signals received": types_count["WORKFLOW_EXECUTION_SIGNALED"],
        "Updates accepted": types_count["WORKFLOW_EXECUTION_UPDATE_ACCEPTED"],
        "child workflows / external signals": types_count[
            "START_CHILD_WORKFLOW_EXECUTION_INITIATED"
        ]
        + types_count["SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED"],
        "search-attribute upserts (not counted below)": types_count[
            "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES"
        ],
    }
    counted = sum(v for k, v in actions.items() if "not counted" not in k)
    engine = create_engine(f"sqlite:///{keep / 'readmodel.db'}")
    rows: dict[str, int] = {}
    with engine.connect() as conn:
        for table in inspect(engine).get_table_names():
            count = conn.execute(text(f'SELECT COUNT(*) FROM "{table}"')).scalar_one()
            if count:
                rows[table] = int(count)
    engine.dispose()
    db_bytes = (keep / "readmodel.db").stat().st_size
    per_org_bytes.sort()
    out = {
        "organisations": n,
        "updates": report.updates,
        "wall_seconds": round(wall, 1),
        "load_start": load_start,
        "load_end": os.getloadavg(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "behaviours": {str(k): v for k, v in report.behaviours.items()},
        "virtual_days": report.virtual_span.days,
        "notices": [x.model_dump(mode="json") for x in report.notices],
        "history_kb_mean": round(sum(per_org_bytes) / n / 1024, 1),
        "history_kb_p50": round(per_org_bytes[n // 2] / 1024, 1),
        "history_kb_max": round(per_org_bytes[-1] / 1024, 1),
        "events_mean": round(sum(per_org_events) / n, 1),
        "events_max": max(per_org_events),
        "org_runs": runs,
        "kb_per_org_by_event_type": {
            k: round(v / n / 1024, 2) for k, v in bytes_by_type.most_common(8)
        },
        "events_per_org_by_type": {k: round(v / n, 2) for k, v in types_count.most_common()},
        "markers_per_org": {k: round(v / n, 2) for k, v in markers.items()},
        "actions_per_org": {k: round(v / n, 2) for k, v in actions.items()},
        "actions_per_org_total": round(counted / n, 1),
        "round_history": {
            "runs": round_runs,
            "events": round_events,
            "kb": round(round_bytes / 1024, 1),
        },
        "read_model_rows_per_org": {k: round(v / n, 2) for k, v in sorted(rows.items())},
        "read_model_rows": rows,
        "read_model_bytes_per_org": round(db_bytes / n),
    }
    print(json.dumps(out, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory(prefix="cz-round-costs-") as directory:
        asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100, Path(directory)))
