"""The forecast: how likely an organisation is to miss an open phase's deadline, and why.

For every organisation and phase it has not finished, :class:`ForecastFeatures` says what
the service knows at one moment: its progress on the phase's required steps against the
time elapsed (序时进度), whether it is still in an earlier phase, how its cohorts
(township, system, type) are doing with the phase, its own record in the earlier phases
(late, rectified, escalations, returns, extensions) and in its previous round (phases
missed), and the working days left.

The model is a logistic regression over standardised features (:class:`ForecastModel`):
the probability is ``sigmoid(intercept + Σ weight·z)`` and each term ``weight·z`` is how
much one feature moved this organisation's odds away from the average organisation's, so
the largest positive terms are the forecast's reasons, worded in Chinese. Fitting
(:func:`fit`) is Newton's method with a small ridge penalty in plain Python: a dozen
features and some thousands of samples need no numerical library, and the same inputs give
the same model to the last bit on every run.

Pure: no I/O and no clock of its own (the moment is passed in by whoever builds the
features).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from domain.calendar import WorkingCalendar, deadline_day, local_date
from domain.cohort import CohortMember, behind_schedule
from domain.lights import pro_rata
from domain.phases import WORKING_PHASES, Phase
from domain.state import Outcome

_FROZEN = ConfigDict(frozen=True, extra="forbid")

#: The default warning threshold (预警) when the county office has not set one.
DEFAULT_THRESHOLD = 0.3
#: How many reasons a forecast lists at most.
MAX_REASONS = 3
#: A term smaller than this (in log-odds) is not worth naming as a reason.
MIN_REASON_WEIGHT = 0.05


class Feature(StrEnum):
    """What the forecast looks at; the order is the model's column order."""

    ELAPSED = "elapsed"
    PROGRESS = "progress"
    PROGRESS_GAP = "progress_gap"
    WORKING_DAYS_LEFT = "working_days_left"
    PHASES_BEHIND = "phases_behind"
    LATE_ENTRY = "late_entry"
    EARLIER_LATE = "earlier_late"
    EARLIER_RECTIFIED = "earlier_rectified"
    EARLIER_ESCALATIONS = "earlier_escalations"
    RETURNS = "returns"
    EXTENSIONS = "extensions"
    PRIOR_ROUND_MISSED = "prior_round_missed"
    TOWNSHIP_DONE = "township_done"
    SYSTEM_DONE = "system_done"
    TYPE_DONE = "type_done"

    @property
    def label(self) -> str:
        """Chinese name of the feature (for the model's description)."""
        return _LABELS[self]


_LABELS: dict[Feature, str] = {
    Feature.ELAPSED: "序时进度",
    Feature.PROGRESS: "本阶段完成度",
    Feature.PROGRESS_GAP: "落后序时进度",
    Feature.WORKING_DAYS_LEFT: "剩余工作日",
    Feature.PHASES_BEHIND: "仍处于前序阶段",
    Feature.LATE_ENTRY: "进入本阶段时已过时间",
    Feature.EARLIER_LATE: "前序阶段逾期完成",
    Feature.EARLIER_RECTIFIED: "前序阶段整改后完成",
    Feature.EARLIER_ESCALATIONS: "前序阶段被督办次数",
    Feature.RETURNS: "材料被退回次数",
    Feature.EXTENSIONS: "申请延期次数",
    Feature.PRIOR_ROUND_MISSED: "上一轮逾期阶段数",
    Feature.TOWNSHIP_DONE: "所在乡镇已完成本阶段的比例",
    Feature.SYSTEM_DONE: "所在系统已完成本阶段的比例",
    Feature.TYPE_DONE: "同类型组织已完成本阶段的比例",
}


