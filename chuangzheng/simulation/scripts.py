"""The seeded behaviour mix and each organisation's planned actions.

Everything an organisation does is planned before the round starts (:class:`OrgScript`),
which is what makes the run reproducible and lets the report say what *should* have
happened next to what the workflows recorded.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from datetime import datetime

from domain.organisation import Organisation
from domain.phases import WORKING_PHASES, Phase
from domain.schedule import RoundSchedule

from .model import (
    ActionKind,
    Behaviour,
    BehaviourMix,
    Character,
    CharacterMix,
    Conduct,
    OrgScript,
    PaceModel,
    PlannedAction,
    SimulationError,
    StepProgress,
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
        phases: Sequence[Phase] = WORKING_PHASES
        if special is Conduct.EXTENDED:
            # Only where the extension rule leaves room to finish after the ladder's top rung
            # (an extension may not reach the next phase's deadline).
            phases = [p for p in WORKING_PHASES if self._extension_fits(p)]
            if not phases:
                raise SimulationError(
                    f"无法为组织 {org.id} 安排“{behaviour.label}”：计划中没有哪个阶段留有延期的"
                    "余地（延期后的截止时间不得达到下一阶段的截止时间），请用 --extensions 0"
                )
        for _attempt in range(30):
            conduct = dict.fromkeys(WORKING_PHASES, Conduct.ON_TIME)
            if special is not None:
                # Late and lagging organisations slip in one or two phases, not all five.
                how_many = self.rng.choice((1, 1, 2)) if special in _SLIPS else 1
                for phase in self.rng.sample(phases, how_many):
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

    def _next_deadline(self, phase: Phase) -> datetime | None:
        """The deadline of the phase after ``phase`` (None after the last)."""
        return _next_deadline(self.windows, phase)

    def _extension_fits(self, phase: Phase) -> bool:
        """Whether an extension of ``phase`` that the rules allow leaves room to finish after
        the top rung would have fired."""
        deadline = self.windows[phase][1]
        new_deadline = self.timing.extended_deadline(deadline, self._next_deadline(phase))
        finish = self.timing.after(deadline, self.timing.top_units + 1)
        return new_deadline is not None and self.timing.fits_on_time(finish, new_deadline)

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
                new_deadline = timing.extended_deadline(deadline, self._next_deadline(phase))
                # Finish after the top rung would have fired: proof that nothing escalated.
                finish = timing.after(deadline, timing.top_units + 1)
                if new_deadline is None or not timing.fits_on_time(finish, new_deadline):
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


def _next_deadline(
    windows: Mapping[Phase, tuple[datetime, datetime]], phase: Phase
) -> datetime | None:
    """The deadline of the working phase after ``phase`` in ``windows`` (None after the
    last): an extension of ``phase`` must stay before it."""
    following = WORKING_PHASES[WORKING_PHASES.index(phase) + 1 :]
    return next((windows[p][1] for p in following if p in windows), None)


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


# ----- Pacing.SPREAD: a persistent character, steps spread over the phase -------------------


def assign_characters(
    org_ids: Sequence[str], mix: CharacterMix, rng: random.Random
) -> dict[str, Character]:
    """A seeded, shuffled assignment of characters in the mix's proportions."""
    shuffled = list(org_ids)
    rng.shuffle(shuffled)
    assigned: dict[str, Character] = {}
    position = 0
    for character, count in mix.counts(len(org_ids)).items():
        for org_id in shuffled[position : position + count]:
            assigned[org_id] = character
        position += count
    return assigned


def _behaviour_of(conduct: Mapping[Phase, Conduct]) -> Behaviour:
    """The old behaviour label that best names a paced script (for the report)."""
    shown = set(conduct.values())
    for how, behaviour in (
        (Conduct.LAGGARD, Behaviour.LAGGARD),
        (Conduct.LATE, Behaviour.LATE),
        (Conduct.EXTENDED, Behaviour.EXTENSION),
        (Conduct.RETURNED_ONCE, Behaviour.RETURNED),
    ):
        if how in shown:
            return behaviour
    return Behaviour.PUNCTUAL


