"""The forecast's domain: features at a moment, the logistic fit, reasons in Chinese."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from domain.calendar import WorkingCalendar
from domain.forecast import (
    Feature,
    ForecastFeatures,
    ForecastModel,
    OrgSnapshot,
    PhaseRecord,
    Sample,
    features_at,
    warnings_due,
    yellow_at,
)
from domain.forecast_fit import PART2_FEATURES, best_threshold, fit
from domain.phases import WORKING_PHASES, Phase
from domain.state import Outcome

M, C, L = Phase.MOBILISATION, Phase.PUBLIC_COMMITMENT, Phase.LEADERSHIP_REVIEW
START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # a Monday, 09:00 in Shanghai
WINDOWS = {
    phase: (START + timedelta(days=30 * i), START + timedelta(days=30 * (i + 1)))
    for i, phase in enumerate(WORKING_PHASES)
}
CALENDAR = WorkingCalendar()


def record(phase: Phase, **kw: object) -> PhaseRecord:
    kw.setdefault("deadline", WINDOWS[phase][1])
    return PhaseRecord(phase=phase, **kw)


def snapshot(org_id: str, *records: PhaseRecord, township: str = "甲镇") -> OrgSnapshot:
    return OrgSnapshot(
        org_id=org_id, township=township, system="rural", org_type="village", phases=records
    )


def done(phase: Phase, outcome: Outcome = Outcome.ON_TIME, **kw: object) -> PhaseRecord:
    opens, deadline = WINDOWS[phase]
    return record(
        phase,
        opened_at=opens,
        completed_at=deadline - timedelta(days=2),
        outcome=outcome,
        progress=1.0,
        **kw,
    )


def test_features_read_progress_history_cohorts_and_lag() -> None:
    now = WINDOWS[C][0] + timedelta(days=15)  # half-way through the second phase
    ahead = snapshot("ahead", done(M), done(C))
    steady = snapshot("steady", done(M), record(C, opened_at=WINDOWS[C][0], progress=0.5))
    slipped = snapshot(
        "slipped",
        done(M, Outcome.LATE, escalations=2),
        record(C, opened_at=WINDOWS[C][0] + timedelta(days=6), returns=1),
    )
    stuck = snapshot("stuck", record(M, opened_at=START, deadline=now + timedelta(days=1)))
    features = {
        f.org_id: f for f in features_at([ahead, steady, slipped, stuck], now, WINDOWS, CALENDAR)
    }
    # Finished phases are not forecast; the stuck organisation is forecast for the phase it
    # is in (its deadline was extended) and for the round's current phase.
    assert set(features) == {"steady", "slipped", "stuck"}
    steady_f, slipped_f = features["steady"], features["slipped"]
    assert steady_f.phase is C and steady_f.elapsed == pytest.approx(0.5)
    assert steady_f.progress == 0.5 and steady_f.value(Feature.PROGRESS_GAP) == 0.0
    assert slipped_f.value(Feature.PROGRESS_GAP) == pytest.approx(0.5)
    assert slipped_f.earlier_late == 1 and slipped_f.earlier_escalations == 2
    assert slipped_f.returns == 1 and slipped_f.late_entry == pytest.approx(0.2)
    # One of the three other township members finished the phase.
    assert slipped_f.township_done == pytest.approx(1 / 3)
    assert 8 <= slipped_f.working_days_left <= 12
    stuck_all = [f for f in features_at([stuck], now, WINDOWS, CALENDAR)]
    assert {(f.phase, f.phases_behind) for f in stuck_all} == {(M, 0), (C, 1)}
    assert next(f for f in stuck_all if f.phase is C).late_entry == 1.0


def test_a_phase_past_its_deadline_is_not_forecast() -> None:
    now = WINDOWS[C][0] + timedelta(days=3)
    overdue = snapshot("overdue", record(M, opened_at=START))
    phases = [
        (f.phase, f.phases_behind, f.earlier_late)
        for f in features_at([overdue], now, WINDOWS, CALENDAR)
    ]
    # Still in the first phase after its deadline: only the second is forecast, and the
    # first counts as late already.
    assert phases == [(C, 1, 1)]


def test_yellow_marks_an_organisation_behind_schedule_and_its_cohort() -> None:
    now = WINDOWS[C][0] + timedelta(days=15)
    snaps = [
        snapshot(f"o{i}", done(M), record(C, opened_at=WINDOWS[C][0], progress=0.5))
        for i in range(4)
    ]
    snaps.append(snapshot("late", record(M, opened_at=START)))
    assert yellow_at(snaps, now, WINDOWS) == {"late"}


def _synthetic(n: int, seed: int) -> list[Sample]:
    """Samples whose risk rises with the progress gap and earlier lateness (and nothing
    else), drawn from a known logistic model."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        elapsed = rng.random()
        progress = rng.random() * elapsed
        late = rng.choice((0, 0, 0, 1, 2))
        logit = -3 + 4 * (elapsed - progress) + 1.2 * late
        missed = rng.random() < 1 / (1 + pow(2.718281828, -logit))
        features = ForecastFeatures(
            org_id=f"o{i}", phase=C, elapsed=elapsed, progress=progress, earlier_late=late
        )
        out.append(Sample(features=features, missed=missed))
    return out


