"""公开承诺 after the commitments are recorded: absences with reasons, the 践诺 ledger, 评诺,
and the workflow step.

The ``/step`` route submits the workflow's ``member_commitments`` step with evidence built
from the ledger, so the workflow's guard checks the real roster. Same prefix, scope rules and
idempotency as :mod:`api.routers.commitments`.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request

from activities.db import upsert_insert
from activities.tables import (
    CommitmentAbsenceRow,
    CommitmentReviewRow,
    CommitmentRow,
    FulfilmentEntryRow,
    UploadedFileRow,
)
from api.blocking import run_sync
from api.deps import CurrentUser, SessionsDep, TemporalClientDep, client_ip, require_role
from api.idempotency import command_key, idempotency_key, idempotent
from api.limits import evidence_within_limits
from api.responses import AUTHENTICATED, TEMPORAL, WITH_BODY, errors
from api.routers import commitment_views as views
from api.routers.action_bodies import ActionResponse
from api.routers.commitment_bodies import AbsenceBody, LedgerBody, ReviewBody, StepBody
from api.routers.commitments import RECORDERS, SIGNERS, _member, _now, _scoped
from api.routers.organisations import visible_organisation
from api.workflow_calls import query, update
from domain.actions import SubmitEvidence
from domain.calendar import local_date
from domain.campaign_rules import CampaignStatus
from domain.commitments import (
    CommitmentStatus,
    check_fulfilment,
    check_review,
    move,
    require_reason,
)
from domain.errors import DomainError
from domain.plan import FieldKind
from domain.state import Actor
from workflows.contracts import ActionResult
from workflows.ids import organisation_workflow_id

router = APIRouter(
    prefix="/api/v1/rounds/{round_id}/organisations/{org_id}/commitments",
    tags=["公开承诺 commitments"],
    responses=errors(*AUTHENTICATED, 404, 409, 422),
)


@router.post(
    "/absences",
    summary="登记党员缺席理由",
    response_model=views.CoverageView,
    responses=errors(*WITH_BODY),
)
async def record_absence(
    round_id: str, org_id: str, body: AbsenceBody, request: Request, sessions: SessionsDep,
    user: CurrentUser,
) -> Any:  # fmt: skip
    """A member who makes no commitment this round is covered by a recorded reason."""
    await run_sync(_scoped, sessions, user, round_id, org_id)
    require_role(user, *RECORDERS)
    reason = require_reason(body.reason, "登记缺席")

    def action() -> dict[str, Any]:
        with sessions.begin() as session:
            member = _member(session, org_id, body.member_id)
            cid = views.commitment_id(round_id, org_id, member.member_id)
            if session.get(CommitmentRow, cid) is not None:
                raise DomainError(
                    "该党员已登记承诺，不能再登记缺席", code="invalid", field="member_id"
                )
            session.merge(
                CommitmentAbsenceRow(
                    round_id=round_id, org_id=org_id, member_id=member.member_id, reason=reason,
                    recorded_by=user.username, recorded_at=_now(),
                )
            )  # fmt: skip
        with sessions() as session:
            return views.coverage_view(session, round_id, org_id)

    return await idempotent(request, sessions, user, action)


@router.post(
    "/{commitment_id}/ledger",
    status_code=201,
    summary="登记践诺",
    response_model=views.CommitmentView,
    responses=errors(*WITH_BODY),
)
async def add_fulfilment(
    round_id: str, org_id: str, commitment_id: str, body: LedgerBody, request: Request,
    sessions: SessionsDep, user: CurrentUser,
) -> Any:  # fmt: skip
    """A ledger entry of fulfilment, with a file uploaded through ``/files`` as evidence."""
    await run_sync(_scoped, sessions, user, round_id, org_id)
    require_role(user, *RECORDERS)
    key = command_key(user, idempotency_key(request))
    # Keyed by the idempotency key: two concurrent retries write one entry.
    entry_id = "f-" + (uuid.uuid5(uuid.NAMESPACE_URL, key).hex if key else uuid.uuid4().hex)

    def action() -> dict[str, Any]:
        now = _now()
        with sessions.begin() as session:
            row = views.load_commitment(session, round_id, org_id, commitment_id)
            check_fulfilment(
                CommitmentStatus(row.status), fulfilled_on=body.fulfilled_on,
                description=body.description, evidence=body.evidence, today=local_date(now),
            )  # fmt: skip
            file_id = f"{round_id}/{org_id}/{body.evidence['sha256']}"
            if session.get(UploadedFileRow, file_id) is None:
                raise DomainError(
                    "文件尚未上传，请先通过 files 接口上传", code="invalid", field="evidence.sha256"
                )
            items = {i.item_id for i in views.items_of(session, commitment_id)}
            if body.item_id is not None and body.item_id not in items:
                raise DomainError("不是该承诺的承诺事项", code="invalid", field="item_id")
            # ON CONFLICT DO NOTHING: a concurrent retry with the same key writes nothing.
            table = FulfilmentEntryRow.__table__
            session.execute(
                upsert_insert(session, table)  # type: ignore[arg-type]
                .values(
                    entry_id=entry_id, commitment_id=commitment_id, item_id=body.item_id,
                    fulfilled_on=body.fulfilled_on, description=body.description.strip(),
                    evidence={"name": body.evidence["name"], "sha256": body.evidence["sha256"]},
                    recorded_by=user.username, recorded_at=now,
                )
                .on_conflict_do_nothing(index_elements=["entry_id"])
            )  # fmt: skip
            session.flush()
            return views.commitment_view(session, row)

    return await idempotent(request, sessions, user, action, status_code=201)


@router.post(
    "/{commitment_id}/reviews",
    summary="评诺",
    response_model=views.CommitmentView,
    responses=errors(*WITH_BODY),
)
async def review(
    round_id: str, org_id: str, commitment_id: str, body: ReviewBody, request: Request,
    sessions: SessionsDep, user: CurrentUser,
) -> Any:  # fmt: skip
    """The upper level's verdict; one per occasion (a later one on the same occasion wins)."""
    await run_sync(_scoped, sessions, user, round_id, org_id)
    require_role(user, *SIGNERS)
    check_review(body.verdict, body.comment)

    def action() -> dict[str, Any]:
        now = _now()
        with sessions.begin() as session:
            row = views.load_commitment(session, round_id, org_id, commitment_id)
            row.status, row.updated_at = move(CommitmentStatus(row.status), "review"), now
            session.merge(
                CommitmentReviewRow(
                    review_id=f"{commitment_id}:{body.occasion.value}",
                    commitment_id=commitment_id, occasion=body.occasion.value,
                    verdict=body.verdict.value, comment=body.comment.strip(),
                    reviewer=user.username, reviewed_at=now,
                )
            )  # fmt: skip
            session.flush()
            return views.commitment_view(session, row)

    return await idempotent(request, sessions, user, action)