class PacedScripter:
    """Plans an organisation's round at its own pace (:class:`PaceModel`): its required
    steps spread over each phase, finishing on time, late or after rectification as its
    pace and the phase's luck have it, on the same action kinds and timing grid as
    :class:`Scripter` (so the workflows could play it; only the partial progress is not
    sent)."""

    def __init__(
        self,
        timing: Timing,
        schedule: RoundSchedule,
        rng: random.Random,
        starts_at: datetime,
        required: Mapping[tuple[Phase, str], int],
        *,
        mix: CharacterMix,
        pace: PaceModel | None = None,
    ) -> None:
        self.timing = timing
        self.windows = {w.phase: (w.opens_at, w.deadline) for w in schedule.windows}
        self.rng = rng
        self.starts_at = starts_at
        self.required = required
        self.mix = mix
        self.pace = pace or PaceModel()

    def org_pace(self, character: Character) -> float:
        """An organisation's own log-pace: its character's, plus its lasting deviation."""
        return self.pace.log_pace[character] + self.rng.gauss(0.0, self.pace.org_sd)

    def script(
        self,
        org: Organisation,
        character: Character,
        org_pace: float,
        *,
        extension: bool = False,
    ) -> OrgScript:
        """This round's script: the organisation's pace plus this round's noise."""
        round_pace = org_pace + self.rng.gauss(0.0, self.pace.round_sd)
        for _attempt in range(30):
            planned = self._plan(org, round_pace, extension)
            if planned is not None:
                actions, rungs, conduct, progress = planned
                return OrgScript(
                    org_id=org.id,
                    behaviour=_behaviour_of(conduct),
                    conduct=conduct,
                    rungs_expected=rungs,
                    actions=tuple(actions),
                    character=character,
                    progress=tuple(progress),
                )
        raise SimulationError(
            f"无法为组织 {org.id} 按“{character.label}”的进度安排行动，请检查计划时限"
        )

    def _unit_at_or_before(self, deadline: datetime, moment: datetime) -> datetime | None:
        """The latest action instant on the grid at or before ``moment`` that is an on-time
        instant for ``deadline`` (``before`` falls as its units grow: a bisection)."""
        timing = self.timing
        low, high = timing.margin, timing.margin + 1
        while timing.before(deadline, high) > moment:  # moment is inside the calendar
            low, high = high + 1, high * 2
            if high > 4096:
                return None
        while low < high:
            middle = (low + high) // 2
            if timing.before(deadline, middle) <= moment:
                high = middle
            else:
                low = middle + 1
        for k in range(low, low + 10):
            at = timing.before(deadline, k)
            if not timing.clashes(at, deadline):
                return at
        return None

    def _units_late(self, deadline: datetime, moment: datetime) -> int:
        """The first unit after ``deadline`` at or after ``moment``."""
        units = 1
        while units <= self.timing.top_units + 1 and self.timing.after(deadline, units) < moment:
            units += 1
        return units

    def _plan(
        self, org: Organisation, round_pace: float, extension: bool
    ) -> (
        tuple[list[PlannedAction], dict[Phase, int], dict[Phase, Conduct], list[StepProgress]]
        | None
    ):
        timing, rng, pace = self.timing, self.rng, self.pace
        actions: list[PlannedAction] = []
        rungs: dict[Phase, int] = {}
        conduct: dict[Phase, Conduct] = {}
        progress: list[StepProgress] = []
        ready = self.starts_at
        extension_left = extension
        for phase in WORKING_PHASES:
            opens_at, deadline = self.windows[phase]
            span = deadline - opens_at
            earliest = max(ready, opens_at)
            shown = math.exp(round_pace + rng.gauss(0.0, pace.phase_sd))
            finishes = shown * math.exp(rng.gauss(0.0, pace.finish_sd))
            aimed = max(opens_at + span * finishes, earliest)
            rungs[phase] = 0
            how: Conduct
            on_time = (
                self._unit_at_or_before(deadline, aimed)
                if aimed <= timing.latest_on_time(deadline)
                else None
            )
            if on_time is not None:
                on_time = max(on_time, earliest)
                if not timing.fits_on_time(on_time, deadline):
                    on_time = None
            if on_time is not None:
                second = timing.next_unit(on_time)
                if rng.random() < self.mix.returned and timing.fits_on_time(second, deadline):
                    how, first, finish = Conduct.RETURNED_ONCE, on_time, second
                    actions.append(
                        PlannedAction(at=first, phase=phase, kind=ActionKind.SUBMIT_RETURNED)
                    )
                else:
                    how, first, finish = Conduct.ON_TIME, on_time, on_time
                actions.append(PlannedAction(at=finish, phase=phase, kind=ActionKind.FINISH))
            else:
                units = self._units_late(deadline, aimed)
                choices = [c for c in timing.late_choices() if c >= units]
                new_deadline = timing.extended_deadline(
                    deadline, _next_deadline(self.windows, phase)
                )
                asked = self._unit_at_or_before(deadline, timing.latest_on_time(deadline))
                extended_finish = timing.after(deadline, timing.top_units + 1)
                if (
                    extension_left
                    and new_deadline is not None
                    and finishes < pace.rectify_at
                    and asked is not None
                    and asked >= earliest
                    and timing.fits_on_time(extended_finish, new_deadline)
                ):
                    extension_left = False
                    how, first, finish = Conduct.EXTENDED, asked, extended_finish
                    actions.append(
                        PlannedAction(
                            at=asked,
                            phase=phase,
                            kind=ActionKind.REQUEST_EXTENSION,
                            new_deadline=new_deadline,
                        )
                    )
                    actions.append(PlannedAction(at=finish, phase=phase, kind=ActionKind.FINISH))
                elif finishes < pace.rectify_at and choices:
                    how = Conduct.LATE
                    finish = first = timing.after(deadline, choices[0])
                    if finish < earliest:
                        return None
                    rungs[phase] = timing.rungs_fired_by(choices[0])
                    actions.append(PlannedAction(at=finish, phase=phase, kind=ActionKind.FINISH))
                else:
                    how = Conduct.LAGGARD
                    finish = first = timing.after(deadline, timing.top_units + 1)
                    if finish < earliest or timing.rectification_units < 2:
                        return None
                    rungs[phase] = len(timing.rung_units)
                    actions.append(PlannedAction(at=finish, phase=phase, kind=ActionKind.RECTIFY))
            conduct[phase] = how
            # The steps before the last, at the pace shown, each a little early or late.
            steps = max(1, self.required.get((phase, org.type.value), 1))
            done_at = sorted(
                max(
                    earliest,
                    opens_at
                    + span
                    * (shown * i / steps)
                    * rng.uniform(1 - pace.step_jitter, 1 + pace.step_jitter),
                )
                for i in range(1, steps)
            )
            for i, at in enumerate(done_at, start=1):
                if at < first:
                    progress.append(StepProgress(at=at, phase=phase, done=i, of=steps))
            ready = finish
        return actions, rungs, conduct, progress
