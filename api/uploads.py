"""Uploads in the API.

- Uploaded tables (rosters, member lists): the type and size checks every import route makes
  before its file is parsed (off the event loop, see ``api.blocking.parse_off_loop``).
- Evidence files: the storage the bootstrap assembled (a directory or an S3-compatible
  bucket, :mod:`chuangzheng.upload_storage`) as a dependency, and a stored file streamed
  back as a download.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request, UploadFile
from fastapi.responses import StreamingResponse

from activities.roster_files import SUPPORTED_SUFFIXES
from api.errors import RETRY_AFTER_SECONDS, ApiError
from chuangzheng.upload_storage import UploadStorage, UploadStorageError

log = logging.getLogger(__name__)


async def get_upload_storage(request: Request) -> UploadStorage:
    """The app's evidence file storage (built once by ``chuangzheng.bootstrap``)."""
    storage: UploadStorage = request.app.state.services.uploads
    return storage


UploadStorageDep = Annotated[UploadStorage, Depends(get_upload_storage)]


def storage_unavailable(exc: UploadStorageError) -> ApiError:
    """503 with ``Retry-After`` when the file storage cannot be reached; the cause (a path or
    the store's answer, never a credential) goes to the log, not to the caller."""
    log.error("upload storage unavailable: %s", exc)
    return ApiError(
        503,
        "storage_unavailable",
        "文件存储暂时不可用，请稍后重试",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def download_response(
    storage: UploadStorage, sha256: str, *, filename: str, content_type: str
) -> StreamingResponse | None:
    """The stored file as an attachment named ``filename`` (streamed in chunks, never read
    whole into memory), or None when the storage holds nothing under ``sha256``. Blocking
    (it opens the file or the object): call it from the threadpool."""
    try:
        stored = storage.open(sha256)
    except UploadStorageError as exc:
        raise storage_unavailable(exc) from exc
    if stored is None:
        return None
    # As Starlette's FileResponse names a download: RFC 6266, UTF-8 names percent-encoded.
    quoted = quote(filename)
    disposition = (
        f"attachment; filename*=utf-8''{quoted}"
        if quoted != filename
        else f'attachment; filename="{filename}"'
    )
    return StreamingResponse(
        stored.chunks(),
        media_type=content_type,
        headers={"Content-Length": str(stored.size), "Content-Disposition": disposition},
    )


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
