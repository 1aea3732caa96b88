"""Results of a benchmark run: measures side by side with their baseline, the table printed
for each benchmark and the JSON file written for the whole run."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"

#: How a measure compares with its goal: the ratio (campaign / baseline) or the value itself.
GoalOn = Literal["ratio", "value"]


@dataclass
class Measure:
    """One row: the campaign's figure, the raw-Temporal baseline's, their ratio and the goal.

    ``goal`` is a bound, ``goal_op`` says which side is good ("<=" or ">="), ``goal_on``
    whether the bound applies to the ratio or to the value. ``baseline`` None: no baseline
    exists for this measure (e.g. a duplicate count); the ratio is then None too.
    """

    name: str
    unit: str
    value: float | None
    baseline: float | None
    goal: float | None = None
    goal_op: str = "<="
    goal_on: GoalOn = "ratio"
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is None or self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline

    @property
    def met(self) -> bool | None:
        if self.goal is None:
            return None
        subject = self.ratio if self.goal_on == "ratio" else self.value
        if subject is None:
            return None
        return subject <= self.goal if self.goal_op == "<=" else subject >= self.goal

    def goal_text(self) -> str:
        if self.goal is None:
            return ""
        what = "ratio" if self.goal_on == "ratio" else self.unit
        bound = f"{self.goal:g}×" if self.goal_on == "ratio" else f"{self.goal:g} {what}"
        verdict = {True: "met", False: "NOT met", None: "?"}[self.met]
        return f"{self.goal_op} {bound}: {verdict}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ratio": self.ratio, "met": self.met}


@dataclass
class BenchResult:
    """One benchmark's measures, its parameters and notes (limits, what was skipped)."""

    name: str
    title: str
    scale: str
    params: dict[str, Any] = field(default_factory=dict)
    measures: list[Measure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None

    def add(self, *args: Any, **kwargs: Any) -> Measure:
        measure = Measure(*args, **kwargs)
        self.measures.append(measure)
        return measure

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "scale": self.scale,
            "params": self.params,
            "seconds": round(self.seconds, 2),
            "error": self.error,
            "notes": self.notes,
            "measures": [m.as_dict() for m in self.measures],
        }


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def render(result: BenchResult) -> str:
    """The benchmark's rows: measure | baseline | campaign | ratio | goal."""
    params = ", ".join(f"{k}={v}" for k, v in result.params.items())
    lines = [
        f"\n== {result.name}: {result.title} [{result.scale}; {params}] ({result.seconds:.0f} s)"
    ]
    if result.error:
        lines.append(f"   FAILED: {result.error}")
    header = f"{'measure':<44} {'baseline':>12} {'campaign':>12} {'ratio':>8}  goal"
    lines += [header, "-" * len(header)]
    for m in result.measures:
        ratio = "—" if m.ratio is None else f"{m.ratio:.2f}×"
        label = f"{m.name} ({m.unit})" if m.unit else m.name
        lines.append(
            f"{label:<44} {_fmt(m.baseline):>12} {_fmt(m.value):>12} {ratio:>8}  {m.goal_text()}"
        )
    lines += [f"   note: {note}" for note in result.notes]
    return "\n".join(lines)


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def environment() -> dict[str, Any]:
    """Where and on what the run happened (load included: the machine is shared)."""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _git("rev-parse", "--short", "HEAD"),
        # Changes to the project's tracked files (the harness's own do not count).
        "dirty": bool(
            _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks")
        ),
        "root": str(ROOT),
        "cpus": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_json(results: list[BenchResult], run: dict[str, Any], out: Path | None) -> Path:
    """Write the run's results; by default to ``benchmarks/results/<timestamp>.json``."""
    if out is None:
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = RESULTS / f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = run | {
        "finished": environment(),
        "benchmarks": [r.as_dict() for r in results],
    }
    out.write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n", "utf-8")
    return out


def pct(values: list[float], q: float) -> float | None:
    """The q-quantile (0..1) of ``values`` (nearest rank), None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
