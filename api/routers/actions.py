"""Human actions on one organisation's campaign, each an Update on its workflow; plus
evidence file uploads.

Every route checks the caller's scope on the organisation first (404 outside it); the
workflow's validator then checks the role and the rules, and its refusal comes back as a
4xx with the validator's code and reason.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Request, UploadFile
from pydantic import AwareDatetime, BaseModel, Field

from activities.tables import UploadedFileRow
from api.auth import User
from api.deps import CurrentUser, SessionDep, SessionsDep, SettingsDep, TemporalClientDep, client_ip
from api.errors import ApiError
from api.idempotency import command_key, idempotency_key, idempotent
from api.routers.organisations import visible_organisation
from api.workflow_calls import update
from domain import actions
from domain.campaign_rules import CampaignStatus
from domain.phases import Phase
from domain.state import Actor
from workflows.ids import organisation_workflow_id

router = APIRouter(prefix="/api/v1/rounds/{round_id}/organisations/{org_id}", tags=["操作 actions"])

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


class Submit(BaseModel):
    """Evidence for a step: field name -> value (a document is ``{"name", "sha256"}``)."""

    step_id: str = Field(min_length=1, max_length=64)
    values: dict[str, Any]


class Decide(BaseModel):
    """Accept or return (退回, with a reason) a step's latest submission."""

    step_id: str = Field(min_length=1, max_length=64)
    accept: bool
    reason: str = Field(default="", max_length=2000)


class Waive(BaseModel):
    """Waive a step, with a reason."""

    step_id: str = Field(min_length=1, max_length=64)
    reason: str = Field(max_length=2000)


class AskExtension(BaseModel):
    """Ask for a later deadline of the current phase."""

    new_deadline: AwareDatetime
    reason: str = Field(max_length=2000)


class DecideExtension(BaseModel):
    """Approve or reject an extension request."""

    approve: bool
    reason: str = Field(default="", max_length=2000)


class Acknowledge(BaseModel):
    """Sign for a rung's notice."""

    phase: Phase
    rung: int = Field(ge=0, le=20)


class Report(BaseModel):
    """Report on a rectification order."""

    phase: Phase
    report: str = Field(max_length=20_000)


class Recheck(BaseModel):
    """Re-check a rectification report."""

    phase: Phase
    passed: bool
    notes: str = Field(default="", max_length=2000)


async def _act(
    request: Request,
    sessions: SessionsDep,
    client: TemporalClientDep,
    user: User,
    round_id: str,
    org_id: str,
    update_name: str,
    build: Any,
) -> Any:
    """Check scope, build the command with the actor and key, run the Update idempotently."""
    with sessions() as session:
        visible_organisation(session, user, org_id)
    actor = Actor(user=user.username, name=user.display_name, role=user.role, ip=client_ip(request))
    cmd = build(actor, command_key(user, idempotency_key(request)))

    async def action() -> dict[str, Any]:
        status = await update(
            client, organisation_workflow_id(round_id, org_id), update_name, cmd, CampaignStatus
        )
        return status.model_dump(mode="json")

    return await idempotent(request, sessions, user, action)


@router.post("/submissions", summary="提交材料")
async def submit(
    round_id: str,
    org_id: str,
    body: Submit,
    request: Request,
    sessions: SessionsDep,
    client: TemporalClientDep,
    user: CurrentUser,
) -> Any:
    """The secretary submits evidence for a step of the current phase."""
    return await _act(
        request,
        sessions,
        client,
        user,
        round_id,
        org_id,
        "submit_evidence",
        lambda a, k: actions.SubmitEvidence(
            actor=a, step_id=body.step_id, values=body.values, idempotency_key=k
        ),
    )


@router.post("/decisions", summary="审核材料（通过/退回）")
async def decide(
    round_id: str,
    org_id: str,
    body: Decide,
    request: Request,
    sessions: SessionsDep,
    client: TemporalClientDep,
    user: CurrentUser,
) -> Any:
    """A supervisor accepts or returns the latest submission of a step."""
    return await _act(
        request,
        sessions,
        client,
        user,
        round_id,
        org_id,
        "decide_submission",
        lambda a, k: actions.DecideSubmission(
            actor=a, step_id=body.step_id, accept=body.accept, reason=body.reason, idempotency_key=k
        ),
    )


