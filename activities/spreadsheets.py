"""Writing people's text into spreadsheets without it ever becoming a formula.

Any cell written from user text (a reason, a name, a comment) could start with ``=`` and
come back as a live formula in the reader's Excel: ``=HYPERLINK(...)`` leaks data when
clicked, ``=cmd|...`` runs a program through DDE. In .xlsx the fix is exact: the cell is
stored as a string, so Excel shows the characters and evaluates nothing. (The project
writes no CSV for people; the roster snapshot is CSV for machines and stays verbatim.)
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from typing import Any

from openpyxl import Workbook  # type: ignore[import-untyped]
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE  # type: ignore[import-untyped]
from openpyxl.worksheet.worksheet import Worksheet  # type: ignore[import-untyped]


def append_row(sheet: Worksheet, values: Iterable[Any]) -> None:
    """Append ``values`` as one row; no string becomes a formula (openpyxl would store any
    string starting with ``=`` as one)."""
    sheet.append(list(values))
    for cell in sheet[sheet.max_row]:
        if cell.data_type == "f":
            cell.data_type = "s"


def holdable(text: str) -> str:
    """``text`` without the control characters a worksheet cannot hold (openpyxl refuses
    them). For text anyone may write, such as a username typed at sign-in, which must not
    be able to break an export; text the project itself composes is refused instead."""
    return str(ILLEGAL_CHARACTERS_RE.sub("", text))


def workbook_bytes(title: str, head: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """One sheet named ``title``: a frozen header row, then ``rows``, every one through
    :func:`append_row`."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None  # a new workbook has one sheet
    sheet.title = title[:31]
    append_row(sheet, head)
    for row in rows:
        append_row(sheet, row)
    sheet.freeze_panes = "A2"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