def test_fit_finds_the_signal_and_is_deterministic() -> None:
    samples = _synthetic(1500, seed=3)
    model = fit(samples)
    again = fit(list(samples))
    assert model == again  # the same samples give the same model to the last bit
    weights = dict(zip(model.features, model.weights, strict=True))
    assert weights[Feature.PROGRESS_GAP] > 0.3
    assert weights[Feature.EARLIER_LATE] > 0.3
    # Constant features (no history of returns here) carry no weight at all.
    assert weights[Feature.RETURNS] == 0.0 and weights[Feature.TOWNSHIP_DONE] == 0.0
    risky = ForecastFeatures(org_id="r", phase=C, elapsed=0.8, progress=0.0, earlier_late=2)
    safe = ForecastFeatures(org_id="s", phase=C, elapsed=0.8, progress=0.8)
    assert model.probability(risky) > 0.8 > 0.1 > model.probability(safe)
    # The model survives a JSON round trip exactly (it is kept as a file).
    assert ForecastModel.model_validate_json(model.model_dump_json()) == model


def test_a_weight_against_its_sign_is_dropped() -> None:
    # Returns here go with *fewer* misses (as in the simulation, where an organisation
    # that had a submission returned never slips): the fit refuses to learn that.
    rng = random.Random(5)
    samples = []
    for i in range(600):
        returned = rng.random() < 0.3
        missed = (not returned) and rng.random() < 0.3
        features = ForecastFeatures(org_id=f"o{i}", phase=C, elapsed=0.5, returns=int(returned))
        samples.append(Sample(features=features, missed=missed))
    free = fit(samples, signs={})
    assert dict(zip(free.features, free.weights, strict=True))[Feature.RETURNS] < 0
    model = fit(samples)
    assert dict(zip(model.features, model.weights, strict=True))[Feature.RETURNS] == 0.0


def test_every_forecast_has_reasons_in_chinese() -> None:
    model = fit(_synthetic(800, seed=4))
    risky = ForecastFeatures(org_id="r", phase=C, elapsed=0.75, progress=0.0, earlier_late=2)
    forecast = model.forecast(risky)
    assert forecast.warn and forecast.percent >= 50
    assert [r.feature for r in forecast.reasons][:2] == [
        Feature.PROGRESS_GAP,
        Feature.EARLIER_LATE,
    ] or [r.feature for r in forecast.reasons][:2] == [Feature.EARLIER_LATE, Feature.PROGRESS_GAP]
    texts = forecast.summary
    assert "序时进度75%" in texts and "前序阶段有2个逾期完成" in texts
    # An organisation with nothing against it still gets a reason, saying so.
    calm = ForecastFeatures(org_id="s", phase=C, elapsed=0.3, progress=0.3)
    safe = model.forecast(calm)
    assert not safe.warn and len(safe.reasons) == 1
    assert safe.reasons[0].text.startswith("风险低于平均水平")
    # The county office's threshold overrides the fitted one.
    assert model.forecast(calm, threshold=safe.probability / 2).warn


def test_best_threshold_maximises_f1() -> None:
    scored = [(0.9, True), (0.8, True), (0.7, False), (0.4, True), (0.2, False), (0.1, False)]
    # Top 2: F1 = 4/5; top 4: F1 = 6/7 (the best); everything: 6/9.
    assert best_threshold(scored) == 0.4
    assert best_threshold([(0.5, False)]) == 0.3


