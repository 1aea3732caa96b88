"""The what-if (推演) use cases: read the live county, check a draft change against it,
rehearse it in virtual time, export the result, and apply a reviewed result as the round's
next plan version.

- **The live county** (:func:`live_county`): the round's plan and schedule as kicked off,
  and every organisation still running in it as the read model shows it now — the phases
  it completed (outcome, when), its current phase's status and deadline (an approved or
  round-wide extension included), the steps it has settled, the rungs that fired and a
  rectification order — carried into the rehearsal by :func:`domain.what_if.carry_state`.
  Each organisation's pace comes from the kept forecast model (its probability of missing
  the current phase, :mod:`chuangzheng.simulation.live_state`); without one, from the
  paced simulation's mix. Closed organisations are left out.
- **The rehearsal** (:func:`rehearse_live`): both arms on a fresh time-skipping server
  (:func:`chuangzheng.simulation.what_if_run.rehearse`), seeded; its result
  (:class:`WhatIfReport`) as Excel (:func:`export_xlsx`).
- **Applying** (:func:`apply_what_if`): a reviewed result becomes the round's next plan
  version through :mod:`chuangzheng.services.plan_versions`.

A county's rehearsal takes minutes: the page and the API run it as a background job
(:mod:`chuangzheng.services.what_if_jobs`), which also keeps the round's latest result.
"""

from __future__ import annotations

import contextlib
import io
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio.to_thread
from openpyxl import Workbook  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from activities.roster_store import organisation_from_row
from activities.round_progress import plan_ref_of
from activities.spreadsheets import append_row
from activities.tables import (
    CampaignStatusRow,
    EscalationRow,
    OrganisationRow,
    PhaseStatusRow,
    RoundDefinitionRow,
    RoundPlanRow,
    RoundRow,
    StepStatusRow,
)
from chuangzheng.plans import parse_plan
from chuangzheng.services import plan_versions, workflow_calls
from chuangzheng.services.callers import Caller, visible_round
from chuangzheng.services.errors import Conflict, InvalidInput, NotFound, from_domain
from chuangzheng.services.forecast import by_organisation, load_model, model_path, round_forecasts
from domain.calendar import CalendarGap, WorkingCalendar
from domain.errors import DomainError, ValidationFailed
from domain.machine import PhaseStatus, StepStatus
from domain.organisation import Organisation
from domain.phases import WORKING_PHASES, Phase
from domain.plan import CalendarPlan, CampaignPlan, RungAction
from domain.schedule import RoundSchedule, check_deadline_in_calendar, is_rebased, resolve_schedule
from domain.state import Outcome
from domain.text import free_text_problem
from domain.what_if import (
    ArmTally,
    ChangeKind,
    DraftChange,
    OrgStart,
    PhaseStart,
    TallyDifference,
    changed_ladder,
    extended_deadline,
    plan_with_change,
)
from workflows.ids import round_workflow_id
from workflows.round_contracts import RoundPlanState

#: The most organisations one what-if carries (a county several times the goal's 3,000).
MAX_ORGANISATIONS = 20_000
#: Phase outcome labels for the page and the export.
OUTCOME_LABELS = {
    Outcome.ON_TIME: "按时完成",
    Outcome.LATE: "逾期完成",
    Outcome.AFTER_RECTIFICATION: "整改后完成",
}


# ----- the live county ---------------------------------------------------------------------


