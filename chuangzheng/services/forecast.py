"""The forecast's use cases: fit it, keep it, and score a round from the read model.

- **Fitting** (:func:`fit_round_history`; simulated rounds in
  :mod:`chuangzheng.services.forecast_training`, imported only when fitting, as it pulls in
  the simulation): the domain's logistic regression (:func:`domain.forecast.fit`) over
  simulated samples and, when the service has finished rounds of its own, samples rebuilt
  from their read model.
- **Keeping** (:func:`load_model`, :func:`save_model`, :func:`current_model`): the fitted
  model as a JSON file under the data directory (``forecast-model.json``); fitted from the
  default simulated rounds the first time it is asked for, refit on demand
  (:func:`refit`).
- **Scoring** (:func:`round_forecasts`): every open organisation and phase of a round,
  from the read model (status, phases, escalations, returns, extensions), read only.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from activities.tables import (
    CampaignEventRow,
    CampaignStatusRow,
    EscalationRow,
    PhaseStatusRow,
    RoundDefinitionRow,
    RoundRow,
    StepStatusRow,
)
from chuangzheng.plans import parse_plan
from domain.calendar import CalendarGap, WorkingCalendar
from domain.errors import DomainError
from domain.events import EventKind
from domain.forecast import (
    Forecast,
    ForecastModel,
    OrgSnapshot,
    PhaseRecord,
    Sample,
    Windows,
    features_at,
    round_pace,
)
from domain.machine import StepStatus
from domain.organisation import OrgType
from domain.phases import WORKING_PHASES, Phase
from domain.plan import CalendarPlan
from domain.schedule import is_rebased, resolve_schedule
from domain.state import Outcome

#: Where the fitted model is kept, under the data directory.
MODEL_FILE = "forecast-model.json"
#: The moments of a phase the forecast is fitted and measured at (shares of its window).
MOMENTS: tuple[float, ...] = (0.25, 0.5, 0.75)


# ----- the read model ----------------------------------------------------------------------


@dataclass(frozen=True)
class RoundView:
    """A round's snapshots as the read model has them, its windows and its calendar."""

    round_id: str
    snapshots: tuple[OrgSnapshot, ...]
    windows: Windows
    calendar: WorkingCalendar


#: Required steps per (phase, organisation type value), from the round's plan.
RequiredSteps = Mapping[tuple[Phase, str], int]


def _round_schedule(
    session: Session, round_id: str
) -> tuple[Windows, WorkingCalendar, RequiredSteps] | None:
    """The round's planned windows, calendar and required steps per phase and type, as
    kicked off (memoised per plan text and start: parsing a plan takes longer than reading
    a county's rows)."""
    row = session.get(RoundRow, round_id)
    definition = session.get(RoundDefinitionRow, round_id)
    if row is None or definition is None:
        return None
    starts_at = _aware(definition.starts_at or row.starts_at)
    resolved = _resolve(definition.plan_yaml, definition.round_plan_id, starts_at)
    if resolved is None:
        return None
    windows, calendar, required = resolved
    return dict(windows), calendar, dict(required)


@lru_cache(maxsize=32)
def _resolve(
    plan_yaml: str, round_plan_id: str, starts_at: datetime
) -> (
    tuple[
        tuple[tuple[Phase, tuple[datetime, datetime]], ...],
        WorkingCalendar,
        tuple[tuple[tuple[Phase, str], int], ...],
    ]
    | None
):
    """Windows, calendar and required steps of a plan's round started at ``starts_at``; a
    year with no holiday data counts weekends only here (as digests do: a forecast is no
    deadline). Required steps are counted without the ethnic-area steps (the read model's
    status row does not say which organisations have them; for those the forecast falls
    back to the latest step's projection)."""
    try:
        plan = parse_plan(plan_yaml)
        round_plan = plan.round(round_plan_id)
    except (DomainError, KeyError, ValueError):
        return None
    required = tuple(
        ((phase.phase, org_type.value), sum(1 for st in phase.steps_for(org_type) if st.required))
        for phase in round_plan.phases
        for org_type in OrgType
    )
    rebased = is_rebased(round_plan, starts_at)
    try:
        schedule = resolve_schedule(plan, round_plan, starts_at, rebased=rebased)
    except CalendarGap:
        years = tuple(range(starts_at.year, starts_at.year + 4))
        plan = plan.model_copy(
            update={"calendar": plan.calendar.merged(CalendarPlan(supplied_years=years))}
        )
        try:
            schedule = resolve_schedule(plan, round_plan, starts_at, rebased=rebased)
        except (CalendarGap, DomainError):
            return None
    except DomainError:
        return None
    calendar: WorkingCalendar
    if schedule.calendar is not None:
        calendar = schedule.calendar
    else:
        years = tuple(range(starts_at.year, starts_at.year + 4))
        calendar = plan.calendar.merged(CalendarPlan(supplied_years=years)).build()
    return tuple((w.phase, (w.opens_at, w.deadline)) for w in schedule.windows), calendar, required


