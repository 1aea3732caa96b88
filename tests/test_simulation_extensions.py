"""The simulated secretary asks only for extensions the rules allow.

An extension may not reach the next phase's deadline (``domain.schedule.
check_extended_deadline``): on the demo plan, whose later phases last three minutes, asking
for the deadline plus the whole ladder and a margin was refused, one organisation never
finished and ``chuangzheng simulate --plan plans/demo.yaml --limit 10`` ended "未全部完成"
with the summary blaming a busy machine.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from activities.roster_files import read_roster_file
from chuangzheng.simulation import Behaviour, SimulationReport, load_plan_files, simulate
from chuangzheng.simulation.calendar import resolve_with_gaps
from chuangzheng.simulation.model import ActionKind
from chuangzheng.simulation.render import render_report
from chuangzheng.simulation.scripts import Scripter
from chuangzheng.simulation.timing import MINUTE_STEP, Timing
from domain.phases import Phase
from domain.schedule import check_extended_deadline

ROOT = Path(__file__).resolve().parents[1]
DEMO_PLAN = ROOT / "plans" / "demo.yaml"
SEED_PLAN = ROOT / "plans" / "seed-002.yaml"
PROVISIONAL = ROOT / "plans" / "calendars" / "2027-provisional.yaml"
ROSTER = ROOT / "deploy" / "demo" / "roster.csv"


def _extensions(plan_file: Path, calendars: list[Path], seeds: range) -> int:
    """Script an extension-asking organisation for every seed; check each extension it asks
    for against the rule; the number checked."""
    plan = load_plan_files(plan_file, calendars)
    round_plan = plan.rounds[0]
    starts_at = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    plan, schedule = resolve_with_gaps(plan, round_plan, starts_at, fill_gaps=True, warnings=[])
    round_plan = plan.round(round_plan.id)
    calendar = schedule.calendar or plan.calendar.build()
    timing = Timing(plan.ladder_for(round_plan), calendar)
    deadlines = [(w.phase, w.deadline) for w in schedule.windows]
    org = read_roster_file(ROSTER).organisations[0]
    checked = 0
    for seed in seeds:
        scripter = Scripter(timing, schedule, random.Random(seed), starts_at)
        script = scripter.script(org, Behaviour.EXTENSION)
        asked = [a for a in script.actions if a.kind is ActionKind.REQUEST_EXTENSION]
        assert len(asked) == 1, script
        action = asked[0]
        assert action.new_deadline is not None
        # Raises DomainError (invalid_deadline) for an extension the round would refuse.
        check_extended_deadline(deadlines, action.phase, action.new_deadline, field="x")
        finish = next(a for a in script.actions if a.phase is action.phase and a.at > action.at)
        assert finish.at < action.new_deadline
        checked += 1
    return checked


def test_extensions_on_the_demo_plan_stay_before_the_next_deadline() -> None:
    assert _extensions(DEMO_PLAN, [], range(200)) == 200


def test_extensions_on_the_working_day_plan_stay_before_the_next_deadline() -> None:
    assert _extensions(SEED_PLAN, [PROVISIONAL], range(40)) == 40


def test_no_extension_when_the_next_phase_leaves_no_room() -> None:
    """Against a next deadline that leaves no room the timing offers none, and never one
    that reaches the next deadline."""
    plan = load_plan_files(DEMO_PLAN, [])
    round_plan = plan.rounds[0]
    starts_at = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    plan, schedule = resolve_with_gaps(plan, round_plan, starts_at, fill_gaps=True, warnings=[])
    timing = Timing(plan.ladder_for(round_plan), plan.calendar.build())
    windows = {w.phase: w.deadline for w in schedule.windows}
    deadline = windows[Phase.PUBLIC_EVALUATION]
    capped = timing.extended_deadline(deadline, windows[Phase.COMMENDATION])
    assert capped is not None and deadline < capped < windows[Phase.COMMENDATION]
    assert timing.extended_deadline(deadline, deadline) is None
    # The last phase has no next deadline: the full extension.
    last = windows[Phase.COMMENDATION]
    assert timing.extended_deadline(last) == timing.extended_deadline(last, None)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_the_demo_plan_simulation_finishes_every_organisation(seed: int) -> None:
    """``chuangzheng simulate --plan plans/demo.yaml --limit 10`` (time-skipping server):
    every organisation finishes, the extension is granted, nothing is refused."""
    report: SimulationReport = await simulate(DEMO_PLAN, None, ROSTER, seed=seed, limit=10)
    text = render_report(report)
    assert report.failures == [], text
    assert report.all_completed and not report.closed_early, text
    assert report.final_phases == {Phase.COMPLETED: 10}, text
    assert report.behaviours.get(Behaviour.EXTENSION) == 1, text
    assert report.outcomes == report.expected_outcomes, text
    assert "全部 10 个组织完成五个阶段" in text
    assert "操作被拒绝" not in text and "机器繁忙" not in text


async def test_a_refusal_by_the_rules_is_not_blamed_on_the_machine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Had the secretary asked for too much (the old request: the deadline plus the ladder
    and a margin, up to the next phase's deadline), the refusal is reported as a refusal by
    the rules, not as a busy machine."""

    def too_far(
        self: Timing, deadline: datetime, next_deadline: datetime | None = None
    ) -> datetime:
        return deadline + (self.top_units + 3) * MINUTE_STEP

    monkeypatch.setattr(Timing, "extended_deadline", too_far)
    report = await simulate(DEMO_PLAN, None, ROSTER, seed=1, limit=10)
    text = render_report(report)
    assert report.failures and "invalid_deadline" in report.failures[0], text
    assert "有操作被规则拒绝" in text and "机器繁忙" not in text