@dataclass(frozen=True)
class LiveCounty:
    """A running round as the read model has it at ``as_of``, ready to rehearse."""

    round_id: str
    round_name: str
    plan: CampaignPlan
    round_plan_id: str
    schedule: RoundSchedule
    calendar: WorkingCalendar
    as_of: datetime
    starts: tuple[OrgStart, ...]
    # Each organisation's forecast probability of missing its current phase (kept model).
    probabilities: dict[str, float]
    # The plan version in force when the county was read (the read model's audit of
    # versions; 1: the kick-off's plan) and its content address: what applying the
    # reviewed draft builds on (:func:`apply_what_if`).
    plan_version: int = 1
    plan_ref: str = ""

    @property
    def windows(self) -> dict[Phase, tuple[datetime, datetime]]:
        """Each phase's planned window."""
        return {w.phase: (w.opens_at, w.deadline) for w in self.schedule.windows}


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def plan_and_schedule(
    plan_yaml: str, round_plan_id: str, starts_at: datetime, *, plan: CampaignPlan | None = None
) -> tuple[CampaignPlan, RoundSchedule]:
    """The round's plan (``plan``, the version in force, else the kick-off's YAML) and its
    schedule resolved from the kick-off instant. A year without holiday data counts as
    weekends only here (as the forecast does): a rehearsal is no deadline."""
    plan = plan if plan is not None else parse_plan(plan_yaml)
    round_plan = plan.round(round_plan_id)
    rebased = is_rebased(round_plan, starts_at)
    try:
        return plan, resolve_schedule(plan, round_plan, starts_at, rebased=rebased)
    except CalendarGap:
        years = tuple(range(starts_at.year, starts_at.year + 4))
        plan = plan.model_copy(
            update={"calendar": plan.calendar.merged(CalendarPlan(supplied_years=years))}
        )
        return plan, resolve_schedule(plan, round_plan, starts_at, rebased=rebased)


def _organisations(session: Session, org_ids: Sequence[str]) -> dict[str, Organisation]:
    out: dict[str, Organisation] = {}
    for first in range(0, len(org_ids), 500):
        chunk = org_ids[first : first + 500]
        for row in session.scalars(
            select(OrganisationRow).where(OrganisationRow.org_id.in_(chunk))
        ):
            out[row.org_id] = organisation_from_row(row)
    return out


def live_county(
    session: Session, round_id: str, *, now: datetime, data_dir: Path | None = None
) -> LiveCounty:
    """The round's organisations as the read model shows them at ``now`` (see the
    module). ``data_dir``: where the forecast model is kept (None: no forecast paces).
    Raises :class:`NotFound` for an unknown round, :class:`Conflict` for one that cannot
    be rehearsed (not running, its plan no longer loads, nobody left running in it)."""
    row = session.get(RoundRow, round_id)
    definition = session.get(RoundDefinitionRow, round_id)
    if row is None or definition is None:
        raise NotFound("轮次不存在")
    if row.status != "running":
        raise Conflict("not_running", "只有进行中的轮次可以推演")
    starts_at = _aware(definition.starts_at or row.starts_at)
    assert starts_at is not None
    # The version in force, not the kick-off's: a draft is rehearsed (and applied) on it.
    versions = plan_versions.plan_versions(session, round_id)
    in_force = versions[-1] if versions else None
    try:
        plan, schedule = plan_and_schedule(
            definition.plan_yaml,
            definition.round_plan_id,
            starts_at,
            plan=plan_versions.current_plan_in(session, round_id),
        )
    except (DomainError, KeyError, ValueError) as exc:
        raise Conflict("plan_unavailable", f"本轮计划无法解析，不能推演：{exc}") from None
    live = read_live(
        session,
        round_id,
        round_name=row.name,
        plan=plan,
        round_plan_id=definition.round_plan_id,
        schedule=schedule,
        now=now,
        data_dir=data_dir,
    )
    if in_force is None:
        return live
    return replace(live, plan_version=in_force.version, plan_ref=in_force.plan_ref)


