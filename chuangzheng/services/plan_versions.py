"""Plan versions of a running round: see the current plan, preview a draft, apply it.

A round's plan is versioned (``domain.plan_version``). Version 1 is the plan the round was
kicked off with; the county office applies a new version with a reason and an idempotency
key, and the round moves every open organisation to it. This module is the use case that
the API, the round's page, the CLI and the what-if (apply a reviewed draft in one action)
share:

- :func:`current_plan`: the version in force, its plan and its YAML (the form's draft);
- :func:`preview_plan_version`: what a draft would change (Chinese lines), checked exactly
  as applying it would be, nothing sent;
- :func:`apply_plan_version`: check the draft, store its plan (content-addressed, like the
  kick-off's), send it to the round (``CampaignRound.apply_plan_version``, once per key) and
  audit it (``round_plan_version_applied``: the version, who, why, what changed);
- :func:`plan_versions`: every version with what it changed, from the read model.

Validation runs before anything is sent or written: a draft that does not load, changes
the phases or their steps, or moves a deadline into the past is :class:`InvalidInput`
naming the field in Chinese, and nothing changes. The round's schedule is re-resolved from
its own kick-off instant with the round's pinned calendar (so a calendar update already
applied stays applied); a draft that reaches past that table is resolved with its own
calendar, and one reaching a year without data is refused naming the year.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

import anyio.to_thread
import yaml
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from activities.round_progress import plan_ref_of, store_plan
from activities.tables import AuditRow, RoundDefinitionRow, RoundPlanRow
from chuangzheng.plans import parse_plan
from chuangzheng.services import workflow_calls
from chuangzheng.services.errors import Conflict, InvalidInput, NotFound, Refused, from_domain
from domain.calendar import CalendarGap, OutsidePinnedCalendar
from domain.errors import DomainError, FieldError, PlanError
from domain.organisation import Role
from domain.plan import CampaignPlan
from domain.plan_version import (
    PlanVersionChange,
    check_deadlines_not_past,
    check_plan_version,
    describe_plan_changes,
)
from domain.schedule import (
    PhaseWindow,
    RoundSchedule,
    check_deadline_in_calendar,
    resolve_round,
    resolve_windows,
)
from domain.state import Actor
from domain.text import free_text_problem
from workflows.ids import round_workflow_id
from workflows.round_contracts import RoundPlanState

P = ParamSpec("P")
T = TypeVar("T")

#: The audit action of an applied version (labelled in ``services.audit_log``).
AUDIT_ACTION = "round_plan_version_applied"
_NO_ROUND = "轮次不存在"


@dataclass(frozen=True)
class CurrentPlan:
    """The plan version in force: its number, content address, plan and YAML text (what the
    round's page offers as the draft to edit)."""

    round_id: str
    version: int
    plan_ref: str
    plan: CampaignPlan
    round_plan_id: str

    def yaml_text(self) -> str:
        """The plan as YAML that :func:`chuangzheng.plans.parse_plan` reads back unchanged."""
        return plan_yaml(self.plan)


@dataclass(frozen=True)
class PlanVersionPreview:
    """What applying a draft would do: the version it would become, its plan's address,
    the Chinese lines of what it changes and the phases' new windows."""

    round_id: str
    base_version: int
    version: int
    plan_ref: str
    changes: list[str]
    windows: tuple[PhaseWindow, ...]


@dataclass(frozen=True)
class AppliedPlanVersion:
    """The round's answer: the version number, whether this call applied it (False: the
    same idempotency key was applied before, nothing new), and what it changed."""

    round_id: str
    version: int
    applied: bool
    action_id: str
    plan_ref: str
    changes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PlanVersionRecord:
    """One version as the audit shows it (version 1: the kick-off's plan)."""

    version: int
    plan_ref: str
    applied_by: str
    applied_at: datetime | None
    reason: str
    changes: list[str]


def plan_yaml(plan: CampaignPlan) -> str:
    """A plan as YAML (defaults left out) that loads back into the same plan."""
    data = plan.model_dump(mode="json", exclude_defaults=True)
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def authorise(actor: Actor) -> None:
    if actor.role is not Role.COUNTY_OFFICE:
        raise Refused("forbidden", "只有县委活动办可以调整本轮计划")


async def _in_thread(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    return await anyio.to_thread.run_sync(functools.partial(func, *args, **kwargs))


def _invalid(errors: list[FieldError]) -> InvalidInput:
    return InvalidInput(
        "invalid_plan",
        "新版计划有误，未作任何调整",
        [{"field": e.field, "reason": e.reason} for e in errors],
    )


def parse_draft(text: str) -> CampaignPlan:
    """A draft's YAML as a plan: :class:`InvalidInput` naming every field that is wrong."""
    if not text.strip():
        raise _invalid([FieldError("plan_yaml", "请填写新版计划")])
    try:
        return parse_plan(text)
    except DomainError as exc:
        raise from_domain(exc) from None


# ----- reading the round ------------------------------------------------------------------------
def _definition(sessions: sessionmaker[Session], round_id: str) -> RoundDefinitionRow:
    with sessions() as session:
        definition = session.get(RoundDefinitionRow, round_id)
        if definition is None:
            raise NotFound(_NO_ROUND)
        if definition.kicked_off_at is None:
            raise Conflict("not_started", "本轮尚未启动，请直接修改计划")
        session.expunge(definition)
        return definition


def _stored_plan(sessions: sessionmaker[Session], ref: str) -> CampaignPlan:
    with sessions() as session:
        row = session.get(RoundPlanRow, ref)
        if row is None:
            raise Conflict("plan_missing", f"本轮计划 {ref} 不在数据库中")
        return CampaignPlan.model_validate_json(row.plan_json)


async def _plan_state(temporal: Client, round_id: str) -> RoundPlanState:
    try:
        return await workflow_calls.query(
            temporal, round_workflow_id(round_id), "plan_state", RoundPlanState
        )
    except Conflict:
        # The legacy round type has no such query (rounds kicked off before plan versions).
        raise Conflict("unsupported", "本轮使用旧版流程，不支持在运行中调整计划") from None


async def current_plan(
    sessions: sessionmaker[Session], temporal: Client, round_id: str, *, caller: Actor
) -> CurrentPlan:
    """The version in force (asked of the round workflow) and its stored plan."""
    authorise(caller)
    definition = await _in_thread(_definition, sessions, round_id)
    state = await _plan_state(temporal, round_id)
    plan = await _in_thread(_stored_plan, sessions, state.plan_ref)
    return CurrentPlan(
        round_id=round_id,
        version=state.version,
        plan_ref=state.plan_ref,
        plan=plan,
        round_plan_id=definition.round_plan_id,
    )


# ----- checking a draft -------------------------------------------------------------------------
def _round_index(plan: CampaignPlan, round_plan_id: str) -> int:
    return next(i for i, r in enumerate(plan.rounds) if r.id == round_plan_id)


def resolve_version(
    draft: CampaignPlan, round_plan_id: str, schedule: RoundSchedule
) -> RoundSchedule:
    """The draft's schedule from the round's own kick-off instant: with the round's pinned
    calendar when it reaches far enough (the returned ``calendar`` is then None: the round
    keeps its own), else with the draft's calendar (package data and its supplements).
    :class:`InvalidInput` for a year without data (named) or an impossible schedule."""
    round_plan = draft.round(round_plan_id)
    index = _round_index(draft, round_plan_id)
    pinned = schedule.calendar
    try:
        if pinned is not None:
            try:
                windows = resolve_windows(round_plan, schedule.starts_at, pinned)
                check_deadline_in_calendar(
                    pinned, draft.ladder_for(round_plan), windows[-1].deadline, field="phases"
                )
                return RoundSchedule(starts_at=schedule.starts_at, windows=windows)
            except OutsidePinnedCalendar:
                pass  # beyond the round's table: the draft's own calendar decides
            except DomainError as exc:
                if exc.code != "invalid_deadline":  # the ladder's end past the table
                    raise
        return resolve_round(draft, round_plan, schedule.starts_at)
    except CalendarGap as gap:
        raise _invalid([FieldError(f"rounds[{index}].phases", str(gap))]) from None
    except DomainError as exc:
        raise from_domain(exc) from None


async def _check(
    sessions: sessionmaker[Session],
    temporal: Client,
    round_id: str,
    draft: CampaignPlan,
    now: datetime,
) -> tuple[RoundPlanState, PlanVersionPreview, RoundSchedule, str]:
    definition = await _in_thread(_definition, sessions, round_id)
    state = await _plan_state(temporal, round_id)
    if state.closed:
        raise Conflict("round_closed", "本轮活动已结束，不能调整计划")
    if state.schedule is None:
        raise Conflict("not_started", "本轮尚未完成启动，请稍后再调整计划")
    current = await _in_thread(_stored_plan, sessions, state.plan_ref)
    round_plan_id = definition.round_plan_id
    try:
        check_plan_version(current, draft, round_plan_id)
    except PlanError as exc:
        raise _invalid(exc.errors) from None
    resolved = resolve_version(draft, round_plan_id, state.schedule)
    try:
        check_deadlines_not_past(
            state.schedule.windows,
            resolved.windows,
            now,
            round_index=_round_index(draft, round_plan_id),
        )
    except PlanError as exc:
        raise _invalid(exc.errors) from None
    changes = describe_plan_changes(
        state.schedule.windows,
        resolved.windows,
        current.ladder_for(current.round(round_plan_id)),
        draft.ladder_for(draft.round(round_plan_id)),
    )
    preview = PlanVersionPreview(
        round_id=round_id,
        base_version=state.version,
        version=state.version + 1,
        plan_ref=plan_ref_of(draft),
        changes=changes,
        windows=resolved.windows,
    )
    return state, preview, resolved, round_plan_id


async def preview_plan_version(
    sessions: sessionmaker[Session],
    temporal: Client,
    round_id: str,
    new_plan: CampaignPlan,
    *,
    caller: Actor,
    now: datetime | None = None,
) -> PlanVersionPreview:
    """What applying ``new_plan`` would change, checked as :func:`apply_plan_version` checks
    it; nothing is sent or written."""
    authorise(caller)
    _, preview, _, _ = await _check(
        sessions, temporal, round_id, new_plan, now or datetime.now(UTC)
    )
    return preview


# ----- applying ---------------------------------------------------------------------------------
async def apply_plan_version(
    sessions: sessionmaker[Session],
    temporal: Client,
    round_id: str,
    new_plan: CampaignPlan,
    *,
    reason: str,
    caller: Actor,
    idempotency_key: str,
    base_version: int | None = None,
    now: datetime | None = None,
) -> AppliedPlanVersion:
    """Apply ``new_plan`` as the round's next plan version, once per ``idempotency_key``.

    Checked before anything is sent (see the module docstring); then the plan is stored by
    content address, the round applies the version (numbered by the round; a retry with
    the same key answers ``applied`` False with the first call's number, so two concurrent
    retries apply once) and fans it out to every organisation, and the version is audited
    with who applied it, why and what it changed. ``base_version``: the version the draft
    was made from (a reviewed what-if); the round refuses it (``stale_version``) if another
    version was applied since. ``now``: the instant deadlines may not move before (the
    clock; tests on virtual time pass the workflow's).
    """
    authorise(caller)
    # Counted as a reader sees it: spaces or zero-width characters are no reason.
    if problem := free_text_problem(reason, short="调整计划必须填写理由"):
        raise _invalid([FieldError("reason", problem)])
    key = idempotency_key.strip()
    if not key or len(key) > 120:
        raise _invalid([FieldError("idempotency_key", "幂等键不能为空，且不超过 120 个字符")])
    moment = now or datetime.now(UTC)
    state, preview, resolved, round_plan_id = await _check(
        sessions, temporal, round_id, new_plan, moment
    )
    retry = key in state.version_ids  # the round answers it with the first call's number
    if not retry and not preview.changes and preview.plan_ref == state.plan_ref:
        raise Conflict("unchanged", "新版计划与当前版本相同，无需调整")
    await _in_thread(store_plan, sessions, new_plan)
    round_plan = new_plan.round(round_plan_id)
    try:
        command = PlanVersionChange(
            version_id=key,
            base_version=base_version,
            plan_ref=preview.plan_ref,
            windows=resolved.windows,
            ladder=new_plan.ladder_for(round_plan),
            calendar=resolved.calendar,
            changes=tuple(preview.changes),
            actor=caller,
            reason=reason.strip(),
        )
    except ValidationError as exc:
        raise _invalid(
            [FieldError(".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()]
        ) from None
    result: dict[str, Any] = await workflow_calls.update(
        temporal, round_workflow_id(round_id), "apply_plan_version", command, dict
    )
    applied = AppliedPlanVersion(
        round_id=round_id,
        version=int(result.get("version") or preview.version),
        applied=bool(result.get("applied")),
        action_id=str(result.get("action_id", "")),
        plan_ref=preview.plan_ref,
        changes=preview.changes,
    )
    await _in_thread(_audit, sessions, caller, command, applied, state.plan_ref)
    return applied


def _audit_id(round_id: str, key: str) -> str:
    return f"{AUDIT_ACTION}/{round_id}/{key}"


def _audit(
    sessions: sessionmaker[Session],
    caller: Actor,
    command: PlanVersionChange,
    applied: AppliedPlanVersion,
    previous_ref: str,
) -> None:
    """One audit row per version (keyed by the idempotency key): a retry (``applied``
    False) or a concurrent second call never writes a second one or overwrites the first."""
    audit_id = _audit_id(applied.round_id, command.version_id)
    try:
        with sessions.begin() as session:
            if session.get(AuditRow, audit_id) is not None:
                return
            session.add(
                AuditRow(
                    audit_id=audit_id,
                    user=caller.user,
                    role=caller.role.value,
                    action=AUDIT_ACTION,
                    round_id=applied.round_id,
                    org_id=None,
                    ip=caller.ip,
                    at=datetime.now(UTC),
                    detail={
                        "version": applied.version,
                        "version_id": command.version_id,
                        "action_id": applied.action_id,
                        "plan_ref": applied.plan_ref,
                        "previous_ref": previous_ref,
                        "base_version": command.base_version,
                        "reason": command.reason,
                        "changes": applied.changes,
                        "applied_by_name": caller.name,
                    },
                )
            )
    except IntegrityError:
        pass  # a concurrent retry recorded the same version first


# ----- the audit of versions --------------------------------------------------------------------
def current_plan_in(session: Session, round_id: str) -> CampaignPlan | None:
    """The plan of the round's latest applied version as the read model records it, or
    None while the round runs on its kick-off plan. For re-resolving the round's schedule
    elsewhere (a calendar update) from the plan in force, not from version 1."""
    rows = session.scalars(
        select(AuditRow).where(AuditRow.round_id == round_id, AuditRow.action == AUDIT_ACTION)
    ).all()
    if not rows:
        return None
    latest = max(rows, key=lambda r: int(r.detail.get("version", 0)))
    stored = session.get(RoundPlanRow, str(latest.detail.get("plan_ref", "")))
    return CampaignPlan.model_validate_json(stored.plan_json) if stored is not None else None


def plan_versions(session: Session, round_id: str) -> list[PlanVersionRecord]:
    """Every version of the round's plan, oldest first, with what each changed (version 1:
    the plan the round was kicked off with). Read model only. :class:`NotFound` for an
    unknown round."""
    definition = session.get(RoundDefinitionRow, round_id)
    if definition is None:
        raise NotFound(_NO_ROUND)
    records: list[PlanVersionRecord] = []
    if definition.kicked_off_at is not None:
        try:
            first_ref = plan_ref_of(parse_plan(definition.plan_yaml))
        except DomainError:
            first_ref = ""
        records.append(
            PlanVersionRecord(
                version=1,
                plan_ref=first_ref,
                applied_by=definition.created_by,
                applied_at=definition.kicked_off_at,
                reason="启动本轮时的计划",
                changes=[],
            )
        )
    rows = session.scalars(
        select(AuditRow).where(AuditRow.round_id == round_id, AuditRow.action == AUDIT_ACTION)
    ).all()
    for row in sorted(rows, key=lambda r: int(r.detail.get("version", 0))):
        detail = row.detail
        records.append(
            PlanVersionRecord(
                version=int(detail.get("version", 0)),
                plan_ref=str(detail.get("plan_ref", "")),
                applied_by=str(detail.get("applied_by_name") or row.user),
                applied_at=row.at,
                reason=str(detail.get("reason", "")),
                changes=[str(c) for c in detail.get("changes", [])],
            )
        )
    return records


__all__ = [
    "AUDIT_ACTION",
    "AppliedPlanVersion",
    "CurrentPlan",
    "PlanVersionPreview",
    "PlanVersionRecord",
    "apply_plan_version",
    "authorise",
    "current_plan",
    "current_plan_in",
    "parse_draft",
    "plan_versions",
    "plan_yaml",
    "preview_plan_version",
    "resolve_version",
]