class ForecastFeatures(BaseModel):
    """What is known of one organisation and one phase it has not finished, at one moment.

    Shares are in [0, 1]. ``phases_behind`` is 0 when the phase is the organisation's
    current one, k when it is still k phases earlier (then ``progress`` is 0 and
    ``late_entry`` 1). The cohort shares count the cohort's members that have finished
    the phase (the organisation itself excluded).
    """

    model_config = _FROZEN

    org_id: str
    phase: Phase
    elapsed: float = Field(ge=0.0, le=1.0)
    progress: float = Field(default=0.0, ge=0.0, le=1.0)
    working_days_left: int = Field(default=0, ge=0)
    phases_behind: int = Field(default=0, ge=0)
    late_entry: float = Field(default=0.0, ge=0.0, le=1.0)
    earlier_late: int = Field(default=0, ge=0)
    earlier_rectified: int = Field(default=0, ge=0)
    earlier_escalations: int = Field(default=0, ge=0)
    returns: int = Field(default=0, ge=0)
    extensions: int = Field(default=0, ge=0)
    prior_round_missed: int = Field(default=0, ge=0)
    township_done: float = Field(default=0.0, ge=0.0, le=1.0)
    system_done: float = Field(default=0.0, ge=0.0, le=1.0)
    type_done: float = Field(default=0.0, ge=0.0, le=1.0)

    def value(self, feature: Feature) -> float:
        """The feature's value as the model sees it."""
        if feature is Feature.PROGRESS_GAP:
            return max(0.0, self.elapsed - self.progress)
        return float(getattr(self, feature.value))

    def vector(self) -> list[float]:
        """Every feature, in the model's column order."""
        return [self.value(f) for f in Feature]


class ForecastReason(BaseModel):
    """One reason of a forecast: the feature, its weight in log-odds, a Chinese sentence."""

    model_config = _FROZEN

    feature: Feature
    weight: float
    text: str


class Forecast(BaseModel):
    """The probability that an organisation misses a phase's deadline, and why."""

    model_config = _FROZEN

    org_id: str
    phase: Phase
    probability: float = Field(ge=0.0, le=1.0)
    warn: bool
    reasons: tuple[ForecastReason, ...] = Field(min_length=1)

    @property
    def percent(self) -> int:
        """The probability in whole percent (for pages)."""
        return round(self.probability * 100)

    @property
    def summary(self) -> str:
        """The reasons in one Chinese line."""
        return "；".join(r.text for r in self.reasons)


class ForecastModel(BaseModel):
    """A fitted logistic regression over :class:`Feature` (standardised), and its threshold.

    ``means`` and ``scales`` standardise each feature (a constant feature has scale 1 and
    weight 0); ``fitted_on`` says what it was fitted from, in words.
    """

    model_config = _FROZEN

    features: tuple[Feature, ...] = tuple(Feature)
    means: tuple[float, ...]
    scales: tuple[float, ...]
    weights: tuple[float, ...]
    intercept: float
    threshold: float = Field(default=DEFAULT_THRESHOLD, gt=0.0, lt=1.0)
    # True once the county office set the threshold (a refit keeps it then).
    threshold_by_county: bool = False
    samples: int = 0
    positives: int = 0
    fitted_on: str = ""

    def terms(self, features: ForecastFeatures) -> list[tuple[Feature, float]]:
        """Each feature's term ``weight·z`` in log-odds."""
        return [
            (f, w * (features.value(f) - m) / s)
            for f, m, s, w in zip(self.features, self.means, self.scales, self.weights, strict=True)
        ]

    def probability(self, features: ForecastFeatures) -> float:
        """The probability of missing the deadline."""
        return _sigmoid(self.intercept + sum(t for _, t in self.terms(features)))

    def forecast(self, features: ForecastFeatures, *, threshold: float | None = None) -> Forecast:
        """The forecast with its reasons; ``threshold`` overrides the model's own."""
        terms = self.terms(features)
        probability = _sigmoid(self.intercept + sum(t for _, t in terms))
        return Forecast(
            org_id=features.org_id,
            phase=features.phase,
            probability=probability,
            warn=probability >= (self.threshold if threshold is None else threshold),
            reasons=reasons(features, terms),
        )

    def with_threshold(self, threshold: float) -> ForecastModel:
        """The same model with another warning threshold (the county office's setting)."""
        return self.model_copy(update={"threshold": threshold, "threshold_by_county": True})


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


# ----- what is known at a moment -----------------------------------------------------------


class PhaseRecord(BaseModel):
    """One organisation's phase as known at the moment of a forecast (nothing later).

    ``opened_at`` None: the organisation has not entered the phase yet; ``completed_at``
    None: not finished yet. ``deadline`` is its own current deadline (an approved
    extension moves it). The counts are those so far.
    """

    model_config = _FROZEN

    phase: Phase
    opened_at: datetime | None = None
    completed_at: datetime | None = None
    outcome: Outcome | None = None
    deadline: datetime
    progress: float = Field(default=0.0, ge=0.0, le=1.0)
    escalations: int = Field(default=0, ge=0)
    returns: int = Field(default=0, ge=0)
    extensions: int = Field(default=0, ge=0)


