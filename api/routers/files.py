"""Evidence file uploads: stored by sha256 in the configured storage (a directory or an
S3-compatible bucket, ``CZ_UPLOAD_STORAGE``), with size and type limits; the answer is the
``{"name", "sha256"}`` a document field takes.

Only those who act on an organisation's evidence upload (:data:`UPLOADER_ROLES`: who submits
it and who supervises it; the read-only assessment group does not: 403), only for an
organisation they see, and only into a round the organisation takes part in (404 otherwise:
an unknown round, one not kicked off, one without the organisation)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, UploadFile
from fastapi.routing import APIRoute
from pydantic import BaseModel
from python_multipart.exceptions import MultipartParseError
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from activities.tables import CampaignStatusRow, UploadedFileRow
from activities.tables.base import NAME
from api.auth import User
from api.blocking import run_sync
from api.deps import CurrentUser, SessionsDep
from api.errors import ApiError, not_found
from api.responses import AUTHENTICATED, UPLOAD, errors
from api.routers.organisations import visible_organisation
from api.uploads import UploadStorageDep, storage_unavailable
from chuangzheng.upload_storage import UploadStorage, UploadStorageError
from domain.campaign_rules import SUBMITTER_ROLES
from domain.organisation import SUPERVISOR_ROLES, Role
from domain.text import own_file_name, refusal

#: The longest file name kept: ``uploaded_files.filename`` is ``String(NAME)`` characters.
MAX_FILE_NAME_CHARS = NAME


def file_name_too_long() -> ApiError:
    """422 naming the file name, for a name past :data:`MAX_FILE_NAME_CHARS`."""
    return ApiError(
        422,
        "invalid",
        "请求参数有误",
        [{"field": "file", "reason": f"文件名过长，不能超过{MAX_FILE_NAME_CHARS}个字符"}],
    )


def _part_header_too_large(exc: BaseException) -> bool:
    """Whether the multipart parser gave up on a part header past its size limit (about
    4KB). The upload's only part is the file, and the only unbounded thing in its header is
    the file name, so that is what was too long."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, MultipartParseError) and "header size" in str(cause):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


class _UploadRoute(APIRoute):
    """A route whose unparseable multipart body, when a part header (the file name) is too
    long, answers :func:`file_name_too_long` instead of the generic "请求体格式不正确": the
    body is parsed before the endpoint runs, so the endpoint cannot say it itself."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except StarletteHTTPException as exc:
                if exc.status_code == 400 and _part_header_too_large(exc):
                    raise file_name_too_long() from None
                raise

        return handle


router = APIRouter(
    prefix="/api/v1/rounds/{round_id}/organisations/{org_id}",
    tags=["操作 actions"],
    responses=errors(*AUTHENTICATED, 404),
    route_class=_UploadRoute,
)

#: The roles the workflow lets act on an organisation's evidence.
UPLOADER_ROLES: frozenset[Role] = SUBMITTER_ROLES | SUPERVISOR_ROLES
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
ALLOWED_UPLOADS: dict[str, str] = {
    ".pdf": "application/pdf",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".doc": "application/msword",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xls": "application/vnd.ms-excel",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".txt": "text/plain",
}


class UploadedFile(BaseModel):
    """The stored file: ``{"name", "sha256"}`` is what a document field takes."""

    name: str
    sha256: str
    size: int


@router.post(
    "/files",
    status_code=201,
    summary="上传材料文件",
    response_model=UploadedFile,
    responses=errors(*UPLOAD),
)
async def upload(
    round_id: str,
    org_id: str,
    sessions: SessionsDep,
    storage: UploadStorageDep,
    user: CurrentUser,
    file: Annotated[UploadFile, File()],
) -> dict[str, Any]:
    """Store a file by its sha256; the answer is the value a document field of the evidence
    takes (``{"name", "sha256"}``)."""
    if user.role not in UPLOADER_ROLES:
        raise ApiError(403, "forbidden", "当前角色只能查看，不能上传材料")
    await run_sync(_check_target, sessions, user, round_id, org_id)
    name = own_file_name(file.filename)
    if len(name) > MAX_FILE_NAME_CHARS:
        raise file_name_too_long()
    hidden = refusal(name)
    if hidden is not None:  # "x\u202egnp.pdf" is shown as "xfdp.png"
        raise ApiError(
            422, "invalid", "请求参数有误", [{"field": "file", "reason": f"文件名{hidden}"}]
        )
    suffix = Path(name).suffix.lower()
    if suffix not in ALLOWED_UPLOADS:
        allowed = "、".join(sorted(ALLOWED_UPLOADS))
        raise ApiError(
            415,
            "unsupported_media_type",
            f"不支持的文件类型，允许：{allowed}",
            [{"field": "file", "reason": "文件类型不允许"}],
        )
    data = await file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise ApiError(
            413, "too_large", "文件不能超过 20MB", [{"field": "file", "reason": "文件过大"}]
        )
    if not data:
        raise ApiError(422, "invalid", "请求参数有误", [{"field": "file", "reason": "文件为空"}])
    # Hashing 20MB and writing it are blocking: the threadpool, like the database.
    return await run_sync(
        _store, sessions, storage, user, round_id, org_id, name, ALLOWED_UPLOADS[suffix], data
    )


def _check_target(sessions: sessionmaker[Session], user: User, round_id: str, org_id: str) -> None:
    """404 unless ``user`` sees the organisation and it takes part in the round."""
    with sessions() as session:
        visible_organisation(session, user, org_id)
        if session.get(CampaignStatusRow, (round_id, org_id)) is None:
            raise not_found("轮次不存在或该组织不在本轮活动中")


def _store(
    sessions: sessionmaker[Session],
    storage: UploadStorage,
    user: User,
    round_id: str,
    org_id: str,
    name: str,
    content_type: str,
    data: bytes,
) -> dict[str, Any]:
    sha256 = hashlib.sha256(data).hexdigest()
    # The file first, its row second: a row never names a file that is not stored.
    try:
        storage.save(sha256, data, content_type)
    except UploadStorageError as exc:
        raise storage_unavailable(exc) from exc
    file_id = f"{round_id}/{org_id}/{sha256}"
    with sessions.begin() as session:
        if session.get(UploadedFileRow, file_id) is None:
            session.add(
                UploadedFileRow(
                    file_id=file_id,
                    sha256=sha256,
                    filename=name,  # at most MAX_FILE_NAME_CHARS (checked on upload)
                    content_type=content_type,
                    size=len(data),
                    round_id=round_id,
                    org_id=org_id,
                    uploaded_by=user.username,
                    uploaded_at=datetime.now(UTC),
                )
            )
    return {"name": name, "sha256": sha256, "size": len(data)}
