"""Plan versions of a running round (县委活动办 only): the current plan, the audit of
versions, preview a draft, apply it.

Thin: the use cases are ``chuangzheng.services.plan_versions``; the routes parse the request,
call them and map their errors to HTTP (``api.errors.as_api_error``). Applying keeps the
API's stored answer per Idempotency-Key (``api.idempotency``), and the round applies each
key once, so two concurrent retries apply one version.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from api.auth import User
from api.blocking import run_sync
from api.deps import CurrentUser, SessionDep, SessionsDep, TemporalClientDep, client_ip
from api.errors import as_api_error
from api.idempotency import HEADER, idempotent
from api.responses import AUTHENTICATED, TEMPORAL, WITH_BODY, errors
from chuangzheng.services import plan_versions
from chuangzheng.services.errors import InvalidInput, ServiceError
from domain.schedule import PhaseWindow
from domain.state import Actor

router = APIRouter(
    prefix="/api/v1/rounds", tags=["计划版本 plan versions"], responses=errors(*AUTHENTICATED, 404)
)


class PlanDraft(BaseModel):
    """A new version of the round's plan: the whole plan as YAML (the current one, from
    ``GET .../plan``, edited), why, and optionally the version it was drafted from."""

    plan_yaml: str = Field(min_length=1, max_length=200_000)
    reason: str = Field(default="", max_length=2000)
    base_version: int | None = Field(default=None, ge=1)
    # The round applies each key once; the Idempotency-Key header when absent.
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=120)


class CurrentPlanView(BaseModel):
    """The plan version in force and its YAML."""

    round_id: str
    version: int
    plan_ref: str
    plan_yaml: str


class PreviewView(BaseModel):
    """What a draft would change (nothing applied)."""

    round_id: str
    base_version: int
    version: int
    plan_ref: str
    changes: list[str]
    windows: list[PhaseWindow]


class AppliedView(BaseModel):
    """The round's answer: the version's number, whether this call applied it (False: the
    same key was applied before) and what it changed."""

    round_id: str
    version: int
    applied: bool
    action_id: str
    plan_ref: str
    changes: list[str]


class VersionView(BaseModel):
    """One version as the audit shows it."""

    version: int
    plan_ref: str
    applied_by: str
    applied_at: datetime | None
    reason: str
    changes: list[str]


def _actor(user: User, request: Request) -> Actor:
    return Actor(user=user.username, name=user.display_name, role=user.role, ip=client_ip(request))


def _check_role(actor: Actor) -> None:
    try:
        plan_versions.authorise(actor)
    except ServiceError as exc:
        raise as_api_error(exc) from None


@router.get(
    "/{round_id}/plan",
    summary="本轮当前计划（版本）",
    response_model=CurrentPlanView,
    responses=errors(409, *TEMPORAL),
)
async def get_current_plan(
    round_id: str,
    request: Request,
    user: CurrentUser,
    sessions: SessionsDep,
    client: TemporalClientDep,
) -> dict[str, Any]:
    """The version in force and its plan as YAML (the draft to edit)."""
    actor = _actor(user, request)
    _check_role(actor)
    try:
        current = await plan_versions.current_plan(sessions, client, round_id, caller=actor)
    except ServiceError as exc:
        raise as_api_error(exc) from None
    return {
        "round_id": round_id,
        "version": current.version,
        "plan_ref": current.plan_ref,
        "plan_yaml": current.yaml_text(),
    }


@router.get(
    "/{round_id}/plan-versions", summary="本轮计划的各个版本", response_model=list[VersionView]
)
async def list_versions(
    round_id: str, request: Request, user: CurrentUser, session: SessionDep
) -> list[dict[str, Any]]:
    """Every version (1: the kick-off's plan), who applied it, why and what it changed."""
    _check_role(_actor(user, request))
    try:
        records = await run_sync(plan_versions.plan_versions, session, round_id)
    except ServiceError as exc:
        raise as_api_error(exc) from None
    return [vars(r) for r in records]


@router.post(
    "/{round_id}/plan-versions/preview",
    summary="预览计划调整",
    response_model=PreviewView,
    responses=errors(409, *WITH_BODY, *TEMPORAL),
)
async def preview(
    round_id: str,
    body: PlanDraft,
    request: Request,
    user: CurrentUser,
    sessions: SessionsDep,
    client: TemporalClientDep,
) -> dict[str, Any]:
    """Check a draft as applying it would and say what it changes; nothing is applied."""
    actor = _actor(user, request)
    _check_role(actor)
    try:
        draft = plan_versions.parse_draft(body.plan_yaml)
        result = await plan_versions.preview_plan_version(
            sessions, client, round_id, draft, caller=actor
        )
    except ServiceError as exc:
        raise as_api_error(exc) from None
    return {**vars(result), "windows": [w.model_dump(mode="json") for w in result.windows]}


@router.post(
    "/{round_id}/plan-versions",
    summary="调整本轮计划（启用新版本）",
    response_model=AppliedView,
    responses=errors(409, *WITH_BODY, *TEMPORAL),
)
async def apply(
    round_id: str,
    body: PlanDraft,
    request: Request,
    user: CurrentUser,
    sessions: SessionsDep,
    client: TemporalClientDep,
) -> Any:
    """Apply the draft as the round's next plan version: every open organisation moves to
    it (deadlines and timers recomputed, completed phases untouched). Audited."""
    actor = _actor(user, request)
    _check_role(actor)
    key = body.idempotency_key or request.headers.get(HEADER)

    async def action() -> dict[str, Any]:
        try:
            if not key:
                raise InvalidInput(
                    "invalid",
                    "请求参数有误",
                    [{"field": "idempotency_key", "reason": "请提供幂等键（Idempotency-Key）"}],
                )
            draft = plan_versions.parse_draft(body.plan_yaml)
            applied = await plan_versions.apply_plan_version(
                sessions,
                client,
                round_id,
                draft,
                reason=body.reason,
                caller=actor,
                idempotency_key=key,
                base_version=body.base_version,
            )
        except ServiceError as exc:
            raise as_api_error(exc) from None
        return vars(applied)

    return await idempotent(request, sessions, user, action)