class OrgSnapshot(BaseModel):
    """One organisation in one round at the moment of a forecast: its cohorts and phases."""

    model_config = _FROZEN

    org_id: str
    township: str = ""
    system: str = ""
    org_type: str = ""
    phases: tuple[PhaseRecord, ...]
    # Phases it missed (late or after rectification) in its previous round, if any.
    prior_round_missed: int = Field(default=0, ge=0)

    def record(self, phase: Phase) -> PhaseRecord | None:
        """The record of ``phase``, if the snapshot has one."""
        return next((r for r in self.phases if r.phase is phase), None)

    def current(self) -> tuple[Phase, float]:
        """The phase the organisation is in (COMPLETED after the last) and its progress."""
        for phase in WORKING_PHASES:
            record = self.record(phase)
            if record is None or record.completed_at is None:
                return phase, record.progress if record is not None else 0.0
        return Phase.COMPLETED, 1.0


Windows = Mapping[Phase, tuple[datetime, datetime]]


def _cohort_done(
    snapshots: Sequence[OrgSnapshot], phase: Phase, key: Callable[[OrgSnapshot], str]
) -> dict[str, tuple[int, int]]:
    """Per cohort key: (members that finished ``phase``, members)."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for snap in snapshots:
        record = snap.record(phase)
        cell = counts[key(snap)]
        cell[1] += 1
        if record is not None and record.completed_at is not None:
            cell[0] += 1
    return {k: (v[0], v[1]) for k, v in counts.items()}


def _share_others(counts: Mapping[str, tuple[int, int]], key: str) -> float:
    """The share of a cohort's other members that finished (the organisation is open)."""
    done, total = counts.get(key, (0, 0))
    return done / (total - 1) if total > 1 else 0.0


def features_at(
    snapshots: Sequence[OrgSnapshot],
    now: datetime,
    windows: Windows,
    calendar: WorkingCalendar,
    *,
    phases: Iterable[Phase] | None = None,
) -> list[ForecastFeatures]:
    """Features of every organisation and phase it has not finished whose window is open
    at ``now`` (opened, own deadline not passed): its current phase, and the round's
    current phase when the organisation is still in an earlier one. ``phases`` limits the
    phases forecast. Cohort shares are computed over ``snapshots`` (pass a whole round)."""
    wanted = tuple(phases) if phases is not None else WORKING_PHASES
    out: list[ForecastFeatures] = []
    today = local_date(now)
    days_left: dict[datetime, int] = {}  # a round shares a handful of deadlines

    def left(deadline: datetime) -> int:
        if deadline not in days_left:
            days_left[deadline] = calendar.working_days_between(today, deadline_day(deadline))
        return days_left[deadline]

    for phase in wanted:
        opens_at, planned_deadline = windows[phase]
        if now < opens_at:
            continue
        township = _cohort_done(snapshots, phase, lambda s: s.township)
        system = _cohort_done(snapshots, phase, lambda s: s.system)
        org_type = _cohort_done(snapshots, phase, lambda s: s.org_type)
        index = WORKING_PHASES.index(phase)
        for snap in snapshots:
            record = snap.record(phase)
            if record is not None and record.completed_at is not None:
                continue
            deadline = record.deadline if record is not None else planned_deadline
            if now > deadline:
                continue  # already missed: the lights and the ladder speak for it
            current, _ = snap.current()
            behind = WORKING_PHASES.index(current) - index if current in WORKING_PHASES else 0
            span = (deadline - opens_at).total_seconds()
            if record is not None and record.opened_at is not None and span > 0:
                late_entry = (record.opened_at - opens_at).total_seconds() / span
            else:
                late_entry = 1.0 if behind < 0 else 0.0
            earlier = [snap.record(p) for p in WORKING_PHASES[:index]]
            known = [r for r in earlier if r is not None]
            out.append(
                ForecastFeatures(
                    org_id=snap.org_id,
                    phase=phase,
                    elapsed=pro_rata(opens_at=opens_at, deadline=deadline, now=now),
                    progress=record.progress if record is not None and behind == 0 else 0.0,
                    working_days_left=left(deadline),
                    phases_behind=max(0, -behind),
                    late_entry=min(1.0, max(0.0, late_entry)),
                    earlier_late=sum(
                        1
                        for r in known
                        if r.outcome is Outcome.LATE
                        or (r.completed_at is None and now > r.deadline)
                    ),
                    earlier_rectified=sum(
                        1 for r in known if r.outcome is Outcome.AFTER_RECTIFICATION
                    ),
                    earlier_escalations=sum(r.escalations for r in known),
                    returns=sum(r.returns for r in known)
                    + (record.returns if record is not None else 0),
                    extensions=sum(r.extensions for r in known)
                    + (record.extensions if record is not None else 0),
                    prior_round_missed=snap.prior_round_missed,
                    township_done=_share_others(township, snap.township),
                    system_done=_share_others(system, snap.system),
                    type_done=_share_others(org_type, snap.org_type),
                )
            )
    return out