def test_an_early_warning_is_due_once_per_organisation_and_phase() -> None:
    model = fit(_synthetic(800, seed=6))
    now = datetime(2026, 4, 1, 2, 0, tzinfo=UTC)
    risky = ForecastFeatures(org_id="b", phase=C, elapsed=0.75, progress=0.0, earlier_late=2)
    calm = ForecastFeatures(org_id="a", phase=C, elapsed=0.3, progress=0.3)
    finished = ForecastFeatures(org_id="c", phase=C, elapsed=0.75, progress=0.0, earlier_late=2)
    forecasts = [model.forecast(f) for f in (risky, calm, finished)]
    first = warnings_due(forecasts, threshold=0.5, warned=(), finished=[("c", C)], as_of=now)
    assert [(w.org_id, w.phase) for w in first] == [("b", C)]
    assert first[0].reasons and first[0].probability >= 0.5
    # The next check sends nothing for the same phase, however high the forecast stays.
    again = warnings_due(forecasts, threshold=0.5, warned=[("b", C)], as_of=now)
    assert [(w.org_id, w.phase) for w in again] == [("c", C)]
    # The next phase is a new pair.
    later = model.forecast(risky.model_copy(update={"phase": L}))
    assert [
        w.phase for w in warnings_due([later], threshold=0.5, warned=[("b", C)], as_of=now)
    ] == [L]


# ----- the pace shown (after part 2) ---------------------------------------------------------


def test_pace_features_read_the_last_step_the_projection_and_earlier_phases() -> None:
    opens = WINDOWS[C][0]
    now = opens + timedelta(days=15)  # half-way through the second phase
    steady = snapshot(
        "steady",
        done(M),  # finished 2 days before a 30-day window closed: 28/30 of it
        record(C, opened_at=opens, progress=0.5, last_step_at=opens + timedelta(days=6)),
    )
    late_m = record(
        M,
        opened_at=START,
        completed_at=WINDOWS[M][1] + timedelta(days=3),
        outcome=Outcome.LATE,
        progress=1.0,
    )
    stalled = snapshot("stalled", late_m, record(C, opened_at=opens + timedelta(days=3)))
    features = {f.org_id: f for f in features_at([steady, stalled], now, WINDOWS, CALENDAR)}
    s, t = features["steady"], features["stalled"]
    # Half the steps settled by a fifth of the window: at that pace the phase takes 40 % of
    # it, finishing on day 12 of the window.
    assert s.projected == pytest.approx(0.4)
    assert s.projected_on == (opens + timedelta(days=12)).date()
    assert s.value(Feature.PROJECTED_FINISH) == pytest.approx(math.log(0.4))
    assert s.idle == pytest.approx(0.3)
    assert s.idle_days == CALENDAR.working_days_between(
        (opens + timedelta(days=6)).date(), now.date()
    )
    assert s.earlier_finished == 1 and s.earlier_pace == pytest.approx(math.log(28 / 30))
    assert s.value(Feature.NO_STEP_YET) == 0.0 and s.value(Feature.EARLIER_PACE_UNSEEN) == 0.0
    # Nothing settled since it entered late: no projection; idle since entry (a tenth in).
    assert t.projected == 0.0 and t.projected_on is None
    assert t.value(Feature.PROJECTED_FINISH) == 0.0 and t.value(Feature.NO_STEP_YET) == 1.0
    assert t.idle == pytest.approx(0.4)
    assert t.earlier_pace == pytest.approx(math.log(33 / 30))
    assert t.value(Feature.EARLIER_PACE_UNSEEN) == pytest.approx(math.log(33 / 30))
    assert t.value(Feature.NO_EARLIER_PHASE) == 0.0
    # In the first phase there is no earlier pace to read.
    first = features_at([snapshot("new", record(M, opened_at=START))], START, WINDOWS, CALENDAR)
    assert first[0].value(Feature.NO_EARLIER_PHASE) == 1.0 and first[0].earlier_finished == 0


