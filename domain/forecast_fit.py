"""Fitting the forecast: a logistic regression by Newton's method, in plain Python.

:func:`fit` turns :class:`domain.forecast.Sample` rows into a
:class:`domain.forecast.ForecastModel`: standardised features, an L2 penalty on the weights
(not on the intercept), identical rows pooled so the work grows with the distinct feature
vectors, weights held to the sign common sense gives them (:data:`SIGNS`), and the warning
threshold that maximises F1 on the samples (:func:`best_threshold`). A dozen or two
features and some tens of thousands of samples need no numerical library (numpy is not a
dependency), and the same samples give the same model to the last bit on every run.

Kept apart from :mod:`domain.forecast`, which says what a forecast looks at, how it scores
and explains itself and when a 预警 is due; this module only estimates the weights.
Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from domain.forecast import DEFAULT_THRESHOLD, Feature, ForecastModel, Sample, sigmoid

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
    # Pace: a longer idle spell, a later projected finish, slower earlier phases and no step
    # done yet never make a miss less likely.
    Feature.IDLE: 1,
    Feature.PROJECTED_FINISH: 1,
    Feature.NO_STEP_YET: 1,
    Feature.EARLIER_PACE: 1,
    Feature.EARLIER_PACE_UNSEEN: 1,
    Feature.PENDING_STEP: 1,
    Feature.PRIOR_ROUND_PACE: 1,
}

#: The features the forecast used before the pace features (part 2 of issue 16): the
#: evaluation fits this set beside the full one, as the "before" of its figures.
PART2_FEATURES: tuple[Feature, ...] = (
    Feature.ELAPSED,
    Feature.PROGRESS,
    Feature.PROGRESS_GAP,
    Feature.WORKING_DAYS_LEFT,
    Feature.PHASES_BEHIND,
    Feature.LATE_ENTRY,
    Feature.EARLIER_LATE,
    Feature.EARLIER_RECTIFIED,
    Feature.EARLIER_ESCALATIONS,
    Feature.RETURNS,
    Feature.EXTENSIONS,
    Feature.PRIOR_ROUND_MISSED,
    Feature.TOWNSHIP_DONE,
    Feature.SYSTEM_DONE,
    Feature.TYPE_DONE,
)


#: The features the forecast used before the third pass (the pace shown, added after part
#: 2): the evaluation fits this set beside the full one with ``--before``.
PACE_FEATURES: tuple[Feature, ...] = (
    *PART2_FEATURES,
    Feature.IDLE,
    Feature.PROJECTED_FINISH,
    Feature.NO_STEP_YET,
    Feature.EARLIER_PACE,
    Feature.EARLIER_PACE_UNSEEN,
    Feature.NO_EARLIER_PHASE,
)


def fit(
    samples: Sequence[Sample],
    *,
    ridge: float = 1.0,
    iterations: int = 50,
    threshold: float | None = None,
    fitted_on: str = "",
    signs: Mapping[Feature, int] = SIGNS,
    exclude: Iterable[Feature] = (),
) -> ForecastModel:
    """A logistic regression fitted by Newton's method with an L2 penalty ``ridge`` on
    the standardised weights (not on the intercept). Deterministic for the same samples.

    A feature whose weight comes out against its sign in ``signs`` is dropped and the
    rest refitted, until every weight agrees. ``exclude`` holds features at weight 0 from
    the start (the evaluation's "before" model). ``threshold`` None picks the warning
    threshold that maximises F1 on the samples themselves (the county office may set its
    own: :meth:`ForecastModel.with_threshold`). Identical samples are pooled, so the work
    grows with the distinct feature vectors.
    """
    dropped: set[Feature] = set(exclude)
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
    # Pool identical rows: (vector) -> [missed, kept]. An unknown value (NaN: no previous
    # round) is pooled as None, counts in neither mean nor spread, and enters the fit as the
    # average (z = 0), as :meth:`ForecastModel.terms` scores it.
    pooled: dict[tuple[float | None, ...], list[int]] = {}
    for s in samples:
        key = tuple(None if math.isnan(v) else v for v in s.features.vector())
        cell = pooled.setdefault(key, [0, 0])
        cell[0 if s.missed else 1] += 1
    n = len(samples)
    positives = sum(c[0] for c in pooled.values())
    means, scales, constant = [], [], []
    for j in range(k):
        known: list[tuple[float, int]] = [
            (value, c[0] + c[1]) for v, c in pooled.items() if (value := v[j]) is not None
        ]
        weight = sum(w for _, w in known)
        mean = sum(u * w for u, w in known) / weight if weight else 0.0
        var = sum((u - mean) ** 2 * w for u, w in known) / weight if weight else 0.0
        means.append(mean)
        scales.append(math.sqrt(var) if var > 1e-12 else 1.0)
        constant.append(var <= 1e-12 or names[j] in drop)
    # Only the columns that vary and are not dropped enter the Newton steps (a held column
    # would only add zeros to the Hessian), so excluding features also saves time.
    live = [j for j in range(k) if not constant[j]]

    def z(value: float | None, j: int) -> float:
        return 0.0 if value is None else (value - means[j]) / scales[j]

    # Design rows with the intercept in column 0, and their pooled labels.
    rows = [([1.0] + [z(v[j], j) for j in live], c[0], c[1]) for v, c in pooled.items()]
    size = len(live) + 1
    beta = [0.0] * size
    if 0 < positives < n:
        beta[0] = math.log(positives / (n - positives))
    for _ in range(iterations):
        grad = [0.0] * size
        hess = [[0.0] * size for _ in range(size)]
        for x, missed, kept in rows:
            p = sigmoid(sum(b * v for b, v in zip(beta, x, strict=True)))
            total = missed + kept
            w = total * p * (1 - p)
            err = missed - total * p
            for a in range(size):
                grad[a] += err * x[a]
                wa = w * x[a]
                row = hess[a]
                for b in range(a, size):
                    row[b] += wa * x[b]
        for a in range(size):
            for b in range(a):
                hess[a][b] = hess[b][a]
        for a in range(1, size):
            grad[a] -= ridge * beta[a]
            hess[a][a] += ridge
        step = _solve(hess, grad)
        beta = [b + s for b, s in zip(beta, step, strict=True)]
        if max(abs(s) for s in step) < 1e-9:
            break
    # A constant or dropped feature carries no information: its weight is exactly 0.
    weights = [0.0] * k
    for column, j in enumerate(live, start=1):
        weights[j] = beta[column]
    return ForecastModel(
        features=names,
        means=tuple(means),
        scales=tuple(scales),
        weights=tuple(weights),
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
