"""Exports: any list of the dashboard to Excel (openpyxl), the 简报/通报 as Word or PDF."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from sqlalchemy import select

from activities.digest_messages import safe_name
from activities.spreadsheets import workbook_bytes
from activities.tables import CampaignEventRow, CampaignStatusRow, CircularRow
from api.deps import SessionDep
from api.errors import not_found
from api.routers.organisations import visible_organisation
from api.routers.reports import CIRCULAR_READERS
from api.ui.context import RoundInfo, round_info
from api.ui.documents import circular_docx, circular_for, circular_pdf
from api.ui.org_view import EVENT_LABELS
from api.ui.queries import Filters, scoped
from api.ui.render import _label, local
from api.ui.routers.laggards import filters_from, laggard_lines
from api.ui.session import UiRoute, UiUser

router = APIRouter(prefix="/ui/export", route_class=UiRoute, include_in_schema=False)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def _download(data: bytes, media_type: str, filename: str) -> Response:
    disposition = f"attachment; filename*=UTF-8''{quote(filename)}"
    return Response(data, media_type=media_type, headers={"Content-Disposition": disposition})


def workbook(title: str, head: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    """One sheet: a header row, then the rows (what every list export writes). People's
    text (reasons, names) is stored as text, never as a formula
    (``activities.spreadsheets``)."""
    return workbook_bytes(title, head, rows)


def _round(session: SessionDep, round_id: str) -> RoundInfo:
    info = round_info(session, round_id or None)
    if info is None:
        raise not_found("尚无轮次")
    return info


@router.get("/laggards.xlsx")
def laggards_xlsx(
    request: Request, session: SessionDep, user: UiUser, round: str = "",
    sort: str = "overdue", dir: str = "desc",
) -> Response:  # fmt: skip
    """The laggard list with the page's filters and sort, every row (not just one page)."""
    info = _round(session, round)
    filters = filters_from(dict(request.query_params))
    lines = laggard_lines(session, user, info, filters, sort, dir != "asc")
    head = ["组织编号", "单位", "乡镇（街道）", "系统", "类型", "阶段", "亮灯", "截止时间",
            "逾期工作日", "督办级别"]  # fmt: skip
    rows = [
        [ln.row.org_id, ln.row.org_name, ln.row.township, _label(ln.row.system, "system"),
         _label(ln.row.org_type, "type"), _label(ln.row.phase, "phase"),
         _label(ln.row.light, "light"), local(ln.row.deadline), ln.days_overdue, ln.rung_name]
        for ln in lines
    ]  # fmt: skip
    return _download(workbook("滞后单位", head, rows), XLSX, f"滞后单位-{info.round_id}.xlsx")


@router.get("/organisations.xlsx")
def organisations_xlsx(
    session: SessionDep, user: UiUser, round: str = "", system: str = "", type: str = ""
) -> Response:
    """Every organisation of the caller's scope in the round (the overview's rows)."""
    info = _round(session, round)
    s = CampaignStatusRow
    stmt = scoped(select(s), user, info.round_id, Filters(system=system, org_type=type))
    head = ["组织编号", "单位", "乡镇（街道）", "系统", "类型", "阶段", "阶段状态", "亮灯",
            "截止时间", "督办级别"]  # fmt: skip
    rows = [
        [r.org_id, r.org_name, r.township, _label(r.system, "system"),
         _label(r.org_type, "type"), _label(r.phase, "phase"),
         _label(r.phase_status, "phase_status"), _label(r.light, "light"), local(r.deadline),
         info.rung_name(r.top_rung)]
        for r in session.scalars(stmt.order_by(s.township, s.org_id)).all()
    ]  # fmt: skip
    return _download(workbook("组织进展", head, rows), XLSX, f"组织进展-{info.round_id}.xlsx")


@router.get("/orgs/{org_id}/timeline.xlsx")
def timeline_xlsx(org_id: str, session: SessionDep, user: UiUser, round: str = "") -> Response:
    """One organisation's recorded timeline."""
    org = visible_organisation(session, user, org_id)
    info = _round(session, round)
    events = session.scalars(
        select(CampaignEventRow)
        .filter_by(round_id=info.round_id, org_id=org_id)
        .order_by(CampaignEventRow.at, CampaignEventRow.recorded_at)
    ).all()
    rows = [
        [local(e.at), EVENT_LABELS.get(e.kind, e.kind), _label(e.phase, "phase"),
         e.step_id or "", e.actor_name or e.actor_user or "", str(e.detail.get("reason", ""))]
        for e in events
    ]  # fmt: skip
    head = ["时间", "事件", "阶段", "步骤", "操作人", "理由"]
    return _download(workbook("时间线", head, rows), XLSX, f"{org.name}-时间线.xlsx")


@router.get("/circulars/{round_id}/{key}")
def published_circular(round_id: str, key: str, session: SessionDep, user: UiUser) -> Response:
    """A published circular's spreadsheet, reached by the link its notice carries
    (``/rounds/{round}/circulars/{key}``, the key as the notice names it)."""
    if user.role not in CIRCULAR_READERS:
        raise not_found()
    rows = session.scalars(select(CircularRow).where(CircularRow.round_id == round_id)).all()
    row = next((r for r in rows if safe_name(r.key) == key or r.key == key), None)
    if row is None or not Path(row.xlsx_path).is_file():
        raise not_found("通报不存在")
    return FileResponse(
        row.xlsx_path,
        media_type=XLSX,
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(row.title)}.xlsx"},
    )


@router.get("/circular.{fmt}")
def circular(fmt: str, session: SessionDep, user: UiUser, round: str = "") -> Response:
    """The 简报/通报 of the caller's scope now, as ``docx`` or ``pdf``."""
    if user.role not in CIRCULAR_READERS or fmt not in ("docx", "pdf"):
        raise not_found()
    info = _round(session, round)
    built = circular_for(session, user, info, datetime.now(UTC))
    name = f"通报-{info.round_id}-{built.local_date.isoformat()}.{fmt}"
    if fmt == "docx":
        return _download(circular_docx(built, info), DOCX, name)
    return _download(circular_pdf(built, info), "application/pdf", name)
