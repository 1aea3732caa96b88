"""总结交流经验: good-practice briefings (简报) of a round — submitted by a secretary or a
township (a form with title, text and an optional file), selected and circulated by the
county office (inbox, then the channels), listed for everyone in the round. The use cases
are ``chuangzheng.services.briefings``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session, sessionmaker

from activities.channels import ChannelRouter, build_notifier
from api.blocking import run_sync
from api.callers import service_caller
from api.deps import CurrentUser, SessionsDep, SettingsDep
from api.errors import as_api_error
from api.idempotency import idempotent
from api.responses import AUTHENTICATED, UPLOAD, WITH_BODY, errors, file_response
from chuangzheng.services import briefings
from chuangzheng.services.callers import Caller
from chuangzheng.services.errors import ServiceError
from chuangzheng.settings import Settings
from domain.organisation import Role

router = APIRouter(
    prefix="/api/v1/rounds/{round_id}/briefings",
    tags=["督促检查 supervision"],
    responses=errors(*AUTHENTICATED, 404, 422),
)


class BriefingFileView(BaseModel):
    """The attachment's name, size and download path."""

    name: str
    size: int | None
    download: str


class BriefingView(BaseModel):
    """A briefing and, once circulated, by whom, when and to how many recipients."""

    briefing_id: str
    round_id: str
    org_id: str | None
    township: str
    source: str = Field(description="报送单位（党组织或乡镇党委）")
    title: str
    text: str
    file: BriefingFileView | None
    status: str
    status_label: str
    submitted_by: str
    submitted_at: datetime
    note: str = Field(description="县委活动办选编时的编者按")
    circulated_by: str | None
    circulated_at: datetime | None
    recipients: int | None = Field(description="收到交流简报的单位数")


class Circulate(BaseModel):
    """The county office's note (编者按), may be empty."""

    note: str = Field(default="", max_length=1000)


class Circulated(BriefingView):
    """The circulated briefing and how many messages the channels sent now."""

    sent: int = Field(description="本次经外部渠道（邮件、企业微信、钉钉）发出的条数")


@router.post(
    "",
    status_code=201,
    summary="报送经验简报",
    response_model=BriefingView,
    responses=errors(*UPLOAD),
)
async def submit(
    round_id: str,
    request: Request,
    user: CurrentUser,
    sessions: SessionsDep,
    settings: SettingsDep,
    title: Annotated[str, Form(max_length=200)],
    text: Annotated[str, Form(max_length=20_000)],
    org_id: Annotated[str | None, Form(max_length=64)] = None,
    file: Annotated[UploadFile | None, File()] = None,
) -> Any:
    """A secretary submits for their organisation (``org_id``), a township for itself."""
    caller = service_caller(user, request)
    attachment = None
    if file is not None and file.filename:
        data = await file.read(briefings.MAX_FILE_BYTES + 1)
        attachment = briefings.Attachment(filename=file.filename, data=data)
    township = user.scope_key if user.role is Role.TOWNSHIP else None

    def action() -> dict[str, Any]:
        try:
            return briefings.submit(
                sessions,
                caller,
                round_id,
                title=title,
                text=text,
                org_id=org_id,
                township=township,
                attachment=attachment,
                upload_dir=settings.upload_directory,
            )
        except ServiceError as exc:
            raise as_api_error(exc) from None

    # Each briefing gets a fresh id: only the key makes a resent form one briefing.
    return await idempotent(request, sessions, user, action, status_code=201)


@router.get("", summary="本轮经验简报", response_model=list[BriefingView])
async def list_briefings(
    round_id: str, request: Request, user: CurrentUser, sessions: SessionsDep
) -> Any:
    """Circulated briefings for everyone in the round, then those the caller submitted or
    supervises that are not circulated yet."""
    caller = service_caller(user, request)

    def read() -> list[dict[str, Any]]:
        with sessions() as session:
            return briefings.list_briefings(session, caller, round_id)

    try:
        return await run_sync(read)
    except ServiceError as exc:
        raise as_api_error(exc) from None


@router.post(
    "/{briefing_id}/circulate",
    summary="选编并交流经验简报",
    response_model=Circulated,
    responses=errors(409, *WITH_BODY),
)
async def circulate(
    round_id: str,
    briefing_id: str,
    body: Circulate,
    request: Request,
    user: CurrentUser,
    sessions: SessionsDep,
    settings: SettingsDep,
) -> Any:
    """The county office circulates a briefing: a message in the inbox of the county office,
    each guidance group and each township of the round, then on their channels."""
    caller = service_caller(user, request)
    try:
        document, messages = await run_sync(
            lambda: briefings.circulate(sessions, caller, round_id, briefing_id, note=body.note)
        )
    except ServiceError as exc:
        raise as_api_error(exc) from None
    notifier = await run_sync(build_notifier, sessions, settings)  # reads its file
    sender = notifier if isinstance(notifier, ChannelRouter) else None
    sent = await briefings.send(sender, messages)
    return {**document, "sent": sent}


@router.get(
    "/{briefing_id}/file",
    summary="下载经验简报附件",
    response_class=FileResponse,
    responses=file_response("application/octet-stream"),
)
async def download(
    round_id: str,
    briefing_id: str,
    request: Request,
    user: CurrentUser,
    sessions: SessionsDep,
    settings: SettingsDep,
) -> FileResponse:
    """The attachment, for those who see the briefing."""
    return await attachment(
        sessions, settings, service_caller(user, request), round_id, briefing_id
    )


async def attachment(
    sessions: sessionmaker[Session],
    settings: Settings,
    caller: Caller,
    round_id: str,
    briefing_id: str,
) -> FileResponse:
    """A briefing's attachment as a download, for ``caller`` if they see the briefing (the
    API's route and the page's share it)."""

    def find() -> briefings.BriefingFile:
        with sessions() as session:
            return briefings.briefing_file(
                session, caller, round_id, briefing_id, settings.upload_directory
            )

    try:
        found = await run_sync(find)
    except ServiceError as exc:
        raise as_api_error(exc) from None
    return FileResponse(
        found.path,
        media_type=found.content_type or "application/octet-stream",
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(found.filename)}"},
    )