def read_live(
    session: Session,
    round_id: str,
    *,
    round_name: str,
    plan: CampaignPlan,
    round_plan_id: str,
    schedule: RoundSchedule,
    now: datetime,
    data_dir: Path | None = None,
) -> LiveCounty:
    """:func:`live_county` for a round whose plan and schedule the caller already has (the
    simulation's check against a real run resolves them as the run did)."""
    calendar = schedule.calendar or plan.calendar.build()
    ladder = plan.ladder_for(plan.round(round_plan_id))
    top = next(
        (i for i, r in enumerate(ladder.rungs) if RungAction.RECTIFICATION_ORDER in r.actions),
        len(ladder.rungs) - 1,
    )
    s = CampaignStatusRow
    statuses = session.execute(
        select(s.org_id, s.phase, s.closed).where(s.round_id == round_id).order_by(s.org_id)
    ).all()
    running = [st for st in statuses if not st.closed and st.phase != Phase.COMPLETED.value]
    finished = [st for st in statuses if not st.closed and st.phase == Phase.COMPLETED.value]
    kept = [*running, *finished]
    if not running:
        raise Conflict("nothing_running", "本轮已没有进行中的组织，无需推演")
    if len(kept) > MAX_ORGANISATIONS:
        raise Conflict("too_many", f"推演最多支持 {MAX_ORGANISATIONS} 个组织")
    org_ids = [st.org_id for st in kept]
    orgs = _organisations(session, org_ids)
    p = PhaseStatusRow
    phases: dict[str, dict[str, Any]] = defaultdict(dict)
    for line in session.execute(
        select(
            p.org_id, p.phase, p.status, p.deadline, p.opened_at, p.completed_at, p.outcome
        ).where(p.round_id == round_id)
    ):
        phases[line.org_id][line.phase] = line
    settled: dict[tuple[str, str], list[str]] = defaultdict(list)
    for org_id, phase, step_id in session.execute(
        select(StepStatusRow.org_id, StepStatusRow.phase, StepStatusRow.step_id).where(
            StepStatusRow.round_id == round_id,
            StepStatusRow.status.in_((StepStatus.ACCEPTED.value, StepStatus.WAIVED.value)),
        )
    ):
        settled[(org_id, phase)].append(step_id)
    fired: dict[tuple[str, str], list[tuple[int, str, datetime]]] = defaultdict(list)
    for org_id, phase, rung, name, at in session.execute(
        select(
            EscalationRow.org_id,
            EscalationRow.phase,
            EscalationRow.rung,
            EscalationRow.name,
            EscalationRow.fired_at,
        ).where(EscalationRow.round_id == round_id)
    ):
        fired[(org_id, phase)].append((rung, name, _aware(at) or now))
    windows = {w.phase: (w.opens_at, w.deadline) for w in schedule.windows}
    starts: list[OrgStart] = []
    for st in kept:
        org = orgs.get(st.org_id)
        if org is None:  # not in the roster table: nothing to build its plan from
            continue
        own = phases.get(st.org_id, {})
        carried = []
        for phase in WORKING_PHASES:
            ph = own.get(phase.value)
            deadline = _aware(ph.deadline) if ph is not None and ph.deadline else None
            completed = _aware(ph.completed_at) if ph is not None else None
            rungs = sorted(fired.get((st.org_id, phase.value), []))
            status = PhaseStatus(ph.status) if ph is not None else PhaseStatus.PENDING
            order_at = None
            if status is PhaseStatus.RECTIFYING:
                order_at = next(
                    (at for r, _n, at in rungs if r == top), rungs[-1][2] if rungs else now
                )
            carried.append(
                PhaseStart(
                    phase=phase,
                    status=status,
                    deadline=deadline or windows[phase][1],
                    opened_at=_aware(ph.opened_at) if ph is not None else None,
                    completed_at=completed,
                    outcome=Outcome(ph.outcome) if ph is not None and ph.outcome else None,
                    settled_steps=tuple(settled.get((st.org_id, phase.value), ())),
                    rungs_fired=tuple((name, at) for _r, name, at in rungs),
                    rectification_issued_at=order_at,
                )
            )
        starts.append(OrgStart(organisation=org, phases=tuple(carried)))
    probabilities: dict[str, float] = {}
    model = load_model(model_path(data_dir)) if data_dir is not None else None
    if model is not None:
        forecasts = round_forecasts(session, round_id, model, now=now)
        current = {st.org_id: st.phase for st in running}
        probabilities = {
            org_id: f.probability for org_id, f in by_organisation(forecasts, current).items()
        }
    return LiveCounty(
        round_id=round_id,
        round_name=round_name,
        plan=plan,
        round_plan_id=round_plan_id,
        schedule=schedule,
        calendar=calendar,
        as_of=now,
        starts=tuple(starts),
        probabilities=probabilities,
    )


