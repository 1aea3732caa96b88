"""The seeded behaviour mix and each organisation's planned actions.

Everything an organisation does is planned before the round starts (:class:`OrgScript`),
which is what makes the run reproducible and lets the report say what *should* have
happened next to what the workflows recorded.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime

from domain.organisation import Organisation
from domain.phases import WORKING_PHASES, Phase
from domain.schedule import RoundSchedule

from .model import (
    ActionKind,
    Behaviour,
    BehaviourMix,
    Conduct,
    OrgScript,
    PlannedAction,
    SimulationError,
)
from .timing import Timing

#: Conducts an organisation may show in more than one phase.
_SLIPS = (Conduct.LATE, Conduct.LAGGARD)


class Scripter:
    """Plans each organisation's actions from its behaviour and the round's deadlines."""

    def __init__(
        self, timing: Timing, schedule: RoundSchedule, rng: random.Random, starts_at: datetime
    ) -> None:
        self.timing = timing
        self.windows = {w.phase: (w.opens_at, w.deadline) for w in schedule.windows}
        self.rng = rng
        self.starts_at = starts_at

    def script(self, org: Organisation, behaviour: Behaviour) -> OrgScript:
        """A feasible script for ``behaviour``: the phases it slips in are drawn again until
        the rest of the round still fits (a late finish eats into the next phase)."""
        special = {
            Behaviour.LATE: Conduct.LATE,
            Behaviour.LAGGARD: Conduct.LAGGARD,
            Behaviour.RETURNED: Conduct.RETURNED_ONCE,
            Behaviour.EXTENSION: Conduct.EXTENDED,
        }.get(behaviour)
        for _attempt in range(30):
            conduct = dict.fromkeys(WORKING_PHASES, Conduct.ON_TIME)
            if special is not None:
                # Late and lagging organisations slip in one or two phases, not all five.
                how_many = self.rng.choice((1, 1, 2)) if special in _SLIPS else 1
                for phase in self.rng.sample(WORKING_PHASES, how_many):
                    conduct[phase] = special
            planned = self._plan(conduct)
            if planned is not None:
                actions, rungs = planned
                return OrgScript(
                    org_id=org.id,
                    behaviour=behaviour,
                    conduct=conduct,
                    rungs_expected=rungs,
                    actions=tuple(actions),
                )
        raise SimulationError(f"无法为组织 {org.id} 安排“{behaviour.label}”的行动，请检查计划时限")

    def _on_time(self, deadline: datetime, earliest: datetime, first_unit: int) -> datetime | None:
        """ "Some days before the deadline": a random unit from ``first_unit`` on, never on a
        timer and never before the organisation can act; None if that leaves no room."""
        timing = self.timing
        candidates = [
            timing.before(deadline, k)
            for k in range(first_unit, first_unit + 4)
            if not timing.clashes(timing.before(deadline, k), deadline)
        ]
        at = max(self.rng.choice(candidates), earliest) if candidates else earliest
        return at if timing.fits_on_time(at, deadline) else None

    def _plan(
        self, conduct: dict[Phase, Conduct]
    ) -> tuple[list[PlannedAction], dict[Phase, int]] | None:
        """Actions and expected rungs for a conduct per phase, or None if it cannot fit."""
        timing, rng = self.timing, self.rng
        actions: list[PlannedAction] = []
        rungs: dict[Phase, int] = {}
        ready = self.starts_at  # when the organisation enters the phase
        for phase in WORKING_PHASES:
            opens_at, deadline = self.windows[phase]
            earliest = max(ready, opens_at)
            how = conduct[phase]
            rungs[phase] = 0

            if how is Conduct.ON_TIME:
                at = self._on_time(deadline, earliest, max(1, timing.margin))
                if at is None:
                    return None
                actions.append(PlannedAction(at=at, phase=phase, kind=ActionKind.FINISH))
                finish = at
            elif how is Conduct.RETURNED_ONCE:
                first = self._on_time(deadline, earliest, timing.margin + 1)
                if first is None:
                    return None
                second = timing.next_unit(first)
                if not timing.fits_on_time(second, deadline):
                    return None
                actions.append(
                    PlannedAction(at=first, phase=phase, kind=ActionKind.SUBMIT_RETURNED)
                )
                actions.append(PlannedAction(at=second, phase=phase, kind=ActionKind.FINISH))
                finish = second
            elif how is Conduct.EXTENDED:
                asked = self._on_time(deadline, earliest, max(1, timing.margin))
                if asked is None:
                    return None
                new_deadline = timing.extended_deadline(deadline)
                # Finish after the top rung would have fired: proof that nothing escalated.
                finish = timing.after(deadline, timing.top_units + 1)
                if not timing.fits_on_time(finish, new_deadline):
                    return None
                actions.append(
                    PlannedAction(
                        at=asked,
                        phase=phase,
                        kind=ActionKind.REQUEST_EXTENSION,
                        new_deadline=new_deadline,
                    )
                )
                actions.append(PlannedAction(at=finish, phase=phase, kind=ActionKind.FINISH))
            elif how is Conduct.LATE:
                choices = timing.late_choices()
                if not choices:
                    return None
                units = rng.choice(choices)
                finish = timing.after(deadline, units)
                if finish < earliest:
                    return None
                rungs[phase] = timing.rungs_fired_by(units)
                actions.append(PlannedAction(at=finish, phase=phase, kind=ActionKind.FINISH))
            else:  # LAGGARD: only after the rectification order, well within its own deadline
                finish = timing.after(deadline, timing.top_units + 1)
                if finish < earliest or timing.rectification_units < 2:
                    return None
                rungs[phase] = len(timing.rung_units)
                actions.append(PlannedAction(at=finish, phase=phase, kind=ActionKind.RECTIFY))
            # The next phase opens the moment this one completes.
            ready = finish
        return actions, rungs


def assign_behaviours(
    org_ids: Sequence[str], mix: BehaviourMix, rng: random.Random
) -> dict[str, Behaviour]:
    """A seeded, shuffled assignment of behaviours in the mix's proportions."""
    shuffled = list(org_ids)
    rng.shuffle(shuffled)
    assigned: dict[str, Behaviour] = {}
    position = 0
    for behaviour, count in mix.counts(len(org_ids)).items():
        for org_id in shuffled[position : position + count]:
            assigned[org_id] = behaviour
        position += count
    return assigned
