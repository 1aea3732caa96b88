"""The ``chuangzheng`` command line (console script declared in pyproject).

Commands stay thin: they parse options, call the project's modules and print. Heavy imports
(Temporal, SQLAlchemy, the worker) happen inside the commands that need them, so ``--help``
and the plan and roster checks start fast.

Adding commands from another module: write a ``typer.Typer()`` there (e.g.
``chuangzheng/db_cli.py`` with ``app = typer.Typer(help="…")``) and register it below with
``app.add_typer(db_app, name="db")``; or decorate plain functions with ``@app.command()``
after importing ``app`` from here. Keep module-level imports light either way.

Exit codes: 0 success, 2 bad input (plan, calendar, roster, options) and a refused
configuration or schema at start, 1 anything else (Temporal unreachable at start included).
A refusal at start (``chuangzheng.bootstrap.StartupRefused``: the ``CZ_*`` settings, a
database not at the migrations' head, Temporal) is printed as its reason, never as a
traceback (:class:`_Commands`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections import Counter
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

if TYPE_CHECKING:
    from domain.errors import FieldError
    from domain.plan import CampaignPlan

#: Exit code for bad input, the same that click uses for usage errors.
EXIT_BAD_INPUT = 2


class _Commands(TyperGroup):
    """Every command, with a refusal at start shown as its reason: settings validation
    errors (one line per variable), a database not at the migrations' head, Temporal
    unreachable (``chuangzheng.bootstrap.as_refusal``), then the refusal's exit code."""

    def invoke(self, ctx: Any) -> Any:  # typer's own click Context (typer._click)
        try:
            return super().invoke(ctx)
        except Exception as exc:
            from chuangzheng.bootstrap import as_refusal, report_refusal

            refusal = as_refusal(exc)
            if refusal is None:
                raise
            report_refusal(refusal)
            _hard_exit(refusal.exit_code)
            raise typer.Exit(code=refusal.exit_code) from None


