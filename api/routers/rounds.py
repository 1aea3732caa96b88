"""Rounds: create from a plan, kick off, status, round-wide extension, close (县委活动办).

The use cases are ``chuangzheng.services.rounds``; the routes parse the request, call them
and map their errors to HTTP (``api.errors.as_api_error``). Writes keep the API's
stored answers per Idempotency-Key (``api.idempotency``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from pydantic import AwareDatetime, BaseModel, Field

from api.auth import User
from api.blocking import run_sync
from api.deps import (
    CurrentUser,
    SessionDep,
    SessionsDep,
    SettingsDep,
    TemporalClientDep,
    client_ip,
)
from api.errors import as_api_error
from api.idempotency import HEADER, idempotent
from api.responses import AUTHENTICATED, TEMPORAL, WITH_BODY, Timestamp, errors
from chuangzheng.services import rounds
from chuangzheng.services.errors import ServiceError
from domain.phases import Phase
from domain.schedule import PhaseWindow
from domain.state import Actor
from domain.text import Visible
from workflows.contracts import RoundProgress
from workflows.round_contracts import RoundActionResult

router = APIRouter(
    prefix="/api/v1/rounds", tags=["轮次 rounds"], responses=errors(*AUTHENTICATED, 404)
)


class CreateRound(BaseModel):
    """A new round: a shipped plan (``plan_id``) or an uploaded plan (``plan_yaml``)."""

    round_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-]*$", max_length=64)
    plan_id: str | None = Field(default=None, max_length=64)
    plan_yaml: str | None = Field(default=None, max_length=200_000)
    round_plan_id: str = Field(min_length=1, max_length=64)
    starts_at: AwareDatetime | None = None


class ExtendRound(BaseModel):
    """Move one phase's deadline for every organisation of the round."""

    phase: Phase
    new_deadline: AwareDatetime
    # Counted as a reader sees it, direction overrides refused (domain.text.Visible).
    reason: Annotated[str, Visible()] = Field(max_length=2000)
    # The round dedupes by it (two retries, one extension); the Idempotency-Key header, or
    # a fresh id, when absent.
    request_id: str | None = Field(default=None, min_length=1, max_length=200)


class Close(BaseModel):
    """Close the round."""

    reason: Annotated[str, Visible(0)] = Field(default="", max_length=2000)


class RoundView(BaseModel):
    """A round: its plan, start and status (``status_reason`` says why a round failed)."""

    round_id: str
    name: str
    campaign_id: str
    round_plan_id: str
    starts_at: Timestamp
    status: str = Field(examples=["created", "running", "completed", "failed", "closed"])
    plan_source: str | None
    kicked_off_at: Timestamp | None
    status_reason: str | None


class RoundStatusView(RoundView):
    """A round and, once kicked off, its progress from the read model (county-wide roles
    only; absent otherwise, not null)."""

    progress: RoundProgress | None = None


class CalendarSpan(BaseModel):
    """The days the round's pinned calendar now covers, and where its data came from."""

    first_day: date
    last_day: date
    source: str


class CalendarUpdateResult(BaseModel):
    """The round's answer to new calendar data: whether it was applied now (False: the same
    ``update_id`` was applied before), the pinned calendar and every phase's window."""

    action_id: str
    applied: bool
    calendar: CalendarSpan
    windows: list[PhaseWindow]


class UpdateCalendar(BaseModel):
    """Newly published calendar data for a running round (e.g. the State Council's notice
    for a new year): holidays, 调休 make-up working days, and the years it vouches for."""

    holidays: list[date] = Field(default_factory=list, max_length=400)
    workdays: list[date] = Field(default_factory=list, max_length=400)
    supplied_years: list[int] = Field(default_factory=list, max_length=10)
    reason: Annotated[str, Visible()] = Field(max_length=2000)
    # The round applies each update once; the Idempotency-Key header, or a fresh id.
    update_id: str | None = Field(default=None, min_length=1, max_length=120)


def _actor(user: User, request: Request) -> Actor:
    return Actor(user=user.username, name=user.display_name, role=user.role, ip=client_ip(request))


def _round_view(record: rounds.RoundRecord) -> dict[str, Any]:
    view: dict[str, Any] = {
        "round_id": record.round_id,
        "name": record.name,
        "campaign_id": record.campaign_id,
        "round_plan_id": record.round_plan_id,
        "starts_at": record.starts_at,
        "status": record.status,
        "plan_source": record.plan_source,
        "kicked_off_at": record.kicked_off_at,
        "status_reason": record.status_reason,
    }
    if record.progress is not None:
        view["progress"] = record.progress.model_dump(mode="json")
    return view


async def _answer(
    request: Request,
    sessions: SessionsDep,
    user: User,
    call: Callable[[Actor], Awaitable[Any]],
    *,
    status_code: int = 200,
) -> Response:
    """Run the round command ``call`` once per Idempotency-Key, its errors mapped to HTTP.
    The role is checked first: a caller without it is not answered from a stored reply."""
    actor = _actor(user, request)
    try:
        rounds.authorise(actor)
    except ServiceError as exc:
        raise as_api_error(exc) from None

    async def action() -> Any:
        try:
            return await call(actor)
        except ServiceError as exc:
            raise as_api_error(exc) from None

    return await idempotent(request, sessions, user, action, status_code=status_code)


def _request_id(given: str | None, request: Request) -> str | None:
    # The round dedupes by it: the body's id, else the Idempotency-Key (the service makes a
    # fresh one when both are absent).
    return given or request.headers.get(HEADER)