@router.post("/waivers", summary="免除步骤")
async def waive(
    round_id: str,
    org_id: str,
    body: Waive,
    request: Request,
    sessions: SessionsDep,
    client: TemporalClientDep,
    user: CurrentUser,
) -> Any:
    """A supervisor waives a step with a reason."""
    return await _act(
        request,
        sessions,
        client,
        user,
        round_id,
        org_id,
        "waive_step",
        lambda a, k: actions.WaiveStep(
            actor=a, step_id=body.step_id, reason=body.reason, idempotency_key=k
        ),
    )


@router.post("/extensions", summary="申请延期")
async def request_extension(
    round_id: str,
    org_id: str,
    body: AskExtension,
    request: Request,
    sessions: SessionsDep,
    client: TemporalClientDep,
    user: CurrentUser,
) -> Any:
    """The secretary asks to move the current phase's deadline."""
    return await _act(
        request,
        sessions,
        client,
        user,
        round_id,
        org_id,
        "request_extension",
        lambda a, k: actions.RequestExtension(
            actor=a, new_deadline=body.new_deadline, reason=body.reason, idempotency_key=k
        ),
    )


@router.post("/extensions/{extension_id}/decision", summary="审批延期")
async def decide_extension(
    round_id: str,
    org_id: str,
    extension_id: str,
    body: DecideExtension,
    request: Request,
    sessions: SessionsDep,
    client: TemporalClientDep,
    user: CurrentUser,
) -> Any:
    """A supervisor approves or rejects an extension request."""
    return await _act(
        request,
        sessions,
        client,
        user,
        round_id,
        org_id,
        "decide_extension",
        lambda a, k: actions.DecideExtension(
            actor=a,
            extension_id=extension_id,
            approve=body.approve,
            reason=body.reason,
            idempotency_key=k,
        ),
    )


@router.post("/acknowledgements", summary="签收督办通知")
async def acknowledge(
    round_id: str,
    org_id: str,
    body: Acknowledge,
    request: Request,
    sessions: SessionsDep,
    client: TemporalClientDep,
    user: CurrentUser,
) -> Any:
    """The rung's addressee signs for it (签收)."""
    return await _act(
        request,
        sessions,
        client,
        user,
        round_id,
        org_id,
        "acknowledge_escalation",
        lambda a, k: actions.AcknowledgeEscalation(
            actor=a, phase=body.phase, rung=body.rung, idempotency_key=k
        ),
    )


@router.post("/rectification/report", summary="提交整改报告")
async def report_rectification(
    round_id: str,
    org_id: str,
    body: Report,
    request: Request,
    sessions: SessionsDep,
    client: TemporalClientDep,
    user: CurrentUser,
) -> Any:
    """The secretary reports what was rectified."""
    return await _act(
        request,
        sessions,
        client,
        user,
        round_id,
        org_id,
        "report_rectification",
        lambda a, k: actions.ReportRectification(
            actor=a, phase=body.phase, report=body.report, idempotency_key=k
        ),
    )


@router.post("/rectification/recheck", summary="复查整改")
async def recheck(
    round_id: str,
    org_id: str,
    body: Recheck,
    request: Request,
    sessions: SessionsDep,
    client: TemporalClientDep,
    user: CurrentUser,
) -> Any:
    """A supervisor re-checks the rectification (passed, or back with notes)."""
    return await _act(
        request,
        sessions,
        client,
        user,
        round_id,
        org_id,
        "recheck_rectification",
        lambda a, k: actions.RecheckRectification(
            actor=a, phase=body.phase, passed=body.passed, notes=body.notes, idempotency_key=k
        ),
    )


@router.post("/files", status_code=201, summary="上传材料文件")
async def upload(
    round_id: str,
    org_id: str,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
    file: Annotated[UploadFile, File()],
) -> dict[str, Any]:
    """Store a file under the data directory by its sha256; the answer is the value a
    document field of the evidence takes (``{"name", "sha256"}``)."""
    visible_organisation(session, user, org_id)
    name = Path(file.filename or "").name
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
    sha256 = hashlib.sha256(data).hexdigest()
    target = settings.data_dir / "uploads" / sha256[:2] / sha256
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_suffix(".part")
        temporary.write_bytes(data)
        temporary.replace(target)  # never a half-written file under the final name
    file_id = f"{round_id}/{org_id}/{sha256}"
    if session.get(UploadedFileRow, file_id) is None:
        session.add(
            UploadedFileRow(
                file_id=file_id,
                sha256=sha256,
                filename=name[:200],
                content_type=ALLOWED_UPLOADS[suffix],
                size=len(data),
                round_id=round_id,
                org_id=org_id,
                uploaded_by=user.username,
                uploaded_at=datetime.now(UTC),
            )
        )
        session.commit()
    return {"name": name, "sha256": sha256, "size": len(data)}