def yellow_at(snapshots: Sequence[OrgSnapshot], now: datetime, windows: Windows) -> set[str]:
    """The organisations the yellow light (滞后, :mod:`domain.cohort`) marks at ``now``:
    the baseline the forecast is measured against."""
    members = []
    for snap in snapshots:
        phase, progress = snap.current()
        members.append(
            CohortMember(
                org_id=snap.org_id,
                township=snap.township,
                system=snap.system,
                phase=phase,
                progress=progress,
                closed=phase is Phase.COMPLETED,
            )
        )
    shares = {
        p: pro_rata(opens_at=opens, deadline=deadline, now=now)
        for p, (opens, deadline) in windows.items()
    }
    return behind_schedule(members, shares)


# ----- reasons -----------------------------------------------------------------------------


def _pct(x: float) -> str:
    return f"{round(x * 100)}%"


_RAISES: dict[Feature, Callable[[ForecastFeatures], str]] = {
    Feature.ELAPSED: lambda f: f"本阶段时间已过{_pct(f.elapsed)}",
    Feature.PROGRESS: lambda f: f"本阶段规定动作已完成{_pct(f.progress)}",
    Feature.PROGRESS_GAP: lambda f: f"序时进度{_pct(f.elapsed)}，规定动作仅完成{_pct(f.progress)}",
    Feature.WORKING_DAYS_LEFT: lambda f: f"距截止仅剩{f.working_days_left}个工作日",
    Feature.PHASES_BEHIND: lambda f: f"仍停留在前{f.phases_behind}个阶段，尚未进入本阶段",
    Feature.LATE_ENTRY: lambda f: f"进入本阶段时已过阶段时间的{_pct(f.late_entry)}",
    Feature.EARLIER_LATE: lambda f: f"前序阶段有{f.earlier_late}个逾期完成",
    Feature.EARLIER_RECTIFIED: lambda f: f"前序阶段有{f.earlier_rectified}个整改后才完成",
    Feature.EARLIER_ESCALATIONS: lambda f: f"前序阶段被督办{f.earlier_escalations}次",
    Feature.RETURNS: lambda f: f"材料被退回{f.returns}次",
    Feature.EXTENSIONS: lambda f: f"此前申请延期{f.extensions}次",
    Feature.PRIOR_ROUND_MISSED: lambda f: f"上一轮有{f.prior_round_missed}个阶段未按时完成",
    Feature.TOWNSHIP_DONE: lambda f: f"所在乡镇已有{_pct(f.township_done)}的组织完成本阶段",
    Feature.SYSTEM_DONE: lambda f: f"所在系统已有{_pct(f.system_done)}的组织完成本阶段",
    Feature.TYPE_DONE: lambda f: f"同类型组织已有{_pct(f.type_done)}完成本阶段",
}


def reasons(
    features: ForecastFeatures, terms: Sequence[tuple[Feature, float]]
) -> tuple[ForecastReason, ...]:
    """The terms that raise the odds most (at most :data:`MAX_REASONS`), in Chinese; when
    none does, the one that lowers them most, said as such, so there is always a reason."""
    raising = sorted(
        ((f, t) for f, t in terms if t >= MIN_REASON_WEIGHT), key=lambda ft: (-ft[1], ft[0])
    )
    if raising:
        return tuple(
            ForecastReason(feature=f, weight=t, text=_RAISES[f](features))
            for f, t in raising[:MAX_REASONS]
        )
    feature, term = min(terms, key=lambda ft: (ft[1], ft[0]), default=(Feature.ELAPSED, 0.0))
    if term < 0:
        text = f"风险低于平均水平：{_RAISES[feature](features)}"
    else:
        text = "各项指标与平均水平相当"
    return (ForecastReason(feature=feature, weight=term, text=text),)


# ----- fitting -----------------------------------------------------------------------------


