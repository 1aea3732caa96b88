"""The forecast over simulated rounds and the read model, and its evaluation harness.

Simulated rounds are the simulation's own scripts planned without Temporal
(``chuangzheng.services.forecast_training``); the read-model test writes a simulated round's
state at one moment into a real SQLite read model (the service's schema) and checks the
service reads back the same forecasts as the simulation gives directly.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from activities.db import create_schema, make_engine, session_factory
from activities.tables import (
    CampaignEventRow,
    CampaignStatusRow,
    EscalationRow,
    PhaseStatusRow,
    RoundDefinitionRow,
    RoundRow,
    StepStatusRow,
)
from benchmarks.forecast_eval import precision_at_recall, precision_recall, roc_auc, run
from chuangzheng.services.forecast import (
    by_organisation,
    kept_forecasts,
    load_model,
    model_path,
    round_forecasts,
    save_model,
)
from chuangzheng.services.forecast_training import (
    SIMULATED_START,
    PriorRound,
    SimulatedRound,
    fit_simulated,
    simulated_round,
    simulated_samples,
)
from chuangzheng.services.forecast_warning import round_threshold
from chuangzheng.simulation.environment import DEFAULT_PLAN
from chuangzheng.simulation.model import (
    Behaviour,
    BehaviourMix,
    Character,
    CharacterMix,
    Conduct,
    Pacing,
)
from domain.events import EventKind
from domain.forecast import (
    Feature,
    ForecastModel,
    OrgSnapshot,
    PhaseRecord,
    features_at,
    round_pace,
)
from domain.phases import WORKING_PHASES, Phase

LIMIT = 80


@pytest.fixture(scope="module")
def model() -> ForecastModel:
    """A model fitted on two small simulated rounds (seeds 1 and 2, the default mix), each
    with a previous round in which the organisations behaved the same way."""
    return fit_simulated((1, 2), (BehaviourMix(),), limit=LIMIT, prior=PriorRound.PERSISTENT)


def test_the_forecast_of_a_fixed_simulated_round_is_the_same_on_every_run(
    model: ForecastModel,
) -> None:
    again = fit_simulated((1, 2), (BehaviourMix(),), limit=LIMIT, prior=PriorRound.PERSISTENT)
    assert again == model
    mix = BehaviourMix(late=0.2, laggard=0.1)
    samples = simulated_samples(simulated_round(9, mix, prior=PriorRound.PERSISTENT, limit=LIMIT))
    first = [model.forecast(s.sample.features) for s in samples]
    second = [
        again.forecast(s.sample.features)
        for s in simulated_samples(
            simulated_round(9, mix, prior=PriorRound.PERSISTENT, limit=LIMIT)
        )
    ]
    assert first == second and len(first) == LIMIT * len(WORKING_PHASES) * 3
    assert all(f.reasons and all(r.text for r in f.reasons) for f in first)
    # On average, organisations with a late earlier phase are forecast as riskier.
    late = [
        f.probability for f, s in zip(first, samples, strict=True) if s.sample.features.earlier_late
    ]
    clean = [
        f.probability
        for f, s in zip(first, samples, strict=True)
        if not s.sample.features.earlier_late
    ]
    assert late and sum(late) / len(late) > sum(clean) / len(clean)


def test_simulated_samples_follow_the_scripts() -> None:
    sim = simulated_round(3, limit=LIMIT)
    samples = simulated_samples(sim)
    scripts = {s.org_id: s for s in sim.scripts}
    for s in samples:
        script = scripts[s.sample.features.org_id]
        assert s.sample.missed == (sim.missed(script, s.phase))
    # Every organisation is open in every phase at 25/50/75 % (on-time finishers act in the
    # last working days), so the forecast covers all of them.
    assert len(samples) == LIMIT * 15
    # Earlier lateness seen at a moment is lateness the script planned before that phase.
    for s in samples:
        index = WORKING_PHASES.index(s.phase)
        script = scripts[s.sample.features.org_id]
        planned = sum(1 for p in WORKING_PHASES[:index] if sim.missed(script, p))
        assert s.sample.features.earlier_late + s.sample.features.earlier_rectified <= planned


def test_metrics() -> None:
    assert roc_auc([0.1, 0.2, 0.8, 0.9], [False, False, True, True]) == 1.0
    assert roc_auc([0.9, 0.8, 0.2, 0.1], [False, False, True, True]) == 0.0
    assert roc_auc([0.5] * 4, [False, True, False, True]) == 0.5
    # One positive above both negatives, one between them: 3 of 4 pairs ordered.
    assert roc_auc([0.1, 0.5, 0.4, 0.9], [False, False, True, True]) == 0.75
    assert roc_auc([0.1, 0.2], [False, False]) is None
    assert precision_recall([True, True, False, False], [True, False, True, False]) == (0.5, 0.5)
    assert precision_recall([False, False], [True, False]) == (None, 0.0)
    # Reaching half the positives takes the top one (a hit): precision 1; all of them, the
    # top three: 2/3.
    scores, labels = [0.9, 0.8, 0.7, 0.1], [True, False, True, False]
    assert precision_at_recall(scores, labels, 0.5) == 1.0
    assert precision_at_recall(scores, labels, 1.0) == pytest.approx(2 / 3)


def test_evaluation_runs_on_rounds_never_seen() -> None:
    with pytest.raises(ValueError):
        run(
            seeds=(1,),
            mixes=(BehaviourMix(),),
            training_seeds=(1,),
            training_mixes=(BehaviourMix(),),
            limit=20,
        )
    _, results = run(
        seeds=(101,),
        mixes=(BehaviourMix(late=0.1, laggard=0.15),),
        training_seeds=(1,),
        training_mixes=(BehaviourMix(),),
        limit=60,
    )
    assert [r.moment for r in results] == [0.25, 0.5, 0.75]
    for r in results:
        assert r.samples == 60 * 5 and r.positives > 0
        assert r.auc is not None and 0.0 <= r.auc <= 1.0
        # Knowing who slips (the hidden behaviour) beats what the round shows.
        assert r.behaviour_auc is not None and r.behaviour_auc > r.auc
        assert r.table_auc is not None


def _write_read_model(session: Session, sim: SimulatedRound, now: datetime, round_id: str) -> None:
    """The read model as the round's activities would have left it at ``now``."""
    session.add(
        RoundRow(
            round_id=round_id, name="模拟", campaign_id="seed-002", round_plan_id="round-1",
            starts_at=SIMULATED_START, status="running", kicked_off_by="county", updated_at=now,
        )
    )  # fmt: skip
    session.add(
        RoundDefinitionRow(
            round_id=round_id, plan_source="seed-002", plan_yaml=DEFAULT_PLAN.read_text("utf-8"),
            round_plan_id="round-1", starts_at=SIMULATED_START, created_by="county",
            created_at=SIMULATED_START, kicked_off_at=SIMULATED_START,
        )
    )  # fmt: skip
    orgs = {o.id: o for o in sim.organisations}
    for snap in sim.snapshots(now):
        org = orgs[snap.org_id]
        phase, progress = snap.current()
        current = snap.record(phase) if phase in WORKING_PHASES else None
        session.add(
            CampaignStatusRow(
                round_id=round_id, org_id=org.id, org_name=org.name, township=org.township,
                system=str(org.system), org_type=org.type.value, phase=phase.value,
                phase_status=None, light="green", overdue=False,
                deadline=current.deadline if current else None, top_rung=None,
                closed=phase is Phase.COMPLETED, event_seq=1, updated_at=now, progress=progress,
            )
        )  # fmt: skip
        for r in snap.phases:
            if r.opened_at is None:
                continue
            session.add(
                PhaseStatusRow(
                    round_id=round_id, org_id=org.id, phase=r.phase.value,
                    status="completed" if r.completed_at else "open", deadline=r.deadline,
                    opened_at=r.opened_at, completed_at=r.completed_at,
                    outcome=r.outcome.value if r.outcome else None, event_seq=1,
                )
            )  # fmt: skip
            # Every settled step of an open phase (the pace shown); a finished phase's last.
            settled = r.settled_at or ((r.last_step_at,) if r.last_step_at is not None else ())
            for i, at in enumerate(settled, start=1):
                session.add(
                    StepStatusRow(
                        round_id=round_id, org_id=org.id, phase=r.phase.value, step_id=f"s{i}",
                        status="accepted", reason="", event_seq=1, updated_at=at,
                    )
                )  # fmt: skip
            for rung in range(r.escalations):
                session.add(
                    EscalationRow(
                        round_id=round_id, org_id=org.id, phase=r.phase.value, rung=rung,
                        name=f"第{rung + 1}级", recipient_role="instructor", recipient_key="x",
                        fired_at=r.deadline, working_days_overdue=rung,
                        acknowledged_by=None, acknowledged_at=None,
                    )
                )  # fmt: skip
            for kind, count in (
                (EventKind.RETURNED, r.returns),
                (EventKind.EXTENSION_APPROVED, r.extensions),
            ):
                for _ in range(count):
                    session.add(
                        CampaignEventRow(
                            event_id=uuid.uuid4().hex, round_id=round_id, org_id=org.id,
                            kind=kind.value, phase=r.phase.value, step_id=None, actor_user=None,
                            actor_role=None, actor_name=None, at=now, detail={}, recorded_at=now,
                        )
                    )  # fmt: skip
    session.commit()


