"""``CampaignRoundWorkflow``: the LEGACY round workflow, frozen for rounds kicked off before
the bounded round (``workflows.round.CampaignRound``). Do not change it: it replays the
histories of rounds still running (tests/histories/round_legacy.json). New kick-offs start
``CampaignRound``; organisations started by this round keep working with it.

What it did: the county office's kick-off of one round.

It pages through the roster and starts one organisation workflow per organisation in
scope through an activity (start with "use existing" semantics, so kicking off twice never
makes duplicates, and no pending-child limits apply), in batches. Round-wide actions
(extend a phase for everyone, close the round) fan out the same way. Organisations report
their progress by signal; the ``progress`` query aggregates it.

Every ``cohort_check_every`` of workflow time (a durable timer) the round compares each
organisation with the pro-rata schedule (序时进度) and its township and system cohorts
(``domain.cohort``) and signals ``set_behind_schedule`` to those whose verdict changed: their
light turns yellow, or back.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.contracts import (
        RosterPage,
        RosterPageRequest,
        SignalBatch,
        SignalReport,
        StartBatch,
        StartReport,
    )
    from domain.actions import CloseRound, RoundExtension
    from domain.calendar import CalendarGap
    from domain.cohort import BehindSchedule, behind_schedule
    from domain.errors import DomainError
    from domain.organisation import Role
    from domain.phases import Phase
    from domain.schedule import RoundSchedule, is_rebased, resolve_schedule
    from workflows.common import ACTIVITY_RETRY, refusal
    from workflows.contracts import (
        OrgProgress,
        RoundExtensionRequest,
        RoundInput,
        RoundProgress,
        RoundWorkflowState,
    )
    from workflows.ids import organisation_workflow_id, round_workflow_id
    from workflows.reporting import aggregate_progress, cohort_members, schedule_pro_rata

BATCH_TIMEOUT = timedelta(minutes=5)
# Rounds started before this patch have no cohort-check timer in their histories.
COHORT_CHECK_PATCH = "cohort-check"


@workflow.defn
class CampaignRoundWorkflow:
    """One workflow per round: ``round/<round_id>``."""

    @workflow.init
    def __init__(self, input: RoundInput) -> None:
        kickoff = input.kickoff
        self._state = input.state or RoundWorkflowState(
            kickoff=kickoff, starts_at=kickoff.starts_at or workflow.now()
        )
        self._wake = False
        self._cohort_due = False
        self._clock: asyncio.Task[None] | None = None

    @workflow.run
    async def run(self, input: RoundInput) -> RoundProgress:
        schedule = self._schedule()
        # A close that arrives while starting stops the starting too.
        while not self._state.starting_done and self._state.close is None:
            await self._start_next_batch(schedule)
            await self._fan_out()
            await self._maybe_continue_as_new(input)
        if workflow.patched(COHORT_CHECK_PATCH):
            # One long timer beside the loop, so progress signals do not restart it.
            self._clock = asyncio.create_task(self._cohort_clock())
        while not self._finished():
            await workflow.wait_condition(lambda: self._wake or self._history_too_long())
            # Cleared after the wait, before the work: a close or an extension arriving
            # while a fan-out is in flight wakes the next wait instead of being missed.
            self._wake = False
            await self._fan_out()
            if self._cohort_due:
                await self._check_cohorts(schedule)
            await self._maybe_continue_as_new(input)
        if self._clock is not None:
            self._clock.cancel()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.progress()

    async def _cohort_clock(self) -> None:
        """Wake the main loop for a cohort check every ``cohort_check_every``."""
        state = self._state
        while True:
            if state.next_cohort_check is None:
                state.next_cohort_check = workflow.now() + state.kickoff.cohort_check_every
            delay = state.next_cohort_check - workflow.now()
            if delay > timedelta(0):
                await workflow.sleep(delay)
            self._cohort_due = self._wake = True
            await workflow.wait_condition(lambda: not self._cohort_due)

    async def _check_cohorts(self, schedule: RoundSchedule) -> None:
        """Compare everyone with the schedule and their cohorts; tell those whose verdict
        changed (two batched signals: now behind, no longer behind)."""
        state, now = self._state, workflow.now()
        members = cohort_members(state)
        behind = behind_schedule(
            members,
            schedule_pro_rata(schedule, state.extensions[: state.extensions_sent], now),
            tolerance=state.kickoff.behind_tolerance,
        )
        before = set(state.behind)
        round_id = state.kickoff.round_id
        for ids, verdict in ((behind - before, True), (before - behind, False)):
            if ids:
                await self._signal(
                    [organisation_workflow_id(round_id, org_id) for org_id in sorted(ids)],
                    "set_behind_schedule",
                    BehindSchedule(behind=verdict, as_of=now).model_dump(mode="json"),
                )
        state.behind = sorted(behind)
        state.next_cohort_check = now + state.kickoff.cohort_check_every
        self._cohort_due = False
        if behind != before:
            workflow.logger.info(
                "round %s: %d behind schedule (+%d, -%d)",
                round_id,
                len(behind),
                len(behind - before),
                len(before - behind),
            )

    def _schedule(self) -> RoundSchedule:
        kickoff = self._state.kickoff
        round_plan = kickoff.plan.round(kickoff.round_plan_id)
        try:
            return resolve_schedule(
                kickoff.plan,
                round_plan,
                self._state.starts_at,
                rebased=is_rebased(round_plan, self._state.starts_at),
            )
        except CalendarGap as gap:
            raise ApplicationError(str(gap), type="calendar_gap", non_retryable=True) from None
        except DomainError as exc:
            raise refusal(exc) from None

    async def _start_next_batch(self, schedule: RoundSchedule) -> None:
        state, kickoff = self._state, self._state.kickoff
        scope = kickoff.plan.round(kickoff.round_plan_id).scope
        page: RosterPage = await workflow.execute_activity(
            "load_roster_page",
            RosterPageRequest(
                source=kickoff.roster_source,
                types=scope.types,
                townships=scope.townships,
                offset=state.offset,
                limit=kickoff.batch_size,
            ),
            start_to_close_timeout=BATCH_TIMEOUT,
            retry_policy=ACTIVITY_RETRY,
            result_type=RosterPage,
        )
        state.total = page.total
        if not page.organisations:
            state.starting_done = True
            return
        report: StartReport = await workflow.execute_activity(
            "start_organisation_workflows",
            StartBatch(
                round_id=kickoff.round_id,
                round_workflow_id=round_workflow_id(kickoff.round_id),
                plan=kickoff.plan,
                round_plan_id=kickoff.round_plan_id,
                schedule=schedule,
                organisations=page.organisations,
                history_limit=kickoff.history_limit,
            ),
            start_to_close_timeout=BATCH_TIMEOUT,
            heartbeat_timeout=timedelta(seconds=60),
            retry_policy=ACTIVITY_RETRY,
            result_type=StartReport,
        )
        state.started_ids.extend(report.workflow_ids)
        state.offset += len(page.organisations)
        workflow.logger.info(
            "round %s: started %d, existing %d (offset %d of %s)",
            kickoff.round_id,
            report.started,
            report.existing,
            state.offset,
            state.total,
        )

    async def _fan_out(self) -> None:
        """Send pending round-wide extensions and the close to every started organisation."""
        state = self._state
        while state.extensions_sent < len(state.extensions):
            index = state.extensions_sent
            request = state.extensions[index]
            extension = RoundExtension(
                extension_id=f"{state.kickoff.round_id}/round-ext-{index + 1}",
                phase=request.phase,
                new_deadline=request.new_deadline,
                reason=request.reason,
                actor=request.actor,
            )
            await self._signal_all("apply_round_extension", extension.model_dump(mode="json"))
            state.extensions_sent += 1
        if state.close is not None and not state.close_sent:
            await self._signal_all("close_round", state.close.model_dump(mode="json"))
            state.close_sent = True

    async def _signal_all(self, signal: str, payload: dict[str, object]) -> None:
        await self._signal(self._state.started_ids, signal, payload)

    async def _signal(self, ids: list[str], signal: str, payload: dict[str, object]) -> None:
        """Signal these organisation workflows in batches, from an activity."""
        size = self._state.kickoff.batch_size
        for start in range(0, len(ids), size):
            await workflow.execute_activity(
                "signal_organisations",
                SignalBatch(workflow_ids=ids[start : start + size], signal=signal, payload=payload),
                start_to_close_timeout=BATCH_TIMEOUT,
                heartbeat_timeout=timedelta(seconds=60),
                retry_policy=ACTIVITY_RETRY,
                result_type=SignalReport,
            )

    def _finished(self) -> bool:
        state = self._state
        if state.close is not None:
            return state.close_sent
        reported = state.progress.values()
        return len(state.progress) >= len(state.started_ids) and all(
            p.phase is Phase.COMPLETED or p.closed for p in reported
        )

    def _history_too_long(self) -> bool:
        # Every organisation reports each change by signal: thousands of events per round.
        # The test server never suggests continue-as-new, so the round keeps its own limit.
        info = workflow.info()
        return info.is_continue_as_new_suggested() or (
            info.get_current_history_length() > self._state.kickoff.history_limit
        )

    async def _maybe_continue_as_new(self, input: RoundInput) -> None:
        if not self._history_too_long():
            return
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self._clock is not None:
            self._clock.cancel()
        workflow.continue_as_new(RoundInput(kickoff=input.kickoff, state=self._state))

    # ----- messages ----------------------------------------------------------------------
    @workflow.signal
    def org_progress(self, progress: OrgProgress) -> None:
        """An organisation reports where it stands."""
        self._state.progress[progress.org_id] = progress
        self._wake = True

    @workflow.query
    def progress(self) -> RoundProgress:
        """Aggregate progress from the organisations' latest reports."""
        return aggregate_progress(self._state)

    @workflow.update
    def extend_phase(self, request: RoundExtensionRequest) -> RoundProgress:
        """Move one phase's deadline for everyone in the round."""
        self._state.extensions.append(request)
        self._wake = True
        return self.progress()

    @extend_phase.validator
    def _validate_extend(self, request: RoundExtensionRequest) -> None:
        if request.actor.role is not Role.COUNTY_OFFICE:
            raise ApplicationError(
                "只有县委活动办可以统一延期", type="forbidden", non_retryable=True
            )
        if request.phase is Phase.COMPLETED:
            raise ApplicationError("请选择要延期的阶段", type="invalid", non_retryable=True)
        if request.new_deadline <= workflow.now():
            raise ApplicationError(
                "新的截止时间必须晚于现在", type="invalid_deadline", non_retryable=True
            )
        if not request.reason.strip():
            raise ApplicationError(
                "统一延期必须填写理由", type="reason_required", non_retryable=True
            )
        if self._state.close is not None:
            raise ApplicationError("本轮活动已结束", type="round_closed", non_retryable=True)

    @workflow.update
    def close(self, cmd: CloseRound) -> RoundProgress:
        """Close the round: every organisation stops where it stands."""
        if self._state.close is None:
            self._state.close = cmd
            self._wake = True
        return self.progress()

    @close.validator
    def _validate_close(self, cmd: CloseRound) -> None:
        if cmd.actor.role is not Role.COUNTY_OFFICE:
            raise ApplicationError(
                "只有县委活动办可以结束本轮活动", type="forbidden", non_retryable=True
            )
