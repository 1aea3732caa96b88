"""Read a roster file (CSV or Excel) into rows and validate them with the domain's parser.

The I/O half of roster import; :func:`domain.roster_import.parse_roster` does the checking,
so a CSV and an XLSX with the same content import to the same roster and report the same
errors (with the row numbers a clerk sees in the spreadsheet: headers are row 1).
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from pathlib import Path

from openpyxl import load_workbook  # type: ignore[import-untyped]
from openpyxl.utils.exceptions import InvalidFileException  # type: ignore[import-untyped]

from domain.errors import FieldError, ValidationFailed
from domain.organisation import Roster
from domain.roster_import import parse_roster

SUPPORTED_SUFFIXES = (".csv", ".xlsx")


def refuse_file(reason: str) -> ValidationFailed:
    return ValidationFailed([FieldError(field="文件", reason=reason)], code="invalid_roster")


def table_rows(table: Iterable[Sequence[object]]) -> list[dict[str, object]]:
    """Rows keyed by the first row's headers; short rows are padded, extra cells dropped."""
    iterator = iter(table)
    try:
        header_row = next(iterator)
    except StopIteration:
        raise refuse_file("文件为空，第1行应为表头") from None
    headers = [_text(cell) for cell in header_row]
    rows: list[dict[str, object]] = []
    for values in iterator:
        cells = list(values) + [None] * (len(headers) - len(values))
        rows.append({h: cells[i] for i, h in enumerate(headers) if h})
    return rows


def _text(value: object) -> str:
    """A cell as text: whole numbers without ".0", dates as YYYY-MM-DD."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date):
        return value.date().isoformat() if isinstance(value, datetime) else value.isoformat()
    return str(value).strip()


def read_roster_text(text: str) -> Roster:
    """Parse CSV text (headers in the first line) into a roster."""
    # A BOM survives when text was decoded as plain UTF-8.
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
    table = [row for row in reader]
    return parse_roster(table_rows(table), first_row_number=2)


def decode_csv(data: bytes) -> str:
    """UTF-8 (with or without BOM) first; Excel on Chinese Windows saves CSV as GBK."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return data.decode("gb18030")
        except UnicodeDecodeError:
            raise refuse_file("无法识别文件编码，请另存为 UTF-8 编码的 CSV 文件") from None


def read_xlsx_rows(path: Path) -> list[dict[str, object]]:
    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError) as exc:
        raise refuse_file("无法读取 Excel 文件，请确认是 .xlsx 格式且未损坏") from exc
    try:
        sheet = workbook.worksheets[0]
        table = [[_text(cell) for cell in row] for row in sheet.iter_rows(values_only=True)]
    finally:
        workbook.close()  # read-only workbooks keep the file open until closed
    return table_rows(table)


def read_roster_file(path: Path) -> Roster:
    """Read ``.csv`` (UTF-8, BOM optional; GBK accepted) or ``.xlsx`` (first sheet, headers
    in row 1) and validate it; raises :class:`ValidationFailed` (``invalid_roster``)."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return read_roster_text(decode_csv(path.read_bytes()))
    if suffix == ".xlsx":
        return parse_roster(read_xlsx_rows(path), first_row_number=2)
    raise refuse_file(
        f"不支持的文件类型“{path.suffix or path.name}”，请上传 .csv 或 .xlsx 文件"
        "（.xls 请先在 Excel 中另存为 .xlsx）"
    )


__all__ = ["SUPPORTED_SUFFIXES", "read_roster_file", "read_roster_text"]
