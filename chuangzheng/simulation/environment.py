"""The simulation's surroundings: its inputs, a throw-away roster file and SQLite read
model, and the time-skipping server it runs on (started and shut down unless given)."""

from __future__ import annotations

import csv
import tempfile
import time as wallclock
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import event
from temporalio.testing import WorkflowEnvironment

from activities.db import create_schema, make_engine
from activities.roster_files import read_roster_file
from chuangzheng.settings import repo_root
from chuangzheng.temporal_server import start_time_skipping_env
from domain.organisation import Organisation
from domain.roster_import import ROSTER_HEADERS, organisation_row

from .calendar import load_plan_files
from .driver import DEFAULT_CONCURRENCY, Simulation, say
from .model import BehaviourMix, SimulationError
from .report import SimulationReport

DEFAULT_PLAN = repo_root() / "plans" / "seed-002.yaml"
DEFAULT_ROSTER = repo_root() / "deploy" / "demo" / "roster.csv"
#: seed-002 re-based to today runs into 2027, which only the provisional calendar covers.
DEFAULT_CALENDARS: tuple[Path, ...] = (
    repo_root() / "plans" / "calendars" / "2027-provisional.yaml",
)


def _write_roster(organisations: Sequence[Organisation], path: Path) -> None:
    """A roster CSV of exactly these organisations (what the round workflow will read)."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(ROSTER_HEADERS))
        writer.writeheader()
        for org in organisations:
            writer.writerow(organisation_row(org))


async def simulate(
    plan_path: Path = DEFAULT_PLAN,
    round_plan_id: str | None = None,
    roster_path: Path = DEFAULT_ROSTER,
    *,
    calendar_paths: Sequence[Path] = (),
    seed: int = 1,
    limit: int | None = None,
    mix: BehaviourMix | None = None,
    fill_calendar_gaps: bool = True,
    concurrency: int = DEFAULT_CONCURRENCY,
    env: WorkflowEnvironment | None = None,
    on_message: Callable[[str], None] | None = None,
) -> SimulationReport:
    """Run one round of a plan over a roster in virtual time and report what happened.

    ``round_plan_id`` None takes the plan's first round. ``limit`` keeps the first N
    organisations in the round's scope. ``fill_calendar_gaps`` lets a year with no holiday
    data count as weekends-only (with a warning in the report). ``env``: a running
    time-skipping environment to use; otherwise a private one is started and shut down.
    Either way every workflow this function starts has finished when it returns, so time
    skipping is never left stalled. ``on_message`` receives progress lines in Chinese.

    Bad inputs raise before any server starts: :class:`SimulationError` (Chinese message),
    ``PlanError`` / ``ValidationFailed`` (field errors) or ``OSError``.
    """
    began = wallclock.monotonic()
    plan = load_plan_files(plan_path, calendar_paths)
    try:
        round_plan = plan.round(round_plan_id) if round_plan_id else plan.rounds[0]
    except KeyError as exc:
        raise SimulationError(str(exc.args[0])) from None
    roster = read_roster_file(roster_path)
    in_scope = roster.in_scope(types=round_plan.scope.types, townships=round_plan.scope.townships)
    organisations = in_scope[:limit] if limit is not None else in_scope
    if not organisations:
        raise SimulationError("名册中没有本轮活动范围内的组织")

    with tempfile.TemporaryDirectory(prefix="chuangzheng-sim-") as workdir:
        # The round workflow reads the roster itself: give it exactly the organisations
        # simulated (``limit`` applied).
        roster_file = Path(workdir) / "roster.csv"
        _write_roster(organisations, roster_file)
        engine = make_engine(f"sqlite:///{Path(workdir) / 'readmodel.db'}")
        # A throw-away read model needs no durability; without fsync every commit releases
        # SQLite's single write lock sooner, which the many recording activities queue on.
        event.listen(engine, "connect", _no_fsync)
        create_schema(engine)
        own_env = env is None
        try:
            if env is None:
                say(on_message, "启动时间跳跃测试服务器……")
                env = await start_time_skipping_env()
            simulation = Simulation(
                env,
                engine=engine,
                plan=plan,
                round_plan=round_plan,
                organisations=organisations,
                roster_file=roster_file,
                seed=seed,
                mix=mix or BehaviourMix(),
                concurrency=concurrency,
                on_message=on_message,
            )
            return await simulation.run(fill_calendar_gaps=fill_calendar_gaps, began=began)
        finally:
            if own_env and env is not None:
                await env.shutdown()
            engine.dispose()


def _no_fsync(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA synchronous=OFF")
    finally:
        cursor.close()
