"""Human actions on one organisation's campaign, each an Update on its workflow.

Every route checks the caller's scope on the organisation first (404 outside it); the
workflow's validator then checks the role and the rules, and its refusal comes back as a
4xx with the validator's code and reason. The routes differ only in path, body, Update and
command, so they are declared as one table (:data:`ACTIONS`) and built by :func:`_route`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from fastapi import APIRouter, Request
from pydantic import BaseModel

from api.deps import CurrentUser, SessionsDep, TemporalClientDep, client_ip
from api.idempotency import command_key, idempotency_key, idempotent
from api.responses import AUTHENTICATED, TEMPORAL, WITH_BODY, errors
from api.routers.action_bodies import (
    Acknowledge,
    ActionResponse,
    AskExtension,
    Decide,
    DecideExtension,
    MinimalActionResponse,
    Recheck,
    Report,
    Submit,
    Waive,
)
from api.routers.organisations import visible_organisation
from api.workflow_calls import query, update
from domain import actions
from domain.campaign_rules import CampaignStatus
from domain.state import Actor
from workflows.contracts import ActionResult
from workflows.ids import organisation_workflow_id

router = APIRouter(
    prefix="/api/v1/rounds/{round_id}/organisations/{org_id}",
    tags=["操作 actions"],
    responses=errors(*AUTHENTICATED, 404, 409, *WITH_BODY, *TEMPORAL),
)


class Action(NamedTuple):
    """One route: where, what it says, its body, the Update it runs and the command it builds
    (the body's fields plus the actor, the idempotency key and any extra path parameter)."""

    path: str
    summary: str
    description: str
    body: type[BaseModel]
    update: str
    command: type[BaseModel]


ACTIONS: tuple[Action, ...] = (
    Action("/submissions", "提交材料", "书记提交本阶段某一步骤的材料。", Submit,
           "submit_evidence", actions.SubmitEvidence),
    Action("/decisions", "审核材料（通过/退回）", "上级审核最新提交的材料，退回须说明理由。",
           Decide, "decide_submission", actions.DecideSubmission),
    Action("/waivers", "免除步骤", "上级免除某一步骤，须说明理由。", Waive,
           "waive_step", actions.WaiveStep),
    Action("/extensions", "申请延期", "书记申请推迟本阶段截止时间。", AskExtension,
           "request_extension", actions.RequestExtension),
    Action("/extensions/{extension_id}/decision", "审批延期", "上级批准或驳回延期申请。",
           DecideExtension, "decide_extension", actions.DecideExtension),
    Action("/acknowledgements", "签收督办通知", "督办对象签收某一级督办通知。", Acknowledge,
           "acknowledge_escalation", actions.AcknowledgeEscalation),
    Action("/rectification/report", "提交整改报告", "书记提交整改报告。", Report,
           "report_rectification", actions.ReportRectification),
    Action("/rectification/recheck", "复查整改", "上级复查整改，未通过须写明意见。", Recheck,
           "recheck_rectification", actions.RecheckRectification),
)  # fmt: skip


def _route(action: Action) -> None:
    """Register ``action`` on the router."""

    async def endpoint(
        round_id: str,
        org_id: str,
        body: BaseModel,
        request: Request,
        sessions: SessionsDep,
        client: TemporalClientDep,
        user: CurrentUser,
    ) -> Any:
        extra = {k: v for k, v in request.path_params.items() if k not in ("round_id", "org_id")}
        cmd = action.command.model_validate(
            body.model_dump()
            | extra
            | {
                "actor": Actor(
                    user=user.username,
                    name=user.display_name,
                    role=user.role,
                    ip=client_ip(request),
                ),
                "idempotency_key": command_key(user, idempotency_key(request)),
            }
        )

        # RFC 7240: a client that only needs the Update's result saves the status query.
        minimal = "return=minimal" in request.headers.get("Prefer", "")

        async def run() -> dict[str, Any]:
            workflow_id = organisation_workflow_id(round_id, org_id)
            result = await update(client, workflow_id, action.update, cmd, ActionResult)
            if minimal:
                return {"result": result.model_dump(mode="json")}
            # The Update returns a small result (it is stored in history); the caller gets
            # the whole status as before, read by a query, which writes no history.
            status = await query(client, workflow_id, "status", CampaignStatus)
            return status.model_dump(mode="json") | {"result": result.model_dump(mode="json")}

        # The scope check (404 outside it) shares the key lookup's session and thread hop.
        return await idempotent(
            request,
            sessions,
            user,
            run,
            check=lambda session: visible_organisation(session, user, org_id),
        )

    # FastAPI reads the body model from the annotation: give each route its own.
    endpoint.__annotations__ = {**endpoint.__annotations__, "body": action.body}
    endpoint.__name__ = action.update
    endpoint.__doc__ = (
        f"{action.description}\n\n请求头 `Prefer: return=minimal`：只返回本次操作的结果 `result`"
        "（不再查询完整状态，更快）。"
    )
    router.post(
        action.path,
        summary=action.summary,
        response_model=ActionResponse | MinimalActionResponse,
    )(endpoint)


for _action in ACTIONS:
    _route(_action)