def read_round(session: Session, round_id: str) -> RoundView | None:
    """The round as the read model has it now; None when its plan cannot be resolved."""
    resolved = _round_schedule(session, round_id)
    if resolved is None:
        return None
    windows, calendar, required = resolved
    # Plain rows, not ORM objects: a county's thousands of rows load several times faster.
    s, p = CampaignStatusRow, PhaseStatusRow
    statuses = session.execute(
        select(s.org_id, s.township, s.system, s.org_type, s.phase, s.progress).where(
            s.round_id == round_id
        )
    ).all()
    phases: dict[str, list[Any]] = defaultdict(list)
    for line in session.execute(
        select(p.org_id, p.phase, p.deadline, p.opened_at, p.completed_at, p.outcome).where(
            p.round_id == round_id
        )
    ):
        phases[line.org_id].append(line)
    escalations = dict(
        ((org, phase), n)
        for org, phase, n in session.execute(
            select(EscalationRow.org_id, EscalationRow.phase, func.count())
            .where(EscalationRow.round_id == round_id)
            .group_by(EscalationRow.org_id, EscalationRow.phase)
        ).all()
    )
    counted = (EventKind.RETURNED.value, EventKind.EXTENSION_APPROVED.value)
    events: dict[tuple[str, str | None, str], int] = {
        (org, phase, kind): n
        for org, phase, kind, n in session.execute(
            select(
                CampaignEventRow.org_id,
                CampaignEventRow.phase,
                CampaignEventRow.kind,
                func.count(),
            )
            .where(CampaignEventRow.round_id == round_id, CampaignEventRow.kind.in_(counted))
            .group_by(CampaignEventRow.org_id, CampaignEventRow.phase, CampaignEventRow.kind)
        ).all()
    }
    # When each of an organisation's steps of a phase was settled: the pace it shows.
    settled = (StepStatus.ACCEPTED.value, StepStatus.WAIVED.value)
    settled_at: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for org, phase, at in session.execute(
        select(StepStatusRow.org_id, StepStatusRow.phase, StepStatusRow.updated_at).where(
            StepStatusRow.round_id == round_id, StepStatusRow.status.in_(settled)
        )
    ):
        if at is not None:
            settled_at[(org, phase)].append(_aware(at))
    for instants in settled_at.values():
        instants.sort()
    prior, prior_pace = _prior_round(session, round_id)
    snapshots = []
    for status in statuses:
        records = []
        own = {ph.phase: ph for ph in phases.get(status.org_id, [])}
        mine = {p.value: settled_at.get((status.org_id, p.value)) for p in WORKING_PHASES}
        for phase in WORKING_PHASES:
            row = own.get(phase.value)
            deadline = _aware(row.deadline) if row and row.deadline else windows[phase][1]
            completed = _aware(row.completed_at) if row and row.completed_at else None
            if phase.value == status.phase and completed is None:
                progress = status.progress
            else:
                progress = 1.0 if completed else 0.0
            records.append(
                PhaseRecord(
                    phase=phase,
                    opened_at=_aware(row.opened_at) if row and row.opened_at else None,
                    completed_at=completed,
                    outcome=Outcome(row.outcome) if row and row.outcome else None,
                    deadline=deadline,
                    progress=min(1.0, max(0.0, progress)),
                    last_step_at=max(steps) if (steps := mine.get(phase.value)) else None,
                    settled_at=tuple(steps) if steps else (),
                    steps_required=required.get((phase, status.org_type), 0),
                    escalations=escalations.get((status.org_id, phase.value), 0),
                    returns=events.get((status.org_id, phase.value, EventKind.RETURNED.value), 0),
                    extensions=events.get(
                        (status.org_id, phase.value, EventKind.EXTENSION_APPROVED.value), 0
                    ),
                )
            )
        snapshots.append(
            OrgSnapshot(
                org_id=status.org_id,
                township=status.township,
                system=status.system,
                org_type=status.org_type,
                phases=tuple(records),
                prior_round_missed=prior.get(status.org_id, 0),
                prior_round_pace=prior_pace.get(status.org_id),
            )
        )
    return RoundView(
        round_id=round_id, snapshots=tuple(snapshots), windows=windows, calendar=calendar
    )


