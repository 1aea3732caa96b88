"""Playing a round: kick it off, move virtual time from one planned action to the next,
send the updates due there, then let the round end and tally what happened.

Virtual time is driven here (``env.sleep`` from one planned action to the next), so the
ladder's timers fire exactly as they would in a real round, only faster.

The round is the bounded ``CampaignRound``, kicked off as the API does it: the plan stored
once in the read model (``plan_ref``) and the schedule resolved here, with its pinned
calendar. Organisations do not report to it; it reads the read model on its own timer
(``cohort_check_every``). So the tallies come from the read model directly
(``activities.round_progress``), the same counts the round and the API's status page read,
and the round, once everyone has finished, is given one cadence of virtual time to see it
at its next check and complete by itself.
"""

from __future__ import annotations

import asyncio
import random
import time as wallclock
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.db import session_factory
from activities.round_progress import round_aggregate, round_progress, store_plan
from activities.tables import RoundRow
from domain.actions import CloseRound
from domain.calendar import SHANGHAI
from domain.organisation import Organisation
from domain.phases import Phase
from domain.plan import CampaignPlan, RoundPlan
from domain.schedule import build_org_plan
from worker import build_worker
from workflows.contracts import CampaignResult, RoundProgress
from workflows.ids import round_workflow_id
from workflows.round import CampaignRound
from workflows.round_contracts import CampaignRoundInput, RoundTerms

from .calendar import resolve_with_gaps
from .model import BehaviourMix, OrgScript, PlannedAction, SimulationError, SimulationStalled
from .player import COUNTY, Player
from .report import SimulationReport, actual_outcomes, count_notices, expected_outcomes
from .scripts import Scripter, assign_behaviours
from .timers import TimerGuard, timer_instants
from .timing import Timing

#: How many organisations act at once at one stop (each sends its updates in order).
DEFAULT_CONCURRENCY = 48
#: Real seconds to wait for the organisations' last writes to reach the read model.
REPORT_PATIENCE = 60.0
#: The round's cadence (cohort check, aggregate, completion check), in virtual time: a day,
#: the round's default and the cadence of the legacy round's cohort check here, so yellow
#: lights come as they did. The report does not wait on it: it reads the read model.
ROUND_CHECK_EVERY = timedelta(days=1)
#: Cadences skipped at most for the round to see everyone finished: its checks fall on
#: working days, so the longest wait is a holiday of eight or nine days.
ROUND_END_CADENCES = 14
#: Real time allowed for the round and every organisation workflow to end at the close.
FINISH_TIMEOUT = timedelta(minutes=3)


def say(on_message: Callable[[str], None] | None, message: str) -> None:
    """Pass a progress line to ``on_message``, if there is one."""
    if on_message is not None:
        on_message(message)


