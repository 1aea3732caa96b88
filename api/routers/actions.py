"""Human actions on one organisation's campaign, each an Update on its workflow.

The use case is ``chuangzheng.services.organisation_actions`` (scope, idempotency keys,
the Update, the status); the routes only parse the request, call it and map its errors to
HTTP (:func:`as_api_error`). The routes differ only in path, body and action, so they are
declared as one table (:data:`ACTIONS`, which the pages share) and built by :func:`_route`.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Annotated, NamedTuple

import structlog
from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel
from starlette.background import BackgroundTask

from api.auth import User
from api.deps import CurrentUser, SessionsDep, TemporalClientDep, client_ip
from api.errors import as_api_error
from api.idempotency import TWIN_RUNNING, idempotency_key
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
from api.scope import covers
from chuangzheng.services.errors import Conflict, ServiceError
from chuangzheng.services.organisation_actions import (
    Caller,
    OrganisationAction,
    OrganisationActions,
)
from domain.state import Actor

log = structlog.get_logger(__name__)

router = APIRouter(
    prefix="/api/v1/rounds/{round_id}/organisations/{org_id}",
    tags=["操作 actions"],
    responses=errors(*AUTHENTICATED, 404, 409, *WITH_BODY, *TEMPORAL),
)


class Action(NamedTuple):
    """One route: where, what it says, its body and the action it runs (the body's fields
    plus any extra path parameter make the action's fields)."""

    path: str
    summary: str
    description: str
    body: type[BaseModel]
    action: OrganisationAction


_PATH_PARAMETER = re.compile(r"{([^}:]+)}")
_A = OrganisationAction
ACTIONS: tuple[Action, ...] = (
    Action("/submissions", "提交材料", "书记提交本阶段某一步骤的材料。", Submit,
           _A.SUBMIT_EVIDENCE),
    Action("/decisions", "审核材料（通过/退回）", "上级审核最新提交的材料，退回须说明理由。",
           Decide, _A.DECIDE_SUBMISSION),
    Action("/waivers", "免除步骤", "上级免除某一步骤，须说明理由。", Waive, _A.WAIVE_STEP),
    Action("/extensions", "申请延期", "书记申请推迟本阶段截止时间。", AskExtension,
           _A.REQUEST_EXTENSION),
    Action("/extensions/{extension_id}/decision", "审批延期", "上级批准或驳回延期申请。",
           DecideExtension, _A.DECIDE_EXTENSION),
    Action("/acknowledgements", "签收督办通知", "督办对象签收某一级督办通知。", Acknowledge,
           _A.ACKNOWLEDGE_ESCALATION),
    Action("/rectification/report", "提交整改报告", "书记提交整改报告。", Report,
           _A.REPORT_RECTIFICATION),
    Action("/rectification/recheck", "复查整改", "上级复查整改，未通过须写明意见。", Recheck,
           _A.RECHECK_RECTIFICATION),
)  # fmt: skip


def caller(user: User, ip: str | None) -> Caller:
    """The service's view of an account: the actor the workflow records and its scope."""
    return Caller(
        actor=Actor(user=user.username, name=user.display_name, role=user.role, ip=ip),
        covers=lambda org: covers(user, org),
    )


#: The headers of an action's answer, as the OpenAPI document declares them.
ANSWER_HEADERS = {
    "Server-Timing": {
        "description": "各环节耗时（毫秒）：scope 权限检查与幂等键占用（含等待同键请求），"
        "update 流程操作，status 读取完整状态（status_skipped：1 秒内未读到），store 保存应答",
        "schema": {"type": "string"},
    },
    "Preference-Applied": {
        "description": "`return=minimal`：只返回了 `result`（默认，或完整状态未能及时读到）；"
        "`return=representation`：返回了操作后的完整状态",
        "schema": {"type": "string"},
    },
    "Idempotent-Replayed": {
        "description": "`true`：同一 Idempotency-Key 的重放应答，操作没有再执行",
        "schema": {"type": "string"},
    },
}


def _keep_answer(keep: Callable[[], None]) -> None:
    """Keep an action's answer for retries (a plain function: Starlette runs it in the
    threadpool after the response is sent). A failure only costs a retry a second Update,
    which the workflow deduplicates: logged, not raised."""
    try:
        keep()
    except Exception:
        log.warning("idempotency_answer_not_kept", exc_info=True)


def wants_representation(prefer: str) -> bool:
    """Whether a ``Prefer`` header (RFC 7240) asks for the whole status after the action.

    The default answer is the Update's result: the whole status is a query on top of the
    Update, which in a deadline storm is what waits (issue 11); pages and most clients need
    only the step's new status."""
    tokens = {part.strip().lower() for item in prefer.split(",") for part in item.split(";")}
    return "return=representation" in tokens


def server_timing(timings: tuple[tuple[str, float], ...]) -> str:
    """The ``Server-Timing`` header (W3C) of an action: where its time went, in ms (the
    scope check and key lookup, the Update, the status query, the stored answer)."""
    return ", ".join(f"{name};dur={seconds * 1000:.1f}" for name, seconds in timings)


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
        **path_parameters: str,
    ) -> Response:
        extra = {k: v for k, v in request.path_params.items() if k not in ("round_id", "org_id")}
        service = OrganisationActions(sessions=sessions, temporal=client)
        try:
            outcome = await service.act(
                caller(user, client_ip(request)),
                round_id=round_id,
                org_id=org_id,
                action=action.action,
                fields=body.model_dump(mode="json") | extra,
                idempotency_key=idempotency_key(request),
                # RFC 7240: the answer is the Update's small result unless the client asks
                # for the whole status (``return=representation``), which costs a query.
                with_status=wants_representation(request.headers.get("Prefer", "")),
                # The answer kept for retries is written once the response is sent.
                defer_store=True,
            )
        except ServiceError as exc:
            error = as_api_error(exc)
            if isinstance(exc, Conflict) and exc.code == TWIN_RUNNING:
                # A copy of this request (same key, same body) is still running: retry soon.
                error.headers["Retry-After"] = "1"
            raise error from None
        # The answer is JSON already (and what a retry replays): no second encoding.
        headers = {"Server-Timing": server_timing(outcome.timings)}
        # RFC 7240: which answer this is, asked for or not (a whole status not read in time
        # gives the result only: the action is done all the same).
        headers["Preference-Applied"] = (
            "return=minimal" if outcome.minimal else "return=representation"
        )
        if outcome.replayed:
            headers["Idempotent-Replayed"] = "true"
        keep = outcome.keep_answer
        return Response(
            outcome.body,
            media_type="application/json",
            headers=headers,
            background=BackgroundTask(_keep_answer, keep) if keep is not None else None,
        )

    # FastAPI reads the body model from the annotation: give each route its own.
    endpoint.__annotations__ = {**endpoint.__annotations__, "body": action.body}
    # A path parameter beyond round and organisation (``extension_id``) arrives in
    # ``path_parameters``; the signature FastAPI reads names it, so the OpenAPI document
    # declares it (and the catch-all itself is no parameter).
    signature = inspect.signature(endpoint)
    parameters = [
        p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    parameters += [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[str, Path(min_length=1, max_length=200)],
        )
        for name in _PATH_PARAMETER.findall(action.path)
    ]
    endpoint.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    endpoint.__name__ = action.action.value
    endpoint.__doc__ = (
        f"{action.description}\n\n默认只返回本次操作的结果 `result`（步骤的新状态与状态版本）。"
        "请求头 `Prefer: return=representation`：另返回操作后的完整状态（多一次查询，较慢）；"
        "流程服务繁忙、1 秒内读不到完整状态时，操作照常生效，只返回 `result`，并带响应头 "
        "`Preference-Applied: return=minimal`。响应头 `Server-Timing` 给出各环节耗时（毫秒）。"
    )
    router.post(
        action.path,
        summary=action.summary,
        response_model=ActionResponse | MinimalActionResponse,
        responses={200: {"headers": ANSWER_HEADERS}},
    )(endpoint)


for _action in ACTIONS:
    _route(_action)