def _write_previous_round(session: Session, sim: SimulatedRound, round_id: str) -> dict[str, float]:
    """A finished round a year earlier: each organisation missed the phases it did in the
    simulation's previous round (the first ones, late, at 120 % of the window), the rest on
    time (at 80 %). Its plan is the simulated round's (the same windows). Returns each
    organisation's pace in it, as the read model should find it."""
    before = SIMULATED_START - timedelta(days=365)
    session.add(
        RoundRow(
            round_id=round_id, name="上一轮", campaign_id="seed-002", round_plan_id="round-1",
            starts_at=before, status="completed", kicked_off_by="county", updated_at=before,
        )
    )  # fmt: skip
    session.add(
        RoundDefinitionRow(
            round_id=round_id, plan_source="seed-002", plan_yaml=DEFAULT_PLAN.read_text("utf-8"),
            round_plan_id="round-1", starts_at=SIMULATED_START, created_by="county",
            created_at=before, kicked_off_at=before,
        )
    )  # fmt: skip
    paces: dict[str, float] = {}
    for org in sim.organisations:
        missed = sim.prior_missed[org.id]
        records = []
        for i, phase in enumerate(WORKING_PHASES):
            opens, deadline = sim.windows[phase]
            share = 1.2 if i < missed else 0.8
            completed = (opens + (deadline - opens) * share).replace(microsecond=0)
            records.append(PhaseRecord(phase=phase, completed_at=completed, deadline=deadline))
            session.add(
                PhaseStatusRow(
                    round_id=round_id, org_id=org.id, phase=phase.value, status="completed",
                    deadline=deadline, opened_at=opens, completed_at=completed,
                    outcome="late" if i < missed else "on_time", event_seq=1,
                )
            )  # fmt: skip
        pace = round_pace(OrgSnapshot(org_id=org.id, phases=tuple(records)), sim.windows)
        expected = (missed * math.log(1.2) + (5 - missed) * math.log(0.8)) / 5
        assert pace is not None and pace == pytest.approx(expected, abs=1e-6)
        paces[org.id] = pace
    session.commit()
    return paces