class Simulation:
    """One simulated round on a running environment with a fresh read model."""

    def __init__(
        self,
        env: WorkflowEnvironment,
        *,
        engine: Engine,
        plan: CampaignPlan,
        round_plan: RoundPlan,
        organisations: Sequence[Organisation],
        roster_file: Path,
        seed: int,
        mix: BehaviourMix,
        concurrency: int,
        on_message: Callable[[str], None] | None,
        scripts: Sequence[OrgScript] | None = None,
        on_stop: Callable[[datetime], Awaitable[None]] | None = None,
    ) -> None:
        self.env = env
        self.engine = engine
        self.plan = plan
        self.round_plan = round_plan
        self.organisations = organisations
        self.roster_file = roster_file
        self.seed = seed
        self.mix = mix
        self.concurrency = concurrency
        self.on_message = on_message
        # Hooks for the what-if's check against a real run (tests/workflows/test_what_if.py):
        # scripts planned elsewhere, played as given; and a call after every stop, where the
        # caller may read the read model at that virtual instant.
        self.given_scripts = scripts
        self.on_stop = on_stop
        self.warnings: list[str] = []

    def say(self, message: str) -> None:
        """Report progress to the caller."""
        say(self.on_message, message)

    async def run(self, *, fill_calendar_gaps: bool, began: float) -> SimulationReport:
        """Plan every organisation's actions, kick the round off, play it, and report."""
        env = self.env
        starts_at = await env.get_current_time()
        plan, schedule = resolve_with_gaps(
            self.plan,
            self.round_plan,
            starts_at,
            fill_gaps=fill_calendar_gaps,
            warnings=self.warnings,
        )
        for warning in self.warnings:
            self.say(warning)
        round_plan = plan.round(self.round_plan.id)
        ladder = plan.ladder_for(round_plan)
        # The round's pinned calendar, the one its workflows compute with.
        calendar = schedule.calendar or plan.calendar.build()
        rng = random.Random(self.seed)
        if self.given_scripts is not None:
            scripts = list(self.given_scripts)
        else:
            behaviours = assign_behaviours([o.id for o in self.organisations], self.mix, rng)
            scripter = Scripter(Timing(ladder, calendar), schedule, rng, starts_at)
            scripts = [scripter.script(org, behaviours[org.id]) for org in self.organisations]
        guard = TimerGuard(timer_instants(schedule, scripts, ladder, calendar))
        # Unique per run, so a shared environment never sees the same workflow id twice.
        round_id = f"sim-{plan.id}-{round_plan.id}-{self.seed}-{uuid.uuid4().hex[:6]}"
        players = [
            Player(
                env.client,
                build_org_plan(plan, round_plan, schedule, org, round_id=round_id),
                script,
                guard,
            )
            for org, script in zip(self.organisations, scripts, strict=True)
        ]
        task_queue = f"simulation-{uuid.uuid4()}"
        sessions = session_factory(self.engine)
        worker = build_worker(
            env.client,
            task_queue=task_queue,
            sessions=sessions,
            max_concurrent_activities=100,
        )
        # As the API kicks off: the plan (with any years vouched for) stored once, and the
        # schedule resolved above passed in, so the round pins exactly what the scripts use.
        round_input = CampaignRoundInput(
            terms=RoundTerms(
                round_id=round_id,
                round_plan_id=round_plan.id,
                roster_source=str(self.roster_file),
                actor=COUNTY,
                starts_at=starts_at,
                cohort_check_every=ROUND_CHECK_EVERY,
            ),
            plan_ref=await asyncio.to_thread(store_plan, sessions, plan),
            schedule=schedule,
        )
        # The worker stays up until every workflow of the round has finished: a workflow
        # left with a due task and no worker stalls the time-skipping server for everyone.
        async with worker:
            round_handle = await env.client.start_workflow(
                CampaignRound.run,
                round_input,
                id=round_workflow_id(round_id),
                task_queue=task_queue,
            )
            self.say(f"已开展轮次 {round_id}：{len(players)} 个组织，开始模拟……")
            stops = await self._play(players, guard)
            finished_at = await env.get_current_time()
            results, closed_early = await self._finish(round_handle, round_id, players, sessions)
            progress = await asyncio.to_thread(_read_progress, sessions, round_id, finished_at)

        outcomes = actual_outcomes(progress, len(players))
        expected = expected_outcomes(scripts)
        if [o.model_dump() for o in outcomes] != [e.model_dump() for e in expected]:
            if any(p.failed is not None for p in players):
                # A refusal by the rules, not a busy machine: the refusals are listed at the end.
                self.warnings.append(
                    "注意：部分组织的实际结果与计划的行为不符：有操作被规则拒绝"
                    "（见文末“操作被拒绝”）。"
                )
            else:
                self.warnings.append(
                    "注意：部分组织的实际结果与计划的行为不符"
                    "（多为机器繁忙、操作晚于计划时点所致）。"
                )
        return SimulationReport(
            plan_id=plan.id,
            plan_name=plan.name,
            round_plan_id=round_plan.id,
            round_name=round_plan.name,
            round_id=round_id,
            seed=self.seed,
            mix=self.mix,
            organisations=len(players),
            behaviours=dict(Counter(s.behaviour for s in scripts)),
            started_at=starts_at,
            finished_at=finished_at,
            wall_seconds=wallclock.monotonic() - began,
            stops=stops,
            updates=sum(p.updates for p in players),
            max_drift_seconds=max((p.drift for p in players), default=timedelta(0)).total_seconds(),
            timer_waits=guard.waits,
            all_completed=all(r.phase is Phase.COMPLETED for r in results),
            closed_early=closed_early,
            final_phases=dict(Counter(r.phase for r in results)),
            outcomes=outcomes,
            expected_outcomes=expected,
            notices=count_notices(self.engine, round_id, ladder),
            rung_names=[r.name for r in ladder.rungs],
            scripts=scripts,
            failures=[p.failed for p in players if p.failed is not None],
            warnings=self.warnings,
        )

    async def _play(self, players: Sequence[Player], guard: TimerGuard) -> int:
        """Skip from one planned instant to the next and act there; returns the stop count."""
        env = self.env
        # Every planned action, grouped by instant; one organisation's actions stay in order.
        agenda: dict[datetime, list[tuple[Player, PlannedAction]]] = defaultdict(list)
        for player in players:
            for action in player.script.actions:
                agenda[action.at].append((player, action))
        limiter = asyncio.Semaphore(self.concurrency)

        async def play(player: Player, actions: list[PlannedAction]) -> None:
            async with limiter:
                for action in actions:
                    await player.act(action)

        for stop, at in enumerate(sorted(agenda), start=1):
            now = await env.get_current_time()
            if at > now:
                await env.sleep(at - now)
                now = await env.get_current_time()
            guard.anchor(now)
            by_player: dict[str, tuple[Player, list[PlannedAction]]] = {}
            for player, action in agenda[at]:
                by_player.setdefault(player.org.id, (player, []))[1].append(action)
            await asyncio.gather(*(play(p, acts) for p, acts in by_player.values()))
            if self.on_stop is not None:
                await self.on_stop(now)
            if stop % 25 == 0:
                self.say(
                    f"  虚拟时间 {now.astimezone(SHANGHAI):%Y-%m-%d %H:%M}，"
                    f"已处理 {stop}/{len(agenda)} 个时点"
                )
        return len(agenda)

    async def _finish(
        self,
        round_handle: WorkflowHandle[CampaignRound, RoundProgress],
        round_id: str,
        players: Sequence[Player],
        sessions: sessionmaker[Session],
    ) -> tuple[list[CampaignResult], bool]:
        """Let the round complete by itself, or close it if someone could not finish; wait
        for every workflow to end. Raises SimulationError if they do not end in time."""
        closed_early = any(p.failed for p in players) or not await _all_completed(
            sessions, round_id, len(players), patience=REPORT_PATIENCE
        )
        if closed_early:
            self.say("有组织未能完成，统一结束本轮活动……")
            await round_handle.execute_update(
                CampaignRound.close,
                CloseRound(actor=COUNTY, reason="模拟结束，统一结束本轮活动"),
            )
        else:
            # Everyone has finished and no organisation has a timer left: skip virtual time
            # a cadence at a time until the round's next check has fallen (time does not
            # skip while its activities run); it then sees every organisation finished in
            # the read model and completes. Its checks fall on working days only, so after
            # a weekend or a holiday that is several cadences (at most ROUND_END_CADENCES).
            for _ in range(ROUND_END_CADENCES):
                await self.env.sleep(ROUND_CHECK_EVERY)
                described = await round_handle.describe()
                if described.status is not WorkflowExecutionStatus.RUNNING:
                    break
        try:
            # Nothing is left to skip to: without this, awaiting a result would let the
            # server jump to its far-future timeouts (years ahead) while the round ends.
            with self.env.auto_time_skipping_disabled():
                async with asyncio.timeout(FINISH_TIMEOUT.total_seconds()):
                    await round_handle.result()
                    results = await asyncio.gather(*(p.handle.result() for p in players))
        except TimeoutError:
            raise SimulationStalled(
                f"本轮活动的工作流未能在{FINISH_TIMEOUT.total_seconds():.0f}秒内结束"
                "（测试服务器可能卡住了某个工作流），模拟中止"
            ) from None
        return list(results), closed_early


