"""The round simulation (``chuangzheng simulate``) and the plan and roster commands.

The simulation starts its own time-skipping server (a separate process), so it neither
needs nor disturbs the session's shared one.
"""

from __future__ import annotations

from pathlib import Path

import pytest_asyncio
from typer.testing import CliRunner

from chuangzheng.cli import app
from chuangzheng.simulation import (
    Behaviour,
    BehaviourMix,
    Conduct,
    SimulationReport,
    render_report,
    simulate,
)
from domain.notices import NoticeKind
from domain.organisation import Role
from domain.phases import WORKING_PHASES, Phase

ROOT = Path(__file__).resolve().parents[1]
DEMO_PLAN = ROOT / "plans" / "demo.yaml"
SEED_PLAN = ROOT / "plans" / "seed-002.yaml"
ROSTER = ROOT / "deploy" / "demo" / "roster.csv"
ORGS = 40


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def demo_report() -> SimulationReport:
    """The demo plan (minutes) over the first 40 organisations of the demo county."""
    return await simulate(DEMO_PLAN, None, ROSTER, seed=7, limit=ORGS)


async def test_every_organisation_completes_the_round(demo_report: SimulationReport) -> None:
    report = demo_report
    assert report.failures == []
    assert report.organisations == ORGS
    assert report.all_completed and not report.closed_early
    assert report.final_phases == {Phase.COMPLETED: ORGS}
    # The default mix, exactly: 15% late, 10% laggards, 8% returned once, one extension.
    expected = {b: n for b, n in BehaviourMix().counts(ORGS).items() if n}
    assert report.behaviours == expected
    for outcome in report.outcomes:
        assert outcome.finished == ORGS, outcome
        assert outcome.unfinished == 0


async def test_outcomes_follow_the_behaviour_mix(demo_report: SimulationReport) -> None:
    report = demo_report
    assert report.outcomes == report.expected_outcomes
    for phase in WORKING_PHASES:
        outcome = report.outcome(phase)
        laggards = report.conduct_count(phase, Conduct.LAGGARD)
        late = report.conduct_count(phase, Conduct.LATE)
        assert outcome.after_rectification == laggards
        assert outcome.late == late
        assert outcome.on_time == ORGS - laggards - late
    # Laggards lagged somewhere, and every laggard organisation is one of them.
    lagging = {s.org_id for s in report.scripts if Conduct.LAGGARD in s.conduct.values()}
    assert lagging == {s.org_id for s in report.scripts if s.behaviour is Behaviour.LAGGARD}
    assert sum(o.after_rectification for o in report.outcomes) >= len(lagging) > 0


async def test_notices_per_rung_match_the_behaviour_mix(demo_report: SimulationReport) -> None:
    report = demo_report
    top = len(report.rung_names) - 1
    for phase in WORKING_PHASES:
        laggards = report.conduct_count(phase, Conduct.LAGGARD)
        # Each rung reaches its addressee (the demo plan's ladder: instructor, guidance group,
        # county office) once per organisation that was still behind when it fired.
        for rung, role in enumerate((Role.INSTRUCTOR, Role.GUIDANCE_GROUP, Role.COUNTY_OFFICE)):
            behind = sum(1 for s in report.scripts if s.rungs_expected[phase] > rung)
            sent = report.notice_total(
                kind=NoticeKind.ESCALATION, rung=rung, phase=phase, recipient_role=role
            )
            assert sent == behind, (phase, rung)
        assert (
            report.notice_total(kind=NoticeKind.ESCALATION, rung=top, phase=phase) == 2 * laggards
        )  # the county office, and a copy to the secretary
        assert report.notice_total(kind=NoticeKind.RECTIFICATION_ORDER, phase=phase) == laggards
        assert report.notice_total(kind=NoticeKind.CIRCULAR, phase=phase) == laggards
        assert report.notice_total(kind=NoticeKind.RECTIFICATION_OVERDUE, phase=phase) == 0
    # The approved extension moved the deadline: nothing escalated for that organisation.
    extended = [s for s in report.scripts if Conduct.EXTENDED in s.conduct.values()]
    assert len(extended) == 1
    assert all(n == 0 for n in extended[0].rungs_expected.values())


async def test_report_renders_in_chinese(demo_report: SimulationReport) -> None:
    text = render_report(demo_report)
    for words in ("动员部署", "评选表彰", "按时完成", "逾期完成", "整改后完成", "到期提醒"):
        assert words in text
    for name in demo_report.rung_names:
        assert name in text
    assert demo_report.virtual_span.total_seconds() > 15 * 60  # the five phases, in minutes


def test_validate_plan_prints_the_deadlines() -> None:
    result = CliRunner().invoke(app, ["validate-plan", str(SEED_PLAN)])
    assert result.exit_code == 0, result.output
    assert "2010-06-30" in result.stdout  # round one's 动员部署 deadline (seed 002)
    assert "动员部署" in result.stdout and "评选表彰" in result.stdout
    assert "round-2" in result.stdout


def test_validate_plan_names_the_broken_field(tmp_path: Path) -> None:
    broken = SEED_PLAN.read_text("utf-8").replace("reminder_lead:", "reminder_leed:", 1)
    plan = tmp_path / "broken.yaml"
    plan.write_text(broken, "utf-8")
    result = CliRunner().invoke(app, ["validate-plan", str(plan)])
    assert result.exit_code == 2
    assert "ladder.reminder_leed" in result.stderr
    assert "不认识的字段" in result.stderr


def test_check_roster_counts_and_refuses_bad_rows(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["check-roster", str(ROSTER)])
    assert result.exit_code == 0, result.output
    assert "共 300 个基层党组织" in result.stdout
    assert "农村" in result.stdout

    bad = tmp_path / "bad.csv"
    lines = ROSTER.read_text("utf-8-sig").splitlines()
    lines[2] = lines[2].replace("街道社区", "外星组织", 1)
    bad.write_text("\n".join(lines), "utf-8")
    result = CliRunner().invoke(app, ["check-roster", str(bad)])
    assert result.exit_code == 2
    assert "第3行·组织类型" in result.stderr


def test_simulate_refuses_an_unknown_round() -> None:
    result = CliRunner().invoke(
        app, ["simulate", "--plan", str(DEMO_PLAN), "--round", "nope", "--limit", "1"]
    )
    assert result.exit_code == 2
    assert "没有轮次 nope" in result.stderr