def _paced(n: int, seed: int) -> list[Sample]:
    """Samples drawn as the paced simulation draws its organisations: a log-pace per
    organisation, shown in the steps settled and in earlier phases, missing when the pace
    (plus a little luck) passes the deadline."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        log_pace = rng.gauss(-0.2, 0.35)
        elapsed = rng.choice((0.25, 0.5, 0.75))
        steps = 4
        shown = math.exp(log_pace + rng.gauss(0, 0.1))
        done = min(steps - 1, int(elapsed / shown * steps))
        progress = done / steps
        projected = shown if done else 0.0
        last = shown * done / steps
        earlier = log_pace + rng.gauss(0, 0.15)
        features = ForecastFeatures(
            org_id=f"o{i}",
            phase=C,
            elapsed=elapsed,
            progress=progress,
            idle=max(0.0, elapsed - last),
            idle_days=round(max(0.0, elapsed - last) * 40),
            projected=projected,
            projected_on=(START + timedelta(days=30 * projected)).date() if done else None,
            earlier_pace=earlier,
            earlier_finished=1,
        )
        missed = log_pace + rng.gauss(0, 0.15) > 0 and shown * 1.0 > elapsed
        out.append(Sample(features=features, missed=missed))
    return out


def test_the_fit_finds_the_pace_and_says_it_in_chinese() -> None:
    samples = _paced(2000, seed=8)
    model = fit(samples)
    assert model == fit(list(samples))  # deterministic
    weights = dict(zip(model.features, model.weights, strict=True))
    assert weights[Feature.PROJECTED_FINISH] > 0.3
    assert weights[Feature.EARLIER_PACE] + weights[Feature.EARLIER_PACE_UNSEEN] > 0.3
    slow = ForecastFeatures(
        org_id="slow",
        phase=C,
        elapsed=0.75,
        progress=0.25,
        idle=0.35,
        idle_days=14,
        projected=1.6,
        projected_on=datetime(2026, 5, 18, tzinfo=UTC).date(),
        earlier_pace=math.log(1.2),
        earlier_finished=2,
    )
    forecast = model.forecast(slow)
    assert forecast.probability > 0.5
    texts = [r.text for r in forecast.reasons]
    assert "按目前进度，预计5月18日完成，用时为阶段时限的160%" in texts
    assert len(texts) == len(set(texts))  # the earlier pace is said once, not per term
    idle = slow.model_copy(
        update={"progress": 0.0, "projected": 0.0, "projected_on": None, "idle": 0.75}
    )
    idle_texts = model.forecast(idle).summary
    assert "本轮前2个阶段平均用去阶段时限的120%" in idle_texts
    fast = slow.model_copy(
        update={
            "progress": 0.75,
            "projected": 0.55,
            "idle": 0.05,
            "idle_days": 1,
            "earlier_pace": math.log(0.6),
        }
    )
    calm = model.forecast(fast)
    assert calm.probability < 0.2 and calm.reasons
    # Its pace is no reason for concern: the projection is not among the raising reasons.
    assert all(r.feature is not Feature.PROJECTED_FINISH for r in calm.reasons)


def test_the_part2_feature_set_is_the_fit_without_the_pace() -> None:
    samples = _paced(600, seed=9)
    excluded = [f for f in Feature if f not in PART2_FEATURES]
    model = fit(samples, exclude=excluded)
    weights = dict(zip(model.features, model.weights, strict=True))
    assert all(weights[f] == 0.0 for f in excluded)
    assert weights[Feature.PROGRESS] != 0.0


# ----- the third pass: every settled step, the pending step, the previous round's pace -------


def test_every_settled_step_the_pending_step_and_the_previous_rounds_pace() -> None:
    opens = WINDOWS[C][0]
    now = opens + timedelta(days=15)  # half-way through a 30-day window
    # Two of four steps settled, at days 3 and 9: the first says the phase takes
    # 3/30·4/1 = 40 % of the window, the second 9/30·4/2 = 60 %; together (geometric mean)
    # about 49 %, where the last step alone said 60 %.
    steady = snapshot(
        "steady",
        done(M),
        record(
            C,
            opened_at=opens,
            progress=0.5,
            last_step_at=opens + timedelta(days=9),
            settled_at=(opens + timedelta(days=3), opens + timedelta(days=9)),
            steps_required=4,
        ),
    ).model_copy(update={"prior_round_pace": math.log(1.3)})
    # Nothing settled of four steps half-way through: the first step, due at a quarter of
    # its pace, is still open, so the phase takes at least 0.5·4/1 = twice the window.
    idle = snapshot("idle", done(M), record(C, opened_at=opens, steps_required=4))
    # A read model that does not say how many steps are required: no bound, the last step.
    unknown = snapshot(
        "unknown",
        done(M),
        record(C, opened_at=opens, progress=0.5, last_step_at=opens + timedelta(days=9)),
    )
    features = {f.org_id: f for f in features_at([steady, idle, unknown], now, WINDOWS, CALENDAR)}
    s, i, u = features["steady"], features["idle"], features["unknown"]
    assert s.projected == pytest.approx(math.sqrt(0.4 * 0.6))
    assert s.pending == pytest.approx(0.5 * 4 / 3) and s.steps_left == 2
    assert s.value(Feature.PENDING_STEP) == pytest.approx(math.log(0.5 * 4 / 3))
    assert s.value(Feature.PRIOR_ROUND_PACE) == pytest.approx(math.log(1.3))
    assert i.pending == pytest.approx(2.0) and i.steps_left == 4 and i.projected == 0.0
    assert u.projected == pytest.approx(0.6) and u.pending == 0.0
    assert u.value(Feature.PENDING_STEP) == 0.0
    # No previous round known: unknown, not "on the deadline".
    assert i.prior_round_pace is None and math.isnan(i.value(Feature.PRIOR_ROUND_PACE))

    # The fit learns the previous round's pace, and an unknown one scores as the average.
    rng = random.Random(11)
    samples = []
    for k in range(1500):
        lasting = rng.gauss(-0.2, 0.3)
        pace = math.exp(lasting + rng.gauss(0, 0.15))
        elapsed = rng.choice((0.25, 0.5, 0.75))
        settled = min(3, int(elapsed / pace * 4))
        features_k = ForecastFeatures(
            org_id=f"o{k}",
            phase=C,
            elapsed=elapsed,
            progress=settled / 4,
            pending=elapsed * 4 / (settled + 1),
            steps_left=4 - settled,
            prior_round_pace=lasting + rng.gauss(0, 0.1) if k % 3 else None,
        )
        missed = math.log(pace) + rng.gauss(0, 0.15) > 0
        samples.append(Sample(features=features_k, missed=missed))
    model = fit(samples)
    assert model == fit(list(samples))  # deterministic, NaN and all
    weights = dict(zip(model.features, model.weights, strict=True))
    assert weights[Feature.PRIOR_ROUND_PACE] > 0.3 and weights[Feature.PENDING_STEP] >= 0.0
    unseen = samples[0].features  # k = 0: no previous round
    assert unseen.prior_round_pace is None
    assert dict(model.terms(unseen))[Feature.PRIOR_ROUND_PACE] == 0.0
    # Each says why in Chinese when it raises the risk.
    slow = ForecastFeatures(
        org_id="slow",
        phase=C,
        elapsed=0.5,
        pending=2.0,
        steps_left=4,
        prior_round_pace=math.log(1.4),
    )
    pair = (Feature.PENDING_STEP, Feature.PRIOR_ROUND_PACE)
    both = ForecastModel(
        features=pair, means=(0.0, 0.0), scales=(1.0, 1.0), weights=(1.0, 1.0), intercept=-1.0
    )
    texts = [r.text for r in both.forecast(slow).reasons]
    assert texts == [
        "尚有4项规定动作未完成，照此推算本阶段至少需用去时限的200%",  # log 2 > log 1.4
        "上一轮各阶段平均用去阶段时限的140%",
    ]


def test_a_term_whose_sentence_would_mislead_is_not_named() -> None:
    # A model in which more days left *raise* the risk (as the fit may set a phase's level):
    # "距截止仅剩40个工作日" would then be given as a reason for concern. It is not named; a
    # model with the sensible sign still names it.
    f = ForecastFeatures(org_id="a", phase=C, elapsed=0.5, working_days_left=40)
    pair = (Feature.WORKING_DAYS_LEFT, Feature.ELAPSED)
    odd = ForecastModel(
        features=pair, means=(20.0, 0.7), scales=(10.0, 0.2), weights=(0.5, -0.5), intercept=0
    )
    assert odd.unsaid() == frozenset(pair)
    forecast = odd.forecast(f)
    assert forecast.probability > 0.5 and forecast.reasons
    # Nothing else to say: the neutral sentence, not the misleading ones.
    assert [r.text for r in forecast.reasons] == ["各项指标与平均水平相当"]
    sensible = odd.model_copy(update={"weights": (-0.5, 0.5), "means": (60.0, 0.3)})
    assert sensible.unsaid() == frozenset()
    texts = [r.text for r in sensible.forecast(f).reasons]
    assert texts == ["距截止仅剩40个工作日", "本阶段时间已过50%"]
