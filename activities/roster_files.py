"""Read a roster file (CSV or Excel) into rows and validate them with the domain's parser.

The I/O half of roster import; :func:`domain.roster_import.parse_roster` does the checking,
so a CSV and an XLSX with the same content import to the same roster and report the same
errors (with the row numbers a clerk sees in the spreadsheet: headers are row 1).

Uploaded files are untrusted: :class:`FileLimits` bounds the bytes, the decompressed size of
an ``.xlsx`` (a zip: a few hundred KiB can expand to gigabytes), the rows, the columns and the
cells. The limits are checked while reading, before the whole file is in memory, and the
refusal names the limit in Chinese (:class:`FileTooLarge` for sizes, ``too_many_rows`` /
``too_many_cells`` refusals for the table's shape). Files the service wrote itself (roster
snapshots) are read without limits.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from openpyxl import load_workbook  # type: ignore[import-untyped]
from openpyxl.utils.exceptions import InvalidFileException  # type: ignore[import-untyped]

from domain.errors import FieldError, ValidationFailed
from domain.organisation import GuidanceGroup, Roster
from domain.roster_import import parse_roster

SUPPORTED_SUFFIXES = (".csv", ".xlsx")
MIB = 1024 * 1024


@dataclass(frozen=True)
class FileLimits:
    """What an uploaded table may hold (rows exclude the header row; cells count non-empty
    cells; columns count up to the last non-empty cell of a row).

    The decompressed size bounds the parse time too: openpyxl reads about 10,000 rows of
    three cells a second, so 20MB of sheet XML is a few seconds of one worker thread."""

    max_bytes: int
    max_uncompressed_bytes: int
    max_rows: int
    max_columns: int
    max_cells: int


#: The county roster (组织名册): a county has hundreds to a few thousand organisations.
ROSTER_LIMITS = FileLimits(
    max_bytes=5 * MIB,
    max_uncompressed_bytes=10 * MIB,
    max_rows=10_000,
    max_columns=30,
    max_cells=200_000,
)


class FileTooLarge(ValidationFailed):
    """The upload, or what it expands to, is over a size limit (HTTP 413)."""

    def __init__(self, reason: str) -> None:
        super().__init__([FieldError(field="文件", reason=reason)], code="too_large")


def refuse_file(reason: str, code: str = "invalid_roster") -> ValidationFailed:
    return ValidationFailed([FieldError(field="文件", reason=reason)], code=code)


def _mib(size: int) -> str:
    return f"{size / MIB:g}MB"


def check_upload_size(size: int, limits: FileLimits) -> None:
    """Refuse a file of ``size`` bytes over ``limits.max_bytes``."""
    if size > limits.max_bytes:
        raise FileTooLarge(f"文件大小超过上限 {_mib(limits.max_bytes)}")


def check_xlsx_expansion(source: Path | io.BytesIO, limits: FileLimits) -> None:
    """Refuse an ``.xlsx`` whose members add up to more than ``max_uncompressed_bytes``,
    reading only the zip's directory (before openpyxl inflates anything)."""
    try:
        with zipfile.ZipFile(source) as archive:
            total = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise refuse_file("无法读取 Excel 文件，请确认是 .xlsx 格式且未损坏") from exc
    if total > limits.max_uncompressed_bytes:
        raise FileTooLarge(
            f"Excel 文件解压后超过上限 {_mib(limits.max_uncompressed_bytes)}，请删去多余内容"
        )


def bounded(table: Iterable[Sequence[object]], limits: FileLimits | None) -> Iterator[list[object]]:
    """The rows of ``table`` (header first), refusing as soon as one limit is passed: a huge
    sheet is refused after ``max_rows + 1`` rows, not after reading all of it."""
    cells = 0
    for number, row in enumerate(table):
        values = list(row)
        if limits is not None:
            while values and values[-1] in (None, ""):
                values.pop()  # Excel pads rows with empty formatted cells
            if number > limits.max_rows:
                raise refuse_file(
                    f"数据行数超过上限 {limits.max_rows} 行（不含表头），请分批导入",
                    code="too_many_rows",
                )
            if len(values) > limits.max_columns:
                raise refuse_file(
                    f"第{number + 1}行列数超过上限 {limits.max_columns} 列", code="too_many_cells"
                )
            cells += sum(1 for v in values if v not in (None, ""))
            if cells > limits.max_cells:
                raise refuse_file(
                    f"单元格数超过上限 {limits.max_cells} 个，请分批导入", code="too_many_cells"
                )
        yield values


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


