"""Run every test module of the suite alone, each in a pytest process of its own.

Issue 13, item 14: every test sets up what it needs, so each module passes without the others
having run first. Not part of ``make test`` (it starts every session fixture once per module
and takes far longer than the suite); run it by hand or nightly::

    .venv/bin/python tests/each_alone.py                  # every tests/**/test_*.py
    .venv/bin/python tests/each_alone.py tests/workflows  # the modules under some paths
    .venv/bin/python tests/each_alone.py --report alone.json -- -x

Arguments after ``--`` go to every pytest run. The exit status is 1 if any module failed
(pytest's own status, including 5: nothing collected). A line per module is printed as it
ends, and a summary at the end; ``--report`` also writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class ModuleRun:
    """One module's pytest run."""

    module: str
    status: int
    seconds: float
    summary: str

    @property
    def passed(self) -> bool:
        return self.status == 0


def modules(paths: list[str]) -> list[Path]:
    """The test modules under ``paths`` (files or directories), sorted, relative to ROOT."""
    found: set[Path] = set()
    for given in paths or ["tests"]:
        path = (ROOT / given).resolve()
        if path.is_file():
            found.add(path)
        else:
            found.update(path.rglob("test_*.py"))
    return sorted(p.relative_to(ROOT) for p in found)


def last_line(output: str) -> str:
    """pytest's closing summary line (``3 passed in 1.2s``), or the last line there is."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        if " in " in line and any(
            word in line for word in ("passed", "failed", "error", "skipped", "no tests")
        ):
            return line.strip("= ")
    return lines[-1] if lines else ""


def run_alone(module: Path, pytest_args: list[str], timeout: float) -> tuple[ModuleRun, str]:
    """Run ``module`` in a pytest process of its own; its record and its whole output."""
    command = [
        str(Path(sys.executable).parent / "pytest"),
        "-q",
        "-p",
        "no:cacheprovider",
        "--timeout",
        "600",
        *pytest_args,
        str(module),
    ]
    began = time.monotonic()
    try:
        done = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )
        status, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as expired:
        out = expired.stdout or b""
        output = out.decode() if isinstance(out, bytes) else out
        status, output = -1, output + f"\n(killed after {timeout:.0f} s)"
    seconds = time.monotonic() - began
    return ModuleRun(str(module), status, round(seconds, 1), last_line(output)), output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", help="files or directories (default: tests)")
    parser.add_argument("--report", type=Path, help="write the records as JSON here")
    parser.add_argument("--logs", type=Path, help="keep each failed module's output here")
    parser.add_argument(
        "--module-timeout", type=float, default=1800.0, help="kill a module's run after this"
    )
    args, rest = parser.parse_known_args(argv)
    pytest_args = [a for a in rest if a != "--"]

    runs: list[ModuleRun] = []
    targets = modules(args.paths)
    began = time.monotonic()
    for index, module in enumerate(targets, 1):
        record, output = run_alone(module, pytest_args, args.module_timeout)
        runs.append(record)
        mark = "ok  " if record.passed else f"FAIL({record.status})"
        print(
            f"[{index}/{len(targets)}] {mark} {record.seconds:7.1f}s {module}  {record.summary}",
            flush=True,
        )
        if not record.passed and args.logs:
            args.logs.mkdir(parents=True, exist_ok=True)
            name = str(module).replace("/", "__")
            (args.logs / f"{name}.log").write_text(output, encoding="utf-8")
    failed = [r for r in runs if not r.passed]
    total = time.monotonic() - began
    print(f"\n{len(runs) - len(failed)} of {len(runs)} modules pass alone ({total:.0f} s)")
    for record in failed:
        print(f"  FAILED alone: {record.module} (status {record.status}): {record.summary}")
    if args.report:
        args.report.write_text(
            json.dumps([asdict(r) for r in runs], ensure_ascii=False, indent=1), encoding="utf-8"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