def _with_prior_paces(snapshots: list[OrgSnapshot], paces: dict[str, float]) -> list[OrgSnapshot]:
    """The simulated snapshots with the previous round's pace the read model was given."""
    return [s.model_copy(update={"prior_round_pace": paces[s.org_id]}) for s in snapshots]


def test_a_previous_round_is_drawn_afresh_or_kept() -> None:
    fresh = simulated_round(7, prior=PriorRound.INDEPENDENT, limit=LIMIT)
    kept = simulated_round(7, prior=PriorRound.PERSISTENT, limit=LIMIT)
    # The round itself is the one ``simulate`` plays with that seed, either way.
    assert fresh.scripts == kept.scripts == simulated_round(7, limit=LIMIT).scripts
    slippers = {
        s.org_id for s in kept.scripts if s.behaviour in (Behaviour.LATE, Behaviour.LAGGARD)
    }
    # Kept: only the organisations that slip now slipped before, each in 1–2 phases.
    assert {o for o, n in kept.prior_missed.items() if n} == slippers
    assert all(1 <= kept.prior_missed[o] <= 2 for o in slippers)
    # Afresh: the previous round's slippers are another draw.
    assert {o for o, n in fresh.prior_missed.items() if n} != slippers


def test_the_read_model_gives_the_forecasts_the_simulation_gives(
    model: ForecastModel, tmp_path: Path
) -> None:
    mix = BehaviourMix(late=0.2, laggard=0.15, returned=0.1)
    sim = simulated_round(5, mix, prior=PriorRound.PERSISTENT, limit=LIMIT)
    # Half-way through the third phase: some earlier lateness, escalations and returns.
    opens, deadline = sim.windows[Phase.LEADERSHIP_REVIEW]
    now = opens + (deadline - opens) / 2
    engine = make_engine(f"sqlite:///{tmp_path / 'read.db'}")
    create_schema(engine)
    sessions = session_factory(engine)
    try:
        with sessions() as session:
            _write_read_model(session, sim, now, "r1")
            paces = _write_previous_round(session, sim, "r0")
        snapshots = _with_prior_paces(sim.snapshots(now), paces)
        features = features_at(snapshots, now, sim.windows, sim.calendar)
        expected = {(f.org_id, f.phase): model.forecast(f) for f in features}
        # The moment has history to read: late earlier phases, escalations, returns, and
        # the previous round's misses (the forecast's first reason for some).
        assert all(
            any(getattr(f, name) for f in features)
            for name in ("earlier_late", "earlier_escalations", "returns")
        )
        assert any(f.reasons[0].feature.value.startswith("prior") for f in expected.values())
        with sessions() as session:
            got = round_forecasts(session, "r1", model, now=now)
            assert got == expected
            # Scoped: only the organisations asked for, with cohorts over the whole round.
            some = sorted({o for o, _ in expected})[:5]
            assert set(round_forecasts(session, "r1", model, now=now, org_ids=some)) == {
                k for k in expected if k[0] in some
            }
            # Pages read the kept model only: none kept, no forecasts.
            assert kept_forecasts(session, "r1", tmp_path, now=now) == (None, {})
            save_model(model.with_threshold(0.2), model_path(tmp_path))
            kept, forecasts = kept_forecasts(session, "r1", tmp_path, now=now)
            # The threshold in force is the round's (its plan's 预警 rung, or the county
            # office's audited change), not the one kept with the model file.
            in_force = round_threshold(session, "r1")
            assert kept is not None and kept.threshold_by_county
            assert kept.threshold == (in_force if in_force is not None else 0.2)
            assert forecasts.keys() == expected.keys()
            assert all(f.warn == (f.probability >= kept.threshold) for f in forecasts.values())
            one = by_organisation(
                forecasts, {o: Phase.LEADERSHIP_REVIEW.value for o, _ in forecasts}
            )
            assert all(f.phase is Phase.LEADERSHIP_REVIEW for f in one.values())
    finally:
        engine.dispose()
    assert load_model(model_path(tmp_path)) == model.with_threshold(0.2)
    assert load_model(tmp_path / "missing.json") is None