def _completed(sessions: sessionmaker[Session], round_id: str) -> int:
    """Organisations of the round whose read-model status is completed."""
    with sessions() as session:
        aggregate = round_aggregate(session, round_id, as_of=datetime.now(UTC))
    return aggregate.by_phase.get(Phase.COMPLETED, 0)


async def _all_completed(
    sessions: sessionmaker[Session], round_id: str, total: int, *, patience: float
) -> bool:
    """Wait (real time) until the read model shows every organisation completed; each one
    writes it in an activity after its last update returned, so it trails it briefly."""
    give_up = wallclock.monotonic() + patience
    while True:
        if await asyncio.to_thread(_completed, sessions, round_id) >= total:
            return True
        if wallclock.monotonic() > give_up:
            return False
        await asyncio.sleep(0.2)


def _read_progress(
    sessions: sessionmaker[Session], round_id: str, as_of: datetime
) -> RoundProgress:
    """The round's progress as the read model has it once every workflow has ended (what
    the round's last aggregate and the API's status page show): outcomes by phase."""
    with sessions() as session:
        row = session.get(RoundRow, round_id)
        if row is None:  # the round writes its row at its first step
            raise SimulationError(f"读模型中没有轮次 {round_id}")
        return round_progress(session, row, as_of=as_of)
