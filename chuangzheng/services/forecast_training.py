"""Simulated rounds to fit and measure the forecast on, without Temporal.

The simulation's own scripts (``chuangzheng.simulation.scripts``: the seeded behaviour mix
and the pacing of every organisation's actions, as ``chuangzheng simulate`` plans them) are
planned over the round's real calendar; what each organisation has done by a moment is read
off its script (:func:`_snapshot`: entered, finished, outcome, escalations fired, a returned
submission, an approved extension), so thousands of samples cost seconds, not a simulated
round's minutes. Kept apart from :mod:`chuangzheng.services.forecast` because importing the
simulation pulls in the worker; the API never imports this module.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cached_property
from pathlib import Path

from activities.roster_files import read_roster_file
from chuangzheng.simulation.calendar import load_plan_files, resolve_with_gaps
from chuangzheng.simulation.environment import DEFAULT_CALENDARS, DEFAULT_PLAN, DEFAULT_ROSTER
from chuangzheng.simulation.model import (
    ActionKind,
    Behaviour,
    BehaviourMix,
    Character,
    CharacterMix,
    Conduct,
    OrgScript,
    Pacing,
)
from chuangzheng.simulation.scripts import (
    PacedScripter,
    Scripter,
    assign_behaviours,
    assign_characters,
)
from chuangzheng.simulation.timing import Timing
from domain.calendar import WorkingCalendar, deadline_day, end_of_day
from domain.forecast import (
    ForecastModel,
    OrgSnapshot,
    PhaseRecord,
    Sample,
    Windows,
    features_at,
    round_pace,
    yellow_at,
)
from domain.forecast_fit import fit
from domain.organisation import Organisation
from domain.phases import WORKING_PHASES, Phase
from domain.plan import LadderPlan
from domain.schedule import RoundSchedule
from domain.state import Outcome

from .forecast import MOMENTS

#: A fixed start for simulated rounds, so samples do not depend on the day they are made.
SIMULATED_START = datetime(2025, 3, 3, 1, 0, tzinfo=UTC)
#: The simulated rounds' seeds and behaviour mixes (deadline-paced); the default model is
#: fitted on these seeds × :data:`TRAINING_PACE_MIXES`. The evaluation
#: (``benchmarks/forecast_eval.py``) uses other seeds and other mixes.
TRAINING_SEEDS: tuple[int, ...] = (1, 2, 3, 4)
TRAINING_MIXES: tuple[BehaviourMix, ...] = (
    BehaviourMix(),
    BehaviourMix(late=0.2, laggard=0.05, returned=0.1),
)
#: The same for paced rounds (:attr:`Pacing.SPREAD`): character mixes.
TRAINING_PACE_MIXES: tuple[CharacterMix, ...] = (
    CharacterMix(),
    CharacterMix(diligent=0.4, laggard=0.15, returned=0.08),
)

#: Either kind of mix: a behaviour mix plans deadline-paced rounds, a character mix paced.
AnyMix = BehaviourMix | CharacterMix


# ----- simulated rounds --------------------------------------------------------------------


class PriorRound(StrEnum):
    """What the organisations did in the round before the one simulated."""

    #: No previous round (a county's first round).
    NONE = "none"
    #: A previous round with behaviours drawn afresh, as the simulation assumes: each run
    #: of ``chuangzheng simulate`` assigns the mix anew, so who was late before says nothing.
    INDEPENDENT = "independent"
    #: A previous round in which every organisation behaved as it does now (punctual,
    #: late, laggard, …), only its slips fell in other phases. An assumption the
    #: simulation does not make; the service's own history says whether it holds.
    #: In paced rounds: the same characters and the same lasting pace, with a round's noise.
    PERSISTENT = "persistent"


#: How far a previous round's seed is from the round's own.
PRIOR_SEED_OFFSET = 10_000


@dataclass(frozen=True)
class SimulatedRound:
    """A round planned by the simulation's scripts: who does what, when, on which calendar."""

    seed: int
    mix: AnyMix
    organisations: tuple[Organisation, ...]
    scripts: tuple[OrgScript, ...]
    schedule: RoundSchedule
    ladder: LadderPlan
    calendar: WorkingCalendar
    required_steps: dict[tuple[Phase, str], int]
    prior: PriorRound = PriorRound.NONE
    # Phases each organisation missed in the previous round (``prior``), and its pace there
    # (:func:`domain.forecast.round_pace`).
    prior_missed: dict[str, int] = field(default_factory=dict)
    prior_pace: dict[str, float] = field(default_factory=dict)

    @property
    def pacing(self) -> Pacing:
        """How the organisations spread their work: a character mix means paced rounds."""
        return Pacing.SPREAD if isinstance(self.mix, CharacterMix) else Pacing.DEADLINE

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
    mix: AnyMix | None = None,
    *,
    prior: PriorRound = PriorRound.NONE,
    plan_path: Path = DEFAULT_PLAN,
    roster_path: Path = DEFAULT_ROSTER,
    limit: int | None = None,
    starts_at: datetime = SIMULATED_START,
) -> SimulatedRound:
    """Plan a round as ``chuangzheng simulate`` does (same scripts, same seed), no server;
    with a previous round (``prior``) whose missed phases each organisation carries. A
    :class:`CharacterMix` plans paced rounds (:attr:`Pacing.SPREAD`), where a persistent
    previous round keeps each organisation's character and lasting pace."""
    sim, paces = _plan_round(seed, mix, plan_path, roster_path, limit, starts_at, None, None)
    if prior is PriorRound.NONE:
        return sim
    keep = prior is PriorRound.PERSISTENT
    behaviours = {s.org_id: s.behaviour for s in sim.scripts} if keep else None
    before, _ = _plan_round(
        seed + PRIOR_SEED_OFFSET,
        sim.mix,
        plan_path,
        roster_path,
        limit,
        starts_at,
        behaviours,
        paces if keep else None,
    )
    missed = {
        script.org_id: sum(1 for phase in WORKING_PHASES if before.missed(script, phase))
        for script in before.scripts
    }
    ended = before.snapshots(before.windows[WORKING_PHASES[-1]][1] + timedelta(days=400))
    prior_paces = {snap.org_id: round_pace(snap, before.windows) for snap in ended}
    known = {org_id: pace for org_id, pace in prior_paces.items() if pace is not None}
    return replace(sim, prior=prior, prior_missed=missed, prior_pace=known)


