"""``chuangzheng what-if ROUND …``: rehearse a draft change over the live county from the
server's command line (the service's database and data directory, as ``python -m
chuangzheng.services.forecast`` uses them) and print both arms and their difference.

The page (``/ui/what-if``) runs the same rehearsal as a background job; this command waits
for it and prints, for scripts and for measuring (``--json`` gives the whole report).
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

EXIT_BAD_INPUT = 2


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
    reason: Annotated[str, typer.Option(help="理由")] = "",
) -> None:
    """推演：在全县当前状态上比较调整与不调整本轮计划的结果（不改变任何实际数据）。"""
    from activities.db import make_engine, session_factory
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
    engine = make_engine(settings.database_url)
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
