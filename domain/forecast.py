"""The forecast: how likely an organisation is to miss an open phase's deadline, and why.

For every organisation and phase it has not finished, :class:`ForecastFeatures` says what
the service knows at one moment: its progress on the phase's required steps against the
time elapsed (序时进度), whether it is still in an earlier phase, how its cohorts
(township, system, type) are doing with the phase, its own record in the earlier phases
(late, rectified, escalations, returns, extensions) and in its previous round (phases
missed), and the working days left. Since part 2 it also reads the pace the organisation
has shown: how long since its last step was settled, the day it would finish at the pace
of its settled steps ("at this pace it finishes on day X"), and the share of the window it
used in the phases it finished earlier in the round.

The model is a logistic regression over standardised features (:class:`ForecastModel`):
the probability is ``sigmoid(intercept + Σ weight·z)`` and each term ``weight·z`` is how
much one feature moved this organisation's odds away from the average organisation's, so
the largest positive terms are the forecast's reasons, worded in Chinese. Fitting lives in
:mod:`domain.forecast_fit`.

Pure: no I/O and no clock of its own (the moment is passed in by whoever builds the
features).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
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
#: Projected finishes are clamped to this range of window shares before their logarithm:
#: one step settled early says little about a pace 20 times the window.
PROJECTION_RANGE = (0.25, 4.0)
#: Earlier phases' shares of their window are clamped likewise.
EARLIER_PACE_RANGE = (0.1, 4.0)


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
    # The pace shown (added after part 2; appended so older kept models still load).
    IDLE = "idle"
    PROJECTED_FINISH = "projected_finish"
    NO_STEP_YET = "no_step_yet"
    EARLIER_PACE = "earlier_pace"
    # The earlier pace where no step of this phase is settled yet: the interaction a sum of
    # terms misses (with steps settled, the phase's own pace says more than the history).
    EARLIER_PACE_UNSEEN = "earlier_pace_unseen"
    NO_EARLIER_PHASE = "no_earlier_phase"
    # Added in the third pass (appended, so older kept models still load):
    # the pace implied by the next required step not being settled yet (a censored step:
    # step k+1 of n is still open at share e, so the pace is at least e·n/(k+1)).
    PENDING_STEP = "pending_step"
    # The organisation's mean pace over its previous round's phases (unknown: no term).
    PRIOR_ROUND_PACE = "prior_round_pace"

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
    Feature.IDLE: "距上次完成规定动作的时间",
    Feature.PROJECTED_FINISH: "按当前进度预计完成时间",
    Feature.NO_STEP_YET: "本阶段尚未完成任何规定动作",
    Feature.EARLIER_PACE: "本轮前序阶段用时",
    Feature.EARLIER_PACE_UNSEEN: "本轮前序阶段用时（本阶段尚无进度时）",
    Feature.NO_EARLIER_PHASE: "本轮尚无已完成的阶段",
    Feature.PENDING_STEP: "下一项规定动作尚未完成",
    Feature.PRIOR_ROUND_PACE: "上一轮各阶段平均用时",
}


class ForecastFeatures(BaseModel):
    """What is known of one organisation and one phase it has not finished, at one moment.

    Shares are in [0, 1]. ``phases_behind`` is 0 when the phase is the organisation's
    current one, k when it is still k phases earlier (then ``progress`` is 0 and
    ``late_entry`` 1). The cohort shares count the cohort's members that have finished
    the phase (the organisation itself excluded).

    The pace shown: ``idle`` is the share of the window since its last step of the phase
    was settled (or since it entered the phase, when none is), ``idle_days`` the same in
    working days; ``projected`` is the share of the window at which it would finish at the
    pace of its settled steps (the last settled at share ``s`` with progress ``p``: ``s/p``),
    0 when no step is settled, and ``projected_on`` that day; ``earlier_pace`` is the mean
    logarithm of the share of their planned window the phases it finished earlier in this
    round took (0: on the deadline; negative: ahead), ``earlier_finished`` how many.
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
    idle: float = Field(default=0.0, ge=0.0, le=1.0)
    idle_days: int = Field(default=0, ge=0)
    projected: float = Field(default=0.0, ge=0.0)
    projected_on: date | None = None
    earlier_pace: float = 0.0
    earlier_finished: int = Field(default=0, ge=0)
    # The share of the window the phase takes at least, its next required step being still
    # open (0: the number of required steps is unknown); ``steps_left`` how many are open.
    pending: float = Field(default=0.0, ge=0.0)
    steps_left: int = Field(default=0, ge=0)
    # The mean log share of their window its previous round's phases took (None: no
    # previous round known, and then the feature adds nothing either way).
    prior_round_pace: float | None = None

    def value(self, feature: Feature) -> float:
        """The feature's value as the model sees it (NaN: unknown, which the model scores
        as the average organisation)."""
        if feature is Feature.PENDING_STEP:
            if self.pending <= 0:
                return 0.0
            low, high = PROJECTION_RANGE
            return math.log(min(high, max(low, self.pending)))
        if feature is Feature.PRIOR_ROUND_PACE:
            return math.nan if self.prior_round_pace is None else self.prior_round_pace
        if feature is Feature.PROGRESS_GAP:
            return max(0.0, self.elapsed - self.progress)
        if feature is Feature.PROJECTED_FINISH:
            # Log of the projected share: a miss is the pace's logarithm crossing 0, so the
            # odds are close to linear in it. 0 (on the deadline) when nothing is settled:
            # NO_STEP_YET and IDLE speak for those.
            if self.projected <= 0:
                return 0.0
            low, high = PROJECTION_RANGE
            return math.log(min(high, max(low, self.projected)))
        if feature is Feature.NO_STEP_YET:
            return 1.0 if self.progress <= 0 else 0.0
        if feature is Feature.EARLIER_PACE_UNSEEN:
            return self.earlier_pace if self.progress <= 0 else 0.0
        if feature is Feature.NO_EARLIER_PHASE:
            return 1.0 if self.earlier_finished == 0 else 0.0
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
        """Each feature's term ``weight·z`` in log-odds (0 for an unknown value: the
        average organisation's)."""
        out = []
        for f, m, s, w in zip(self.features, self.means, self.scales, self.weights, strict=True):
            v = features.value(f)
            out.append((f, 0.0 if math.isnan(v) else w * (v - m) / s))
        return out

    def probability(self, features: ForecastFeatures) -> float:
        """The probability of missing the deadline."""
        return sigmoid(self.intercept + sum(t for _, t in self.terms(features)))

    def forecast(self, features: ForecastFeatures, *, threshold: float | None = None) -> Forecast:
        """The forecast with its reasons; ``threshold`` overrides the model's own."""
        terms = self.terms(features)
        probability = sigmoid(self.intercept + sum(t for _, t in terms))
        return Forecast(
            org_id=features.org_id,
            phase=features.phase,
            probability=probability,
            warn=probability >= (self.threshold if threshold is None else threshold),
            reasons=reasons(features, terms, unsaid=self.unsaid()),
        )

    def unsaid(self) -> frozenset[Feature]:
        """The features whose sentence would say the opposite of what their weight does
        (:data:`_SAYS_RISK_WHEN`): they count in the probability, but are never named."""
        return frozenset(
            f
            for f, w in zip(self.features, self.weights, strict=True)
            if f in _SAYS_RISK_WHEN and w * _SAYS_RISK_WHEN[f] < 0
        )

    def with_threshold(self, threshold: float) -> ForecastModel:
        """The same model with another warning threshold (the county office's setting)."""
        return self.model_copy(update={"threshold": threshold, "threshold_by_county": True})