def check_change(live: LiveCounty, change: DraftChange) -> None:
    """Refuse (:class:`InvalidInput`, field named) a draft that does not fit the round: a
    ladder it cannot become, a township with no organisation, an extension of a phase
    everyone has finished or beyond the round's pinned calendar."""
    ladder = live.plan.ladder_for(live.plan.round(live.round_plan_id))
    try:
        changed_ladder(ladder, change)
        if change.kind is ChangeKind.EXTEND_PHASE:
            assert change.phase is not None
            if change.township and not any(
                s.organisation.township == change.township for s in live.starts
            ):
                raise InvalidInput(
                    "invalid",
                    "推演方案有误",
                    [{"field": "township", "reason": f"本轮没有“{change.township}”的组织"}],
                )
            planned = live.windows[change.phase][1]
            new = extended_deadline(planned, change, live.calendar)
            check_deadline_in_calendar(live.calendar, ladder, new, field="by")
            if new <= live.as_of:
                raise InvalidInput(
                    "invalid",
                    "推演方案有误",
                    [{"field": "by", "reason": "延长后的截止时间仍早于现在，请延长更多"}],
                )
    except DomainError as exc:
        raise from_domain(exc) from None


# ----- the rehearsal -------------------------------------------------------------------------


class WhatIfReport(BaseModel):
    """A what-if's result, as the page and the export show it."""

    model_config = ConfigDict(frozen=True)

    round_id: str
    round_name: str
    change: DraftChange
    description: str
    seed: int
    as_of: datetime
    organisations: int
    paced_by_forecast: int
    unchanged: ArmTally
    changed: ArmTally
    difference: TallyDifference
    # Organisation id -> (name, township, [(phase, outcome without, outcome with)]).
    changed_outcomes: dict[str, tuple[str, str, list[tuple[Phase, Outcome | None, Outcome | None]]]]
    wall_seconds: float
    batches: int
    # The job that produced it, and the plan version it ran on (None: a result from before
    # versions were recorded, which cannot be applied).
    job_id: str = ""
    plan_version: int | None = None
    plan_ref: str = ""


async def rehearse_live(
    live: LiveCounty,
    change: DraftChange,
    *,
    seed: int = 1,
    batch_size: int | None = None,
    on_message: Callable[[str], None] | None = None,
) -> WhatIfReport:
    """Rehearse ``change`` over the live county, both arms to the end of the round."""
    # Imported here: the simulation pulls in the time-skipping server and the worker.
    from chuangzheng.simulation.live_state import draw_paces
    from chuangzheng.simulation.what_if_run import BATCH_SIZE, rehearse

    check_change(live, change)
    paces, by_forecast = draw_paces(
        live.starts, live.probabilities, now=live.as_of, windows=live.windows, seed=seed
    )
    outcome = await rehearse(
        round_id=live.round_id,
        plan=live.plan,
        round_plan_id=live.round_plan_id,
        schedule=live.schedule,
        change=change,
        starts_at=live.as_of,
        starts=live.starts,
        paces=paces,
        batch_size=batch_size or BATCH_SIZE,
        on_message=on_message,
    )
    names = {s.organisation.id: s.organisation for s in live.starts}
    return WhatIfReport(
        round_id=live.round_id,
        round_name=live.round_name,
        change=change,
        description=change.describe(),
        seed=seed,
        as_of=live.as_of,
        organisations=len(live.starts),
        paced_by_forecast=by_forecast,
        unchanged=outcome.unchanged,
        changed=outcome.changed,
        difference=outcome.difference,
        changed_outcomes={
            org_id: (names[org_id].name, names[org_id].township, diffs)
            for org_id, diffs in outcome.changed_outcomes.items()
        },
        wall_seconds=outcome.wall_seconds,
        batches=outcome.batches,
        plan_version=live.plan_version,
        plan_ref=live.plan_ref,
    )


# ----- the export ------------------------------------------------------------------------------