# ----- paced rounds (Pacing.SPREAD): a lasting character, steps spread over the phase --------


def test_the_simulate_default_is_unchanged_and_paced_rounds_are_a_mode_of_their_own() -> None:
    deadline = simulated_round(3, limit=LIMIT)
    assert deadline.pacing is Pacing.DEADLINE
    # The deadline-paced scripts (``chuangzheng simulate``) carry no character or partial
    # progress: the same actions, hence the same Updates and timers, as before.
    assert all(s.character is None and s.progress == () for s in deadline.scripts)
    paced = simulated_round(3, CharacterMix(), limit=LIMIT)
    again = simulated_round(3, CharacterMix(), limit=LIMIT)
    assert paced.pacing is Pacing.SPREAD and paced.scripts == again.scripts  # seeded
    assert {s.character for s in paced.scripts} == set(Character)
    # The same action kinds as the player plays, in time order per organisation.
    for script in paced.scripts:
        instants = [a.at for a in script.actions]
        assert instants == sorted(instants)
        for step in script.progress:
            finish = [a.at for a in script.actions if a.phase is step.phase][-1]
            assert step.at < finish and 0 < step.done < step.of


def test_paced_organisations_work_ahead_or_behind_the_pro_rata_schedule() -> None:
    sim = simulated_round(4, CharacterMix(diligent=0.3, laggard=0.3), limit=LIMIT)
    characters = {s.org_id: s.character for s in sim.scripts}

    def mean(values: list[float] | list[bool]) -> float:
        return sum(values) / len(values)

    # Half-way through each phase, every organisation's progress on it (finished: 1, not
    # entered yet: 0): diligent ahead of 50 %, laggards behind, average between.
    progress: dict[Character, list[float]] = {c: [] for c in Character}
    for phase in WORKING_PHASES:
        opens, deadline = sim.windows[phase]
        now = opens + (deadline - opens) / 2
        for snap in sim.snapshots(now):
            record = snap.record(phase)
            character = characters[snap.org_id]
            assert character is not None
            progress[character].append(record.progress if record is not None else 0.0)
    assert mean(progress[Character.DILIGENT]) > 0.55
    assert mean(progress[Character.LAGGARD]) < 0.35
    assert (
        mean(progress[Character.LAGGARD])
        < mean(progress[Character.AVERAGE])
        < mean(progress[Character.DILIGENT])
    )
    # They miss deadlines in that order too.
    samples = simulated_samples(sim, moments=(0.5,))
    missed: dict[Character, list[bool]] = {c: [] for c in Character}
    for s in samples:
        assert s.character is not None
        missed[s.character].append(s.sample.missed)
    assert (
        mean(missed[Character.DILIGENT])
        < mean(missed[Character.AVERAGE])
        < mean(missed[Character.LAGGARD])
    )
    # The yellow light now marks someone, and more of those who miss than of the others.
    assert any(s.yellow for s in samples)
    flagged = [s.sample.missed for s in samples if s.yellow]
    assert mean(flagged) > mean([s.sample.missed for s in samples])