def sigmoid(x: float) -> float:
    """The logistic function, without overflow for large ``|x|``."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


# ----- what is known at a moment -----------------------------------------------------------


class PhaseRecord(BaseModel):
    """One organisation's phase as known at the moment of a forecast (nothing later).

    ``opened_at`` None: the organisation has not entered the phase yet; ``completed_at``
    None: not finished yet. ``deadline`` is its own current deadline (an approved
    extension moves it). The counts are those so far; ``last_step_at`` is when the latest
    of its steps was settled.
    """

    model_config = _FROZEN

    phase: Phase
    opened_at: datetime | None = None
    completed_at: datetime | None = None
    outcome: Outcome | None = None
    deadline: datetime
    progress: float = Field(default=0.0, ge=0.0, le=1.0)
    # When its latest step was settled (accepted or waived), if any is.
    last_step_at: datetime | None = None
    # When each of its settled required steps was settled, earliest first (empty: not
    # known), and how many required steps the phase has for it (0: not known).
    settled_at: tuple[datetime, ...] = ()
    steps_required: int = Field(default=0, ge=0)
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
    # The mean log share of their planned window its previous round's phases took (None:
    # no previous round known). See :func:`round_pace`.
    prior_round_pace: float | None = None

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

    days_since: dict[date, int] = {}  # idle spells start on a few hundred days at most

    def since(moment: datetime) -> int:
        day = local_date(moment)
        if day not in days_since:
            days_since[day] = calendar.working_days_between(day, today)
        return days_since[day]

    earlier_paces = {snap.org_id: _earlier_paces(snap, windows) for snap in snapshots}

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
            elapsed = pro_rata(opens_at=opens_at, deadline=deadline, now=now)
            progress = record.progress if record is not None and behind == 0 else 0.0
            pace = _pace_shown(
                record if behind == 0 else None,
                progress,
                opens_at,
                deadline,
                now,
                elapsed,
                steps=record.steps_required if record is not None else 0,
            )
            paces = [v for p, v in earlier_paces[snap.org_id] if WORKING_PHASES.index(p) < index]
            out.append(
                ForecastFeatures(
                    org_id=snap.org_id,
                    phase=phase,
                    elapsed=elapsed,
                    progress=progress,
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
                    idle=pace.idle,
                    idle_days=since(pace.idle_since),
                    projected=pace.projected,
                    projected_on=pace.projected_on,
                    earlier_pace=sum(paces) / len(paces) if paces else 0.0,
                    earlier_finished=len(paces),
                    pending=pace.pending,
                    steps_left=pace.steps_left,
                    prior_round_pace=snap.prior_round_pace,
                )
            )
    return out


class _Pace(BaseModel):
    """The pace an organisation shows in one phase at one moment (see ForecastFeatures)."""

    model_config = _FROZEN

    idle: float
    idle_since: datetime
    projected: float
    projected_on: date | None
    pending: float = 0.0
    steps_left: int = 0


#: Projections beyond this many windows are all "far too late" (and keep dates sane).
_PROJECTION_CAP = 20.0


def _pace_shown(
    record: PhaseRecord | None,
    progress: float,
    opens_at: datetime,
    deadline: datetime,
    now: datetime,
    elapsed: float,
    *,
    steps: int = 0,
) -> _Pace:
    """Idle spell, projected finish and pending-step bound of the phase ``record`` (None:
    not entered yet), which has ``steps`` required steps (0: not known)."""
    span = (deadline - opens_at).total_seconds()

    def share(moment: datetime) -> float:
        return min(1.0, max(0.0, (moment - opens_at).total_seconds() / span)) if span > 0 else 0.0

    entered = record.opened_at if record is not None and record.opened_at is not None else None
    start = max(opens_at, entered) if entered is not None else opens_at
    last = record.last_step_at if record is not None else None
    if last is not None and last > start:
        start = min(last, now)
    projected = 0.0
    settled = round(progress * steps) if steps > 0 else 0
    instants = record.settled_at if record is not None else ()
    if progress > 0 and settled > 0 and len(instants) == settled:
        # Step i of n lands at about i/n of the pace, each a little early or late: every
        # settled step says the pace (share·n/i), and their geometric mean says it with
        # less of one step's luck than the last step alone.
        logs = [math.log(max(share(at), 1e-6) * steps / i) for i, at in enumerate(instants, 1)]
        projected = min(_PROJECTION_CAP, math.exp(sum(logs) / len(logs)))
    elif progress > 0:
        # Step k of n lands at about k/n of the pace: the last settled step's share over the
        # progress is the share of the window the whole phase takes. Without the step's
        # instant (older read models), the pace up to now: a later, cautious projection.
        done_share = share(last) if last is not None else elapsed
        projected = min(_PROJECTION_CAP, max(done_share, 1e-6) / progress)
    # The next required step (k+1 of n) is still open at share ``elapsed``: at the pace
    # that would have settled it by now the phase takes elapsed·n/(k+1) of the window, so
    # the pace is at least that. A step open long past its turn is what an idle spell
    # means; unlike the spell, this says how late it makes the whole phase.
    pending = 0.0
    if steps > 0 and settled < steps:
        pending = min(_PROJECTION_CAP, elapsed * steps / (settled + 1))
    projected_on = (
        local_date(opens_at + (deadline - opens_at) * projected) if projected > 0 else None
    )
    return _Pace(
        idle=max(0.0, elapsed - share(start)),
        idle_since=start,
        projected=projected,
        projected_on=projected_on,
        pending=pending,
        steps_left=max(0, steps - settled) if steps > 0 else 0,
    )


def _earlier_paces(snap: OrgSnapshot, windows: Windows) -> list[tuple[Phase, float]]:
    """Per phase the organisation finished: the log of the share of its planned window it
    took (planned, not its own extended deadline: the pace, not the permission)."""
    out = []
    low, high = EARLIER_PACE_RANGE
    for record in snap.phases:
        if record.completed_at is None or record.phase not in windows:
            continue
        opens_at, planned = windows[record.phase]
        span = (planned - opens_at).total_seconds()
        if span <= 0:
            continue
        taken = (record.completed_at - opens_at).total_seconds() / span
        out.append((record.phase, math.log(min(high, max(low, taken)))))
    return out


def round_pace(snap: OrgSnapshot, windows: Windows) -> float | None:
    """The mean log share of their planned window the phases of a round ``snap`` finished
    took (None: none finished): the organisation's pace over that round, which the next
    round's forecast reads as :attr:`OrgSnapshot.prior_round_pace`."""
    paces = [v for _, v in _earlier_paces(snap, windows)]
    return sum(paces) / len(paces) if paces else None


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
    Feature.IDLE: lambda f: f"已连续{f.idle_days}个工作日没有新完成的规定动作",
    Feature.PROJECTED_FINISH: lambda f: _projection_text(f),
    Feature.NO_STEP_YET: lambda f: "本阶段尚未完成任何规定动作",
    Feature.EARLIER_PACE: lambda f: _earlier_pace_text(f),
    Feature.EARLIER_PACE_UNSEEN: lambda f: _earlier_pace_text(f),
    Feature.NO_EARLIER_PHASE: lambda f: "本轮尚无已完成的阶段可作参考",
    Feature.PENDING_STEP: lambda f: _pending_text(f),
    Feature.PRIOR_ROUND_PACE: lambda f: _prior_pace_text(f),
}