def _plan_round(
    seed: int,
    mix: AnyMix | None,
    plan_path: Path,
    roster_path: Path,
    limit: int | None,
    starts_at: datetime,
    behaviours: dict[str, Behaviour] | None,
    paces: dict[str, tuple[Character, float]] | None,
) -> tuple[SimulatedRound, dict[str, tuple[Character, float]]]:
    """One round's scripts; ``behaviours`` (or, paced, ``paces``: character and lasting
    log-pace) given: those, and the seed drives only the round's own draws."""
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
    required = {
        (phase.phase, org_type.value): sum(1 for s in phase.steps_for(org_type) if s.required)
        for phase in round_plan.phases
        for org_type in {o.type for o in organisations}
    }
    if isinstance(mix, CharacterMix):
        paced = PacedScripter(Timing(ladder, calendar), schedule, rng, starts_at, required, mix=mix)
        if paces is None:
            characters = assign_characters([o.id for o in organisations], mix, rng)
            paces = {
                o.id: (characters[o.id], paced.org_pace(characters[o.id])) for o in organisations
            }
        extended = set(
            rng.sample([o.id for o in organisations], min(mix.extensions, len(organisations)))
        )
        scripts = tuple(
            paced.script(org, *paces[org.id], extension=org.id in extended) for org in organisations
        )
    else:
        if behaviours is None:
            behaviours = assign_behaviours([o.id for o in organisations], mix, rng)
        scripter = Scripter(Timing(ladder, calendar), schedule, rng, starts_at)
        scripts = tuple(scripter.script(org, behaviours[org.id]) for org in organisations)
        paces = {}
    return SimulatedRound(
        seed=seed,
        mix=mix,
        organisations=organisations,
        scripts=scripts,
        schedule=schedule,
        ladder=ladder,
        calendar=calendar,
        required_steps=required,
    ), paces


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
        last_step: datetime | None = None
        steps = sim.required_steps.get((phase, org.type.value), 1)
        for action in actions:
            if action.at > now:
                break
            if action.kind is ActionKind.REQUEST_EXTENSION and action.new_deadline is not None:
                deadline, extensions = action.new_deadline, 1
            elif action.kind is ActionKind.SUBMIT_RETURNED:
                returns = 1
                n = sim.required_steps.get((phase, org.type.value), 1)
                progress = (n - 1) / n if n else 0.0
                if progress > 0:  # the steps but the returned one were accepted then
                    last_step = action.at
        settled: list[datetime] = []
        for step in script.progress:  # paced rounds: steps done before the last
            if step.phase is phase and step.at <= now:
                progress = max(progress, step.done / step.of)
                last_step = step.at if last_step is None else max(last_step, step.at)
                settled.append(step.at)
        done = finish <= now
        if last_step is not None and len(settled) < round(progress * steps):
            # A returned submission settled the other steps at once (see above).
            settled += [last_step] * (round(progress * steps) - len(settled))
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
                last_step_at=finish if done else last_step,
                settled_at=() if done else tuple(sorted(settled)),
                steps_required=steps,
                escalations=escalations,
                returns=returns,
                extensions=extensions,
            )
        )
        if not done:
            # Later phases are not entered yet: their records say only the deadline.
            for later in WORKING_PHASES[WORKING_PHASES.index(phase) + 1 :]:
                records.append(
                    PhaseRecord(
                        phase=later,
                        deadline=sim.windows[later][1],
                        steps_required=sim.required_steps.get((later, org.type.value), 1),
                    )
                )
            break
        entered = finish
    return OrgSnapshot(
        org_id=org.id,
        township=org.township,
        system=org.system,
        org_type=org.type.value,
        phases=tuple(records),
        prior_round_missed=sim.prior_missed.get(org.id, 0),
        prior_round_pace=sim.prior_pace.get(org.id),
    )


