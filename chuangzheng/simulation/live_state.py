"""What the what-if carries into the rehearsal besides the state: each organisation's pace.

**From the forecast to a pace.** The paced simulation (:class:`~.model.PaceModel`) says an
organisation finishes a phase at ``T = exp(μ + e_phase + e_finish)`` windows, the two noises
normal with ``phase_sd`` and ``finish_sd``; it misses when ``T > 1``. So an organisation the
forecast gives probability ``p`` of missing its open phase has ``μ = σ·Φ⁻¹(p)`` with
``σ = √(phase_sd² + finish_sd²)``: that is the pace carried into every phase it has left.
An organisation without a forecast (no kept model, or a phase not yet a quarter through)
gets its log-pace from the paced simulation's own mix (a seeded character). In the current
phase the pace is drawn *given that it has not finished yet*: ``T`` is redrawn (up to
:data:`REDRAWS` times) until it lies beyond the share of the window already elapsed.

Every draw comes from a generator seeded with the what-if's seed and the organisation's
id, so the same what-if gives the same paces, and both arms share them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from datetime import datetime
from statistics import NormalDist

from domain.machine import PhaseStatus
from domain.organisation import Organisation
from domain.phases import WORKING_PHASES, Phase
from domain.what_if import OrgStart, PhaseStart

from .model import Character, CharacterMix, PaceModel
from .what_if_engine import OrgPace

#: How often the current phase's pace is redrawn to lie beyond the time already elapsed.
REDRAWS = 30
#: Probabilities are kept inside this band before the inverse normal (0 and 1 have none).
_P_EDGE = 0.005


def log_pace_for(probability: float, pace: PaceModel) -> float:
    """The log-pace ``μ`` at which the paced simulation misses a phase with ``probability``."""
    sigma = math.hypot(pace.phase_sd, pace.finish_sd)
    p = min(1 - _P_EDGE, max(_P_EDGE, probability))
    return sigma * NormalDist().inv_cdf(p)


def prior_log_pace(org_id: str, seed: int, mix: CharacterMix, pace: PaceModel) -> float:
    """A log-pace from the paced simulation's mix (no forecast for this organisation)."""
    rng = random.Random(f"what-if/{seed}/{org_id}/prior")
    draw = rng.random()
    if draw < mix.diligent:
        mean = pace.log_pace[Character.DILIGENT]
    elif draw < mix.diligent + mix.laggard:
        mean = pace.log_pace[Character.LAGGARD]
    else:
        mean = pace.log_pace[Character.AVERAGE]
    return mean + rng.gauss(0.0, pace.org_sd)


def draw_pace(
    start: OrgStart,
    log_pace: float,
    *,
    now: datetime,
    windows: Mapping[Phase, tuple[datetime, datetime]],
    seed: int,
    pace: PaceModel,
    returned: float,
) -> OrgPace:
    """The organisation's aims for the phases it has left (see the module's docstring)."""
    rng = random.Random(f"what-if/{seed}/{start.organisation.id}")
    aims: dict[Phase, float] = {}
    returned_in: list[Phase] = []
    waits: list[Phase] = []
    current = start.current
    for phase in WORKING_PHASES:
        carried: PhaseStart = start.phase(phase)
        # Drawn for every phase, finished or not, so one phase's draw never depends on
        # how far the organisation has got (the same seed, the same numbers).
        shown = log_pace + rng.gauss(0.0, pace.phase_sd)
        finishes = math.exp(shown + rng.gauss(0.0, pace.finish_sd))
        coin = rng.random()
        if carried.completed_at is not None:
            continue
        if phase is current:
            opens_at, deadline = windows[phase]
            span = (deadline - opens_at).total_seconds()
            elapsed = max(0.0, (now - opens_at).total_seconds() / span) if span > 0 else 0.0
            tries = 0
            while finishes <= elapsed and tries < REDRAWS:
                finishes = math.exp(shown + rng.gauss(0.0, pace.finish_sd))
                tries += 1
            finishes = max(finishes, elapsed)
        aims[phase] = finishes
        if coin < returned:
            returned_in.append(phase)
        if finishes >= pace.rectify_at:
            waits.append(phase)
    return OrgPace(
        org_id=start.organisation.id,
        aims=aims,
        returned=tuple(returned_in),
        waits_for_order=tuple(waits),
    )


def draw_paces(
    starts: Sequence[OrgStart],
    probabilities: Mapping[str, float],
    *,
    now: datetime,
    windows: Mapping[Phase, tuple[datetime, datetime]],
    seed: int,
    mix: CharacterMix | None = None,
    pace: PaceModel | None = None,
) -> tuple[list[OrgPace], int]:
    """Every organisation's pace; also how many came from a forecast (the rest from the
    paced simulation's mix)."""
    mix = mix or CharacterMix()
    pace = pace or PaceModel()
    out = []
    forecast = 0
    for start in starts:
        org_id = start.organisation.id
        if org_id in probabilities:
            log_pace = log_pace_for(probabilities[org_id], pace)
            forecast += 1
        else:
            log_pace = prior_log_pace(org_id, seed, mix, pace)
        out.append(
            draw_pace(
                start,
                log_pace,
                now=now,
                windows=windows,
                seed=seed,
                pace=pace,
                returned=mix.returned,
            )
        )
    return out, forecast


def kickoff_starts(
    organisations: Sequence[Organisation], windows: Mapping[Phase, tuple[datetime, datetime]]
) -> list[OrgStart]:
    """Every organisation as it stands at the kick-off (nothing done): for tests and for a
    what-if over a round just started."""
    starts = []
    for org in organisations:
        starts.append(
            OrgStart(
                organisation=org,
                phases=tuple(
                    PhaseStart(
                        phase=phase,
                        status=PhaseStatus.OPEN if i == 0 else PhaseStatus.PENDING,
                        deadline=windows[phase][1],
                        opened_at=windows[phase][0] if i == 0 else None,
                    )
                    for i, phase in enumerate(WORKING_PHASES)
                ),
            )
        )
    return starts