def csv_rows(text: str, limits: FileLimits | None = None) -> list[dict[str, object]]:
    """CSV text (headers in the first line) as rows keyed by header, within ``limits``."""
    # A BOM survives when text was decoded as plain UTF-8.
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
    try:
        return table_rows(bounded(reader, limits))
    except csv.Error as exc:  # e.g. a field over csv.field_size_limit()
        raise refuse_file(f"CSV 格式错误：{exc}") from None


def read_roster_text(
    text: str, limits: FileLimits | None = None, groups: Sequence[GuidanceGroup] | None = None
) -> Roster:
    """Parse CSV text (headers in the first line) into a roster (所属系统 checked against
    ``groups``, the county's guidance groups, when given: ``parse_roster``)."""
    return parse_roster(csv_rows(text, limits), first_row_number=2, groups=groups)


def decode_csv(data: bytes) -> str:
    """UTF-8 (with or without BOM) first; Excel on Chinese Windows saves CSV as GBK."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return data.decode("gb18030")
        except UnicodeDecodeError:
            raise refuse_file("无法识别文件编码，请另存为 UTF-8 编码的 CSV 文件") from None


def read_xlsx_rows(
    source: Path | bytes, limits: FileLimits | None = None
) -> list[dict[str, object]]:
    """The first sheet's rows keyed by the header row, within ``limits``."""
    opened = io.BytesIO(source) if isinstance(source, bytes) else source
    if limits is not None:
        check_xlsx_expansion(opened, limits)
    try:
        workbook = load_workbook(opened, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError) as exc:
        raise refuse_file("无法读取 Excel 文件，请确认是 .xlsx 格式且未损坏") from exc
    try:
        sheet = workbook.worksheets[0]
        declared = sheet.max_row  # the sheet's own <dimension>: refuse early when it says so
        if limits is not None and declared is not None and declared - 1 > limits.max_rows:
            raise refuse_file(
                f"数据行数超过上限 {limits.max_rows} 行（不含表头），请分批导入",
                code="too_many_rows",
            )
        # The dimension can be absent or wrong: bounded() counts the rows actually read.
        cells = ([_text(cell) for cell in row] for row in sheet.iter_rows(values_only=True))
        return table_rows(bounded(cells, limits))
    finally:
        workbook.close()  # read-only workbooks keep the file open until closed


def unsupported(name: str) -> ValidationFailed:
    return refuse_file(
        f"不支持的文件类型“{name}”，请上传 .csv 或 .xlsx 文件（.xls 请先在 Excel 中另存为 .xlsx）"
    )


def read_table(data: bytes, suffix: str, limits: FileLimits | None) -> list[dict[str, object]]:
    """An uploaded ``.csv``/``.xlsx`` as rows keyed by header, within ``limits``."""
    if limits is not None:
        check_upload_size(len(data), limits)
    if suffix == ".csv":
        return csv_rows(decode_csv(data), limits)
    if suffix == ".xlsx":
        return read_xlsx_rows(data, limits)
    raise unsupported(suffix)


def read_roster_bytes(
    data: bytes,
    suffix: str,
    limits: FileLimits = ROSTER_LIMITS,
    groups: Sequence[GuidanceGroup] | None = None,
) -> Roster:
    """An uploaded roster (``suffix`` ``.csv`` or ``.xlsx``) within ``limits``, validated
    (所属系统 against ``groups``, the importing county's guidance groups, when given)."""
    rows = read_table(data, suffix.lower(), limits)
    return parse_roster(rows, first_row_number=2, groups=groups)


def read_roster_file(
    path: Path, limits: FileLimits | None = None, groups: Sequence[GuidanceGroup] | None = None
) -> Roster:
    """Read ``.csv`` (UTF-8, BOM optional; GBK accepted) or ``.xlsx`` (first sheet, headers
    in row 1) and validate it; raises :class:`ValidationFailed` (``invalid_roster``).
    ``groups``: the county's guidance groups 所属系统 must name (see ``parse_roster``)."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise unsupported(path.suffix or path.name)
    if limits is not None:
        check_upload_size(path.stat().st_size, limits)
    if suffix == ".csv":
        return read_roster_text(decode_csv(path.read_bytes()), limits, groups)
    return parse_roster(read_xlsx_rows(path, limits), first_row_number=2, groups=groups)


__all__ = [
    "ROSTER_LIMITS",
    "SUPPORTED_SUFFIXES",
    "FileLimits",
    "FileTooLarge",
    "read_roster_bytes",
    "read_roster_file",
    "read_roster_text",
]