def _prior_round(session: Session, round_id: str) -> tuple[dict[str, int], dict[str, float]]:
    """Per organisation, from its latest round that started before this one: the phases it
    missed there (late or after rectification), and its pace there
    (:func:`domain.forecast.round_pace`: the mean log share of their planned window its
    finished phases took; absent when that round's plan cannot be resolved)."""
    this = session.get(RoundRow, round_id)
    if this is None:
        return {}, {}
    earlier = session.execute(
        select(RoundRow.round_id, RoundRow.starts_at)
        .where(RoundRow.starts_at < this.starts_at)
        .order_by(RoundRow.starts_at.desc())
    ).all()
    if not earlier:
        return {}, {}
    order = {rid: i for i, (rid, _) in enumerate(earlier)}
    latest: dict[str, int] = {}  # org -> its latest earlier round's order
    rows = session.execute(
        select(
            PhaseStatusRow.round_id,
            PhaseStatusRow.org_id,
            PhaseStatusRow.phase,
            PhaseStatusRow.completed_at,
            PhaseStatusRow.outcome,
        ).where(PhaseStatusRow.round_id.in_(list(order)))
    ).all()
    counts: dict[tuple[str, str], int] = defaultdict(int)
    finished: dict[tuple[str, str], list[PhaseRecord]] = defaultdict(list)
    for rid, org_id, phase, completed_at, outcome in rows:
        counts[(rid, org_id)] += int(outcome is not None and outcome != Outcome.ON_TIME.value)
        if completed_at is not None and phase in _PHASE_VALUES:
            finished[(rid, org_id)].append(
                PhaseRecord(
                    phase=Phase(phase),
                    completed_at=_aware(completed_at),
                    deadline=_aware(completed_at),  # not read by round_pace
                )
            )
        if org_id not in latest or order[rid] < latest[org_id]:
            latest[org_id] = order[rid]
    ids = list(order)
    missed = {org_id: counts[(ids[i], org_id)] for org_id, i in latest.items()}
    windows: dict[str, Windows | None] = {}
    paces: dict[str, float] = {}
    for org_id, i in latest.items():
        rid = ids[i]
        if rid not in windows:
            resolved = _round_schedule(session, rid)
            windows[rid] = resolved[0] if resolved is not None else None
        known = windows[rid]
        if known is None:
            continue
        pace = round_pace(OrgSnapshot(org_id=org_id, phases=tuple(finished[(rid, org_id)])), known)
        if pace is not None:
            paces[org_id] = pace
    return missed, paces


_PHASE_VALUES = frozenset(p.value for p in WORKING_PHASES)


def _aware(moment: datetime) -> datetime:
    """SQLite gives naive datetimes back; the read model stores UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def round_forecasts(
    session: Session,
    round_id: str,
    model: ForecastModel,
    *,
    now: datetime,
    org_ids: Iterable[str] | None = None,
    threshold: float | None = None,
) -> dict[tuple[str, Phase], Forecast]:
    """The forecast of every open organisation and phase of a round (or of ``org_ids``),
    keyed by (organisation, phase). Empty when the round's plan cannot be resolved."""
    view = read_round(session, round_id)
    if view is None:
        return {}
    wanted = set(org_ids) if org_ids is not None else None
    out: dict[tuple[str, Phase], Forecast] = {}
    for features in features_at(view.snapshots, now, view.windows, view.calendar):
        if wanted is not None and features.org_id not in wanted:
            continue
        out[(features.org_id, features.phase)] = model.forecast(features, threshold=threshold)
    return out


