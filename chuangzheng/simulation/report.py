"""The report model: outcomes per phase, notices per rung, timings; and the tallies that
fill it from the round's progress (counted in the read model), the scripts and the read
model's notices."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Engine, func, select

from activities.db import session_factory
from activities.tables import NoticeRow
from domain.notices import NoticeKind
from domain.organisation import Role
from domain.phases import WORKING_PHASES, Phase
from domain.plan import LadderPlan
from domain.state import Outcome
from workflows.contracts import RoundProgress

from .model import Behaviour, BehaviourMix, Conduct, OrgScript


class PhaseOutcomes(BaseModel):
    """How the organisations ended one phase."""

    model_config = ConfigDict(frozen=True)

    phase: Phase
    on_time: int = 0
    late: int = 0
    after_rectification: int = 0
    unfinished: int = 0

    @classmethod
    def tally(cls, phase: Phase, counts: Mapping[Outcome, int], total: int) -> PhaseOutcomes:
        """Outcome counts of ``total`` organisations; those not counted are unfinished."""
        on_time = counts.get(Outcome.ON_TIME, 0)
        late = counts.get(Outcome.LATE, 0)
        after = counts.get(Outcome.AFTER_RECTIFICATION, 0)
        return cls(
            phase=phase,
            on_time=on_time,
            late=late,
            after_rectification=after,
            unfinished=total - on_time - late - after,
        )

    @property
    def finished(self) -> int:
        """Organisations that completed the phase, however."""
        return self.on_time + self.late + self.after_rectification


class NoticeCount(BaseModel):
    """Notices of one kind (and rung) sent to one kind of recipient in one phase."""

    model_config = ConfigDict(frozen=True)

    phase: Phase
    kind: NoticeKind
    rung: int | None
    recipient_role: Role
    label: str
    count: int


class SimulationReport(BaseModel):
    """What a simulated round did: outcomes per phase, notices per rung, timings."""

    model_config = ConfigDict(frozen=True)

    plan_id: str
    plan_name: str
    round_plan_id: str
    round_name: str
    round_id: str
    seed: int
    mix: BehaviourMix
    organisations: int
    behaviours: dict[Behaviour, int]
    started_at: datetime
    finished_at: datetime
    wall_seconds: float
    stops: int
    updates: int
    # The latest an action was sent after its planned instant (virtual seconds).
    max_drift_seconds: float
    # How often updates were held back while a workflow timer fired.
    timer_waits: int
    all_completed: bool
    closed_early: bool
    final_phases: dict[Phase, int]
    outcomes: list[PhaseOutcomes]
    expected_outcomes: list[PhaseOutcomes]
    notices: list[NoticeCount]
    rung_names: list[str]
    scripts: list[OrgScript]
    failures: list[str]
    warnings: list[str]

    @property
    def virtual_span(self) -> timedelta:
        """Virtual time from the kick-off to the end of the round."""
        return self.finished_at - self.started_at

    def outcome(self, phase: Phase) -> PhaseOutcomes:
        """The outcomes of one phase."""
        return next(o for o in self.outcomes if o.phase is phase)

    def notice_total(
        self,
        *,
        kind: NoticeKind | None = None,
        rung: int | None = None,
        phase: Phase | None = None,
        recipient_role: Role | None = None,
    ) -> int:
        """Notices matching every filter given."""
        return sum(
            n.count
            for n in self.notices
            if (kind is None or n.kind is kind)
            and (rung is None or n.rung == rung)
            and (phase is None or n.phase is phase)
            and (recipient_role is None or n.recipient_role is recipient_role)
        )

    def conduct_count(self, phase: Phase, conduct: Conduct) -> int:
        """How many organisations were scripted to behave ``conduct`` in ``phase``."""
        return sum(1 for s in self.scripts if s.conduct[phase] is conduct)


def actual_outcomes(progress: RoundProgress, total: int) -> list[PhaseOutcomes]:
    """Per phase, how the round's ``total`` organisations ended it (as the read model
    recorded it: ``activities.round_progress.round_progress``)."""
    return [
        PhaseOutcomes.tally(phase, progress.outcomes.get(phase, {}), total)
        for phase in WORKING_PHASES
    ]


def expected_outcomes(scripts: Sequence[OrgScript]) -> list[PhaseOutcomes]:
    """Per phase, how the scripts say the organisations should end it."""
    return [
        PhaseOutcomes.tally(
            phase, Counter(s.expected_outcome(phase) for s in scripts), len(scripts)
        )
        for phase in WORKING_PHASES
    ]


def notice_label(kind: NoticeKind, rung: int | None, ladder: LadderPlan) -> str:
    """The Chinese name a notice is counted under: the rung's name for escalations."""
    if kind is NoticeKind.ESCALATION and rung is not None and rung < len(ladder.rungs):
        return ladder.rungs[rung].name
    return kind.label


def count_notices(engine: Engine, round_id: str, ladder: LadderPlan) -> list[NoticeCount]:
    """Notices the round delivered, grouped by phase, kind, rung and recipient role."""
    with session_factory(engine)() as session:
        rows = session.execute(
            select(
                NoticeRow.phase,
                NoticeRow.kind,
                NoticeRow.rung,
                NoticeRow.recipient_role,
                func.count(),
            )
            .where(NoticeRow.round_id == round_id)
            .group_by(NoticeRow.phase, NoticeRow.kind, NoticeRow.rung, NoticeRow.recipient_role)
        ).all()
    counts = []
    for phase, kind, rung, role, count in rows:
        notice_kind = NoticeKind(kind)
        counts.append(
            NoticeCount(
                phase=Phase(phase),
                kind=notice_kind,
                rung=rung,
                recipient_role=Role(role),
                label=notice_label(notice_kind, rung, ladder),
                count=int(count),
            )
        )
    order = list(WORKING_PHASES)
    return sorted(
        counts,
        key=lambda n: (order.index(n.phase), list(NoticeKind).index(n.kind), n.rung or 0),
    )
