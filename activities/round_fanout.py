"""The bounded round's fan-out: start its organisation workflows from the roster, send them
round-wide signals, and run the cohort check, all without a list of ids in the workflow.

The set of organisations is the round's roster scope (the roster snapshot filtered by the
round plan's scope), in roster order: the kick-off starts positions ``[0, total)`` in that
order, so positions ``[0, offset)`` are exactly the organisations started so far, including
those that have not yet written a read-model row (which a fan-out over ``campaign_status``
would miss). Every activity checkpoints its position in heartbeat details, so a retry
resumes where the last attempt got to; organisations dedupe what they receive (extension ids,
calendar update ids, unchanged verdicts), so a page signalled twice changes nothing.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.db import upsert_insert
from activities.roster_files import read_roster_file
from activities.round_contracts import (
    CohortCheck,
    CohortReport,
    FanOutReport,
    RoundCheckResult,
    RoundFanOut,
    RoundScope,
    RoundSignal,
    RoundSignalKind,
    StartRange,
    StartRangeReport,
)
from activities.round_progress import PlanStore, RoundReading, read_round_check
from activities.tables import CampaignStatusRow, RoundRow, RoundVerdictRow
from activities.tables.round_state import round_verdicts
from domain.cohort import BehindSchedule, CohortMember, behind_schedule
from domain.organisation import DEFAULT_COUNTY, Organisation
from domain.phases import Phase
from domain.schedule import build_org_plan
from workflows import search_attributes as sa
from workflows.contracts import OrganisationCampaignInput
from workflows.ids import organisation_workflow_id

log = structlog.get_logger(__name__)
# Heartbeats carry the checkpoint; more often than this only costs RPCs.
_HEARTBEAT_EVERY = 1.0


class _Window:
    """Runs one coroutine per position with at most ``size`` in flight, and knows the
    contiguous prefix of positions finished (the checkpoint a retry may resume from)."""

    def __init__(self, start: int, size: int) -> None:
        self._limiter = asyncio.Semaphore(size)
        self._tasks: set[asyncio.Task[None]] = set()
        self._done: set[int] = set()
        self._error: BaseException | None = None
        self.prefix = start
        self._beat = 0.0

    async def submit(self, position: int, work: Callable[[], Awaitable[None]]) -> None:
        """Wait for a free slot, then run ``work`` in the background; a failure of earlier
        work stops the submitting (raised here or by :meth:`drain`)."""
        await self._limiter.acquire()
        if self._error is not None:
            self._limiter.release()
            await self.drain()

        async def run() -> None:
            try:
                await work()
            except BaseException as exc:  # kept for drain(): the activity fails and retries
                self._error = self._error or exc
                return
            finally:
                self._limiter.release()
            self._done.add(position)
            while self.prefix in self._done:
                self._done.discard(self.prefix)
                self.prefix += 1
            self._heartbeat()

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _heartbeat(self, force: bool = False) -> None:
        now = time.monotonic()
        if activity.in_activity() and (force or now - self._beat >= _HEARTBEAT_EVERY):
            self._beat = now
            activity.heartbeat(self.prefix)

    async def drain(self) -> None:
        """Wait for everything in flight; the first failure is raised (after a heartbeat
        of the prefix that did finish)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks))
        self._heartbeat(force=True)
        if self._error is not None:
            raise self._error


def _resume_from(default: int) -> int:
    """The checkpoint of the previous attempt, if any."""
    details = activity.info().heartbeat_details if activity.in_activity() else ()
    if details:
        try:
            return max(default, int(details[0]))
        except (TypeError, ValueError):
            return default
    return default