def test_a_paced_previous_round_keeps_each_character() -> None:
    kept = simulated_round(6, CharacterMix(), prior=PriorRound.PERSISTENT, limit=LIMIT)
    fresh = simulated_round(6, CharacterMix(), prior=PriorRound.INDEPENDENT, limit=LIMIT)
    assert kept.scripts == fresh.scripts == simulated_round(6, CharacterMix(), limit=LIMIT).scripts

    def missed_before(sim: SimulatedRound, character: Character) -> float:
        counts = [sim.prior_missed[s.org_id] for s in sim.scripts if s.character is character]
        return sum(counts) / len(counts)

    # Kept: laggards missed more phases last round than diligent organisations did.
    assert missed_before(kept, Character.LAGGARD) > missed_before(kept, Character.DILIGENT) + 1
    # Every conduct the player knows shows up somewhere in a paced round.
    conducts = {c for s in kept.scripts for c in s.conduct.values()}
    assert {Conduct.ON_TIME, Conduct.LATE, Conduct.LAGGARD} <= conducts


def test_the_forecast_on_paced_rounds_never_seen_beats_chance_and_is_seeded() -> None:
    _, results = run(
        seeds=(101,),
        mixes=(CharacterMix(diligent=0.25, laggard=0.25),),
        training_seeds=(1,),
        training_mixes=(CharacterMix(),),
        limit=60,
        prior=PriorRound.PERSISTENT,
    )
    _, again = run(
        seeds=(101,),
        mixes=(CharacterMix(diligent=0.25, laggard=0.25),),
        training_seeds=(1,),
        training_mixes=(CharacterMix(),),
        limit=60,
        prior=PriorRound.PERSISTENT,
    )
    assert results == again
    half = next(r for r in results if r.moment == 0.5)
    assert half.auc is not None and half.auc > 0.7
    assert half.yellow_recall > 0 and half.yellow_precision is not None


