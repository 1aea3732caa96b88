"""``OrganisationCampaignWorkflow``: one organisation through the five phases of one round.

Human actions arrive as Updates whose validators run the domain's checks, so a refused
action writes nothing to history; an accepted one returns a small :class:`ActionResult`
(every byte of it is stored in history), the whole status being the ``status`` query and
the read model's row. The main loop is the only place that performs I/O: it fires due
timers (reminder, ladder rungs, rectification checks), drains the event and notice outboxes
(``record_outbox`` as a local activity inside the same workflow task, then
``deliver_notices`` as an activity for the notices an external channel carries, if any)
and publishes search attributes. The round learns where organisations stand from the read
model, not from signals. Deadlines are durable timers
(``wait_condition`` with a timeout recomputed every turn), so an approved extension simply
moves the next wake-up. Continue-as-new carries the state and whatever the outbox still
holds; the continued run flushes that first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as TemporalTimeout

with workflow.unsafe.imports_passed_through():
    from activities.contracts import (
        NOTICES_NOT_RECORDED,
        STATUS_ROW_MISSING,
        CampaignSnapshot,
        EventBatch,
        NoticeBatch,
        StatusChange,
    )
    from domain.actions import (
        AcknowledgeEscalation,
        CalendarUpdate,
        CloseRound,
        DecideExtension,
        DecideSubmission,
        RecheckRectification,
        ReportRectification,
        RequestExtension,
        RoundExtension,
        SubmitEvidence,
        WaiveStep,
    )
    from domain.campaign import Campaign, CampaignStatus, OrderRectification, new_state
    from domain.cohort import BehindSchedule
    from domain.errors import DomainError
    from domain.lights import Light
    from domain.notices import Notice
    from domain.phases import Phase
    from domain.plan_version import PlanVersionChange, apply_plan_version
    from domain.state import CampaignEvent
    from workflows import search_attributes as sa
    from workflows.activity_refs import (
        DELIVER_NOTICES,
        RECORD_EVENTS,
        RECORD_OUTBOX,
        ActivityRef,
        execute,
        execute_local,
    )
    from workflows.common import (
        ACTIVITY_RETRY,
        ACTIVITY_TIMEOUT,
        LOCAL_FLUSH_ATTEMPT,
        LOCAL_FLUSH_BUDGET,
        LOCAL_FLUSH_RETRY,
        checked,
        refusal,
    )
    from workflows.contracts import (
        ActionResult,
        CampaignResult,
        CarriedOutbox,
        OrganisationCampaignInput,
    )
    from workflows.reporting import progress_of, snapshot_of

# Runs started before this patch neither record the light on its own (blue, yellow) in the
# read model nor report step-by-step progress to the round: both add commands that their
# histories do not have.
YELLOW_LIGHT_PATCH = "yellow-light"
# Runs started before this patch delivered a reminder alone, without recording it first.
NOTICE_OUTBOX_PATCH = "notice-outbox"
# Runs started before this patch could miss an update that arrived during a flush.
WAKE_BEFORE_FLUSH_PATCH = "wake-before-flush"
# Runs started before this patch signal their progress to the round on every change (the
# round now reads it from the read model; only organisations of the legacy round, started
# with ``report_to_round``, still report) and upsert every search attribute each time
# (now the fixed ones once, then only phase, light and overdue when they change). What an
# Update returns needs no patch: results are not commands, replay does not compare them.
SMALL_HISTORY_PATCH = "small-history"
# Runs started before this patch send the whole snapshot with every recorded batch and
# every notice twice (to ``record_events``, the outbox, and again whole to
# ``deliver_notices``). Now a run sends the whole snapshot once, then only the fields that
# changed since the one last recorded, and names the notices it has just recorded by id.
SMALL_INPUTS_PATCH = "small-activity-inputs"
# Runs started before this patch record through the regular ``record_events`` activity: an
# accepted Update (or a fired timer) costs a workflow task, the activity, and a workflow
# task for its result. Now ``record_events`` runs as a local activity inside the workflow
# task that produced the events (one ``MARKER_RECORDED`` in history), and falls back to
# the regular activity if it has not succeeded within ``LOCAL_FLUSH_BUDGET`` (the read
# model down or locked). ``deliver_notices`` stays a regular activity: it sends on external
# channels (mail, robots), one notice at a time with heartbeats, which must not hold the
# workflow task.
LOCAL_FLUSH_PATCH = "local-flush"
# Runs started before this patch schedule ``deliver_notices`` for every notice they record,
# though on an inbox-only deployment (the default) the inbox row written with the events is
# the delivery and the activity had nothing to send: each rung cost a second workflow task
# and an activity (issue 11: half the storm's workflow tasks). Now the flush records through
# ``record_outbox``, which also answers which notices an external channel carries, and only
# those go to ``deliver_notices``.
EXTERNAL_DELIVERY_PATCH = "external-delivery-only"


Out = TypeVar("Out")


def _failure(err: ActivityError | ApplicationError) -> BaseException | None:
    """The activity's own error: the cause of an ``ActivityError``; a local activity's
    non-retryable failure reaches the workflow as the ``ApplicationError`` itself."""
    return err.cause if isinstance(err, ActivityError) else err


def _refused(err: ActivityError | ApplicationError, kind: str) -> bool:
    """Whether the activity refused its input with the non-retryable error ``kind``."""
    cause = _failure(err)
    return isinstance(cause, ApplicationError) and cause.type == kind


def _non_retryable(err: ActivityError | ApplicationError) -> bool:
    """Whether the activity failed with an error that no retry can change."""
    cause = _failure(err)
    return isinstance(cause, ApplicationError) and cause.non_retryable


# Not sandboxed: the module and ``domain`` are passed through the sandbox anyway (worker.py),
# so the sandbox checked nothing of this code's own calls; what it cost was its per-payload
# serialisation context and import hooks in every activation, about a fifth of the worker's
# CPU per Update in the simulation (docs/performance.md, 2026-11-30 12:30). Commands and
# history are unchanged; the recorded histories guard determinism.
@workflow.defn(sandboxed=False)
class OrganisationCampaignWorkflow:
    """One workflow per (round, organisation): see ``workflows.ids.organisation_workflow_id``."""

    @workflow.init
    def __init__(self, input: OrganisationCampaignInput) -> None:
        self._input = input
        self._campaign = Campaign(input.plan, input.state or new_state(input.plan))
        self._wake = False
        self._published: tuple[object, ...] | None = None
        self._reported: tuple[object, ...] | None = None
        self._recorded_light: Light | None = None
        self._lights_patch = False
        self._small_history = False
        self._small_inputs = False
        self._local_flush = False
        self._external_only = False
        # The snapshot this run last recorded (None: the next batch sends the whole one).
        self._recorded_snapshot: CampaignSnapshot | None = None
        if input.carried is not None:  # what the previous run still owed: flushed first
            self._campaign.restore_outbox(input.carried.events, input.carried.notices)
            self._recorded_light = input.carried.recorded_light

    # ----- the main loop -----------------------------------------------------------------
    @workflow.run
    async def run(self, input: OrganisationCampaignInput) -> CampaignResult:
        campaign = self._campaign
        self._lights_patch = workflow.patched(YELLOW_LIGHT_PATCH)
        self._small_history = workflow.patched(SMALL_HISTORY_PATCH)
        self._small_inputs = workflow.patched(SMALL_INPUTS_PATCH)
        self._local_flush = workflow.patched(LOCAL_FLUSH_PATCH)
        self._external_only = workflow.patched(EXTERNAL_DELIVERY_PATCH)
        campaign.settle(workflow.now())
        # Cleared before the flush, not after: an update that lands while an activity or the
        # progress signal is in flight must wake the next wait, not wait for the next timer.
        # Runs recorded before the fix keep the old order (their timers are in history).
        wake_first = workflow.patched(WAKE_BEFORE_FLUSH_PATCH)
        while True:
            if wake_first:
                self._wake = False
            next_at = campaign.tick(workflow.now())
            await self._flush()
            if campaign.state.closed or campaign.state.finished():
                break
            if self._history_too_long():
                await workflow.wait_condition(workflow.all_handlers_finished)
                await self._flush()
                # No await from here on: whatever a handler added during the flush above
                # (an old run's progress signal awaited after its last check) is carried.
                workflow.continue_as_new(self._continued(input))
            if not wake_first:
                self._wake = False
            timeout = (next_at - workflow.now()) if next_at is not None else None
            if timeout is not None and timeout <= timedelta(0):
                continue
            with contextlib.suppress(TimeoutError):  # the timer fired: tick again
                await workflow.wait_condition(lambda: self._wake, timeout=timeout)
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._flush()
        state = campaign.state
        return CampaignResult(
            round_id=state.round_id,
            org_id=state.org_id,
            phase=state.phase,
            closed=state.closed,
            outcomes={p.phase: p.outcome for p in state.phases},
        )

    def _continued(self, input: OrganisationCampaignInput) -> OrganisationCampaignInput:
        """The next run's input: the state and everything this run still owes."""
        events, notices = self._campaign.take_outbox()
        return OrganisationCampaignInput(
            plan=input.plan,
            state=self._campaign.state,
            round_workflow_id=input.round_workflow_id,
            history_limit=input.history_limit,
            report_to_round=input.report_to_round,
            carried=CarriedOutbox(
                events=tuple(events),
                notices=tuple(notices),
                recorded_light=self._recorded_light,
            ),
        )

    def _history_too_long(self) -> bool:
        info = workflow.info()
        return info.is_continue_as_new_suggested() or (
            info.get_current_history_length() > self._input.history_limit
        )

    async def _flush(self) -> None:
        """Write pending events and notices, then publish search attributes and progress.

        Loops because handlers may add more while an activity is running. A light that
        changed with no event (blue comes with the calendar alone) is still written to the
        read model's status row, with the snapshot alone.
        """
        while True:
            events, notices = self._campaign.take_outbox()
            light_stale = self._lights_patch and self._campaign.state.light != self._recorded_light
            if not events and not notices and not light_stale:
                break
            # The outbox: notices are written with the events (the escalation) they belong
            # to, in one transaction; ``deliver_notices`` then only sends them out.
            outbox = bool(notices) and workflow.patched(NOTICE_OUTBOX_PATCH)
            # The notices an external channel carries, as the outbox answered (None: every
            # notice goes to ``deliver_notices``, as before ``EXTERNAL_DELIVERY_PATCH``).
            to_send: list[str] | None = None
            if events or light_stale or outbox:
                snapshot = self._snapshot()
                to_send = await self._record(events, snapshot, notices if outbox else [])
                self._recorded_light = snapshot.light
            # ``to_send`` speaks only of notices the outbox recorded: any others (a run from
            # before the outbox) still go to ``deliver_notices`` whole, as they always did.
            if notices and (to_send is None or not outbox):
                await self._deliver(notices, recorded=outbox)
            elif to_send:
                sending = set(to_send)
                await self._deliver([n for n in notices if n.notice_id in sending], recorded=True)
        self._publish()
        if not self._small_history or self._input.report_to_round:
            await self._report()

    async def _record(
        self, events: list[CampaignEvent], snapshot: CampaignSnapshot, notices: list[Notice]
    ) -> list[str] | None:
        """``record_events``: with ``SMALL_INPUTS_PATCH``, after the run's first batch, only
        what changed since the snapshot last recorded; the whole snapshot again if the read
        model has no status row to change. Returns the ids of the notices an external
        channel carries (``record_outbox``), or None before ``EXTERNAL_DELIVERY_PATCH``."""
        last = self._recorded_snapshot
        whole = EventBatch(events=events, snapshot=snapshot, notices=notices)
        if self._small_inputs and last is not None:
            change = StatusChange.between(last, snapshot)
            try:
                to_send = await self._record_batch(
                    EventBatch(events=events, status=change, notices=notices)
                )
            except (ActivityError, ApplicationError) as err:
                if not _refused(err, STATUS_ROW_MISSING):
                    raise
                to_send = await self._record_batch(whole)
        else:
            to_send = await self._record_batch(whole)
        if self._small_inputs:
            self._recorded_snapshot = snapshot
        return to_send

    async def _record_batch(self, batch: EventBatch) -> list[str] | None:
        """One batch through ``record_outbox`` (its notices to send) or, before
        ``EXTERNAL_DELIVERY_PATCH``, ``record_events`` (None); see :meth:`_write_batch`."""
        if self._external_only:
            receipt = await self._write_batch(RECORD_OUTBOX, batch)
            return receipt.to_send
        await self._write_batch(RECORD_EVENTS, batch)
        return None

    async def _write_batch(self, ref: ActivityRef[EventBatch, Out], batch: EventBatch) -> Out:
        """With ``LOCAL_FLUSH_PATCH`` a local activity first; a refusal (non-retryable) is
        the caller's to handle, anything else (timeouts, a locked or absent read model)
        goes on through the regular activity, retried by the server for as long as it
        takes. ``record_events`` is idempotent (events by id, the status under its
        ``event_seq`` guard, notices by id), so an attempt that wrote before it timed out
        costs nothing twice."""
        if self._local_flush:
            try:
                return await execute_local(
                    ref,
                    batch,
                    start_to_close_timeout=LOCAL_FLUSH_ATTEMPT,
                    schedule_to_close_timeout=LOCAL_FLUSH_BUDGET,
                    retry_policy=LOCAL_FLUSH_RETRY,
                )
            except (ActivityError, ApplicationError, TemporalTimeout) as err:
                # A local activity that ran out of its budget raises ActivityError(cause=
                # TimeoutError) live but a bare TimeoutError when its marker is replayed
                # (seen at workflow cache 0): both must take the same path, or replay
                # fails the workflow where history has the fallback activity.
                if not isinstance(err, TemporalTimeout) and _non_retryable(err):
                    raise
                workflow.logger.warning("local %s failed (%s): as an activity", ref.name, err)
        return await execute(
            ref,
            batch,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=ACTIVITY_RETRY,
        )

    async def _deliver(self, notices: list[Notice], *, recorded: bool) -> None:
        """``deliver_notices``: with ``SMALL_INPUTS_PATCH``, notices the outbox has just
        recorded go by id (the activity loads them from the inbox); whole if it finds them
        missing, or if they were not recorded first."""
        if self._small_inputs and recorded:
            try:
                await self._deliver_batch(NoticeBatch(notice_ids=[n.notice_id for n in notices]))
            except ActivityError as err:
                if not _refused(err, NOTICES_NOT_RECORDED):
                    raise
                await self._deliver_batch(NoticeBatch(notices=notices))
        else:
            await self._deliver_batch(NoticeBatch(notices=notices))

    async def _deliver_batch(self, batch: NoticeBatch) -> None:
        await execute(
            DELIVER_NOTICES,
            batch,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            # A worker killed mid-delivery is noticed in seconds, not at the timeout.
            heartbeat_timeout=timedelta(seconds=10),
            retry_policy=ACTIVITY_RETRY,
        )

    def _snapshot(self) -> CampaignSnapshot:
        return snapshot_of(self._campaign, workflow.now())

    def _publish(self) -> None:
        """Upsert search attributes when phase, light or overdue change: the fixed ones
        (round, organisation, township, type) only the first time in a run."""
        state, org = self._campaign.state, self._campaign.org
        values = (state.phase.value, state.light.value, state.overdue)
        if values == self._published:
            return
        fixed: list[SearchAttributeUpdate[Any]] = [
            sa.ROUND_ID.value_set(state.round_id),
            sa.ORGANISATION_ID.value_set(org.id),
            sa.TOWNSHIP.value_set(org.township),
            sa.ORG_TYPE.value_set(org.type.value),
        ]
        changed: list[SearchAttributeUpdate[Any]] = [
            sa.PHASE.value_set(state.phase.value),
            sa.LIGHT.value_set(state.light.value),
            sa.OVERDUE.value_set(state.overdue),
        ]
        if self._published is not None and self._small_history:
            moved = zip(changed, self._published, values, strict=True)
            changed = [update for update, old, new in moved if old != new]
            fixed = []
        workflow.upsert_search_attributes([*fixed, *changed])
        self._published = values

    async def _report(self) -> None:
        """Runs from before ``SMALL_HISTORY_PATCH`` tell the round workflow where this
        organisation stands, when that changed."""
        round_id = self._input.round_workflow_id
        progress = progress_of(self._campaign)
        key: tuple[object, ...] = (
            progress.phase,
            progress.light,
            progress.overdue,
            progress.closed,
        )
        if self._lights_patch:  # the round's cohort check needs every settled step
            key = (*key, progress.progress)
        if round_id is None or key == self._reported:
            return
        self._reported = key
        try:
            await workflow.get_external_workflow_handle(round_id).signal("org_progress", progress)
        except Exception:
            workflow.logger.warning("round workflow %s did not take progress", round_id)

    # ----- queries and signals -----------------------------------------------------------
    @workflow.query
    def status(self) -> CampaignStatus:
        """Phase, steps, submissions, deadlines, light, escalations and extensions."""
        # Not a copy: the handler is synchronous, so its result is serialized before the
        # workflow runs again. A query adds nothing to history: replay is unaffected.
        return self._campaign.status()

    @workflow.signal
    def apply_round_extension(self, cmd: RoundExtension) -> None:
        """A county-wide deadline extension from the round workflow (applied once per id)."""
        if self._campaign.apply_round_extension(cmd, workflow.now()):
            self._wake = True

    @workflow.signal
    def apply_calendar(self, cmd: CalendarUpdate) -> None:
        """The county office's calendar update (new holiday data) from the round workflow:
        open deadlines and timers move, completed phases stay (applied once per id)."""
        if self._campaign.apply_calendar(cmd, workflow.now()):
            self._wake = True

    @workflow.signal
    def apply_plan_version(self, cmd: PlanVersionChange) -> None:
        """A new version of the round's plan from the round workflow: open deadlines and
        timers move, completed phases stay, a phase already climbing its ladder finishes on
        it (``domain.plan_version``; applied once per ``version_id``). A new handler: runs
        recorded before it never received it and replay unchanged."""
        if apply_plan_version(self._campaign, cmd, workflow.now()):
            self._wake = True

    @workflow.signal
    def set_behind_schedule(self, cmd: BehindSchedule) -> None:
        """The round's cohort check: behind the schedule and the cohort (yellow), or not."""
        if self._campaign.set_behind_schedule(cmd, workflow.now()):
            self._wake = True

    @workflow.signal
    def close_round(self, cmd: CloseRound) -> None:
        """The round is closed: stop where we are."""
        self._campaign.close(cmd, workflow.now())
        self._wake = True

    # ----- updates: human actions --------------------------------------------------------
    def _act(
        self,
        action: Callable[[], object],
        *,
        step_id: str | None = None,
        extension_id: str | None = None,
    ) -> ActionResult:
        """Apply an action and return the small result (never the whole status)."""
        acted_in = self._campaign.state.phase
        try:
            returned = action()
        except DomainError as exc:  # a race between validator and handler; report, don't crash
            raise refusal(exc) from None
        self._wake = True
        if isinstance(returned, str):  # request_extension returns the new request's id
            extension_id = returned
        state = self._campaign.state
        step = None
        if step_id is not None and acted_in is not Phase.COMPLETED:
            step = state.phase_state(acted_in).step(step_id)
        return ActionResult(
            phase=state.phase,
            light=state.light,
            step_id=step_id,
            step_status=step.status if step is not None else None,
            extension_id=extension_id,
            version=state.event_seq,
        )

    @workflow.update
    def submit_evidence(self, cmd: SubmitEvidence) -> ActionResult:
        """The secretary submits evidence for a step."""
        return self._act(lambda: self._campaign.submit(cmd, workflow.now()), step_id=cmd.step_id)

    @submit_evidence.validator
    def _validate_submit(self, cmd: SubmitEvidence) -> None:
        checked(lambda: self._campaign.check_submit(cmd, workflow.now()))
        checked(lambda: self._campaign.check_visible_text(cmd))
        checked(lambda: self._campaign.check_state_budget(cmd))

    @workflow.update
    def decide_submission(self, cmd: DecideSubmission) -> ActionResult:
        """A supervisor accepts or returns (退回) a submission."""
        return self._act(lambda: self._campaign.decide(cmd, workflow.now()), step_id=cmd.step_id)

    @decide_submission.validator
    def _validate_decide(self, cmd: DecideSubmission) -> None:
        checked(lambda: self._campaign.check_decide(cmd))
        checked(lambda: self._campaign.check_independent_decision(cmd))
        checked(lambda: self._campaign.check_visible_reason(cmd))

    @workflow.update
    def waive_step(self, cmd: WaiveStep) -> ActionResult:
        """A supervisor waives a step with a reason."""
        return self._act(lambda: self._campaign.waive(cmd, workflow.now()), step_id=cmd.step_id)

    @waive_step.validator
    def _validate_waive(self, cmd: WaiveStep) -> None:
        checked(lambda: self._campaign.check_waive(cmd))
        checked(lambda: self._campaign.check_visible_reason(cmd))

    @workflow.update
    def request_extension(self, cmd: RequestExtension) -> ActionResult:
        """The secretary asks for a later deadline."""
        return self._act(lambda: self._campaign.request_extension(cmd, workflow.now()))

    @request_extension.validator
    def _validate_request_extension(self, cmd: RequestExtension) -> None:
        checked(lambda: self._campaign.check_request_extension(cmd, workflow.now()))
        checked(lambda: self._campaign.check_extension_reach(cmd))
        checked(lambda: self._campaign.check_state_budget(cmd))
        checked(lambda: self._campaign.check_visible_reason(cmd))

    @workflow.update
    def decide_extension(self, cmd: DecideExtension) -> ActionResult:
        """A supervisor approves (the deadline moves) or rejects an extension."""
        return self._act(
            lambda: self._campaign.decide_extension(cmd, workflow.now()),
            extension_id=cmd.extension_id,
        )

    @decide_extension.validator
    def _validate_decide_extension(self, cmd: DecideExtension) -> None:
        checked(lambda: self._campaign.check_decide_extension(cmd, workflow.now()))
        checked(lambda: self._campaign.check_extension_reach(cmd))
        checked(lambda: self._campaign.check_visible_reason(cmd))

    @workflow.update
    def acknowledge_escalation(self, cmd: AcknowledgeEscalation) -> ActionResult:
        """The addressee signs for a rung's notice (签收)."""
        return self._act(lambda: self._campaign.acknowledge(cmd, workflow.now()))

    @acknowledge_escalation.validator
    def _validate_acknowledge(self, cmd: AcknowledgeEscalation) -> None:
        checked(lambda: self._campaign.check_acknowledge(cmd))

    @workflow.update
    def report_rectification(self, cmd: ReportRectification) -> ActionResult:
        """The secretary reports on a rectification order."""
        return self._act(lambda: self._campaign.report_rectification(cmd, workflow.now()))

    @report_rectification.validator
    def _validate_report(self, cmd: ReportRectification) -> None:
        checked(lambda: self._campaign.check_report_rectification(cmd))
        checked(lambda: self._campaign.check_visible_text(cmd))
        checked(lambda: self._campaign.check_state_budget(cmd))

    @workflow.update
    def recheck_rectification(self, cmd: RecheckRectification) -> ActionResult:
        """A supervisor re-checks the rectification."""
        return self._act(lambda: self._campaign.recheck(cmd, workflow.now()))

    @recheck_rectification.validator
    def _validate_recheck(self, cmd: RecheckRectification) -> None:
        checked(lambda: self._campaign.check_recheck(cmd))
        checked(lambda: self._campaign.check_visible_reason(cmd))

    @workflow.update
    def order_rectification(self, cmd: OrderRectification) -> ActionResult:
        """A 整改通知 from outside the ladder (a 群众评议 below the plan's threshold);
        applied once per source and reference."""
        return self._act(lambda: self._campaign.order_rectification(cmd, workflow.now()))

    @order_rectification.validator
    def _validate_order_rectification(self, cmd: OrderRectification) -> None:
        checked(lambda: self._campaign.check_order_rectification(cmd))
        checked(lambda: self._campaign.check_order_phase(cmd))
        checked(lambda: self._campaign.check_visible_reason(cmd))
