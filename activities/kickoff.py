"""Activities that fan a round out: read the roster, start and signal organisation workflows.

Starting uses ``USE_EXISTING`` on conflict and ``REJECT_DUPLICATE`` on reuse, so a retried
batch, or a round kicked off twice, never makes a second workflow for an organisation.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.contracts import (
    RosterPage,
    RosterPageRequest,
    SignalBatch,
    SignalReport,
    StartBatch,
    StartReport,
)
from activities.roster_files import read_roster_file
from activities.tables import RoundRow
from domain.organisation import DEFAULT_COUNTY, Roster
from domain.schedule import build_org_plan
from workflows import search_attributes as sa
from workflows.contracts import OrganisationCampaignInput
from workflows.ids import organisation_workflow_id

log = structlog.get_logger(__name__)
# Concurrent start/signal RPCs per batch: enough to keep a batch quick, gentle on the server.
_CONCURRENCY = 20


class RosterActivities:
    """Reads the roster a round covers, page by page."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[float, Roster]] = {}

    def _roster(self, source: str) -> Roster:
        path = Path(source)
        mtime = path.stat().st_mtime
        cached = self._cache.get(source)
        if cached is None or cached[0] != mtime:
            cached = (mtime, read_roster_file(path))
            self._cache[source] = cached
        return cached[1]

    @activity.defn(name="load_roster_page")
    async def load_roster_page(self, request: RosterPageRequest) -> RosterPage:
        """The organisations in scope from ``offset``, at most ``limit`` of them."""
        roster = await asyncio.to_thread(self._roster, request.source)
        in_scope = roster.in_scope(types=request.types, townships=request.townships)
        page = in_scope[request.offset : request.offset + request.limit]
        return RosterPage(organisations=page, total=len(in_scope))


class KickoffActivities:
    """Starts and signals organisation workflows through a Temporal client (for the legacy
    round, ``workflows.round_legacy``); the read model tells each round's county."""

    def __init__(
        self, client: Client, task_queue: str, sessions: sessionmaker[Session] | None = None
    ) -> None:
        self._client = client
        self._task_queue = task_queue
        self._sessions = sessions

    def _county(self, round_id: str) -> str:
        """The round's county (the organisations' ``CzCounty`` search attribute): set here,
        at start, so the frozen legacy round workflow needs no change; the default county
        for a round the read model does not know (or without a read model)."""
        if self._sessions is None:
            return DEFAULT_COUNTY
        with self._sessions() as session:
            county = session.scalar(select(RoundRow.county).where(RoundRow.round_id == round_id))
        return county or DEFAULT_COUNTY

    @activity.defn(name="start_organisation_workflows")
    async def start_organisation_workflows(self, batch: StartBatch) -> StartReport:
        """Start a workflow per organisation unless one already exists for the round."""
        round_plan = batch.plan.round(batch.round_plan_id)
        county = await asyncio.to_thread(self._county, batch.round_id)
        limiter = asyncio.Semaphore(_CONCURRENCY)
        started = 0

        async def start_one(index: int) -> str:
            nonlocal started
            org = batch.organisations[index]
            workflow_id = organisation_workflow_id(batch.round_id, org.id)
            plan = build_org_plan(
                batch.plan, round_plan, batch.schedule, org, round_id=batch.round_id
            )
            async with limiter:
                try:
                    handle = await self._client.start_workflow(
                        "OrganisationCampaignWorkflow",
                        OrganisationCampaignInput(
                            plan=plan,
                            round_workflow_id=batch.round_workflow_id,
                            history_limit=batch.history_limit,
                            # The legacy round, the only caller, counts these reports.
                            report_to_round=True,
                        ),
                        id=workflow_id,
                        task_queue=self._task_queue,
                        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                        search_attributes=TypedSearchAttributes(
                            [
                                SearchAttributePair(sa.ROUND_ID, batch.round_id),
                                SearchAttributePair(sa.ORGANISATION_ID, org.id),
                                SearchAttributePair(sa.TOWNSHIP, org.township),
                                SearchAttributePair(sa.ORG_TYPE, org.type.value),
                                SearchAttributePair(sa.COUNTY, county),
                            ]
                        ),
                    )
                except WorkflowAlreadyStartedError:
                    pass  # finished already: REJECT_DUPLICATE keeps it the only one
                else:
                    # The server says whether this call started the run or found it running.
                    response = getattr(handle, "_start_workflow_response", None)
                    if response is None or getattr(response, "started", True):
                        started += 1
            activity.heartbeat(index)
            return workflow_id

        ids = await asyncio.gather(*(start_one(i) for i in range(len(batch.organisations))))
        log.info("organisation workflows started", round_id=batch.round_id, count=len(ids))
        return StartReport(started=started, existing=len(ids) - started, workflow_ids=list(ids))

    @activity.defn(name="signal_organisations")
    async def signal_organisations(self, batch: SignalBatch) -> SignalReport:
        """Signal every workflow in the batch; finished ones are counted, not retried."""
        limiter = asyncio.Semaphore(_CONCURRENCY)
        finished = 0

        async def signal_one(workflow_id: str) -> None:
            nonlocal finished
            handle: WorkflowHandle[object, object] = self._client.get_workflow_handle(workflow_id)
            async with limiter:
                try:
                    await handle.signal(batch.signal, batch.payload)
                except RPCError as exc:
                    if exc.status is not RPCStatusCode.NOT_FOUND:
                        raise
                    finished += 1
            activity.heartbeat(workflow_id)

        await asyncio.gather(*(signal_one(w) for w in batch.workflow_ids))
        return SignalReport(signalled=len(batch.workflow_ids) - finished, finished=finished)