def kept_forecasts(
    session: Session,
    round_id: str,
    data_dir: Path,
    *,
    now: datetime,
    org_ids: Iterable[str] | None = None,
) -> tuple[ForecastModel | None, dict[tuple[str, Phase], Forecast]]:
    """The kept model and its forecasts for a round's pages (read only): no model kept yet
    means no forecasts (fitting takes a while, so a page never fits one: see :func:`refit`).
    The model comes back with the round's 预警 threshold in force (the plan rung's, or the
    county office's audited change), so the pages flag what the daily check would send."""
    # Imported here: the warning sender builds on this module.
    from chuangzheng.services.forecast_warning import round_threshold

    model = load_model(model_path(data_dir))
    if model is None:
        return None, {}
    threshold = round_threshold(session, round_id)
    if threshold is not None:
        model = model.model_copy(update={"threshold": threshold})
    return model, round_forecasts(session, round_id, model, now=now, org_ids=org_ids)


def by_organisation(
    forecasts: dict[tuple[str, Phase], Forecast], phase_of: dict[str, str] | None = None
) -> dict[str, Forecast]:
    """One forecast per organisation: that of its current phase (``phase_of``), else the
    likeliest miss among its open phases."""
    out: dict[str, Forecast] = {}
    wanted = phase_of or {}
    for (org_id, phase), forecast in forecasts.items():
        kept = out.get(org_id)
        current = wanted.get(org_id)
        if (
            kept is None
            or phase.value == current
            or (kept.phase.value != current and forecast.probability > kept.probability)
        ):
            out[org_id] = forecast
    return out


def round_history_samples(session: Session, round_id: str) -> list[Sample]:
    """Samples rebuilt from a round of the service's own whose phases have ended: each
    organisation's state at 25/50/75 % of every phase, labelled by its recorded outcome.

    What is rebuilt is what the read model keeps: when each phase was entered and
    completed, its outcome, escalations, returns and extensions by phase. Progress within
    a phase is not kept over time, so it counts as 0 (and no step as settled) until the
    phase completed.
    """
    view = read_round(session, round_id)
    if view is None:
        return []
    samples: list[Sample] = []
    for phase in WORKING_PHASES:
        opens_at, deadline = view.windows[phase]
        labels = {}
        for snap in view.snapshots:
            record = snap.record(phase)
            if record is not None and record.outcome is not None:
                labels[snap.org_id] = record.outcome is not Outcome.ON_TIME
        for moment in MOMENTS:
            now = opens_at + (deadline - opens_at) * moment
            past = [_as_of(snap, now) for snap in view.snapshots]
            for features in features_at(past, now, view.windows, view.calendar, phases=[phase]):
                if features.org_id in labels:
                    samples.append(Sample(features=features, missed=labels[features.org_id]))
    return samples


def _as_of(snap: OrgSnapshot, now: datetime) -> OrgSnapshot:
    """A finished round's snapshot cut back to ``now`` (what was known then)."""
    records = []
    for r in snap.phases:
        opened = r.opened_at if r.opened_at is not None and r.opened_at <= now else None
        done = r.completed_at is not None and r.completed_at <= now
        records.append(
            PhaseRecord(
                phase=r.phase,
                opened_at=opened,
                completed_at=r.completed_at if done else None,
                outcome=r.outcome if done else None,
                deadline=r.deadline,
                progress=1.0 if done else 0.0,
                last_step_at=r.last_step_at if done else None,
                settled_at=(),
                steps_required=r.steps_required,
                escalations=r.escalations if done else 0,
                returns=r.returns if done else 0,
                extensions=r.extensions if done else 0,
            )
        )
    return snap.model_copy(update={"phases": tuple(records)})


