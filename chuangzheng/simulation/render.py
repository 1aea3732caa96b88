"""The report as Chinese text tables (what ``chuangzheng simulate`` prints)."""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta

from domain.calendar import SHANGHAI
from domain.notices import NoticeKind
from domain.organisation import Role
from domain.phases import WORKING_PHASES, Phase
from domain.state import Outcome

from .model import Behaviour
from .report import NoticeCount, SimulationReport

OUTCOME_LABELS: dict[Outcome, str] = {
    Outcome.ON_TIME: "按时完成",
    Outcome.LATE: "逾期完成",
    Outcome.AFTER_RECTIFICATION: "整改后完成",
}

#: Who receives the notices of the kinds that go to one addressee (shown beside the kind).
_ADDRESSEES: dict[NoticeKind, str] = {
    NoticeKind.REMINDER: "书记",
    NoticeKind.CIRCULAR: "乡镇党委",
    NoticeKind.RECTIFICATION_ORDER: "书记",
}
#: The row the secretary's copies of every rung are counted in together.
SECRETARY_COPIES = "督办抄送书记"


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _cell(text: object, width: int, *, left: bool = False) -> str:
    value = str(text)
    pad = " " * max(0, width - _width(value))
    return value + pad if left else pad + value


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    widths = [max(_width(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(_cell(h, widths[i], left=i == 0) for i, h in enumerate(header))]
    lines.append("  ".join("─" * w for w in widths))
    for row in rows:
        lines.append("  ".join(_cell(v, widths[i], left=i == 0) for i, v in enumerate(row)))
    return lines


def _span(delta: timedelta) -> str:
    days, seconds = delta.days, delta.seconds
    if days:
        return f"{days}天{seconds // 3600}小时"
    return f"{seconds // 3600}小时{seconds % 3600 // 60}分{seconds % 60}秒"


def render_report(report: SimulationReport) -> str:
    """The report as Chinese text tables (what ``chuangzheng simulate`` prints)."""
    lines: list[str] = []
    lines.append(f"创先争优活动模拟：{report.plan_name}")
    lines.append(f"轮次：{report.round_name}（{report.round_plan_id}，编号 {report.round_id}）")
    mix = "，".join(
        f"{b.label} {report.behaviours.get(b, 0)}" for b in Behaviour if report.behaviours.get(b)
    )
    lines.append(f"组织：{report.organisations} 个（{mix}），随机种子 {report.seed}")
    start = report.started_at.astimezone(SHANGHAI)
    end = report.finished_at.astimezone(SHANGHAI)
    span = _span(report.virtual_span)
    lines.append(f"虚拟时间：{start:%Y-%m-%d %H:%M} 至 {end:%Y-%m-%d %H:%M}（跨度 {span}）")
    lines.append(
        f"实际用时：{report.wall_seconds:.1f} 秒（{report.stops} 个时点，{report.updates} 次操作）"
    )
    lines.extend(report.warnings)
    lines.append("")
    lines.append("一、各阶段完成情况")
    header = ["阶段", *OUTCOME_LABELS.values(), "未完成", "预期（按时/逾期/整改）"]
    rows: list[list[object]] = []
    for actual, expected in zip(report.outcomes, report.expected_outcomes, strict=True):
        rows.append(
            [
                actual.phase.label,
                actual.on_time,
                actual.late,
                actual.after_rectification,
                actual.unfinished,
                f"{expected.on_time}/{expected.late}/{expected.after_rectification}",
            ]
        )
    lines.extend(_table(header, rows))
    lines.append("")
    lines.append("二、各级提醒与督办通知发送数（份）")
    lines.extend(_notice_table(report))
    lines.append("")
    if report.all_completed:
        lines.append(f"结果：全部 {report.organisations} 个组织完成五个阶段。")
    else:
        phases = "，".join(f"{p.label} {n}" for p, n in report.final_phases.items())
        lines.append(f"结果：未全部完成（{phases}）；本轮已统一结束。")
    for failure in report.failures:
        lines.append(f"  操作被拒绝：{failure}")
    lines.append(
        f"操作最多晚于计划 {report.max_drift_seconds:.1f} 秒（虚拟时间，操作期间时钟照常走），"
        f"为避开计时器暂停 {report.timer_waits} 次。"
    )
    return "\n".join(lines)


def _kind_row(kind: NoticeKind) -> str:
    """A notice kind's row: its name, with the addressee when there is only one."""
    addressee = _ADDRESSEES.get(kind)
    return f"{kind.label}（{addressee}）" if addressee else kind.label


def notice_row_label(notice: NoticeCount) -> str:
    """The report row a notice is counted in: each rung to its addressee, the secretary's
    copies of every rung together, and the other kinds by name."""
    if notice.kind is NoticeKind.ESCALATION:
        return SECRETARY_COPIES if notice.recipient_role is Role.SECRETARY else notice.label
    return _kind_row(notice.kind) if notice.kind in _ADDRESSEES else notice.label


def _notice_table(report: SimulationReport) -> list[str]:
    """Rows: the reminder, each rung, the copies to secretaries, the circular, the
    rectification order and its overdue notice; columns: the phases."""
    labels = [
        _kind_row(NoticeKind.REMINDER),
        *report.rung_names,
        SECRETARY_COPIES,
        _kind_row(NoticeKind.CIRCULAR),
        _kind_row(NoticeKind.RECTIFICATION_ORDER),
        _kind_row(NoticeKind.RECTIFICATION_OVERDUE),
    ]
    cells: Counter[tuple[str, Phase]] = Counter()
    for notice in report.notices:
        cells[(notice_row_label(notice), notice.phase)] += notice.count
    header = ["通知", *(p.label for p in WORKING_PHASES), "合计"]
    rows: list[list[object]] = []
    for label in labels:
        per_phase = [cells[(label, phase)] for phase in WORKING_PHASES]
        rows.append([label, *per_phase, sum(per_phase)])
    totals = [sum(n.count for n in report.notices if n.phase is phase) for phase in WORKING_PHASES]
    rows.append(["合计", *totals, sum(totals)])
    return _table(header, rows)
