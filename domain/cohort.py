"""Who is behind: an organisation against the pro-rata schedule (序时进度) and its cohort.

An organisation's *position* in a round is the number of phases it has completed plus its
progress in the current one (:func:`domain.lights.phase_progress`), so organisations in
different phases compare on one scale; the schedule's position is the sum of every phase's
pro-rata share (:func:`domain.lights.pro_rata`) on the same scale.

An organisation is **behind** (yellow, 滞后) when both hold:

1. its position trails the schedule's by more than ``tolerance`` (a share of one phase), and
2. its position is below the median of its township's cohort, or below the median of its
   system's cohort (分系统), counting only cohorts of at least ``min_cohort`` open
   organisations.

The first rule keeps organisations that are on schedule from turning yellow merely for
being below a fast cohort's median; the second keeps a county-wide delay (the whole cohort
behind the schedule together) from painting everybody yellow: the county office sees that in
the schedule itself, while yellow points at the laggards.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from statistics import median

from pydantic import BaseModel, ConfigDict, Field

from domain.phases import WORKING_PHASES, Phase

# A tenth of a phase: a few days' slack in a phase of two months.
DEFAULT_TOLERANCE = 0.1
# A median of one or two organisations says nothing about a cohort.
MIN_COHORT = 3

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class CohortMember(BaseModel):
    """What the round knows of one organisation when it compares cohorts."""

    model_config = _FROZEN

    org_id: str
    township: str = ""
    system: str = ""
    phase: Phase
    progress: float = Field(default=0.0, ge=0.0, le=1.0)
    closed: bool = False


class BehindSchedule(BaseModel):
    """The round's verdict for one organisation: behind its cohort's schedule or not."""

    model_config = _FROZEN

    behind: bool
    as_of: datetime


def position(phase: Phase, progress: float) -> float:
    """Phases completed plus progress in the current one (a completed round counts 5)."""
    if phase is Phase.COMPLETED:
        return float(len(WORKING_PHASES))
    return WORKING_PHASES.index(phase) + min(1.0, max(0.0, progress))


def schedule_position(pro_rata: Mapping[Phase, float]) -> float:
    """Where the schedule stands on the same scale: the sum of each phase's pro-rata share."""
    return sum(min(1.0, max(0.0, pro_rata.get(phase, 0.0))) for phase in WORKING_PHASES)


def behind_schedule(
    members: Iterable[CohortMember],
    pro_rata: Mapping[Phase, float],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    min_cohort: int = MIN_COHORT,
) -> set[str]:
    """The ids of the open organisations behind both the schedule and a cohort's median.

    Closed organisations neither count in a cohort nor turn yellow; an empty township or
    system (an old report without them) forms no cohort.
    """
    open_members = [m for m in members if not m.closed]
    positions = {m.org_id: position(m.phase, m.progress) for m in open_members}
    cohorts: dict[tuple[str, str], list[float]] = defaultdict(list)
    for member in open_members:
        for kind, key in (("township", member.township), ("system", member.system)):
            if key:
                cohorts[(kind, key)].append(positions[member.org_id])
    medians = {key: median(values) for key, values in cohorts.items() if len(values) >= min_cohort}
    expected = schedule_position(pro_rata)
    behind: set[str] = set()
    for member in open_members:
        mine = positions[member.org_id]
        if member.phase is Phase.COMPLETED or mine >= expected - tolerance:
            continue
        keys = (("township", member.township), ("system", member.system))
        if any(key in medians and mine < medians[key] for key in keys):
            behind.add(member.org_id)
    return behind