#: Terms that count in the probability but are never named as a reason: "no earlier phase
#: finished" is the same for every organisation in the first phase (it only corrects the
#: earlier pace's 0 there), so it tells a supervisor nothing about this one.
_NOT_REASONS: frozenset[Feature] = frozenset({Feature.NO_EARLIER_PHASE})

#: Terms said in one sentence: the interaction is its feature's weight where it applies.
_SAID_AS: dict[Feature, Feature] = {Feature.EARLIER_PACE_UNSEEN: Feature.EARLIER_PACE}


def _said_as(feature: Feature, features: ForecastFeatures) -> Feature:
    """The feature whose sentence says ``feature``'s term: with no step settled, the
    projection has nothing to project and its term is said as "no step yet"."""
    if feature is Feature.PROJECTED_FINISH and features.projected <= 0:
        return Feature.NO_STEP_YET
    return _SAID_AS.get(feature, feature)


def _projection_text(f: ForecastFeatures) -> str:
    if f.projected <= 0 or f.projected_on is None:
        return "本阶段尚无已完成的规定动作，无法按进度推算完成时间"
    day = f"{f.projected_on.month}月{f.projected_on.day}日"
    if f.projected >= _PROJECTION_CAP:
        return f"按目前进度，本阶段远不能在截止前完成（已完成{_pct(f.progress)}）"
    return f"按目前进度，预计{day}完成，用时为阶段时限的{_pct(f.projected)}"