class Sample(BaseModel):
    """Features at one moment and whether the phase's deadline was missed in the end."""

    model_config = _FROZEN

    features: ForecastFeatures
    missed: bool


#: The direction each feature may push the odds, where common sense fixes it: a return, an
#: escalation or a late earlier phase never *lowers* the risk. A fit that wants the other
#: sign (the simulation's behaviours are exclusive: an organisation that had a submission
#: returned never slips) drops the feature instead, so reasons stay believable.
SIGNS: dict[Feature, int] = {
    Feature.PROGRESS: -1,
    Feature.PROGRESS_GAP: 1,
    Feature.PHASES_BEHIND: 1,
    Feature.LATE_ENTRY: 1,
    Feature.EARLIER_LATE: 1,
    Feature.EARLIER_RECTIFIED: 1,
    Feature.EARLIER_ESCALATIONS: 1,
    Feature.RETURNS: 1,
    Feature.PRIOR_ROUND_MISSED: 1,
    Feature.TOWNSHIP_DONE: 1,
    Feature.SYSTEM_DONE: 1,
    Feature.TYPE_DONE: 1,
}


def fit(
    samples: Sequence[Sample],
    *,
    ridge: float = 1.0,
    iterations: int = 50,
    threshold: float | None = None,
    fitted_on: str = "",
    signs: Mapping[Feature, int] = SIGNS,
) -> ForecastModel:
    """A logistic regression fitted by Newton's method with an L2 penalty ``ridge`` on
    the standardised weights (not on the intercept). Deterministic for the same samples.

    A feature whose weight comes out against its sign in ``signs`` is dropped and the
    rest refitted, until every weight agrees. ``threshold`` None picks the warning
    threshold that maximises F1 on the samples themselves (the county office may set its
    own: :meth:`ForecastModel.with_threshold`). Identical samples are pooled, so the work
    grows with the distinct feature vectors.
    """
    dropped: set[Feature] = set()
    while True:
        model = _fit(samples, ridge=ridge, iterations=iterations, fitted_on=fitted_on, drop=dropped)
        against = {
            f
            for f, w in zip(model.features, model.weights, strict=True)
            if f in signs and w * signs[f] < 0
        }
        if not against:
            break
        dropped |= against
    if threshold is None:
        threshold = best_threshold([(model.probability(s.features), s.missed) for s in samples])
    return model.model_copy(update={"threshold": threshold})


def _fit(
    samples: Sequence[Sample],
    *,
    ridge: float,
    iterations: int,
    fitted_on: str,
    drop: set[Feature],
) -> ForecastModel:
    """One fit with the ``drop`` features held at weight 0."""
    if not samples:
        raise ValueError("no samples to fit a forecast on")
    names = tuple(Feature)
    k = len(names)
    # Pool identical rows: (vector) -> [missed, kept].
    pooled: dict[tuple[float, ...], list[int]] = {}
    for s in samples:
        cell = pooled.setdefault(tuple(s.features.vector()), [0, 0])
        cell[0 if s.missed else 1] += 1
    n = len(samples)
    positives = sum(c[0] for c in pooled.values())
    means = [sum(v[j] * (c[0] + c[1]) for v, c in pooled.items()) / n for j in range(k)]
    scales, constant = [], []
    for j in range(k):
        var = sum((v[j] - means[j]) ** 2 * (c[0] + c[1]) for v, c in pooled.items()) / n
        scales.append(math.sqrt(var) if var > 1e-12 else 1.0)
        constant.append(var <= 1e-12 or names[j] in drop)
    # Design rows with the intercept in column 0, and their pooled labels.
    rows = [
        (
            [1.0] + [0.0 if constant[j] else (v[j] - means[j]) / scales[j] for j in range(k)],
            c[0],
            c[1],
        )
        for v, c in pooled.items()
    ]
    beta = [0.0] * (k + 1)
    if 0 < positives < n:
        beta[0] = math.log(positives / (n - positives))
    for _ in range(iterations):
        grad = [0.0] * (k + 1)
        hess = [[0.0] * (k + 1) for _ in range(k + 1)]
        for x, missed, kept in rows:
            p = _sigmoid(sum(b * v for b, v in zip(beta, x, strict=True)))
            total = missed + kept
            w = total * p * (1 - p)
            err = missed - total * p
            for a in range(k + 1):
                grad[a] += err * x[a]
                wa = w * x[a]
                row = hess[a]
                for b in range(a, k + 1):
                    row[b] += wa * x[b]
        for a in range(k + 1):
            for b in range(a):
                hess[a][b] = hess[b][a]
        for a in range(1, k + 1):
            grad[a] -= ridge * beta[a]
            hess[a][a] += ridge
        step = _solve(hess, grad)
        beta = [b + s for b, s in zip(beta, step, strict=True)]
        if max(abs(s) for s in step) < 1e-9:
            break
    # A constant feature carries no information: its weight is exactly 0.
    weights = tuple(0.0 if constant[j] else beta[j + 1] for j in range(k))
    return ForecastModel(
        features=names,
        means=tuple(means),
        scales=tuple(scales),
        weights=weights,
        intercept=beta[0],
        samples=n,
        positives=positives,
        fitted_on=fitted_on,
    )


