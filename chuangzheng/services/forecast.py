"""The forecast's use cases: fit it, keep it, and score a round from the read model.

- **Simulated rounds** (:func:`simulated_round`, :func:`simulated_samples`): the
  simulation's own scripts (``chuangzheng.simulation.scripts``: the seeded behaviour mix and
  the pacing of every organisation's actions) planned over the round's real calendar,
  without Temporal. What each organisation has done by a moment is read off its script,
  so thousands of samples cost a second, not a simulated round's minutes.
- **Fitting** (:func:`fit_simulated`, :func:`fit_round_history`): the domain's logistic
  regression (:func:`domain.forecast.fit`) over simulated samples and, when the service has
  finished rounds of its own, samples rebuilt from their read model.
- **Keeping** (:func:`load_model`, :func:`save_model`, :func:`current_model`): the fitted
  model as a JSON file under the data directory (``forecast-model.json``); fitted from the
  default simulated rounds the first time it is asked for, refit on demand
  (:func:`refit`).
- **Scoring** (:func:`round_forecasts`): every open organisation and phase of a round,
  from the read model (status, phases, escalations, returns, extensions), read only.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from activities.roster_files import read_roster_file
from activities.tables import (
    CampaignEventRow,
    CampaignStatusRow,
    EscalationRow,
    PhaseStatusRow,
    RoundDefinitionRow,
    RoundRow,
)
from chuangzheng.plans import parse_plan
from chuangzheng.simulation.calendar import load_plan_files, resolve_with_gaps
from chuangzheng.simulation.environment import DEFAULT_CALENDARS, DEFAULT_PLAN, DEFAULT_ROSTER
from chuangzheng.simulation.model import ActionKind, Behaviour, BehaviourMix, Conduct, OrgScript
from chuangzheng.simulation.scripts import Scripter, assign_behaviours
from chuangzheng.simulation.timing import Timing
from domain.calendar import CalendarGap, WorkingCalendar, deadline_day, end_of_day
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
    fit,
    yellow_at,
)
from domain.organisation import Organisation
from domain.phases import WORKING_PHASES, Phase
from domain.plan import CalendarPlan, LadderPlan
from domain.schedule import RoundSchedule, is_rebased, resolve_schedule
from domain.state import Outcome

#: Where the fitted model is kept, under the data directory.
MODEL_FILE = "forecast-model.json"
#: The moments of a phase the forecast is fitted and measured at (shares of its window).
MOMENTS: tuple[float, ...] = (0.25, 0.5, 0.75)
#: A fixed start for simulated rounds, so samples do not depend on the day they are made.
SIMULATED_START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
#: The simulated rounds the default model is fitted on (seeds and mixes); the evaluation
#: (``benchmarks/forecast_eval.py``) uses other seeds and other mixes.
TRAINING_SEEDS: tuple[int, ...] = (1, 2, 3, 4)
TRAINING_MIXES: tuple[BehaviourMix, ...] = (
    BehaviourMix(),
    BehaviourMix(late=0.2, laggard=0.05, returned=0.1),
)


# ----- simulated rounds --------------------------------------------------------------------


@dataclass(frozen=True)
class SimulatedRound:
    """A round planned by the simulation's scripts: who does what, when, on which calendar."""

    seed: int
    mix: BehaviourMix
    organisations: tuple[Organisation, ...]
    scripts: tuple[OrgScript, ...]
    schedule: RoundSchedule
    ladder: LadderPlan
    calendar: WorkingCalendar
    required_steps: dict[tuple[Phase, str], int]

    @cached_property
    def windows(self) -> Windows:
        """Each phase's planned window."""
        return {w.phase: (w.opens_at, w.deadline) for w in self.schedule.windows}

    def missed(self, script: OrgScript, phase: Phase) -> bool:
        """Whether the organisation misses the phase's deadline (late or rectified)."""
        return script.expected_outcome(phase) is not Outcome.ON_TIME

    def snapshots(self, now: datetime) -> list[OrgSnapshot]:
        """Every organisation as it stands at ``now`` according to its script."""
        return [
            _snapshot(self, org, script, now)
            for org, script in zip(self.organisations, self.scripts, strict=True)
        ]


