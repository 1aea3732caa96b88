"""``CampaignRound``: the county office's round, with state that does not grow with the county.

The round holds its terms, a content-addressed reference to its plan, its pinned schedule,
the kick-off cursor, the round-wide actions (each with its idempotency key) and close;
nothing per organisation (``workflows.round_contracts.RoundState``). Everything about the
organisations lives in their own workflows and in the read model:

- kick-off: ``start_round_organisations`` starts a range of the roster scope, pipelined,
  and returns counts; the round keeps the offset;
- round-wide actions (extension, close) fan out through ``fan_out_round_signal``, which
  pages through the roster scope up to the offset and checkpoints in heartbeats;
- one durable timer runs the round's check over the read model: the cohort check (yellow
  lights, only changed verdicts are signalled) and the aggregate, in one activity and one
  read (``check_round``, patch ``round-check-once``; before it, ``check_round_cohorts``
  then ``load_round_aggregate``); the round completes when the read model shows every
  started organisation completed or closed;
- when the check runs (patch ``round-check-working-days``, :func:`next_check_at`): right
  after the kick-off, then at the start of business (08:00 Asia/Shanghai, an hour before the
  office day and its reminders) of the next working day of the round's pinned calendar,
  rest days and holidays skipped, instead of every ``cohort_check_every`` from the
  kick-off. Nobody works on a yellow light on a rest day: a verdict is read (and acted on)
  on working days, and the morning check gives it fresh for the whole office day. The
  verdict itself is computed as before; note that 序时进度 (``domain.lights.pro_rata``)
  counts elapsed calendar time, not working days, so it does move over a rest day: the
  first check after one counts the whole rest day, and an organisation's work on a rest day,
  exactly as a check at that instant did before. Completion is decided by the same check,
  so the round completes at the first check after its last organisation finishes, as
  before, which is now the next working morning (after a weekend, two and a half days; after
  the Spring Festival or National Day, up to nine): the status page reads the read model and
  shows every organisation finished at once. A cadence of several days keeps its length
  (the first working day at least that many days on); a cadence under a day (minute-scale
  demo plans), a round without a pinned calendar, or a day past the pinned table keeps the
  fixed cadence;
- the round's status in the read model (``record_round_status``) follows the workflow:
  running, completed, failed (with the reason, before the failure), closed.

Organisations do not report to the round; ``org_progress`` is a no-op kept so that signals
of organisations started by the legacy round are accepted. The legacy type
(``CampaignRoundWorkflow``, workflows/round_legacy.py) stays registered for rounds in flight.
See docs/workflows.md.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, time, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.round_contracts import (
        AggregateRequest,
        CohortCheck,
        RoundAggregate,
        RoundFanOut,
        RoundScope,
        RoundSignal,
        RoundSignalKind,
        RoundStatus,
        RoundStatusRecord,
        ScheduleRequest,
        StartRange,
    )
    from domain.actions import CalendarUpdate, CloseRound, RoundExtension
    from domain.calendar import SHANGHAI, OutsidePinnedCalendar, PinnedCalendar, local_date
    from domain.organisation import Role
    from domain.phases import WORKING_PHASES, Phase
    from domain.plan_version import PlanVersionChange
    from domain.schedule import (
        RoundSchedule,
        check_deadline_in_calendar,
        check_extended_deadline,
    )
    from workflows import activity_refs as refs
    from workflows.common import ACTIVITY_RETRY, ACTIVITY_TIMEOUT, checked
    from workflows.contracts import OrgProgress, RoundExtensionRequest, RoundProgress
    from workflows.ids import round_workflow_id
    from workflows.reporting import schedule_pro_rata
    from workflows.round_contracts import (
        ROUND_WORKFLOW_TYPE,
        CampaignRoundInput,
        RoundAction,
        RoundActionKind,
        RoundActionResult,
        RoundPlanState,
        RoundState,
    )

# The legacy type, registered beside this one for rounds kicked off before it.
from workflows.round_legacy import CampaignRoundWorkflow

__all__ = ["ROUND_WORKFLOW_TYPE", "CampaignRound", "CampaignRoundWorkflow", "next_check_at"]

# Long activities checkpoint in heartbeats; a dead worker is noticed within a minute and
# the retry resumes at the checkpoint.
FAN_OUT_TIMEOUT = timedelta(hours=1)
HEARTBEAT_TIMEOUT = timedelta(seconds=60)
CLOSE_ACTION_ID = "close"
# Patches (``workflow.patched``): rounds recorded before them keep their old path.
CHECK_ONCE_PATCH = "round-check-once"
CHECK_ON_WORKING_DAYS_PATCH = "round-check-working-days"
# The check's hour on a working day (Asia/Shanghai): before the office day starts at 09:00
# (``domain.calendar.OFFICE_DAY_START``), so lights are fresh when supervisors arrive.
CHECK_AT = time(8, 0)
_DAY = timedelta(days=1)


def next_check_at(calendar: PinnedCalendar | None, now: datetime, every: timedelta) -> datetime:
    """When the round checks next after a check at ``now``: 08:00 Asia/Shanghai of the first
    working day at least ``every`` (in whole days, at least one) after ``now``'s local date;
    ``now + every`` for a cadence under a day, a round without a pinned calendar, or a day
    past the pinned table (an extension beyond it: the county office updates the calendar)."""
    fixed = now + every
    if calendar is None or every < _DAY:
        return fixed
    day = local_date(now) + timedelta(days=every // _DAY)
    try:
        while not calendar.is_workday(day):
            day += _DAY
    except OutsidePinnedCalendar:
        return fixed
    return datetime.combine(day, CHECK_AT, SHANGHAI).astimezone(UTC)


@workflow.defn(name=ROUND_WORKFLOW_TYPE)
class CampaignRound:
    """One workflow per round: ``round/<round_id>`` (``workflows.ids.round_workflow_id``)."""

    @workflow.init
    def __init__(self, input: CampaignRoundInput) -> None:
        self._terms = input.terms
        self._plan_ref = input.plan_ref
        self._state = input.state or RoundState(
            schedule=input.schedule,
            starts_at=input.terms.starts_at or workflow.now(),
        )
        self._wake = False

    # ----- the main loop -----------------------------------------------------------------
    @workflow.run
    async def run(self, input: CampaignRoundInput) -> RoundProgress:
        state = self._state
        try:
            if state.recorded is None:
                await self._record(RoundStatus.RUNNING)
            if state.schedule is None:
                state.schedule = await self._resolve_schedule()
            # A close that arrives while starting stops the starting too.
            while not state.cursor.done and state.close is None:
                await self._start_next_range()
                await self._fan_out()
                await self._maybe_continue_as_new()
            if state.next_check is None:
                state.next_check = workflow.now()  # first aggregate right after kick-off
            while not await self._finished():
                timeout = max(timedelta(0), state.next_check - workflow.now())
                with contextlib.suppress(TimeoutError):  # the timer fired: time to check
                    await workflow.wait_condition(
                        lambda: self._wake or self._history_too_long(), timeout=timeout
                    )
                # Cleared after the wait, before the work: an action arriving while a
                # fan-out is in flight wakes the next wait instead of being missed.
                self._wake = False
                await self._fan_out()
                await self._maybe_continue_as_new()
        except (ActivityError, ApplicationError) as exc:
            failure = _application_error(exc)
            if failure is None:
                raise
            await self._record(RoundStatus.FAILED, reason=failure.message)
            raise failure from None
        await self._record(RoundStatus.CLOSED if state.close else RoundStatus.COMPLETED)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.progress()

    async def _finished(self) -> bool:
        """Closed and told everyone, or (on the timer) every started organisation is
        completed or closed in the read model."""
        state = self._state
        if state.close is not None and state.close_sent:
            await self._aggregate()  # the final counts, for the query and the result
            return True
        if state.close is not None or state.next_check is None:
            return False
        if workflow.now() < state.next_check:
            return False
        if workflow.patched(CHECK_ONCE_PATCH):
            aggregate = await self._check()
        else:
            await self._check_cohorts()
            aggregate = await self._aggregate()
        state.next_check = self._next_check()
        started = state.cursor.offset
        return state.cursor.done and aggregate.finished >= started

    # ----- activities ----------------------------------------------------------------------
    def _scope(self) -> RoundScope:
        terms = self._terms
        return RoundScope(
            round_id=terms.round_id,
            round_workflow_id=round_workflow_id(terms.round_id),
            # The plan version in force: later starters get its ladder and deadlines.
            plan_ref=self._state.plan_ref or self._plan_ref,
            round_plan_id=terms.round_plan_id,
            roster_source=terms.roster_source,
        )

    async def _resolve_schedule(self) -> RoundSchedule:
        """Resolve once, in an activity: the result is pinned in this history."""
        return await refs.execute(
            refs.RESOLVE_ROUND_SCHEDULE,
            ScheduleRequest(
                plan_ref=self._plan_ref,
                round_plan_id=self._terms.round_plan_id,
                starts_at=self._state.starts_at,
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=ACTIVITY_RETRY,
        )

    async def _record(self, status: RoundStatus, *, reason: str = "") -> None:
        state, terms = self._state, self._terms
        await refs.execute(
            refs.RECORD_ROUND_STATUS,
            RoundStatusRecord(
                round_id=terms.round_id,
                status=status,
                reason=reason,
                started=state.cursor.offset,
                total=state.cursor.total,
                starting_done=state.cursor.done,
                at=workflow.now(),
                round_plan_id=terms.round_plan_id,
                kicked_off_by=terms.actor.user,
                starts_at=state.starts_at,
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=ACTIVITY_RETRY,
        )
        state.recorded = status

    def _schedule(self) -> RoundSchedule:
        """The round's schedule as it stands (a calendar update replaces it)."""
        schedule = self._state.schedule
        assert schedule is not None  # resolved before anything else runs
        return schedule

    async def _start_next_range(self) -> None:
        state, terms = self._state, self._terms
        report = await refs.execute(
            refs.START_ROUND_ORGANISATIONS,
            StartRange(
                scope=self._scope(),
                schedule=self._schedule(),
                offset=state.cursor.offset,
                limit=terms.start_chunk,
                page_size=terms.page_size,
                concurrency=terms.concurrency,
                history_limit=terms.org_history_limit,
                signals=tuple(self._action_signal(i) for i in range(len(state.actions))),
            ),
            start_to_close_timeout=FAN_OUT_TIMEOUT,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=ACTIVITY_RETRY,
        )
        state.cursor.offset = report.next_offset
        state.cursor.total = report.total
        state.cursor.done = report.next_offset >= report.total
        await self._record(RoundStatus.RUNNING)  # the cursor, for the status page
        workflow.logger.info(
            "round %s: started %d, existing %d (offset %d of %d)",
            terms.round_id,
            report.started,
            report.existing,
            report.next_offset,
            report.total,
        )

    def _action_signal(self, index: int) -> RoundSignal:
        """The organisations' signal for the round's ``index``-th action."""
        action = self._state.actions[index]
        if action.plan_version is not None:
            return RoundSignal(
                kind=RoundSignalKind.APPLY_PLAN_VERSION,
                payload=action.plan_version.model_dump(mode="json"),
            )
        if action.calendar is not None:
            return RoundSignal(
                kind=RoundSignalKind.APPLY_CALENDAR,
                payload=action.calendar.model_dump(mode="json"),
            )
        request = action.extension
        assert request is not None  # an extension action always carries its request
        extension = RoundExtension(
            extension_id=self._action_id(index),
            phase=request.phase,
            new_deadline=request.new_deadline,
            reason=request.reason,
            actor=request.actor,
        )
        return RoundSignal(
            kind=RoundSignalKind.APPLY_ROUND_EXTENSION, payload=extension.model_dump(mode="json")
        )

    def _action_id(self, index: int) -> str:
        """``<round>/round-ext-<n>`` for the n-th extension (the id organisations dedupe
        by), ``<round>/calendar/<update id>`` for a calendar update, ``<round>/plan-v<n>``
        for the plan's n-th version."""
        actions = self._state.actions
        action = actions[index]
        if action.kind is RoundActionKind.CALENDAR:
            return f"{self._terms.round_id}/calendar/{action.request_id}"
        if action.plan_version is not None:
            return f"{self._terms.round_id}/plan-v{action.plan_version.version}"
        number = sum(1 for a in actions[: index + 1] if a.kind is RoundActionKind.EXTENSION)
        return f"{self._terms.round_id}/round-ext-{number}"

    def _sent_extensions(self) -> list[RoundExtensionRequest]:
        """The extensions every started organisation has (they move the pro-rata schedule)."""
        state = self._state
        return [a.extension for a in state.actions[: state.actions_sent] if a.extension]

    async def _signal_started(self, signal: RoundSignal) -> None:
        """Send ``signal`` to every organisation started so far."""
        await refs.execute(
            refs.FAN_OUT_ROUND_SIGNAL,
            RoundFanOut(
                scope=self._scope(),
                signal=signal,
                upto=self._state.cursor.offset,
                page_size=self._terms.page_size,
                concurrency=self._terms.concurrency,
            ),
            start_to_close_timeout=FAN_OUT_TIMEOUT,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=ACTIVITY_RETRY,
        )

    async def _fan_out(self) -> None:
        """Send pending round-wide actions in order, then the close, to every started
        organisation."""
        state = self._state
        while state.actions_sent < len(state.actions):
            await self._signal_started(self._action_signal(state.actions_sent))
            state.actions_sent += 1
        if state.close is not None and not state.close_sent:
            await self._signal_started(
                RoundSignal(
                    kind=RoundSignalKind.CLOSE_ROUND, payload=state.close.model_dump(mode="json")
                )
            )
            state.close_sent = True

    def _next_check(self) -> datetime:
        """The next check's instant (see the module docstring and :func:`next_check_at`)."""
        now, every = workflow.now(), self._terms.cohort_check_every
        if not workflow.patched(CHECK_ON_WORKING_DAYS_PATCH):
            return now + every
        return next_check_at(self._schedule().calendar, now, every)

    def _cohort_check(self) -> CohortCheck:
        now = workflow.now()
        return CohortCheck(
            round_id=self._terms.round_id,
            pro_rata=schedule_pro_rata(self._schedule(), self._sent_extensions(), now),
            tolerance=self._terms.behind_tolerance,
            as_of=now,
            concurrency=self._terms.concurrency,
        )

    async def _check(self) -> RoundAggregate:
        """The cohort check and the aggregate in one activity."""
        result = await refs.execute(
            refs.CHECK_ROUND,
            self._cohort_check(),
            start_to_close_timeout=FAN_OUT_TIMEOUT,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=ACTIVITY_RETRY,
        )
        self._state.last = result.aggregate
        return result.aggregate

    async def _check_cohorts(self) -> None:
        """Before ``round-check-once``: the cohort check alone (then ``_aggregate``)."""
        await refs.execute(
            refs.CHECK_ROUND_COHORTS,
            self._cohort_check(),
            start_to_close_timeout=FAN_OUT_TIMEOUT,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=ACTIVITY_RETRY,
        )

    async def _aggregate(self) -> RoundAggregate:
        aggregate = await refs.execute(
            refs.LOAD_ROUND_AGGREGATE,
            AggregateRequest(round_id=self._terms.round_id),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=ACTIVITY_RETRY,
        )
        self._state.last = aggregate
        return aggregate

    # ----- continue-as-new -----------------------------------------------------------------
    def _history_too_long(self) -> bool:
        info = workflow.info()
        return info.is_continue_as_new_suggested() or (
            info.get_current_history_length() > self._terms.history_limit
        )

    async def _maybe_continue_as_new(self) -> None:
        if not self._history_too_long():
            return
        await workflow.wait_condition(workflow.all_handlers_finished)
        # Handlers ran to the end: whatever they added is in the state carried over.
        workflow.continue_as_new(
            CampaignRoundInput(terms=self._terms, plan_ref=self._plan_ref, state=self._state)
        )

    # ----- messages ------------------------------------------------------------------------
    @workflow.signal
    def org_progress(self, progress: OrgProgress) -> None:
        """Accepted and ignored: organisations of the legacy round still report; this round
        reads the read model instead."""

    @workflow.query
    def progress(self) -> RoundProgress:
        """The round's progress as of its last aggregate (and the kick-off cursor)."""
        state = self._state
        last = state.last or RoundAggregate(round_id=self._terms.round_id)
        outcomes = {phase: dict(last.outcomes.get(phase, {})) for phase in WORKING_PHASES}
        return RoundProgress(
            round_id=self._terms.round_id,
            total=state.cursor.total,
            started=state.cursor.offset,
            starting_done=state.cursor.done,
            closed=state.close is not None,
            by_phase=dict(last.by_phase),
            by_light=dict(last.by_light),
            overdue=last.overdue,
            outcomes=outcomes,
            reported=last.reported,
            behind=last.behind,
            as_of=last.as_of,
        )

    def _add(self, action: RoundAction) -> RoundActionResult:
        """Append a round-wide action unless its request id was seen (then answer with the
        earlier one's id, applied False): two concurrent retries add one action."""
        state = self._state
        for index, earlier in enumerate(state.actions):
            if earlier.kind is action.kind and earlier.request_id == action.request_id:
                return RoundActionResult(action_id=self._action_id(index), applied=False)
        state.actions.append(action)
        self._wake = True
        return RoundActionResult(action_id=self._action_id(len(state.actions) - 1), applied=True)

    def _seen(self, kind: RoundActionKind, request_id: str | None) -> bool:
        return request_id is not None and any(
            a.kind is kind and a.request_id == request_id for a in self._state.actions
        )

    @workflow.update
    def extend_phase(self, request: RoundExtensionRequest) -> RoundActionResult:
        """Move one phase's deadline for everyone in the round, once per request id."""
        info = workflow.current_update_info()
        # Without a request id, Temporal's own update id (the same on a client's retry).
        request_id = request.request_id or (info.id if info is not None else "")
        return self._add(
            RoundAction(
                kind=RoundActionKind.EXTENSION,
                request_id=request_id,
                extension=request.model_copy(update={"request_id": request_id}),
            )
        )

    @extend_phase.validator
    def _validate_extend(self, request: RoundExtensionRequest) -> None:
        if request.actor.role is not Role.COUNTY_OFFICE:
            raise ApplicationError(
                "只有县委活动办可以统一延期", type="forbidden", non_retryable=True
            )
        if self._seen(RoundActionKind.EXTENSION, request.request_id):
            return  # a retry of an accepted request: answered, not applied again
        if request.phase is Phase.COMPLETED:
            raise ApplicationError("请选择要延期的阶段", type="invalid", non_retryable=True)
        if request.new_deadline <= workflow.now():
            raise ApplicationError(
                "新的截止时间必须晚于现在",
                {"errors": [{"field": "new_deadline", "reason": "新的截止时间必须晚于现在"}]},
                type="invalid_deadline",
                non_retryable=True,
            )
        if not request.reason.strip():
            raise ApplicationError(
                "统一延期必须填写理由", type="reason_required", non_retryable=True
            )
        if self._state.close is not None:
            raise ApplicationError("本轮活动已结束", type="round_closed", non_retryable=True)
        # Later than the phase's deadline (the schedule's, or an earlier county-wide
        # extension's), by a year at most, and before the next phase's: an admission rule, the
        # validator's alone, so extensions accepted before it replay as they ran.
        schedule = self._state.schedule
        if schedule is not None:
            extended: dict[Phase, datetime] = {}
            for action in self._state.actions:
                if action.kind is RoundActionKind.EXTENSION and action.extension is not None:
                    ext = action.extension
                    extended[ext.phase] = max(
                        ext.new_deadline, extended.get(ext.phase, ext.new_deadline)
                    )
            deadlines = [
                (w.phase, max(w.deadline, extended.get(w.phase, w.deadline)))
                for w in schedule.windows
            ]
            checked(
                lambda: check_extended_deadline(
                    deadlines, request.phase, request.new_deadline, field="new_deadline"
                )
            )
            # Within the round's pinned calendar (the schedule's, as a calendar update left
            # it): past it every organisation refused the extension on its own while the
            # round answered "applied".
            pinned = self._schedule().calendar
            if pinned is not None:
                checked(
                    lambda: check_deadline_in_calendar(
                        pinned, None, request.new_deadline, field="new_deadline"
                    )
                )

    @workflow.update
    def update_calendar(self, cmd: CalendarUpdate) -> RoundActionResult:
        """Apply newly published calendar data to the round: its schedule takes the new
        windows and pinned calendar (later starters get them in their plans) and every
        started organisation gets ``apply_calendar``; once per ``update_id``."""
        state = self._state
        if not self._seen(RoundActionKind.CALENDAR, cmd.update_id) and state.schedule:
            state.schedule = state.schedule.model_copy(
                update={"windows": cmd.windows, "calendar": cmd.calendar}
            )
        return self._add(
            RoundAction(kind=RoundActionKind.CALENDAR, request_id=cmd.update_id, calendar=cmd)
        )

    @update_calendar.validator
    def _validate_calendar(self, cmd: CalendarUpdate) -> None:
        if cmd.actor.role is not Role.COUNTY_OFFICE:
            raise ApplicationError(
                "只有县委活动办可以更新本轮日历", type="forbidden", non_retryable=True
            )
        if self._seen(RoundActionKind.CALENDAR, cmd.update_id):
            return  # a retry: answered, not applied again
        if not cmd.reason.strip():
            raise ApplicationError(
                "更新日历必须填写理由", type="reason_required", non_retryable=True
            )
        if self._state.close is not None:
            raise ApplicationError("本轮活动已结束", type="round_closed", non_retryable=True)
        schedule = self._state.schedule
        if schedule is not None and [w.phase for w in cmd.windows] != [
            w.phase for w in schedule.windows
        ]:
            raise ApplicationError("新日历的阶段与本轮不一致", type="invalid", non_retryable=True)

    @workflow.query
    def plan_state(self) -> RoundPlanState:
        """The plan version in force, its plan's reference and the round's schedule."""
        state = self._state
        return RoundPlanState(
            version=state.plan_version,
            plan_ref=state.plan_ref or self._plan_ref,
            schedule=state.schedule,
            closed=state.close is not None,
            version_ids={
                a.request_id: a.plan_version.version
                for a in state.actions
                if a.plan_version is not None
            },
        )

    @workflow.update
    def apply_plan_version(self, cmd: PlanVersionChange) -> RoundActionResult:
        """Apply a new version of the round's plan (``domain.plan_version``): numbered here,
        it becomes the round's plan and schedule (later starters get it) and every started
        organisation gets ``apply_plan_version``; once per ``version_id``. New handlers only:
        histories recorded before them have no such Update and replay unchanged."""
        state = self._state
        for index, earlier in enumerate(state.actions):
            if earlier.plan_version is not None and earlier.request_id == cmd.version_id:
                return RoundActionResult(
                    action_id=self._action_id(index),
                    applied=False,
                    version=earlier.plan_version.version,
                )
        version = state.plan_version + 1
        change = cmd.model_copy(update={"version": version})
        state.plan_version, state.plan_ref = version, cmd.plan_ref
        if state.schedule is not None:
            moved = state.schedule.model_copy(update={"windows": cmd.windows})
            if cmd.calendar is not None:
                moved = moved.model_copy(update={"calendar": cmd.calendar})
            state.schedule = moved
        result = self._add(
            RoundAction(
                kind=RoundActionKind.PLAN_VERSION, request_id=cmd.version_id, plan_version=change
            )
        )
        return result.model_copy(update={"version": version})

    @apply_plan_version.validator
    def _validate_plan_version(self, cmd: PlanVersionChange) -> None:
        if cmd.actor.role is not Role.COUNTY_OFFICE:
            raise ApplicationError(
                "只有县委活动办可以调整本轮计划", type="forbidden", non_retryable=True
            )
        if self._seen(RoundActionKind.PLAN_VERSION, cmd.version_id):
            return  # a retry: answered, not applied again
        if not cmd.reason.strip():
            raise ApplicationError(
                "调整计划必须填写理由", type="reason_required", non_retryable=True
            )
        state = self._state
        if state.close is not None:
            raise ApplicationError("本轮活动已结束", type="round_closed", non_retryable=True)
        if state.schedule is None:
            raise ApplicationError(
                "本轮尚未完成启动，请稍后再调整计划", type="not_started", non_retryable=True
            )
        if cmd.base_version is not None and cmd.base_version != state.plan_version:
            raise ApplicationError(
                f"本轮计划已调整为第{state.plan_version}版，请基于最新版本重新起草"
                f"（草稿基于第{cmd.base_version}版）",
                type="stale_version",
                non_retryable=True,
            )
        if [w.phase for w in cmd.windows] != [w.phase for w in state.schedule.windows]:
            raise ApplicationError(
                "新版计划的阶段必须与本轮相同、顺序一致", type="invalid", non_retryable=True
            )

    @workflow.update
    def close(self, cmd: CloseRound) -> RoundActionResult:
        """Close the round: every organisation stops where it stands (once)."""
        applied = self._state.close is None
        if applied:
            self._state.close = cmd
            self._wake = True
        return RoundActionResult(action_id=CLOSE_ACTION_ID, applied=applied)

    @close.validator
    def _validate_close(self, cmd: CloseRound) -> None:
        if cmd.actor.role is not Role.COUNTY_OFFICE:
            raise ApplicationError(
                "只有县委活动办可以结束本轮活动", type="forbidden", non_retryable=True
            )


def _application_error(exc: BaseException) -> ApplicationError | None:
    """The business failure behind ``exc`` (a non-retryable activity failure, or our own
    refusal), or None for anything else (which must not be recorded as the round's end)."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ApplicationError):
        cause = cause.__cause__
    if cause is None:
        return None
    return ApplicationError(
        cause.message or str(cause), type=cause.type or "failed", non_retryable=True
    )