@router.post(
    "/step",
    summary="以承诺台账提交“党员承诺”步骤",
    response_model=ActionResponse,
    responses=errors(*WITH_BODY, *TEMPORAL),
)
async def submit_step(
    round_id: str, org_id: str, body: StepBody, request: Request, sessions: SessionsDep,
    client: TemporalClientDep, user: CurrentUser,
) -> Any:  # fmt: skip
    """Submit the workflow's step with the roster snapshot, the counted commitments and the
    absences as evidence; the workflow's guard refuses while any member is uncovered."""

    def gather() -> dict[str, Any]:
        with sessions() as session:
            org = visible_organisation(session, user, org_id)
            _, plan = views.round_plan(session, round_id)
            steps = [s for p in plan.phases for s in p.steps_for(org.type) if s.id == body.step_id]
            fields = [
                f for s in steps for f in s.evidence if f.kind is FieldKind.MEMBER_COMMITMENTS
            ]
            if not fields:
                raise DomainError(f"本轮计划中没有含党员承诺的步骤 {body.step_id}",
                                  code="unknown_step", field="step_id")  # fmt: skip
            return body.values | {fields[0].name: views.ledger_evidence(session, round_id, org_id)}

    values = evidence_within_limits(await run_sync(gather), field="values")
    actor = Actor(user=user.username, name=user.display_name, role=user.role, ip=client_ip(request))
    cmd = SubmitEvidence(
        actor=actor,
        step_id=body.step_id,
        values=values,
        idempotency_key=command_key(user, idempotency_key(request)),
    )

    async def run() -> dict[str, Any]:
        wf = organisation_workflow_id(round_id, org_id)
        result = await update(client, wf, "submit_evidence", cmd, ActionResult)
        # The Update's result is small; the whole status comes from a query (no history).
        status = await query(client, wf, "status", CampaignStatus)
        return status.model_dump(mode="json") | {"result": result.model_dump(mode="json")}

    return await idempotent(request, sessions, user, run)