app = typer.Typer(
    cls=_Commands,
    name="chuangzheng",
    help=(
        "创先争优活动：校验计划、检查名册、模拟整轮、工作进程；"
        "经 API 导入名册、启动轮次、查看状态。"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _fail(title: str, errors: list[FieldError] | None = None, detail: str = "") -> typer.Exit:
    """Print a Chinese error with every field error on stderr; the caller raises the result."""
    typer.echo(title, err=True)
    for error in errors or []:
        typer.echo(f"  {error.field}：{error.reason}", err=True)
    if detail:
        typer.echo(f"  {detail}", err=True)
    return typer.Exit(code=EXIT_BAD_INPUT)


def _hard_exit(code: int) -> None:
    """End the process without interpreter teardown, when this process is the console script.

    The Temporal SDK's Rust threads can abort the interpreter while it finalises
    ("Fatal Python error: PyGILState_Release", temporalio/sdk-python#300), turning a
    successful run into exit code 134. Skipping teardown avoids it; it is only done when
    stdout is the real one, so in-process callers (tests, ``CliRunner``) are unaffected.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    if sys.stdout is sys.__stdout__ and sys.stderr is sys.__stderr__:
        os._exit(code)


def _quiet_logging(verbose: bool) -> None:
    """Warnings only (the worker logs every activity at INFO), unless asked for more.

    The Temporal SDK's Rust core logs to stdout on its own, e.g. a warning that the test
    server lacks a capability; outside ``--verbose`` only its errors may interleave with the
    report. Must run before anything uses the SDK's default runtime.
    """
    from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

    from chuangzheng.logging import configure_logging
    from chuangzheng.settings import get_settings

    settings = get_settings()
    configure_logging(settings.model_copy(update={"log_level": "INFO" if verbose else "WARNING"}))
    if not verbose:
        # A recording activity that found SQLite locked is retried and succeeds; its
        # traceback would drown the report.
        logging.getLogger("temporalio.activity").setLevel(logging.ERROR)
        telemetry = TelemetryConfig(
            logging=LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))
        )
        Runtime.set_default(Runtime(telemetry=telemetry), error_if_already_set=False)


# ----- validate-plan -------------------------------------------------------------------------
def _deadline_lines(
    plan: CampaignPlan, start: date | None = None, round_id: str | None = None
) -> list[str]:
    """Each round's phase deadlines, in Asia/Shanghai: at its planned start, or kicked off on
    ``start`` (re-based). Raises ``PlanError`` naming the year a round reaches with no
    calendar data, as the API does at kick-off."""
    from datetime import datetime, time

    from domain.calendar import SHANGHAI, deadline_wording
    from domain.plan_loader import resolve_kickoff

    lines = [f"计划：{plan.name}（{plan.id}），共 {len(plan.rounds)} 个轮次"]
    for round_plan in plan.rounds:
        if round_id is not None and round_plan.id != round_id:
            continue
        day = start or round_plan.starts_on
        kicked_off_at = datetime.combine(day, time(9, 0), SHANGHAI)
        schedule = resolve_kickoff(plan, round_plan.id, kicked_off_at, field="--start")
        lines.append(f"{round_plan.name}（{round_plan.id}），{day} 开始：")
        for window, phase_plan in zip(schedule.windows, round_plan.phases, strict=True):
            span = phase_plan.duration
            when = deadline_wording(window.deadline, "%Y-%m-%d")
            length = f"（{span.describe()}）" if span is not None else "（指定日期）"
            lines.append(f"  {window.phase.label}  截止 {when}{length}")
    return lines


@app.command("validate-plan")
def validate_plan(
    plan: Annotated[Path, typer.Argument(help="计划文件（YAML），如 plans/seed-002.yaml")],
    calendar: Annotated[
        list[Path] | None,
        typer.Option("--calendar", help="补充日历文件，可多次给出（如 2027 年暂定日历）"),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option("--start", help="按此日期（YYYY-MM-DD）启动轮次计算截止时间（改期开展）"),
    ] = None,
    round_id: Annotated[str | None, typer.Option("--round", help="只列出该轮次")] = None,
) -> None:
    """校验计划文件，列出各轮次各阶段的截止时间（北京时间）。"""
    from chuangzheng.simulation import load_plan_files
    from domain.errors import FieldError, PlanError

    try:
        starts_on = date.fromisoformat(start) if start is not None else None
    except ValueError:
        raise _fail("选项有误：", [FieldError("--start", "日期格式应为 YYYY-MM-DD")]) from None
    try:
        loaded = load_plan_files(plan, calendar or [])
        if round_id is not None and round_id not in {r.id for r in loaded.rounds}:
            raise PlanError([FieldError("--round", "计划中没有该轮次")])
        lines = _deadline_lines(loaded, starts_on, round_id)
    except PlanError as exc:
        raise _fail(f"计划文件 {plan} 有误：", exc.errors) from None
    except OSError as exc:
        raise _fail(f"无法读取文件：{exc.filename or plan}", detail=exc.strerror or "") from None
    typer.echo("\n".join(lines))
    if starts_on is not None:
        note = _past_start_note(starts_on)
        if note:
            typer.echo(note, err=True)


def _past_start_note(starts_on: date) -> str | None:
    """A note when rounds started on ``starts_on`` would be refused: the API and the pages
    refuse a round that starts before today, Asia/Shanghai (the day rule of
    ``chuangzheng.services.rounds.retroactive_start``; a minute-scale plan started on an
    earlier day has every deadline behind it, its other rule). validate-plan only checks
    the plan and lists the deadlines, so it still exits 0."""
    from datetime import datetime

    from domain.calendar import SHANGHAI

    today = datetime.now(SHANGHAI).date()
    if starts_on >= today:
        return None
    return (
        f"注意：开始日期 {starts_on} 早于今天（北京时间 {today}），经 API 或页面创建这样的轮次"
        "会被拒绝（开始时间不能早于今天）；以上截止时间仅供核对计划。"
    )


# ----- check-roster --------------------------------------------------------------------------
@app.command("check-roster")
def check_roster(
    file: Annotated[Path, typer.Argument(help="组织名册（.csv 或 .xlsx，第 1 行为表头）")],
) -> None:
    """检查组织名册，按乡镇和组织类型统计；有错误时逐行列出。"""
    from activities.roster_files import read_roster_file
    from domain.errors import ValidationFailed

    try:
        roster = read_roster_file(file)
    except ValidationFailed as exc:
        raise _fail(f"名册 {file} 有 {len(exc.errors)} 处错误：", exc.errors) from None
    except OSError as exc:
        raise _fail(f"无法读取文件：{exc.filename or file}", detail=exc.strerror or "") from None
    organisations = roster.organisations
    typer.echo(f"名册 {file}：共 {len(organisations)} 个基层党组织")
    typer.echo("按乡镇（街道）：")
    by_township = Counter(o.township for o in organisations)
    for township in roster.townships():
        typer.echo(f"  {township}  {by_township[township]}")
    typer.echo("按组织类型：")
    for org_type, count in Counter(o.type for o in organisations).most_common():
        typer.echo(f"  {org_type.label}  {count}")


# ----- simulate ------------------------------------------------------------------------------
class _Progress:
    """Prints the simulation's progress lines on stderr.

    Logging is configured at the first line, i.e. once the inputs have been accepted and a
    server is really starting, so a refused command leaves the process's logging alone.
    """

    def __init__(self, verbose: bool) -> None:
        self._verbose = verbose
        self._started = False

    def __call__(self, message: str) -> None:
        if not self._started:
            self._started = True
            _quiet_logging(self._verbose)
        typer.echo(message, err=True)


@app.command("simulate")
def simulate(
    plan: Annotated[Path | None, typer.Option(help="计划文件（默认 plans/seed-002.yaml）")] = None,
    round_id: Annotated[
        str | None, typer.Option("--round", help="计划中的轮次编号（默认第一个轮次）")
    ] = None,
    roster: Annotated[
        Path | None, typer.Option(help="组织名册（默认 deploy/demo/roster.csv）")
    ] = None,
    calendar: Annotated[
        list[Path] | None,
        typer.Option(
            "--calendar",
            help="补充日历文件，可多次给出（默认 plans/calendars/2027-provisional.yaml）",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="随机种子：相同种子得到相同的模拟")] = 1,
    limit: Annotated[int | None, typer.Option(min=1, help="只模拟名册中前 N 个组织")] = None,
    late: Annotated[float, typer.Option(min=0, max=1, help="逾期完成的组织比例")] = 0.15,
    laggard: Annotated[float, typer.Option(min=0, max=1, help="整改通知后才完成的组织比例")] = 0.10,
    returned: Annotated[
        float, typer.Option(min=0, max=1, help="材料被退回一次后重交的组织比例")
    ] = 0.08,
    extensions: Annotated[int, typer.Option(min=0, help="申请并获批延期的组织数")] = 1,
    strict_calendar: Annotated[
        bool,
        typer.Option(
            "--strict-calendar",
            help="缺少某年节假日数据时报错，而不是按“仅周末休息”模拟",
        ),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="输出工作进程日志")] = False,
) -> None:
    """在虚拟时间中模拟一整轮活动，按阶段统计按时/逾期/整改后完成数和各级通知数。"""
    from pydantic import ValidationError

    from chuangzheng import simulation
    from domain.errors import ValidationFailed

    try:
        mix = simulation.BehaviourMix(
            late=late, laggard=laggard, returned=returned, extensions=extensions
        )
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise _fail("行为比例有误：", detail=reason) from None
    calendars = simulation.DEFAULT_CALENDARS if calendar is None else tuple(calendar)
    try:
        report = asyncio.run(
            simulation.simulate(
                plan or simulation.DEFAULT_PLAN,
                round_id,
                roster or simulation.DEFAULT_ROSTER,
                calendar_paths=calendars,
                seed=seed,
                limit=limit,
                mix=mix,
                fill_calendar_gaps=not strict_calendar,
                on_message=_Progress(verbose),
            )
        )
    except ValidationFailed as exc:  # PlanError and roster errors
        raise _fail("输入有误：", exc.errors) from None
    except simulation.SimulationStalled as exc:
        typer.echo(f"模拟中止：{exc}", err=True)
        _hard_exit(1)
        raise typer.Exit(code=1) from None
    except simulation.SimulationError as exc:
        raise _fail(f"无法模拟：{exc}") from None
    except OSError as exc:
        raise _fail(f"无法读取文件：{exc.filename}", detail=exc.strerror or "") from None
    typer.echo(simulation.render_report(report))
    code = 0 if report.all_completed and not report.failures else 1
    _hard_exit(code)
    if code:
        raise typer.Exit(code=code)


# ----- worker --------------------------------------------------------------------------------
@app.command("worker")
def worker(
    role: Annotated[
        str | None,
        typer.Option(
            "--role",
            help=(
                "只处理工作流任务（workflows）、只执行活动（activities）或两者（all）；"
                "默认取 CZ_WORKER_ROLE（all）"
            ),
        ),
    ] = None,
) -> None:
    """运行工作进程（连接配置中的 Temporal 服务；SIGTERM/Ctrl-C 时先处理完手头任务再停止）。"""
    # The settings module is imported here, not at the top: --help stays fast.
    from chuangzheng.settings import WorkerRole

    chosen: WorkerRole | None = None
    if role is not None:
        try:
            chosen = WorkerRole(role.strip().lower())
        except ValueError:
            choices = "、".join(r.value for r in WorkerRole)
            raise _fail(f"--role：未知的工作进程角色 {role!r}，可选 {choices}") from None
    from worker import main

    main(chosen)
    _hard_exit(0)


# ----- api -----------------------------------------------------------------------------------
@app.command("api")
def api() -> None:
    """运行 API 服务（uvicorn，监听 CZ_API_HOST:CZ_API_PORT；SIGTERM/Ctrl-C 时限时处理完请求）。"""
    from chuangzheng.bootstrap import serve_api

    code = serve_api()
    _hard_exit(code)
    if code:
        raise typer.Exit(code=code)


# ----- migrate -------------------------------------------------------------------------------
@app.command("migrate")
def migrate(
    check: Annotated[
        bool, typer.Option("--check", help="只检查数据库结构是否为本版本所需，不迁移")
    ] = False,
    wait: Annotated[
        float,
        typer.Option(
            "--wait", min=0, help="与 --check 同用：最多等待这么多秒，直到迁移完成（初始化容器）"
        ),
    ] = 0.0,
) -> None:
    """把数据库迁移到本版本的结构（alembic upgrade head）；API 和工作进程启动前须先运行。"""
    from chuangzheng.bootstrap import (
        SchemaNotCurrent,
        load_settings,
        migrate_database,
        wait_for_schema,
    )

    settings = load_settings()
    if check:
        state = wait_for_schema(settings, timeout=wait, interval=2.0)
        typer.echo(f"数据库结构已是本版本所需的 {state.describe()} (schema at head)")
        return
    before, after = migrate_database(settings)
    if not after.at_head:  # pragma: no cover - alembic raises first
        raise SchemaNotCurrent(after)
    if before.at_head:
        typer.echo(f"数据库结构已是最新：{after.describe()} (schema already at head)")
    else:
        typer.echo(f"数据库结构：{before.describe()} → {after.describe()} (migrated)")


# ----- administration through the API (scoped, audited, idempotent like the UI) -------------
def _register_admin() -> None:
    from chuangzheng.admin import import_roster, start_round, status

    app.command("import-roster")(import_roster)
    app.command("start-round")(start_round)
    app.command("status")(status)


_register_admin()


def _register_accounts() -> None:
    from chuangzheng.accounts_cli import app as accounts_app

    app.add_typer(accounts_app, name="accounts")


_register_accounts()


def _register_plan() -> None:
    from chuangzheng.plan_cli import app as plan_app

    app.add_typer(plan_app, name="plan")


_register_plan()


def _register_what_if() -> None:
    from chuangzheng.what_if_cli import what_if

    app.command("what-if")(what_if)


_register_what_if()


def _register_check_names() -> None:
    from chuangzheng.names_cli import check_names_command

    app.command("check-names")(check_names_command)


_register_check_names()


if __name__ == "__main__":
    app()
