"""Exports: any list of the dashboard to Excel (openpyxl), the 简报/通报 as Word or PDF."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from openpyxl import Workbook  # type: ignore[import-untyped]
from openpyxl.utils import get_column_letter  # type: ignore[import-untyped]
from sqlalchemy import select
from sqlalchemy.orm import Session

from activities.digest_messages import safe_name
from activities.spreadsheets import holdable, workbook_bytes
from activities.tables import CampaignEventRow, CampaignStatusRow, CircularRow
from api.deps import SessionDep
from api.errors import not_found
from api.routers.organisations import visible_organisation
from api.routers.reports import CIRCULAR_READERS
from api.ui.context import Overdue, RoundInfo, round_info
from api.ui.documents import circular_docx, circular_for, circular_pdf
from api.ui.org_view import EVENT_LABELS
from api.ui.queries import Filters, scoped, stream_laggards
from api.ui.render import _label, county_systems, deadline_text, local
from api.ui.routers.laggards import filters_from
from api.ui.session import UiRoute, UiUser
from chuangzheng.services.sign_in import User

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


def _round(session: SessionDep, round_id: str, user: User | None = None) -> RoundInfo:
    # The caller's counties: with no round named, the newest round of their own county.
    info = round_info(session, round_id or None, user.counties if user is not None else None)
    if info is None:
        raise not_found("尚无轮次")
    return info


@router.get("/laggards.xlsx")
def laggards_xlsx(
    request: Request, session: SessionDep, user: UiUser, round: str = "",
    sort: str = "overdue", dir: str = "desc",
) -> Response:  # fmt: skip
    """The laggard list with the page's filters and sort, every row (not just one page)."""
    info = _round(session, round, user)
    filters = filters_from(dict(request.query_params))
    days = Overdue(info.calendar, datetime.now(UTC))
    rows = stream_laggards(session, user, info.round_id, filters, sort, dir != "asc", days)
    head = ["组织编号", "单位", "乡镇（街道）", "系统", "类型", "阶段", "亮灯", "截止时间",
            "逾期工作日", "督办级别"]  # fmt: skip
    system = _systems(session, user)

    @cache  # a few hundred combinations, tens of thousands of rows
    def rest(
        key: str, org_type: str, phase: str, light: str, deadline: datetime | None,
        overdue: bool, top_rung: int | None,
    ) -> tuple[Any, ...]:  # fmt: skip
        return (system(key), _label(org_type, "type"), _label(phase, "phase"),
                _label(light, "light"), deadline_text(deadline), days(deadline, overdue),
                info.rung_name(top_rung))  # fmt: skip

    lines = (
        [r.org_id, r.org_name, r.township,
         *rest(r.system, r.org_type, r.phase, r.light, r.deadline, r.overdue, r.top_rung)]
        for r in rows
    )  # fmt: skip
    data = streamed_workbook("滞后单位", head, lines, together_from=3)  # 系统 … 督办级别
    return _download(data, XLSX, f"滞后单位-{info.round_id}.xlsx")


def _systems(session: Session, user: User) -> Callable[[str], str]:
    """A guidance group's short name from the user's county's data (issue 15)."""
    names = county_systems(session, user.counties)
    return lambda key: names.get(key) or _label(key, "system")