def best_threshold(scored: Sequence[tuple[float, bool]]) -> float:
    """The threshold that maximises F1 over (probability, missed) pairs, within
    [0.01, 0.99]; :data:`DEFAULT_THRESHOLD` when nothing was missed."""
    positives = sum(1 for _, y in scored if y)
    if positives == 0:
        return DEFAULT_THRESHOLD
    ordered = sorted(scored, key=lambda py: -py[0])
    best, best_f1, hits = DEFAULT_THRESHOLD, -1.0, 0
    for k, (p, y) in enumerate(ordered, start=1):
        hits += y
        # Only where the next probability is lower: a threshold cannot split ties.
        if k < len(ordered) and ordered[k][0] == p:
            continue
        f1 = 2 * hits / (k + positives)
        if f1 > best_f1:
            best, best_f1 = p, f1
    return min(0.99, max(0.01, round(best, 4)))


def _solve(matrix: Sequence[Sequence[float]], vector: Sequence[float]) -> list[float]:
    """Solve ``matrix · x = vector`` by Gaussian elimination with partial pivoting."""
    size = len(vector)
    a = [[*row, vector[i]] for i, row in enumerate(matrix)]
    for col in range(size):
        pivot = max(range(col, size), key=lambda r: abs(a[r][col]))
        a[col], a[pivot] = a[pivot], a[col]
        if abs(a[col][col]) < 1e-12:
            continue
        for r in range(col + 1, size):
            factor = a[r][col] / a[col][col]
            if factor:
                for c in range(col, size + 1):
                    a[r][c] -= factor * a[col][c]
    x = [0.0] * size
    for r in range(size - 1, -1, -1):
        if abs(a[r][r]) < 1e-12:
            continue
        x[r] = (a[r][size] - sum(a[r][c] * x[c] for c in range(r + 1, size))) / a[r][r]
    return x


def describe(model: ForecastModel) -> list[tuple[str, float]]:
    """The model's weights by Chinese feature name, the strongest first (for docs/pages)."""
    pairs = [(f.label, w) for f, w in zip(model.features, model.weights, strict=True)]
    return sorted(pairs, key=lambda p: -abs(p[1]))


def by_feature(model: ForecastModel) -> Mapping[Feature, float]:
    """The model's weights keyed by feature."""
    return dict(zip(model.features, model.weights, strict=True))


# ----- the early warning (预警) ---------------------------------------------------------------


class EarlyWarning(BaseModel):
    """A 预警 due to an organisation's instructor: its phase is likely to miss the deadline."""

    model_config = _FROZEN

    org_id: str
    phase: Phase
    probability: float
    reasons: tuple[str, ...]
    as_of: datetime


def warnings_due(
    forecasts: Iterable[Forecast],
    *,
    threshold: float,
    warned: Iterable[tuple[str, Phase]],
    finished: Iterable[tuple[str, Phase]] = (),
    as_of: datetime,
) -> list[EarlyWarning]:
    """The warnings the round's check should send now: one per organisation and phase whose
    forecast reaches ``threshold``, never for a pair already ``warned`` (exactly once, even
    if the probability dips and rises again) nor for a phase already ``finished``. Sorted by
    organisation and phase, so the same inputs always give the same list."""
    skip = set(warned) | set(finished)
    due = [
        EarlyWarning(
            org_id=f.org_id,
            phase=f.phase,
            probability=f.probability,
            reasons=tuple(r.text for r in f.reasons),
            as_of=as_of,
        )
        for f in forecasts
        if f.probability >= threshold and (f.org_id, f.phase) not in skip
    ]
    return sorted(due, key=lambda w: (w.org_id, WORKING_PHASES.index(w.phase)))