def fit_round_history(session: Session, *, threshold: float | None = None) -> ForecastModel:
    """Refit on the default simulated rounds plus every closed round of the service."""
    closed = session.scalars(select(RoundRow.round_id).where(RoundRow.status != "running")).all()
    extra = [s for round_id in closed for s in round_history_samples(session, round_id)]
    from chuangzheng.services.forecast_training import fit_simulated  # heavy: the simulation

    return fit_simulated(extra=extra, threshold=threshold)


# ----- keeping the model -------------------------------------------------------------------


def model_path(data_dir: Path) -> Path:
    """Where the fitted model lives under the data directory."""
    return data_dir / MODEL_FILE


def save_model(model: ForecastModel, path: Path) -> None:
    """Write the model as JSON (atomically: a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(model.model_dump(mode="json"), ensure_ascii=False, indent=1))
    temporary.replace(path)


def load_model(path: Path) -> ForecastModel | None:
    """The model kept at ``path``; None when there is none or it no longer loads."""
    try:
        return ForecastModel.model_validate_json(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None


def current_model(data_dir: Path) -> ForecastModel:
    """The kept model; fitted from the default simulated rounds and kept the first time."""
    path = model_path(data_dir)
    model = load_model(path)
    if model is None:
        from chuangzheng.services.forecast_training import fit_simulated

        model = fit_simulated()
        save_model(model, path)
    return model


def refit(data_dir: Path, session: Session | None = None) -> ForecastModel:
    """Refit on demand (with the service's closed rounds when a session is given), keep the
    county office's threshold, and save."""
    from chuangzheng.services.forecast_training import fit_simulated

    kept = load_model(model_path(data_dir))
    model = fit_round_history(session) if session is not None else fit_simulated()
    if kept is not None and kept.threshold_by_county:
        model = model.with_threshold(kept.threshold)
    save_model(model, model_path(data_dir))
    return model


def set_threshold(data_dir: Path, threshold: float) -> ForecastModel:
    """The county office's warning threshold (预警线), kept with the model."""
    model = current_model(data_dir).with_threshold(threshold)
    save_model(model, model_path(data_dir))
    return model


__all__ = [
    "MOMENTS",
    "RoundView",
    "by_organisation",
    "current_model",
    "fit_round_history",
    "kept_forecasts",
    "load_model",
    "model_path",
    "read_round",
    "refit",
    "round_forecasts",
    "round_history_samples",
    "save_model",
    "set_threshold",
]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m chuangzheng.services.forecast``: refit the kept model on demand (with the
    service's closed rounds: ``--history``), set the county office's threshold, or show
    the kept model. Uses the service's settings (data directory, database)."""
    import argparse

    from activities.db import make_engine, session_factory
    from chuangzheng.settings import get_settings
    from domain.forecast import describe

    parser = argparse.ArgumentParser(description="逾期风险预测模型：重新拟合、设置预警线、查看")
    commands = parser.add_subparsers(dest="command", required=True)
    refit_cmd = commands.add_parser("refit", help="重新拟合（模拟轮次，可加本系统已结束的轮次）")
    refit_cmd.add_argument("--history", action="store_true", help="加入本系统已结束轮次的样本")
    threshold_cmd = commands.add_parser("threshold", help="设置预警线（0–1 之间的概率）")
    threshold_cmd.add_argument("value", type=float)
    commands.add_parser("show", help="查看当前模型")
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.command == "refit":
        if args.history:
            engine = make_engine(settings.database_url)
            try:
                with session_factory(engine)() as session:
                    model = refit(settings.data_dir, session)
            finally:
                engine.dispose()
        else:
            model = refit(settings.data_dir)
    elif args.command == "threshold":
        if not 0 < args.value < 1:
            parser.error("预警线须在 0 与 1 之间")
        model = set_threshold(settings.data_dir, args.value)
    else:
        kept = load_model(model_path(settings.data_dir))
        if kept is None:
            print("尚未拟合预测模型：python -m chuangzheng.services.forecast refit")
            return 1
        model = kept
    print(f"模型：{model.samples} 个样本（逾期 {model.positives}），预警线 {model.threshold:.3f}")
    print(f"来源：{model.fitted_on}")
    for name, weight in describe(model):
        print(f"  {weight:+.3f}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