def streamed_workbook(
    title: str, head: Sequence[str], rows: Iterable[Sequence[Any]], *,
    together_from: int | None = None,
) -> bytes:  # fmt: skip
    """One sheet like :func:`workbook` (a frozen header row, then ``rows``), for the lists
    that can run to tens of thousands of rows.

    ``together_from``: the columns from this one on take few combinations of values (a
    list's labels, dates and numbers after its names), each column values of one type:
    their cells are written once per combination and reused (see :class:`_Cells`).

    openpyxl writes the package (workbook, styles, the sheet with its header) in write-only
    mode; the rows are then written into the sheet's ``<sheetData>`` as they come, as the
    same cells openpyxl's write-only mode writes (numbers, and text as inline strings),
    without its per-cell objects (37,000 rows of ten columns: 8.6 s in write-only mode, 1.2 s
    this way, on a loaded 2-core machine). Text is always an inline string, so it never
    becomes a formula; control characters a worksheet cannot hold are dropped
    (``activities.spreadsheets.holdable``)."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title[:31])
    sheet.freeze_panes = "A2"
    sheet.append([holdable(str(h)) for h in head])
    skeleton = io.BytesIO()
    book.save(skeleton)
    out = io.BytesIO()
    with (
        zipfile.ZipFile(skeleton) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as target,
    ):
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename != _SHEET:
                target.writestr(info, data)
                continue
            before, after = data.decode("utf-8").split("</sheetData>", 1)
            with target.open(_SHEET, "w") as member:
                member.write(before.encode("utf-8"))
                cells = _Cells(together_from)
                chunk: list[str] = []
                for number, row in enumerate(rows, start=2):
                    chunk.append(cells.row(number, row))
                    if len(chunk) == 1000:
                        member.write("".join(chunk).encode("utf-8"))
                        chunk.clear()
                member.write("".join(chunk).encode("utf-8"))
                member.write(f"</sheetData>{after}".encode())
    return out.getvalue()


_SHEET = "xl/worksheets/sheet1.xml"
_COLUMNS = [get_column_letter(i) for i in range(1, 101)]


class _Cells:
    """Writes ``<row>`` elements: numbers as numbers, everything else as an inline string.

    Most cells of a long list repeat (a township, a phase, a light, a deadline), so the
    part of a cell after its reference (type and escaped value) is kept per column and
    text, and the cells from column ``together`` on are kept whole per combination of
    their values (with the row number to fill in), up to ``KEPT`` of each: a row is then a
    join of cached pieces. Escaping and formatting each of 373,000 cells was most of the
    laggard list's export (37,000 rows: 2.9 s of a profile at load 11)."""

    KEPT = 50_000

    def __init__(self, together: int | None = None) -> None:
        self._tails: list[dict[str, str]] = [{} for _ in _COLUMNS]
        self._kept = 0
        self._together = together
        self._combinations: dict[tuple[Any, ...], str] = {}

    def row(self, number: int, values: Sequence[Any]) -> str:
        """One ``<row>``; a None leaves its cell out."""
        at = f'{number}"'
        cells = [f'<row r="{number}">']
        together = self._together
        each = values if together is None else values[:together]
        for index, value in enumerate(each[: len(_COLUMNS)]):
            if value is None:
                continue
            if type(value) is not str:  # numbers (and 1 == True == 1.0: never one key)
                cells.append(_HEADS[index] + at + _tail(value))
                continue
            tails = self._tails[index]
            tail = tails.get(value)
            if tail is None:
                tail = _tail(value)
                if self._kept < self.KEPT:
                    tails[value] = tail
                    self._kept += 1
            cells.append(_HEADS[index] + at + tail)
        if together is not None:
            rest = tuple(values[together : len(_COLUMNS)])
            cached = self._combinations.get(rest)
            if cached is None:
                # NUL stands for the row number: holdable() drops it from any text.
                cached = "".join(
                    _HEADS[index] + '\0"' + _tail(value)
                    for index, value in enumerate(rest, start=together)
                    if value is not None
                )
                if len(self._combinations) < self.KEPT:
                    self._combinations[rest] = cached
            cells.append(cached.replace("\0", str(number)))
        cells.append("</row>")
        return "".join(cells)


def _tail(value: Any) -> str:
    """A cell after ``<c r="A2"``: its type and value."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f' t="n"><v>{value}</v></c>'
    text = escape(holdable(str(value)))
    space = ' xml:space="preserve"' if text != text.strip() else ""
    return f' t="inlineStr"><is><t{space}>{text}</t></is></c>'


_HEADS = [f'<c r="{column}' for column in _COLUMNS]


@router.get("/organisations.xlsx")
def organisations_xlsx(
    session: SessionDep, user: UiUser, round: str = "", system: str = "", type: str = ""
) -> Response:
    """Every organisation of the caller's scope in the round (the overview's rows)."""
    info = _round(session, round, user)
    s = CampaignStatusRow
    stmt = scoped(select(s), user, info.round_id, Filters(system=system, org_type=type))
    head = ["组织编号", "单位", "乡镇（街道）", "系统", "类型", "阶段", "阶段状态", "亮灯",
            "截止时间", "督办级别"]  # fmt: skip
    system_name = _systems(session, user)
    rows = [
        [r.org_id, r.org_name, r.township, system_name(r.system),
         _label(r.org_type, "type"), _label(r.phase, "phase"),
         _label(r.phase_status, "phase_status"), _label(r.light, "light"),
         deadline_text(r.deadline), info.rung_name(r.top_rung)]
        for r in session.scalars(stmt.order_by(s.township, s.org_id)).all()
    ]  # fmt: skip
    return _download(workbook("组织进展", head, rows), XLSX, f"组织进展-{info.round_id}.xlsx")


@router.get("/orgs/{org_id}/timeline.xlsx")
def timeline_xlsx(org_id: str, session: SessionDep, user: UiUser, round: str = "") -> Response:
    """One organisation's recorded timeline."""
    org = visible_organisation(session, user, org_id)
    info = _round(session, round, user)
    events = session.scalars(
        select(CampaignEventRow)
        .filter_by(round_id=info.round_id, org_id=org_id)
        .order_by(CampaignEventRow.at, CampaignEventRow.recorded_at)
    ).all()
    rows = [
        [local(e.at), EVENT_LABELS.get(e.kind, e.kind), _label(e.phase, "phase"),
         info.step_name(e.step_id), e.actor_name or e.actor_user or "",
         str(e.detail.get("reason", ""))]
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
    info = _round(session, round, user)
    built = circular_for(session, user, info, datetime.now(UTC))
    name = f"通报-{info.round_id}-{built.local_date.isoformat()}.{fmt}"
    if fmt == "docx":
        return _download(circular_docx(built, info), DOCX, name)
    return _download(circular_pdf(built, info), "application/pdf", name)