def simulated_round(
    seed: int,
    mix: BehaviourMix | None = None,
    *,
    plan_path: Path = DEFAULT_PLAN,
    roster_path: Path = DEFAULT_ROSTER,
    limit: int | None = None,
    starts_at: datetime = SIMULATED_START,
) -> SimulatedRound:
    """Plan a round as ``chuangzheng simulate`` does (same scripts, same seed), no server."""
    plan = load_plan_files(plan_path, DEFAULT_CALENDARS if plan_path == DEFAULT_PLAN else ())
    round_plan = plan.rounds[0]
    plan, schedule = resolve_with_gaps(plan, round_plan, starts_at, fill_gaps=True, warnings=[])
    round_plan = plan.round(round_plan.id)
    ladder = plan.ladder_for(round_plan)
    calendar = schedule.calendar or plan.calendar.build()
    roster = read_roster_file(roster_path)
    in_scope = roster.in_scope(types=round_plan.scope.types, townships=round_plan.scope.townships)
    organisations = tuple(in_scope[:limit] if limit is not None else in_scope)
    mix = mix or BehaviourMix()
    rng = random.Random(seed)
    behaviours = assign_behaviours([o.id for o in organisations], mix, rng)
    scripter = Scripter(Timing(ladder, calendar), schedule, rng, starts_at)
    scripts = tuple(scripter.script(org, behaviours[org.id]) for org in organisations)
    required = {
        (phase.phase, org_type.value): sum(1 for s in phase.steps_for(org_type) if s.required)
        for phase in round_plan.phases
        for org_type in {o.type for o in organisations}
    }
    return SimulatedRound(
        seed=seed,
        mix=mix,
        organisations=organisations,
        scripts=scripts,
        schedule=schedule,
        ladder=ladder,
        calendar=calendar,
        required_steps=required,
    )


def _rung_instants(sim: SimulatedRound, deadline: datetime) -> list[datetime]:
    """When each rung fires for a phase left open past ``deadline`` (end of the day)."""
    out = []
    for rung in sim.ladder.rungs:
        days = rung.delay.working_days or 0
        out.append(end_of_day(sim.calendar.add_working_days(deadline_day(deadline), days)))
    return out


def _snapshot(
    sim: SimulatedRound, org: Organisation, script: OrgScript, now: datetime
) -> OrgSnapshot:
    """What the read model would say of ``org`` at ``now``, read off its script."""
    records = []
    entered = sim.schedule.starts_at
    for phase in WORKING_PHASES:
        _, planned = sim.windows[phase]
        actions = [a for a in script.actions if a.phase is phase]
        finish = actions[-1].at
        conduct = script.conduct[phase]
        deadline = planned
        extensions = returns = 0
        progress = 0.0
        for action in actions:
            if action.at > now:
                break
            if action.kind is ActionKind.REQUEST_EXTENSION and action.new_deadline is not None:
                deadline, extensions = action.new_deadline, 1
            elif action.kind is ActionKind.SUBMIT_RETURNED:
                returns = 1
                n = sim.required_steps.get((phase, org.type.value), 1)
                progress = (n - 1) / n if n else 0.0
        done = finish <= now
        if done:
            escalations = script.rungs_expected[phase]
        elif now > deadline and conduct in (Conduct.LATE, Conduct.LAGGARD):
            escalations = sum(1 for at in _rung_instants(sim, deadline) if at <= now)
        else:
            escalations = 0
        records.append(
            PhaseRecord(
                phase=phase,
                opened_at=entered if entered <= now else None,
                completed_at=finish if done else None,
                outcome=script.expected_outcome(phase) if done else None,
                deadline=deadline,
                progress=1.0 if done else progress,
                escalations=escalations,
                returns=returns,
                extensions=extensions,
            )
        )
        if not done:
            # Later phases are not entered yet: their records say only the deadline.
            for later in WORKING_PHASES[WORKING_PHASES.index(phase) + 1 :]:
                records.append(PhaseRecord(phase=later, deadline=sim.windows[later][1]))
            break
        entered = finish
    return OrgSnapshot(
        org_id=org.id,
        township=org.township,
        system=org.system.value,
        org_type=org.type.value,
        phases=tuple(records),
    )


@dataclass(frozen=True)
class LabelledSample:
    """A sample with where it was taken and what the yellow light said at that moment."""

    seed: int
    phase: Phase
    moment: float
    sample: Sample
    yellow: bool
    # The organisation's simulated behaviour, which no forecast can see (for a ceiling).
    behaviour: Behaviour


def simulated_samples(
    sim: SimulatedRound, moments: Sequence[float] = MOMENTS
) -> list[LabelledSample]:
    """Every organisation that has not finished a phase, at each moment of that phase's
    window, labelled with whether it missed the deadline in the end."""
    scripts = {s.org_id: s for s in sim.scripts}
    out: list[LabelledSample] = []
    for phase in WORKING_PHASES:
        opens_at, deadline = sim.windows[phase]
        for moment in moments:
            now = opens_at + (deadline - opens_at) * moment
            snapshots = sim.snapshots(now)
            yellow = yellow_at(snapshots, now, sim.windows)
            for features in features_at(snapshots, now, sim.windows, sim.calendar, phases=[phase]):
                script = scripts[features.org_id]
                out.append(
                    LabelledSample(
                        seed=sim.seed,
                        phase=phase,
                        moment=moment,
                        sample=Sample(features=features, missed=sim.missed(script, phase)),
                        yellow=features.org_id in yellow,
                        behaviour=script.behaviour,
                    )
                )
    return out