def _pending_text(f: ForecastFeatures) -> str:
    if f.pending >= _PROJECTION_CAP:
        return f"尚有{f.steps_left}项规定动作未完成，本阶段远不能在截止前完成"
    return f"尚有{f.steps_left}项规定动作未完成，照此推算本阶段至少需用去时限的{_pct(f.pending)}"


def _prior_pace_text(f: ForecastFeatures) -> str:
    if f.prior_round_pace is None:
        return "无上一轮记录"
    return f"上一轮各阶段平均用去阶段时限的{_pct(math.exp(f.prior_round_pace))}"


def _earlier_pace_text(f: ForecastFeatures) -> str:
    taken = _pct(math.exp(f.earlier_pace))
    return f"本轮前{f.earlier_finished}个阶段平均用去阶段时限的{taken}"


#: Features whose sentence reads as a risk only one way: "本阶段时间已过X%" when more time
#: has passed (+1), "距截止仅剩N个工作日" when fewer days are left (−1). With the other sign
#: of weight (the fit uses them to set the level of a moment or a phase's length, given the
#: pace terms), a raising term would come from the other end and the sentence would mislead
#: ("仅剩40个工作日" as a risk), so such a model does not name them (:meth:`ForecastModel.unsaid`).
_SAYS_RISK_WHEN: dict[Feature, int] = {Feature.ELAPSED: 1, Feature.WORKING_DAYS_LEFT: -1}


def reasons(
    features: ForecastFeatures,
    terms: Sequence[tuple[Feature, float]],
    *,
    unsaid: frozenset[Feature] = frozenset(),
) -> tuple[ForecastReason, ...]:
    """The terms that raise the odds most (at most :data:`MAX_REASONS`), in Chinese; when
    none does, the one that lowers them most, said as such, so there is always a reason.
    ``unsaid`` features count in no reason (see :data:`_SAYS_RISK_WHEN`)."""
    said: dict[Feature, float] = {}
    for f, t in terms:
        if f in _NOT_REASONS or f in unsaid:
            continue
        key = _said_as(f, features)
        said[key] = said.get(key, 0.0) + t
    terms = list(said.items())
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


# ----- samples (fitted by domain.forecast_fit) ------------------------------------------


class Sample(BaseModel):
    """Features at one moment and whether the phase's deadline was missed in the end."""

    model_config = _FROZEN

    features: ForecastFeatures
    missed: bool


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