@router.post(
    "",
    status_code=201,
    summary="由计划文件创建轮次",
    response_model=RoundView,
    responses=errors(409, *WITH_BODY),
)
async def create_round(
    body: CreateRound, request: Request, user: CurrentUser, sessions: SessionsDep
) -> Any:
    """Validate the plan and its round now, so a bad plan is refused before kick-off."""

    async def call(actor: Actor) -> dict[str, Any]:
        record = await rounds.create_round(
            sessions,
            actor,
            round_id=body.round_id,
            round_plan_id=body.round_plan_id,
            plan_id=body.plan_id,
            plan_yaml=body.plan_yaml,
            starts_at=body.starts_at,
        )
        return _round_view(record)

    return await _answer(request, sessions, user, call, status_code=201)


@router.get("", summary="轮次列表", response_model=list[RoundView])
def list_rounds(session: SessionDep, user: CurrentUser) -> list[dict[str, Any]]:
    """Every round (rounds are county-wide; what each caller sees inside is scoped)."""
    return [_round_view(record) for record in rounds.list_rounds(session, user.counties)]


@router.get(
    "/{round_id}",
    summary="轮次状态",
    response_model=RoundStatusView,
    response_model_exclude_unset=True,
)
async def get_round(round_id: str, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """The round and, once kicked off, its progress (county-wide roles only)."""
    try:
        record = await run_sync(
            rounds.round_status, session, round_id, role=user.role, as_of=datetime.now(UTC)
        )
    except ServiceError as exc:
        raise as_api_error(exc) from None
    return _round_view(record)


@router.post(
    "/{round_id}/kickoff",
    summary="启动轮次",
    response_model=RoundView,
    responses=errors(409, 422, *TEMPORAL),
)
async def kick_off(
    round_id: str,
    request: Request,
    user: CurrentUser,
    sessions: SessionsDep,
    settings: SettingsDep,
    client: TemporalClientDep,
) -> Any:
    """Snapshot the roster and start the round workflow (starting twice is harmless)."""
    service = rounds.Rounds(sessions=sessions, temporal=client, settings=settings)

    async def call(actor: Actor) -> dict[str, Any]:
        return _round_view(await service.kick_off(actor, round_id))

    return await _answer(request, sessions, user, call)


@router.post(
    "/{round_id}/extensions",
    summary="统一延期",
    # Rounds of the legacy workflow type answer with their progress.
    response_model=RoundActionResult | RoundProgress,
    responses=errors(409, *WITH_BODY, *TEMPORAL),
)
async def extend(
    round_id: str,
    body: ExtendRound,
    request: Request,
    user: CurrentUser,
    sessions: SessionsDep,
    settings: SettingsDep,
    client: TemporalClientDep,
) -> Any:
    """Move a phase's deadline for everyone (an Update on the round workflow)."""
    service = rounds.Rounds(sessions=sessions, temporal=client, settings=settings)
    request_id = _request_id(body.request_id, request)

    async def call(actor: Actor) -> dict[str, Any]:
        return await service.extend(
            actor,
            round_id,
            phase=body.phase,
            new_deadline=body.new_deadline,
            reason=body.reason,
            request_id=request_id,
        )

    return await _answer(request, sessions, user, call)


@router.post(
    "/{round_id}/close",
    summary="结束轮次",
    # Rounds of the legacy workflow type answer with their progress.
    response_model=RoundActionResult | RoundProgress,
    responses=errors(409, *WITH_BODY, *TEMPORAL),
)
async def close(
    round_id: str,
    body: Close,
    request: Request,
    user: CurrentUser,
    sessions: SessionsDep,
    settings: SettingsDep,
    client: TemporalClientDep,
) -> Any:
    """Close the round: every organisation stops where it stands."""
    service = rounds.Rounds(sessions=sessions, temporal=client, settings=settings)

    async def call(actor: Actor) -> dict[str, Any]:
        return await service.close(actor, round_id, reason=body.reason)

    return await _answer(request, sessions, user, call)


@router.post(
    "/{round_id}/calendar",
    summary="更新本轮日历",
    response_model=CalendarUpdateResult,
    responses=errors(409, *WITH_BODY, *TEMPORAL),
)
async def update_calendar(
    round_id: str,
    body: UpdateCalendar,
    request: Request,
    user: CurrentUser,
    sessions: SessionsDep,
    settings: SettingsDep,
    client: TemporalClientDep,
) -> Any:
    """Re-resolve the round's schedule from its kick-off date with the new calendar data
    (``domain.schedule.reresolve_round``) and apply it to the round: every open deadline and
    timer moves, completed phases stay. Audited in the read model."""
    service = rounds.Rounds(sessions=sessions, temporal=client, settings=settings)
    published = rounds.PublishedCalendar(
        holidays=tuple(body.holidays),
        workdays=tuple(body.workdays),
        supplied_years=tuple(body.supplied_years),
    )
    update_id = _request_id(body.update_id, request)

    async def call(actor: Actor) -> dict[str, Any]:
        outcome = await service.update_calendar(
            actor, round_id, published, reason=body.reason, update_id=update_id
        )
        calendar = outcome.update.calendar
        return {
            **outcome.result,
            "calendar": {
                "first_day": calendar.first_day.isoformat(),
                "last_day": calendar.last_day.isoformat(),
                "source": calendar.source,
            },
            "windows": [w.model_dump(mode="json") for w in outcome.update.windows],
        }

    return await _answer(request, sessions, user, call)
