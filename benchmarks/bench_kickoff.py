"""Kick-off rate: a round of N organisations (full: 10,000) kicked off (through the API, the
public entry point, as ``api_kickoff`` does at 2,000), until every organisation has run its
first activity (its ``campaign_status`` row), against ``start_workflow`` of N trivial
workflows that each run one no-op activity on the same server (issue 10, #1).

    .venv/bin/python -m benchmarks --only kickoff --orgs 1000
    .venv/bin/python -m benchmarks.bench_kickoff --organisations 1000   # the same
"""

from __future__ import annotations

from benchmarks.bench_api_kickoff import measure
from benchmarks.context import Context
from benchmarks.report import BenchResult

TITLE = "kick-off until every organisation ran its first activity"


async def run(ctx: Context) -> BenchResult:
    n = ctx.pick(smoke=5, full=10_000)
    result = BenchResult("kickoff", TITLE, ctx.scale, {"organisations": n})
    await measure(ctx, result, n, "kickoff")
    return result


if __name__ == "__main__":
    import argparse
    import sys

    from benchmarks.__main__ import main

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--organisations", type=int, default=1000)
    parser.add_argument("--updates", type=int, default=0, help="ignored (see bench_roundtrip)")
    args = parser.parse_args()
    sys.exit(main(["--only", "kickoff", "--orgs", str(args.organisations)]))