def _local(moment: datetime) -> str:
    from domain.calendar import SHANGHAI

    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def export_xlsx(report: WhatIfReport) -> bytes:
    """The what-if as an Excel workbook: the draft, outcomes per phase in both arms and
    their difference, notices per rung, and the organisations whose outcome changes.
    Every cell from people's text (names, the draft's reason) is text, never a formula."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "推演结果"
    append_row(sheet, ["轮次", report.round_name])
    append_row(sheet, ["推演方案", report.description])
    append_row(sheet, ["理由", report.change.reason])
    append_row(sheet, ["推演起点（当前状态）", _local(report.as_of)])
    append_row(sheet, ["组织数", report.organisations])
    append_row(sheet, ["按预测模型给出进度的组织数", report.paced_by_forecast])
    append_row(sheet, ["随机种子", report.seed])
    append_row(sheet, [])
    append_row(
        sheet,
        [
            "阶段",
            "按时完成（不调整）",
            "按时完成（调整后）",
            "差值",
            "逾期完成（不调整）",
            "逾期完成（调整后）",
            "差值",
            "整改后完成（不调整）",
            "整改后完成（调整后）",
            "差值",
            "未完成（不调整）",
            "未完成（调整后）",
        ],
    )
    for phase in WORKING_PHASES:
        a, b = report.unchanged.phase(phase), report.changed.phase(phase)
        append_row(
            sheet,
            [
                phase.label,
                a.on_time,
                b.on_time,
                b.on_time - a.on_time,
                a.late,
                b.late,
                b.late - a.late,
                a.after_rectification,
                b.after_rectification,
                b.after_rectification - a.after_rectification,
                a.unfinished,
                b.unfinished,
            ],
        )
    notices = book.create_sheet("通知")
    labels = list(dict.fromkeys([*report.unchanged.labels(), *report.changed.labels()]))
    append_row(
        notices,
        [
            "通知（自推演起点起）",
            *(p.label for p in WORKING_PHASES),
            "合计（不调整）",
            "合计（调整后）",
            "差值",
        ],
    )
    for label in labels:
        row: list[Any] = [label]
        for phase in WORKING_PHASES:
            count = report.unchanged.notice_count(label, phase)
            row.append(f"{count} → {report.changed.notice_count(label, phase)}")
        before, after = report.unchanged.notice_count(label), report.changed.notice_count(label)
        append_row(notices, [*row, before, after, after - before])
    orgs = book.create_sheet("结果变化的组织")
    append_row(orgs, ["组织编号", "组织名称", "乡镇", "阶段", "不调整", "调整后"])
    for org_id, (name, township, diffs) in sorted(report.changed_outcomes.items()):
        for phase, was, now in diffs:
            append_row(
                orgs,
                [
                    org_id,
                    name,
                    township,
                    phase.label,
                    OUTCOME_LABELS.get(was, "未完成") if was else "未完成",
                    OUTCOME_LABELS.get(now, "未完成") if now else "未完成",
                ],
            )
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


# ----- applying a reviewed what-if -------------------------------------------------------------


def _stored_plan(session: Session, plan_ref: str) -> CampaignPlan | None:
    row = session.get(RoundPlanRow, plan_ref) if plan_ref else None
    return CampaignPlan.model_validate_json(row.plan_json) if row is not None else None


def _base_plan(
    session: Session, report: WhatIfReport
) -> tuple[CampaignPlan, str, datetime | None, WorkingCalendar]:
    """The plan the what-if ran on (by its address), the round's plan id, and the phase's
    deadline in force and the round's calendar (for a phase that ends on a date)."""
    definition = session.get(RoundDefinitionRow, report.round_id)
    if definition is None:
        raise NotFound("轮次不存在")
    plan = _stored_plan(session, report.plan_ref)
    if plan is None:
        first = parse_plan(definition.plan_yaml)
        if plan_ref_of(first) != report.plan_ref:
            raise Conflict("plan_missing", "推演所依据的计划版本已不在数据库中，请重新推演")
        plan = first
    starts_at = _aware(definition.starts_at or definition.kicked_off_at)
    planned: datetime | None = None
    calendar = plan.calendar.build()
    if starts_at is not None and report.change.phase is not None:
        with contextlib.suppress(DomainError, KeyError, ValueError):
            _plan, schedule = plan_and_schedule(
                definition.plan_yaml, definition.round_plan_id, starts_at, plan=plan
            )
            calendar = schedule.calendar or calendar
            planned = next(w.deadline for w in schedule.windows if w.phase is report.change.phase)
    return plan, definition.round_plan_id, planned, calendar