class RoundFanOutActivities:
    """Starts and signals a round's organisation workflows, and runs its cohort check."""

    def __init__(
        self,
        client: Client,
        task_queue: str,
        sessions: sessionmaker[Session],
        plans: PlanStore,
        *,
        early_warnings: Callable[[str, datetime], Awaitable[Any]] | None = None,
    ) -> None:
        """``early_warnings`` (round id, the check's ``as_of``): the 预警 of the round's
        daily check (``chuangzheng.services.forecast_warning``), wired by ``worker.py``."""
        self._client = client
        self._early_warnings = early_warnings
        self._task_queue = task_queue
        self._sessions = sessions
        self._plans = plans
        self._rosters: dict[tuple[str, float, str], list[Organisation]] = {}
        self._lock = threading.Lock()

    # ----- the roster scope ----------------------------------------------------------------
    def _in_scope(self, scope: RoundScope) -> list[Organisation]:
        """The round's organisations in roster order (cached per file version)."""
        plan = self._plans.get(scope.plan_ref)
        round_scope = plan.round(scope.round_plan_id).scope
        path = Path(scope.roster_source)
        key = (str(path), path.stat().st_mtime, f"{scope.plan_ref}/{scope.round_plan_id}")
        with self._lock:
            cached = self._rosters.get(key)
        if cached is None:
            roster = read_roster_file(path)
            cached = roster.in_scope(types=round_scope.types, townships=round_scope.townships)
            with self._lock:
                if len(self._rosters) > 16:
                    self._rosters.clear()
                self._rosters[key] = cached
        return cached

    def _county(self, round_id: str) -> str:
        """The round's county (the organisations' ``CzCounty`` search attribute); the
        default county for a round the read model does not know (a workflow test's)."""
        with self._sessions() as session:
            county = session.scalar(select(RoundRow.county).where(RoundRow.round_id == round_id))
        return county or DEFAULT_COUNTY

    async def _signal(self, workflow_id: str, signal: RoundSignal) -> bool:
        """Signal one organisation; False if its workflow is not (or no longer) running."""
        handle = self._client.get_workflow_handle(workflow_id)
        try:
            await handle.signal(signal.kind.value, signal.payload)
        except RPCError as exc:
            if exc.status is not RPCStatusCode.NOT_FOUND:
                raise
            return False
        return True

    # ----- kick-off ------------------------------------------------------------------------
    @activity.defn(name="start_round_organisations")
    async def start_round_organisations(self, batch: StartRange) -> StartRangeReport:
        """Start the organisation workflows of one range of the roster scope.

        Pipelined: the organisations' plans for the next page are built while the previous
        page's start RPCs are in flight (a sliding window of ``concurrency`` RPCs, not
        batches that wait for their slowest member). Idempotent: ``USE_EXISTING`` finds a
        running workflow, ``REJECT_DUPLICATE`` refuses to start a finished one again.
        """
        scope = batch.scope
        plan = await asyncio.to_thread(self._plans.get, scope.plan_ref)
        round_plan = plan.round(scope.round_plan_id)
        in_scope = await asyncio.to_thread(self._in_scope, scope)
        county = await asyncio.to_thread(self._county, scope.round_id)
        total = len(in_scope)
        end = min(total, batch.offset + batch.limit)
        window = _Window(_resume_from(batch.offset), batch.concurrency)
        counts = {"started": 0, "existing": 0}

        async def start_one(org: Organisation, org_input: OrganisationCampaignInput) -> None:
            workflow_id = organisation_workflow_id(scope.round_id, org.id)
            try:
                handle = await self._client.start_workflow(
                    "OrganisationCampaignWorkflow",
                    org_input,
                    id=workflow_id,
                    task_queue=self._task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    search_attributes=TypedSearchAttributes(
                        [
                            SearchAttributePair(sa.ROUND_ID, scope.round_id),
                            SearchAttributePair(sa.ORGANISATION_ID, org.id),
                            SearchAttributePair(sa.TOWNSHIP, org.township),
                            SearchAttributePair(sa.ORG_TYPE, org.type.value),
                            SearchAttributePair(sa.COUNTY, county),
                        ]
                    ),
                )
            except WorkflowAlreadyStartedError:
                counts["existing"] += 1  # finished already: it stays the only one
                return
            response = getattr(handle, "_start_workflow_response", None)
            counts["started" if getattr(response, "started", True) else "existing"] += 1
            # Round-wide actions issued before this organisation started (it dedupes them).
            for signal in batch.signals:
                await self._signal(workflow_id, signal)

        position = window.prefix
        while position < end:
            page = in_scope[position : min(end, position + batch.page_size)]
            # Building plans is CPU work: off the event loop, while the window's RPCs run.
            inputs = await asyncio.to_thread(
                lambda page=page: [  # type: ignore[misc]
                    OrganisationCampaignInput(
                        plan=build_org_plan(
                            plan, round_plan, batch.schedule, org, round_id=scope.round_id
                        ),
                        round_workflow_id=scope.round_workflow_id,
                        history_limit=batch.history_limit,
                    )
                    for org in page
                ]
            )
            for index, (org, org_input) in enumerate(zip(page, inputs, strict=True)):
                await window.submit(
                    position + index,
                    lambda org=org, org_input=org_input: start_one(org, org_input),  # type: ignore[misc]
                )
            position += len(page)
        await window.drain()
        log.info(
            "organisation workflows started",
            round_id=scope.round_id,
            offset=batch.offset,
            next_offset=end,
            total=total,
            **counts,
        )
        return StartRangeReport(
            started=counts["started"], existing=counts["existing"], next_offset=end, total=total
        )

    # ----- round-wide actions --------------------------------------------------------------
    @activity.defn(name="fan_out_round_signal")
    async def fan_out_round_signal(self, fan_out: RoundFanOut) -> FanOutReport:
        """Send one signal to every started organisation of the round (positions
        ``[0, upto)`` of the roster scope), resuming at the last checkpoint on a retry."""
        scope = fan_out.scope
        in_scope = await asyncio.to_thread(self._in_scope, scope)
        end = min(fan_out.upto, len(in_scope))
        window = _Window(_resume_from(0), fan_out.concurrency)
        counts = {"signalled": 0, "missing": 0}

        async def signal_one(org: Organisation) -> None:
            workflow_id = organisation_workflow_id(scope.round_id, org.id)
            counts[
                "signalled" if await self._signal(workflow_id, fan_out.signal) else "missing"
            ] += 1

        for position in range(window.prefix, end):
            org = in_scope[position]
            await window.submit(position, lambda org=org: signal_one(org))  # type: ignore[misc]
        await window.drain()
        log.info(
            "round signal fanned out",
            round_id=scope.round_id,
            signal=fan_out.signal.kind.value,
            upto=end,
            **counts,
        )
        return FanOutReport(**counts)

    # ----- the cohort check ------------------------------------------------------------------
    def _cohort_inputs(self, round_id: str) -> tuple[list[CohortMember], dict[str, bool]]:
        with self._sessions() as session:
            status = CampaignStatusRow
            members = [
                CohortMember(
                    org_id=org_id,
                    township=township,
                    system=system,
                    phase=Phase(phase),
                    progress=min(1.0, max(0.0, progress or 0.0)),
                    closed=closed,
                )
                for org_id, township, system, phase, progress, closed in session.execute(
                    select(
                        status.org_id,
                        status.township,
                        status.system,
                        status.phase,
                        status.progress,
                        status.closed,
                    ).where(status.round_id == round_id)
                )
            ]
            verdicts = dict(
                session.execute(
                    select(RoundVerdictRow.org_id, RoundVerdictRow.behind).where(
                        RoundVerdictRow.round_id == round_id
                    )
                ).all()
            )
        return members, verdicts

    def _store_verdicts(self, check: CohortCheck, changed: Sequence[tuple[str, bool]]) -> None:
        if not changed:
            return
        with self._sessions.begin() as session:
            stmt = upsert_insert(session, round_verdicts).values(
                [
                    {"round_id": check.round_id, "org_id": o, "behind": b, "as_of": check.as_of}
                    for o, b in changed
                ]
            )
            session.execute(
                stmt.on_conflict_do_update(
                    index_elements=["round_id", "org_id"],
                    set_={"behind": stmt.excluded.behind, "as_of": stmt.excluded.as_of},
                )
            )

    @activity.defn(name="check_round_cohorts")
    async def check_round_cohorts(self, check: CohortCheck) -> CohortReport:
        """Who is behind the pro-rata schedule and their cohort (yellow), from the read
        model; signal ``set_behind_schedule`` only to those whose stored verdict changed,
        then store the new verdicts (a retry re-sends the same verdicts, which organisations
        ignore). Kept for rounds recorded before ``check_round``."""
        members, verdicts = await asyncio.to_thread(self._cohort_inputs, check.round_id)
        return await self._settle_verdicts(check, members, verdicts)

    @activity.defn(name="check_round")
    async def check_round(self, check: CohortCheck) -> RoundCheckResult:
        """The round's whole check in one activity and one read of the read model
        (``read_round_check``): the cohort check as ``check_round_cohorts`` runs it, and the
        aggregate from the same rows, its ``behind`` the count just stored."""

        def read() -> RoundReading:
            with self._sessions() as session:
                return read_round_check(session, check.round_id, as_of=datetime.now(UTC))

        reading = await asyncio.to_thread(read)
        report = await self._settle_verdicts(check, reading.members, reading.verdicts)
        aggregate = reading.aggregate.model_copy(update={"behind": report.behind})
        if self._early_warnings is not None:
            # The 预警 of open phases above the county office's threshold, once each (the
            # notice inbox is the ledger, so a retry sends nothing more).
            # Reading a large round takes a while: heartbeat meanwhile.
            warning = asyncio.ensure_future(self._early_warnings(check.round_id, check.as_of))
            while not warning.done():
                await asyncio.wait({warning}, timeout=_HEARTBEAT_EVERY)
                if activity.in_activity():
                    activity.heartbeat()
            await warning
        return RoundCheckResult(aggregate=aggregate, cohorts=report)

    async def _settle_verdicts(
        self, check: CohortCheck, members: Sequence[CohortMember], verdicts: dict[str, bool]
    ) -> CohortReport:
        """Compare, signal the changed verdicts, store them; the counts."""
        behind = behind_schedule(members, check.pro_rata, tolerance=check.tolerance)
        was_behind = {org_id for org_id, b in verdicts.items() if b}
        changed = sorted(
            [(o, True) for o in behind - was_behind] + [(o, False) for o in was_behind - behind]
        )
        window = _Window(0, check.concurrency)
        for position, (org_id, verdict) in enumerate(changed):
            signal = RoundSignal(
                kind=RoundSignalKind.SET_BEHIND_SCHEDULE,
                payload=BehindSchedule(behind=verdict, as_of=check.as_of).model_dump(mode="json"),
            )
            workflow_id = organisation_workflow_id(check.round_id, org_id)
            await window.submit(
                position,
                lambda w=workflow_id, s=signal: self._signal_ignoring_result(w, s),  # type: ignore[misc]
            )
        await window.drain()
        await asyncio.to_thread(self._store_verdicts, check, changed)
        report = CohortReport(
            behind=len(behind),
            newly_behind=len(behind - was_behind),
            no_longer_behind=len(was_behind - behind),
        )
        log.info("cohort check", round_id=check.round_id, **report.model_dump())
        return report

    async def _signal_ignoring_result(self, workflow_id: str, signal: RoundSignal) -> None:
        await self._signal(workflow_id, signal)