def test_the_forecast_on_paced_rounds_is_seeded_and_reads_the_pace() -> None:
    model = fit_simulated((1,), (CharacterMix(),), limit=LIMIT)
    assert fit_simulated((1,), (CharacterMix(),), limit=LIMIT) == model
    mix = CharacterMix(diligent=0.25, laggard=0.25)
    first = [
        model.forecast(s.sample.features)
        for s in simulated_samples(
            simulated_round(9, mix, prior=PriorRound.PERSISTENT, limit=LIMIT)
        )
    ]
    second = [
        model.forecast(s.sample.features)
        for s in simulated_samples(
            simulated_round(9, mix, prior=PriorRound.PERSISTENT, limit=LIMIT)
        )
    ]
    assert first == second and first
    assert all(f.reasons and all(r.text for r in f.reasons) for f in first)
    # The pace shown carries real weight: a later projected finish, a slower earlier pace.
    weights = dict(zip(model.features, model.weights, strict=True))
    assert weights[Feature.PROJECTED_FINISH] > 0
    assert weights[Feature.EARLIER_PACE] + weights[Feature.EARLIER_PACE_UNSEEN] > 0
    pace = {Feature.PROJECTED_FINISH, Feature.IDLE, Feature.NO_STEP_YET, Feature.EARLIER_PACE}
    assert any(r.feature in pace for f in first for r in f.reasons)


def test_the_read_model_gives_the_paced_forecasts_the_simulation_gives(tmp_path: Path) -> None:
    model = fit_simulated((1,), (CharacterMix(),), limit=LIMIT)
    sim = simulated_round(5, CharacterMix(), prior=PriorRound.PERSISTENT, limit=LIMIT)
    opens, deadline = sim.windows[Phase.PUBLIC_COMMITMENT]
    now = opens + (deadline - opens) / 2
    engine = make_engine(f"sqlite:///{tmp_path / 'read.db'}")
    create_schema(engine)
    try:
        with session_factory(engine)() as session:
            _write_read_model(session, sim, now, "p1")
            paces = _write_previous_round(session, sim, "p0")
        snapshots = _with_prior_paces(sim.snapshots(now), paces)
        features = features_at(snapshots, now, sim.windows, sim.calendar)
        # Steps settled one by one: every instant is read back, and the pending step.
        assert any(len(r.settled_at) > 1 for s in snapshots for r in s.phases)
        assert any(f.pending > 0 for f in features)
        # Half-way through a four-step phase some have settled steps, some have not.
        assert any(f.projected > 0 for f in features) and any(f.idle > 0 for f in features)
        assert any(f.earlier_finished for f in features)
        expected = {(f.org_id, f.phase): model.forecast(f) for f in features}
        with session_factory(engine)() as session:
            assert round_forecasts(session, "p1", model, now=now) == expected
    finally:
        engine.dispose()