def fit_simulated(
    seeds: Iterable[int] = TRAINING_SEEDS,
    mixes: Iterable[BehaviourMix] = TRAINING_MIXES,
    *,
    limit: int | None = None,
    extra: Sequence[Sample] = (),
    threshold: float | None = None,
) -> ForecastModel:
    """A model fitted on simulated rounds (every seed × mix) plus ``extra`` samples."""
    seeds, mixes = tuple(seeds), tuple(mixes)
    samples = [
        s.sample
        for mix in mixes
        for seed in seeds
        for s in simulated_samples(simulated_round(seed, mix, limit=limit))
    ]
    mix_text = "、".join(
        f"逾期{m.late:.0%}/整改{m.laggard:.0%}/退回{m.returned:.0%}" for m in mixes
    )
    note = f"模拟轮次 种子{','.join(map(str, seeds))} × 行为组合 {mix_text}"
    if extra:
        note += f"；本系统历史样本 {len(extra)} 条"
    return fit([*samples, *extra], threshold=threshold, fitted_on=note)


# ----- the read model ----------------------------------------------------------------------


@dataclass(frozen=True)
class RoundView:
    """A round's snapshots as the read model has them, its windows and its calendar."""

    round_id: str
    snapshots: tuple[OrgSnapshot, ...]
    windows: Windows
    calendar: WorkingCalendar


def _round_schedule(session: Session, round_id: str) -> tuple[Windows, WorkingCalendar] | None:
    row = session.get(RoundRow, round_id)
    definition = session.get(RoundDefinitionRow, round_id)
    if row is None or definition is None:
        return None
    try:
        plan = parse_plan(definition.plan_yaml)
        round_plan = plan.round(definition.round_plan_id)
        starts_at = definition.starts_at or row.starts_at
        schedule = resolve_schedule(
            plan, round_plan, starts_at, rebased=is_rebased(round_plan, starts_at)
        )
    except (CalendarGap, DomainError, KeyError, ValueError):
        return None
    calendar: WorkingCalendar
    if schedule.calendar is not None:
        calendar = schedule.calendar
    else:
        first = schedule.starts_at.year
        # A year with no holiday data counts weekends only (as digests do).
        years = tuple(range(first, first + 4))
        calendar = plan.calendar.merged(CalendarPlan(supplied_years=years)).build()
    return {w.phase: (w.opens_at, w.deadline) for w in schedule.windows}, calendar


def read_round(session: Session, round_id: str) -> RoundView | None:
    """The round as the read model has it now; None when its plan cannot be resolved."""
    resolved = _round_schedule(session, round_id)
    if resolved is None:
        return None
    windows, calendar = resolved
    statuses = session.scalars(
        select(CampaignStatusRow).where(CampaignStatusRow.round_id == round_id)
    ).all()
    phases: dict[str, list[PhaseStatusRow]] = defaultdict(list)
    for p in session.scalars(select(PhaseStatusRow).where(PhaseStatusRow.round_id == round_id)):
        phases[p.org_id].append(p)
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
    snapshots = []
    for status in statuses:
        records = []
        own = {p.phase: p for p in phases.get(status.org_id, [])}
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
            )
        )
    return RoundView(
        round_id=round_id, snapshots=tuple(snapshots), windows=windows, calendar=calendar
    )


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


def round_history_samples(session: Session, round_id: str) -> list[Sample]:
    """Samples rebuilt from a round of the service's own whose phases have ended: each
    organisation's state at 25/50/75 % of every phase, labelled by its recorded outcome.

    What is rebuilt is what the read model keeps: when each phase was entered and
    completed, its outcome, escalations, returns and extensions by phase. Progress within
    a phase is not kept over time, so it counts as 0 until the phase completed.
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
        model = fit_simulated()
        save_model(model, path)
    return model


def refit(data_dir: Path, session: Session | None = None) -> ForecastModel:
    """Refit on demand (with the service's closed rounds when a session is given), keep the
    county office's threshold, and save."""
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
    "LabelledSample",
    "RoundView",
    "SimulatedRound",
    "current_model",
    "fit_round_history",
    "fit_simulated",
    "load_model",
    "model_path",
    "read_round",
    "refit",
    "round_forecasts",
    "round_history_samples",
    "save_model",
    "set_threshold",
    "simulated_round",
    "simulated_samples",
]
