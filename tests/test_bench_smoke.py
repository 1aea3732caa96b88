"""``make bench`` at the smoke scale: every benchmark runs (tiny counts, one shared server
and set of processes) and its JSON has every measure with a value, a baseline and a ratio.

No timing is asserted: the figures depend on the machine and its load. The harness runs in
a subprocess (it starts its own dev server, worker and API processes, and the Temporal
runtime it configures must not meet the session's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.__main__ import BENCHMARKS

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(1200)
def test_every_benchmark_runs_at_smoke_scale(tmp_path: Path) -> None:
    out = tmp_path / "smoke.json"
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--scale", "smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1100,
    )
    assert out.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    data = json.loads(out.read_text("utf-8"))
    assert data["scale"] == "smoke"
    by_name = {b["name"]: b for b in data["benchmarks"]}
    assert set(by_name) == set(BENCHMARKS), run.stdout[-3000:]
    for name, bench in by_name.items():
        assert bench["error"] is None, (name, bench["error"], run.stderr[-3000:])
        assert bench["measures"], name
        for measure in bench["measures"]:
            label = (name, measure["name"], measure["unit"])
            assert measure["value"] is not None, label
            assert measure["baseline"] is not None, label
            # A ratio is undefined only against a baseline of zero (e.g. 0 duplicates).
            assert measure["ratio"] is not None or measure["baseline"] == 0, label
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