@dataclass(frozen=True)
class LabelledSample:
    """A sample with where it was taken and what the yellow light said at that moment."""

    seed: int
    phase: Phase
    moment: float
    sample: Sample
    yellow: bool
    # The organisation's simulated behaviour, which no forecast can see (a reference).
    behaviour: Behaviour
    # Paced rounds: its hidden character (also a reference).
    character: Character | None = None


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
                        character=script.character,
                    )
                )
    return out


def training_samples(
    seeds: Iterable[int],
    mixes: Iterable[AnyMix],
    *,
    limit: int | None = None,
    prior: PriorRound = PriorRound.INDEPENDENT,
) -> list[Sample]:
    """Every sample of the simulated rounds seeds × mixes."""
    return [
        s.sample
        for mix in tuple(mixes)
        for seed in tuple(seeds)
        for s in simulated_samples(simulated_round(seed, mix, prior=prior, limit=limit))
    ]


def fit_simulated(
    seeds: Iterable[int] = TRAINING_SEEDS,
    mixes: Iterable[AnyMix] = TRAINING_PACE_MIXES,
    *,
    limit: int | None = None,
    extra: Sequence[Sample] = (),
    threshold: float | None = None,
    prior: PriorRound = PriorRound.PERSISTENT,
) -> ForecastModel:
    """A model fitted on simulated rounds (every seed × mix, each with a previous round as
    ``prior`` says) plus ``extra`` samples. By default the paced rounds (:attr:`Pacing.SPREAD`:
    organisations whose character lasts, working through each phase at their pace), the
    model ``benchmarks/forecast_eval.py`` measures as its ``paced`` scenario."""
    seeds, mixes = tuple(seeds), tuple(mixes)
    samples = training_samples(seeds, mixes, limit=limit, prior=prior)
    mix_text = "、".join(_mix_text(m) for m in mixes)
    prior_text = {
        PriorRound.NONE: "无上一轮",
        PriorRound.INDEPENDENT: "上一轮行为独立抽取",
        PriorRound.PERSISTENT: "上一轮行为相同",
    }[prior]
    note = f"模拟轮次 种子{','.join(map(str, seeds))} × 行为组合 {mix_text}（{prior_text}）"
    if extra:
        note += f"；本系统历史样本 {len(extra)} 条"
    return fit([*samples, *extra], threshold=threshold, fitted_on=note)


def _mix_text(mix: AnyMix) -> str:
    if isinstance(mix, CharacterMix):
        return f"先进{mix.diligent:.0%}/后进{mix.laggard:.0%}/退回{mix.returned:.0%}（按序时进度）"
    return f"逾期{mix.late:.0%}/整改{mix.laggard:.0%}/退回{mix.returned:.0%}"
