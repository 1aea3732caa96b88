"""``chuangzheng what-if ROUND …``: rehearse a draft change over the live county from the
server's command line (the service's database and data directory, as ``python -m
chuangzheng.services.forecast`` uses them) and print both arms and their difference; or,
with ``--apply``, adopt the round's reviewed what-if as its next plan version.

The page (``/ui/what-if``) runs the same rehearsal as a background job; this command waits
for it and prints, for scripts and for measuring (``--json`` gives the whole report).

``--apply`` (采用此方案) goes through the HTTP API as the signed-in account, as ``chuangzheng
plan apply`` does: ``POST /api/v1/rounds/{id}/what-if/apply``, the page's service function
with its refusals (a result made on a plan version no longer in force, a result superseded
by a newer what-if, a township-only extension) and its audit (the account applies the
version). It applies the round's latest finished what-if — the page's or the API's job,
which keeps its result (this command's own rehearsal keeps none) — and ``--job`` names the
one reviewed, so a newer result is refused rather than applied unseen.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from chuangzheng.admin import EXIT_BAD_INPUT, ApiPassword, ApiUrl, ApiUser, bad_input, failure

if TYPE_CHECKING:
    from sqlalchemy import Engine

#: What to give when the service's database is not found (the command reads it in place).
DATABASE_SETTINGS = (
    "请在服务器上按服务的设置运行：给出服务所用的 CZ_DATABASE_URL（或 CZ_DATA_DIR），"
    "或在服务的 .env 所在目录运行"
)


def open_existing_database(url: str) -> Engine:
    """The service's read model, opened without creating anything: a SQLite file that does
    not exist, or a database without the service's tables, exits with 2 saying which
    settings to give; a database that does not answer exits with 1."""
    from sqlalchemy import inspect
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from activities.db import make_engine

    parsed = make_url(url)
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if not database or database == ":memory:":
            bad_input(f"数据库 {shown} 不是服务的数据库文件：{DATABASE_SETTINGS}")
        if not database.startswith("file:"):
            path = Path(database).expanduser()
            if not path.is_file():
                bad_input(f"找不到数据库文件 {path}：{DATABASE_SETTINGS}")
            # Read and written in place, never created (mode=rw: SQLite's own refusal too).
            parsed = parsed.set(
                database=path.resolve().as_uri(),
                query={**parsed.query, "mode": "rw", "uri": "true"},
            )
    engine = make_engine(parsed.render_as_string(hide_password=False))
    try:
        found = inspect(engine).has_table("rounds")
    except SQLAlchemyError as exc:
        engine.dispose()
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())[:200]
        failure(f"无法打开数据库 {shown}：{reason}")
    if not found:
        engine.dispose()
        bad_input(f"数据库 {shown} 中没有本服务的数据（没有轮次表）：{DATABASE_SETTINGS}")
    return engine


def _span(amount: int, minutes: bool) -> dict[str, int]:
    return {"minutes" if minutes else "working_days": amount}


def what_if(
    round_id: Annotated[str, typer.Argument(help="轮次编号")],
    extend: Annotated[str | None, typer.Option(help="延长该阶段的时限（如 mobilisation）")] = None,
    township: Annotated[str | None, typer.Option(help="只延长该乡镇组织的时限")] = None,
    add_rung: Annotated[str | None, typer.Option(help="增加的督办层级名称")] = None,
    recipient: Annotated[str, typer.Option(help="新层级的督办对象")] = "township",
    move_rung: Annotated[str | None, typer.Option(help="调整时点的督办层级名称")] = None,
    rectification_period: Annotated[int | None, typer.Option(help="新的整改期限")] = None,
    amount: Annotated[int, typer.Option("--by", help="延长多少 / 截止后多久督办")] = 5,
    minutes: Annotated[bool, typer.Option(help="计划以分钟计（演示计划）")] = False,
    seed: Annotated[int, typer.Option(help="随机种子（相同种子结果相同）")] = 1,
    batch_size: Annotated[int | None, typer.Option(help="每个推演工作流的组织数")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="输出完整结果（JSON）")] = False,
    reason: Annotated[str, typer.Option(help="理由（--apply 时为采用理由，必填）")] = "",
    apply: Annotated[
        bool,
        typer.Option(
            "--apply", help="采用本轮最新的推演结果（页面或 API 发起的推演），成为计划的新版本"
        ),
    ] = False,
    job: Annotated[
        str | None,
        typer.Option(help="--apply：所审阅的推演编号（默认为最新结果；已被更新的推演取代时拒绝）"),
    ] = None,
    key: Annotated[
        str | None, typer.Option("--key", help="--apply：幂等键，重试时给出同一个，只采用一次")
    ] = None,
    api: ApiUrl = None,
    user: ApiUser = None,
    password: ApiPassword = None,
) -> None:
    """推演：在全县当前状态上比较调整与不调整本轮计划的结果（不改变任何实际数据）；
    --apply：采用已审阅的推演结果，成为本轮计划的新版本（经 API，以所登录账号审计）。"""
    if apply:
        if extend or add_rung or move_rung or rectification_period is not None:
            typer.echo(
                "--apply 采用的是已审阅的推演结果，不能同时给出调整选项"
                "（--extend、--add-rung、--move-rung、--rectification-period）",
                err=True,
            )
            raise typer.Exit(code=EXIT_BAD_INPUT)
        _apply(round_id, job=job, reason=reason, key=key, api=api, user=user, password=password)
        return
    from activities.db import session_factory
    from chuangzheng.services.errors import ServiceError
    from chuangzheng.services.what_if import live_county, parse_change, rehearse_live
    from chuangzheng.settings import get_settings
    from domain.phases import WORKING_PHASES

    change: dict[str, Any]
    if extend:
        change = {
            "kind": "extend_phase",
            "phase": extend,
            "township": township,
            "by": _span(amount, minutes),
        }
    elif add_rung:
        change = {
            "kind": "add_rung",
            "rung_name": add_rung,
            "recipient": recipient,
            "delay": _span(amount, minutes),
        }
    elif move_rung:
        change = {"kind": "move_rung", "rung_name": move_rung, "delay": _span(amount, minutes)}
    elif rectification_period is not None:
        change = {
            "kind": "rectification_period",
            "period": _span(rectification_period, minutes),
        }
    else:
        typer.echo(
            "请给出一项调整：--extend、--add-rung、--move-rung 或 --rectification-period",
            err=True,
        )
        raise typer.Exit(code=EXIT_BAD_INPUT)
    change["reason"] = reason
    settings = get_settings()
    engine = open_existing_database(settings.database_url)
    try:
        draft = parse_change(change)
        with session_factory(engine)() as session:
            live = live_county(
                session, round_id, now=datetime.now(UTC), data_dir=Path(settings.data_dir)
            )
        report = asyncio.run(
            rehearse_live(
                live,
                draft,
                seed=seed,
                batch_size=batch_size,
                on_message=lambda m: typer.echo(m, err=True),
            )
        )
    except ServiceError as exc:
        typer.echo(exc.message, err=True)
        for error in exc.errors:
            typer.echo(f"  {error.get('field')}：{error.get('reason')}", err=True)
        raise typer.Exit(code=EXIT_BAD_INPUT) from None
    finally:
        engine.dispose()
    if json_out:
        sys.stdout.write(report.model_dump_json(indent=2) + "\n")
        return
    typer.echo(
        f"推演：{report.description}（{report.organisations} 个组织，种子 {seed}，"
        f"用时 {report.wall_seconds:.1f} 秒）"
    )
    typer.echo("阶段      按时（不调整→调整）  逾期        整改后")
    for phase in WORKING_PHASES:
        a, b = report.unchanged.phase(phase), report.changed.phase(phase)
        typer.echo(
            f"{phase.label}  {a.on_time:>5}→{b.on_time:<5}  {a.late:>4}→{b.late:<4}  "
            f"{a.after_rectification:>4}→{b.after_rectification:<4}"
        )
    typer.echo("通知（自现在起）")
    for n in report.difference.notices:
        typer.echo(f"  {n.label}：{n.unchanged} → {n.changed}（{n.difference:+d}）")
    typer.echo(f"结果变化的组织：{report.difference.organisations_affected} 个")


def _apply(
    round_id: str,
    *,
    job: str | None,
    reason: str,
    key: str | None,
    api: str | None,
    user: str | None,
    password: str | None,
) -> None:
    """采用此方案 through the API (see the module): show what is adopted, then apply it once
    per key. Every refusal prints the API's Chinese message and fields and exits with 2."""
    from chuangzheng.admin import _check, _client

    idempotency_key = key or f"cli-{uuid.uuid4()}"
    with _client(api, user, password) as client:
        view = _check(client.get(f"/api/v1/rounds/{round_id}/what-if"))
        result = view.get("result")
        if not result:
            typer.echo("本轮尚无推演结果，请先在推演页面或经 API 推演", err=True)
            raise typer.Exit(code=EXIT_BAD_INPUT)
        # The reviewed one: named, or the latest shown here (its id is sent, so a result
        # that replaces it between this read and the post is refused, not applied).
        job_id = job or str(result.get("job_id", ""))
        if result.get("job_id") == job_id:
            typer.echo(
                f"采用推演结果 {job_id}：{result['description']}"
                f"（第{result.get('plan_version')}版计划上推演，{result['organisations']} 个组织）",
                err=True,
            )
        answer = _check(
            client.post(
                f"/api/v1/rounds/{round_id}/what-if/apply",
                json={"job_id": job_id, "reason": reason, "idempotency_key": idempotency_key},
            )
        )
    if answer["applied"]:
        typer.echo(f"已采用推演方案，启用计划第{answer['version']}版（幂等键 {idempotency_key}）：")
    else:
        typer.echo(f"此前已采用（同一幂等键），无新调整：计划第{answer['version']}版")
    for change in answer["changes"] or ["无调整"]:
        typer.echo(f"  - {change}")
