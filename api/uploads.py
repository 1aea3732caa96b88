"""Uploaded tables (rosters, member lists): the type and size checks every import route makes
before its file is parsed (off the event loop, see ``api.blocking.parse_off_loop``)."""

from __future__ import annotations

from pathlib import Path

from fastapi import UploadFile

from activities.roster_files import SUPPORTED_SUFFIXES
from api.errors import ApiError


async def read_table_upload(file: UploadFile, max_bytes: int) -> tuple[str, bytes]:
    """The upload's suffix and bytes: 415 unless ``.csv``/``.xlsx``, 413 over ``max_bytes``
    (read at most one byte past the limit, never the whole of an oversized file)."""
    suffix = Path(file.filename or "").suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ApiError(
            415,
            "unsupported_media_type",
            "请上传 .csv 或 .xlsx 文件（.xls 请先在 Excel 中另存为 .xlsx）",
            [{"field": "file", "reason": "文件类型不允许"}],
        )
    data = await file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ApiError(
            413,
            "too_large",
            f"文件大小超过上限 {max_bytes // (1024 * 1024)}MB",
            [{"field": "file", "reason": f"文件大小超过上限 {max_bytes // (1024 * 1024)}MB"}],
        )
    return suffix, data
