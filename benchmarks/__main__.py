"""``python -m benchmarks`` (``make bench``): run the benchmarks, print one table per
benchmark (measure | baseline | campaign | ratio | goal) and write every figure to JSON.

    python -m benchmarks                          # everything at full scale
    python -m benchmarks --scale smoke            # tiny counts, seconds each (make test)
    python -m benchmarks --only storm --orgs 500  # one benchmark, another count
    python -m benchmarks --out results.json
    python -m benchmarks --only storm --worker-roles workflows,activities  # split workers
    python -m benchmarks --only province --orgs 20000 --counties 10  # issue 14's province
    python -m benchmarks --only storm --robot     # instructors also on a WeCom group robot

Each benchmark measures the project and a raw-Temporal baseline in the same run on the same
server (see ``benchmarks/stack.py`` and ``benchmarks/baselines.py``). The figures depend on
the machine and its load: the JSON records both.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks.context import Context
from benchmarks.report import BenchResult, environment, render, write_json
from chuangzheng.settings import WorkerRole, parse_worker_roles

#: Every benchmark, in the order they run: ``benchmarks/bench_<name>.py``, with ``run(ctx)``.
BENCHMARKS: dict[str, str] = {
    "kickoff": "kick-off rate at the workflow core's scale, 10,000 (issue 10 #1)",
    "org_history": "history per organisation, seed-002 round, simulated mix (issue 10 #2)",
    "round_history": "round workflow history and continue-as-new payload (issue 10 #3)",
    "worker_memory": "worker RSS per cached organisation workflow (issue 10 #4)",
    "simulate": "chuangzheng simulate of seed-002 round one: Updates/s (issue 10 #5)",
    "api_kickoff": "kick-off through the API (issue 11 #3)",
    "storm": "deadline storm with submissions through the API (issue 11 #1)",
    "roundtrip": "one submission through HTTP on a quiet server (issue 11 #2)",
    "province": "N organisations in K counties kicked off and stormed on one stack (issue 14)",
}


def _quiet() -> None:
    """Warnings only: the SDK's core logs workflow-task retries at WARN on a loaded machine."""
    import structlog
    from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

    logging.basicConfig(level=logging.WARNING)
    # The project's activities log every batch at INFO (in-process in the simulation).
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    telemetry = TelemetryConfig(
        logging=LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))
    )
    Runtime.set_default(Runtime(telemetry=telemetry), error_if_already_set=False)


async def run_all(
    names: list[str], ctx: Context, out: Path | None
) -> tuple[list[BenchResult], Path]:
    run_info = {
        "scale": ctx.scale,
        "orgs_override": ctx.orgs,
        "worker_roles": [role.value for role in ctx.worker_roles],
        "started": environment(),
    }
    results: list[BenchResult] = []
    try:
        path = await _run(names, ctx, out, run_info, results)
    finally:
        await ctx.close()
    return results, path


async def _run(
    names: list[str],
    ctx: Context,
    out: Path | None,
    run_info: dict[str, Any],
    results: list[BenchResult],
) -> Path:
    path = write_json(results, run_info, out)
    for name in names:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        began = time.monotonic()
        load = os.getloadavg()[0]
        print(f"-- {name}: {BENCHMARKS[name]} (load {load:.1f})", flush=True)
        try:
            result: BenchResult = await module.run(ctx)
        except Exception as exc:  # one failure must not lose the others' figures
            traceback.print_exc()
            result = BenchResult(name, BENCHMARKS[name], ctx.scale, error=repr(exc)[:500])
        result.seconds = time.monotonic() - began
        results.append(result)
        print(render(result), flush=True)
        path = write_json(results, run_info, out)  # after each: a crash keeps what was done
    return path


def _interrupt(signum: int, frame: object) -> None:
    """Cancel the run (stacks stop their processes); end the process 20 s later whatever
    is left (asyncio's shutdown can wait forever on a task stuck in the SDK)."""
    watchdog = threading.Timer(20, os._exit, (130,))
    watchdog.daemon = True
    watchdog.start()
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=list(BENCHMARKS),
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument("--scale", choices=["smoke", "full"], default="full")
    parser.add_argument(
        "--orgs",
        type=int,
        default=None,
        help="organisation count of every benchmark run (roundtrip: submissions)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON file (default benchmarks/results/<timestamp>.json)",
    )
    parser.add_argument(
        "--fresh-stacks",
        action="store_true",
        help="a new server and processes per benchmark also at smoke scale (full always does)",
    )
    parser.add_argument(
        "--worker-roles",
        default="all",
        help=(
            "the project's worker processes, one per role, comma-separated, as make run's "
            "CZ_WORKER_ROLES (default: all, one process running both)"
        ),
    )
    parser.add_argument(
        "--keep-stacks",
        action="store_true",
        help="keep each stack's folder (its processes' logs, the read model) for a post-mortem",
    )
    parser.add_argument(
        "--kickoff-rate",
        type=float,
        default=None,
        help=(
            "organisations/s the storm expects its kick-off to reach, to place its deadline, "
            "when api_kickoff does not run before it (which measures the rate; else 15)"
        ),
    )
    parser.add_argument(
        "--counties",
        type=int,
        default=10,
        help="province: the counties the organisations are split into (default 10; smoke: 2)",
    )
    parser.add_argument(
        "--no-baseline",
        action="store_true",
        help="province: skip the raw baseline (its ratios were measured by storm at 2,000)",
    )
    parser.add_argument(
        "--robot",
        action="store_true",
        help=(
            "storm: instructors on a WeCom group robot (a local receiver), so every rung-0 "
            "notice is also delivered over HTTP (default: the inbox only)"
        ),
    )
    args = parser.parse_args(argv)
    if args.counties < 1:
        parser.error("--counties must be at least 1")
    try:
        roles = parse_worker_roles(args.worker_roles)
    except ValueError as err:
        parser.error(str(err))
    _quiet()
    # SIGTERM as Ctrl-C: the run is cancelled and every stack stops its processes.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    names = args.only or list(BENCHMARKS)
    share = args.scale == "smoke" and not args.fresh_stacks
    ctx = Context(
        scale=args.scale,
        orgs=args.orgs,
        share_stack=share,
        worker_roles=roles or (WorkerRole.ALL,),
        keep_stacks=args.keep_stacks,
        counties=args.counties,
        no_baseline=args.no_baseline,
        robot=args.robot,
    )
    if args.kickoff_rate is not None:
        if args.kickoff_rate <= 0:
            parser.error("--kickoff-rate must be positive")
        ctx.cache["kickoff_rate"] = args.kickoff_rate
    try:
        results, path = asyncio.run(run_all(names, ctx, args.out))
    except KeyboardInterrupt:
        # Every stack has stopped its processes; skip the interpreter's teardown, which can
        # hang on the Temporal SDK's threads (see chuangzheng.cli._hard_exit).
        print("\ninterrupted", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    print(f"\nresults: {path}")
    sys.stdout.flush()
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
