"""The 简报/通报 as Word (python-docx) and PDF (fpdf2 with the WenQuanYi Zen Hei font), built
from the same :class:`domain.digest.Circular` the weekly circular workflow publishes, over the
caller's scope of the read model at the moment of download."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path

from docx import Document
from docx.shared import Pt
from fpdf import FPDF
from sqlalchemy import select
from sqlalchemy.orm import Session

from activities.tables import CampaignStatusRow, OrganisationRow
from api.auth import User
from api.ui.context import Overdue, RoundInfo
from api.ui.queries import Filters, scoped
from domain.calendar import deadline_day
from domain.digest import Circular, StatusLine, build_circular, circular_title
from domain.lights import Light
from domain.phases import WORKING_PHASES, Phase

FONT = Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")
_HEAD = ["乡镇（街道）", "单位数", *(p.label for p in WORKING_PHASES), "已完成", "逾期"]


def circular_for(session: Session, user: User, info: RoundInfo, now: datetime) -> Circular:
    """The circular of the caller's scope now (the weekly workflow's model and rules)."""
    s = CampaignStatusRow
    stmt = scoped(select(s, OrganisationRow.instructor), user, info.round_id, Filters())
    stmt = stmt.outerjoin(OrganisationRow, OrganisationRow.org_id == s.org_id)
    days = Overdue(info.calendar, now)
    lines = [
        StatusLine(
            org_id=row.org_id,
            org_name=row.org_name,
            township=row.township,
            system=row.system,
            instructor=instructor,
            light=Light(row.light),
            overdue=row.overdue,
            phase=Phase(row.phase),
            deadline=row.deadline,
            working_days_overdue=days(row.deadline, row.overdue),
            top_rung=row.top_rung,
            closed=row.closed,
        )
        for row, instructor in session.execute(stmt).all()
    ]
    return build_circular(info.round_id, lines, now=now)


def _summary(circular: Circular) -> str:
    total, completed, overdue = circular.totals()
    return (
        f"县委创先争优活动领导小组办公室：参加本轮活动的基层党组织共{total}个，"
        f"已完成全部阶段{completed}个，逾期{overdue}个。现将各乡镇（街道）进展情况通报如下。"
    )


def _rows(circular: Circular) -> list[list[str]]:
    return [
        [t.township, str(t.total), *(str(t.by_phase.get(p, 0)) for p in WORKING_PHASES),
         str(t.completed), str(t.overdue)]
        for t in circular.townships
    ]  # fmt: skip


def _laggard_lines(circular: Circular, info: RoundInfo) -> list[tuple[str, list[str]]]:
    out = []
    for t in (t for t in circular.townships if t.laggards):
        items = []
        for s in t.laggards:
            due = deadline_day(s.deadline).isoformat() if s.deadline else "—"
            rung = f"，{info.rung_name(s.top_rung)}" if s.top_rung is not None else ""
            items.append(
                f"{s.org_name}：{s.phase.label}阶段（截止{due}）逾期"
                f"{s.working_days_overdue}个工作日{rung}"
            )
        out.append((f"{t.township}（{len(t.laggards)}个）", items))
    return out


_CLOSING = (
    "对思想上不重视、工作上不得力的单位，予以批评并责令限期整改；"
    "各乡镇（街道）党委要督促逾期单位尽快补齐规定动作。"
)


def circular_docx(circular: Circular, info: RoundInfo) -> bytes:
    """The circular as a Word document."""
    doc = Document()
    style = doc.styles["Normal"]
    style.font.name = "SimSun"
    style.font.size = Pt(11)
    doc.add_heading(circular_title(circular), level=1)
    doc.add_paragraph(_summary(circular))
    doc.add_heading("一、各乡镇（街道）进展", level=2)
    table = doc.add_table(rows=1, cols=len(_HEAD))
    table.style = "Table Grid"
    for cell, text in zip(table.rows[0].cells, _HEAD, strict=True):
        cell.text = text
    for values in _rows(circular):
        for cell, text in zip(table.add_row().cells, values, strict=True):
            cell.text = text
    doc.add_heading("二、逾期单位", level=2)
    laggards = _laggard_lines(circular, info)
    if not laggards:
        doc.add_paragraph("无。")
    for township, items in laggards:
        doc.add_paragraph(township, style="Heading 3")
        for item in items:
            doc.add_paragraph(item, style="List Bullet")
    doc.add_paragraph(_CLOSING)
    buffer = io.BytesIO()
    doc.save(buffer)
    return buffer.getvalue()


def _line(pdf: FPDF, height: int, text: str, align: str = "L") -> None:
    """A wrapped paragraph, leaving the cursor at the left margin of the next line."""
    pdf.multi_cell(0, height, text, align=align, new_x="LMARGIN", new_y="NEXT")


def circular_pdf(circular: Circular, info: RoundInfo) -> bytes:
    """The circular as a PDF in a Chinese font."""
    pdf = FPDF(orientation="landscape")
    pdf.add_font("wqy", fname=str(FONT))
    pdf.add_font("wqy", style="B", fname=str(FONT))
    pdf.add_page()
    pdf.set_font("wqy", size=16)
    _line(pdf, 10, circular_title(circular), "C")
    pdf.set_font("wqy", size=11)
    _line(pdf, 7, _summary(circular))
    pdf.ln(2)
    pdf.set_font("wqy", size=13)
    _line(pdf, 9, "一、各乡镇（街道）进展")
    pdf.set_font("wqy", size=10)
    with pdf.table() as table:
        for values in [_HEAD, *_rows(circular)]:
            row = table.row()
            for text in values:
                row.cell(text)
    pdf.ln(3)
    pdf.set_font("wqy", size=13)
    _line(pdf, 9, "二、逾期单位")
    pdf.set_font("wqy", size=10)
    laggards = _laggard_lines(circular, info)
    if not laggards:
        _line(pdf, 7, "无。")
    for township, items in laggards:
        _line(pdf, 7, township)
        for item in items:
            _line(pdf, 6, f"  · {item}")
    pdf.ln(2)
    _line(pdf, 7, _CLOSING)
    return bytes(pdf.output())
