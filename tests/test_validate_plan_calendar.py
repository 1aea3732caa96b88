"""``chuangzheng validate-plan``: the same schedule the API and the workflow compute, and a
start that reaches a year with no holiday data refused with the year named."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from chuangzheng.cli import app

ROOT = Path(__file__).resolve().parents[1]
SEED_PLAN = ROOT / "plans" / "seed-002.yaml"
PROVISIONAL = ROOT / "plans" / "calendars" / "2027-provisional.yaml"


def test_validate_plan_lands_both_rounds_before_qiyi() -> None:
    result = CliRunner().invoke(app, ["validate-plan", str(SEED_PLAN)])
    assert result.exit_code == 0, result.output
    assert "评选表彰  截止 2011-06-30 24:00" in result.stdout
    assert "评选表彰  截止 2012-06-29 24:00" in result.stdout


def test_a_rebased_start_into_a_year_without_data_is_refused_naming_the_year() -> None:
    result = CliRunner().invoke(
        app, ["validate-plan", str(SEED_PLAN), "--start", "2026-11-30", "--round", "round-2"]
    )
    assert result.exit_code == 2
    assert "--start：2027年没有法定节假日与调休数据" in result.stderr
    # Chosen explicitly, the provisional calendar covers 2027.
    chosen = CliRunner().invoke(
        app,
        [
            "validate-plan",
            str(SEED_PLAN),
            "--start",
            "2026-11-30",
            "--round",
            "round-2",
            "--calendar",
            str(PROVISIONAL),
        ],
    )
    assert chosen.exit_code == 0, chosen.output
    assert "2026-11-30 开始" in chosen.stdout
    assert "2027-12-08 24:00" in chosen.stdout


def test_bad_start_and_round_options_name_the_option() -> None:
    bad = CliRunner().invoke(app, ["validate-plan", str(SEED_PLAN), "--start", "2026-13-01"])
    assert bad.exit_code == 2 and "--start：日期格式应为 YYYY-MM-DD" in bad.stderr
    unknown = CliRunner().invoke(app, ["validate-plan", str(SEED_PLAN), "--round", "round-9"])
    assert unknown.exit_code == 2 and "--round：计划中没有该轮次" in unknown.stderr
