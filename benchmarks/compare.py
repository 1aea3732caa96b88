"""Before/after tables in Markdown from result files of ``python -m benchmarks``:

    python -m benchmarks.compare BEFORE.json [BEFORE2.json …] -- AFTER.json [AFTER2.json …]

Each side may be several files (benchmarks run separately); a benchmark's row is matched by
its name and the measure's name and unit. Prints, per benchmark, measure | goal | before
(campaign, baseline, ratio) | after (campaign, baseline, ratio)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _load(paths: list[str]) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    benches: dict[str, dict[str, Any]] = {}
    runs = []
    for path in paths:
        data = json.loads(Path(path).read_text("utf-8"))
        runs.append(data["started"] | {"file": path})
        for bench in data["benchmarks"]:
            bench["run"] = data["started"]
            benches[bench["name"]] = bench
    return benches, runs


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def _cell(m: dict[str, Any] | None) -> str:
    if m is None:
        return "not run |  |"
    ratio = "—" if m["ratio"] is None else f"{m['ratio']:.2f}×"
    mark = {True: " ✓", False: " ✗", None: ""}[m["met"]]
    return f"{_num(m['value'])} | {_num(m['baseline'])} | {ratio}{mark}"


def _goal(m: dict[str, Any]) -> str:
    if m["goal"] is None:
        return ""
    bound = f"{m['goal']:g}×" if m["goal_on"] == "ratio" else f"{m['goal']:g} {m['unit']}"
    return f"{m['goal_op']} {bound}".replace("<=", "≤").replace(">=", "≥")


def render(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> str:
    lines = []
    for name in dict.fromkeys([*before, *after]):
        b, a = before.get(name), after.get(name)
        lines.append(f"\n### {name}\n")
        for side, bench in (("before", b), ("after", a)):
            if bench is not None:
                run = bench["run"]
                params = ", ".join(f"{k}={v}" for k, v in bench["params"].items())
                load = run["load_average"][0]
                lines.append(
                    f"- {side}: commit `{run['commit']}`{' (dirty)' if run['dirty'] else ''}, "
                    f"{run['date']}, load {load:.1f}, {params}"
                    + (f"; FAILED: {bench['error']}" if bench["error"] else "")
                )
        lines.append("")
        lines.append("| measure | goal | before | baseline | ratio | after | baseline | ratio |")
        lines.append("|---|---|--:|--:|--:|--:|--:|--:|")
        keys: dict[tuple[str, str], None] = {}
        for bench in (b, a):
            for m in (bench or {}).get("measures", []):
                keys[(m["name"], m["unit"])] = None
        for key in keys:
            mb = next(
                (m for m in (b or {}).get("measures", []) if (m["name"], m["unit"]) == key), None
            )
            ma = next(
                (m for m in (a or {}).get("measures", []) if (m["name"], m["unit"]) == key), None
            )
            label = f"{key[0]} ({key[1]})" if key[1] else key[0]
            goal = _goal(mb or ma or {"goal": None})
            lines.append(f"| {label} | {goal} | {_cell(mb)} | {_cell(ma)} |")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    if "--" not in argv:
        raise SystemExit(__doc__)
    cut = argv.index("--")
    before, _ = _load(argv[:cut])
    after, _ = _load(argv[cut + 1 :])
    print(render(before, after))


if __name__ == "__main__":
    main(sys.argv[1:])