def what_if_plan(session: Session, report: WhatIfReport) -> CampaignPlan:
    """The plan version a finished what-if becomes (:func:`domain.what_if.plan_with_change`
    on the version it ran on); :class:`InvalidInput` naming the field for a draft a plan
    version cannot express (a township-only extension) or that leaves no valid plan."""
    plan, round_plan_id, planned, calendar = _base_plan(session, report)
    try:
        return plan_with_change(
            plan, round_plan_id, report.change, planned_deadline=planned, calendar=calendar
        )
    except ValidationFailed as exc:
        raise InvalidInput(
            "not_applicable",
            "该推演方案不能直接采用为新版计划",
            [{"field": e.field, "reason": e.reason} for e in exc.errors],
        ) from None


def _visible_round(sessions: sessionmaker[Session], caller: Caller, round_id: str) -> None:
    with sessions() as session:
        visible_round(session, caller, round_id)


async def apply_what_if(
    sessions: sessionmaker[Session],
    temporal: Client,
    report: WhatIfReport | None,
    round_id: str,
    *,
    job_id: str,
    reason: str,
    caller: Caller,
    idempotency_key: str,
    now: datetime | None = None,
) -> plan_versions.AppliedPlanVersion:
    """采用此方案: turn the round's latest finished what-if (``report``, from
    :func:`chuangzheng.services.what_if_jobs.job_result`; ``job_id``: the one the county
    office reviewed) into the round's next plan version and apply it
    (:func:`chuangzheng.services.plan_versions.apply_plan_version`: checked, audited, once
    per ``idempotency_key`` — a second post with the same key applies nothing more).

    Built on the plan version the what-if ran on, with ``base_version`` so the round refuses
    it if another version was applied since; refused here first, in Chinese, so the county
    office reads why (the result no longer fits the round: rehearse again). County office
    only; ``reason`` required; :class:`NotFound` for a round of a county ``caller`` does not
    see (whichever form or path named it), before anything of it is read or changed."""
    plan_versions.authorise(caller.actor)
    await anyio.to_thread.run_sync(_visible_round, sessions, caller, round_id)
    # Counted as a reader sees it: spaces or zero-width characters are no reason.
    if problem := free_text_problem(reason, short="请填写采用理由"):
        raise InvalidInput(
            "invalid", "采用推演方案须填写理由", [{"field": "reason", "reason": problem}]
        )
    if report is None:
        raise NotFound("本轮尚无推演结果，请先推演")
    if job_id and report.job_id != job_id:
        raise Conflict(
            "what_if_changed", "页面上的推演结果已被更新的推演取代，请查看最新结果后再采用"
        )
    if report.plan_version is None or not report.plan_ref:
        raise Conflict(
            "what_if_unversioned", "该推演结果未记录所依据的计划版本，请重新推演后再采用"
        )

    def build() -> CampaignPlan:
        with sessions() as session:
            return what_if_plan(session, report)

    new_plan = await anyio.to_thread.run_sync(build)
    state = await workflow_calls.query(
        temporal, round_workflow_id(round_id), "plan_state", RoundPlanState
    )
    key = idempotency_key.strip()
    retry = key in state.version_ids
    if not retry and state.version != report.plan_version:
        raise Conflict(
            "stale_version",
            f"推演时本轮计划为第{report.plan_version}版，现已调整为第{state.version}版，"
            "推演结果已不适用：请在当前计划上重新推演后再采用",
        )
    return await plan_versions.apply_plan_version(
        sessions,
        temporal,
        round_id,
        new_plan,
        reason=reason,
        caller=caller.actor,
        idempotency_key=key,
        base_version=report.plan_version,
        now=now,
    )


# ----- a draft from a form or a body ---------------------------------------------------------


def parse_change(values: dict[str, Any]) -> DraftChange:
    """A draft from a form or a JSON body; :class:`InvalidInput` naming each bad field."""
    try:
        return DraftChange.model_validate(values)
    except ValidationError as exc:
        errors = []
        for error in exc.errors():
            field = ".".join(str(p) for p in error["loc"]) or "change"
            reason = str(error["msg"]).removeprefix("Value error, ")
            errors.append({"field": field, "reason": reason})
        raise InvalidInput("invalid", "推演方案有误", errors) from None
