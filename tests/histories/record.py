"""Record histories of the short workflows for the replay test (tests/workflows/test_replay.py).

Run from the repository root::

    .venv/bin/python -m tests.histories.record            # record the histories that are missing
    .venv/bin/python -m tests.histories.record circular   # only these (missing) ones
    .venv/bin/python -m tests.histories.record --list     # what can be recorded

Each scenario runs the project's real worker (``worker.build_worker``: every workflow and
activity, the sandbox runner, the data converter) on the time-skipping test server with a
throw-away SQLite read model, and saves ``handle.fetch_history()`` as
``tests/histories/<name>.json``. The what-if's ``WhatIfBatch`` runs on a server and worker
of its own, as a rehearsal does (``what_if_batch``: the scenario gives its history).

A committed history stands for workflows already running in production: it is never
re-recorded to make a change pass (guard the change with ``workflow.patched``). An existing
file is therefore left alone unless ``--overwrite`` is given; a new behaviour gets a new
scenario and a new file. The organisation and round workflows' histories are recorded by
their workflow tests (``CZ_RECORD_HISTORIES=1``, see tests/workflows/support.py).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import WorkflowHandle, WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from activities.db import create_schema, make_engine, session_factory
from activities.evaluations import cast_ballot, register_evaluation, token_for
from activities.tables import CampaignStatusRow, OrganisationRow
from chuangzheng.services.what_if import check_change, read_live
from chuangzheng.simulation.live_state import draw_paces
from chuangzheng.simulation.what_if_run import rehearse
from chuangzheng.temporal_server import start_time_skipping_env
from domain.calendar import Span, local_date
from domain.evaluation import EvaluationTarget, RaterKind, Rating
from domain.organisation import Organisation, OrgType, Role, System
from domain.phases import WORKING_PHASES, Phase
from domain.schedule import resolve_schedule
from domain.state import Actor
from domain.what_if import ChangeKind, DraftChange
from tests.workflows.support import (
    HISTORIES,
    do_current_phase,
    org_plan,
    seed_plan,
    start_campaign,
    status,
)
from worker import build_worker
from workflows.digest import CircularInput, CircularWorkflow, DailyDigestInput, DailyDigestWorkflow
from workflows.evaluation import EvaluationWorkflow, evaluation_workflow_id
from workflows.evaluation_contracts import CloseNow, EvaluationInput
from workflows.ids import organisation_workflow_id
from workflows.reminders import (
    SupervisorReminder,
    SupervisorReminderWorkflow,
    reminder_workflow_id,
)

SECRET = "history-recording-secret"
TOWNSHIP = Actor(user="tw-qingshi", name="青石镇党委", role=Role.TOWNSHIP)
ROUND = "r-history"

AnyHandle = WorkflowHandle[Any, Any]


@dataclass
class Bench:
    """What every scenario gets: the server, the worker's queue, its read model and files."""

    env: WorkflowEnvironment
    task_queue: str
    sessions: sessionmaker[Session]
    data_dir: Path
    laggard: Organisation | None = None  # the overdue organisation of the shared round
    round_starts_at: datetime | None = None  # when the shared round's plans start

    async def now(self) -> datetime:
        return await self.env.get_current_time()


# ----- 群众评议 ------------------------------------------------------------------------------


def _org(org_id: str, township: str = "青石镇", instructor: str = "王指导") -> Organisation:
    return Organisation(
        id=org_id,
        name=f"{township}{org_id[-2:]}党支部",
        type=OrgType.RURAL,
        township=township,
        system=System.RURAL,
        instructor=instructor,
        secretary=f"书记{org_id[-2:]}",
        member_count=12,
    )


def _ratings(rating: Rating) -> dict[str, str]:
    return {item.id: rating.value for item in seed_plan().evaluation.organisation.items}


async def _evaluation(
    bench: Bench, org_id: str, votes: list[Rating]
) -> tuple[EvaluationInput, AnyHandle]:
    """What the API does (an organisation's campaign runs; the row and tokens, then the
    workflow, which is asked for its window as the API does); ``votes`` are cast."""
    round_id = f"r-history-eval-{uuid.uuid4().hex[:6]}"
    org = _org(org_id)
    campaign = await start_campaign(
        bench.env.client, bench.task_queue, org_plan(org, await bench.now(), round_id=round_id)
    )
    await status(campaign)
    plan = seed_plan()
    evaluation = EvaluationInput(
        evaluation_id=f"ev-{uuid.uuid4().hex[:12]}",
        round_id=round_id,
        org_id=org.id,
        org_workflow_id=organisation_workflow_id(round_id, org.id),
        target=EvaluationTarget.ORGANISATION,
        subject=org.name,
        opened_by=TOWNSHIP,
        rules=plan.evaluation,
        calendar=plan.calendar,
    )
    workflow_id = evaluation_workflow_id(round_id, org.id, "organisation", 1)
    now = await bench.now()
    with bench.sessions.begin() as session:
        register_evaluation(
            session, SECRET, evaluation=evaluation, seq=1, workflow_id=workflow_id,
            raters={RaterKind.MEMBER: 8, RaterKind.NON_MEMBER: 4}, now=now,
        )  # fmt: skip
    handle = await bench.env.client.start_workflow(
        EvaluationWorkflow.run, evaluation, id=workflow_id, task_queue=bench.task_queue
    )
    await handle.execute_update(EvaluationWorkflow.opened)
    for index, rating in enumerate(votes):
        token = token_for(SECRET, evaluation.evaluation_id, index)
        cast_ballot(bench.sessions, token, _ratings(rating), now)
    return evaluation, handle


async def evaluation_rectification(bench: Bench) -> AnyHandle:
    """9 of 12 vote, 44 % satisfied: closed by the durable timer, published, and a 整改通知
    ordered in the organisation's campaign workflow."""
    votes = [Rating.SATISFIED] * 4 + [Rating.BASICALLY_SATISFIED] * 5
    _, handle = await _evaluation(bench, "org-hist-e1", votes)
    await handle.result()
    return handle


async def evaluation_closed_early(bench: Bench) -> AnyHandle:
    """10 of 12 satisfied; the township closes the ballot early (``close_now``)."""
    _, handle = await _evaluation(bench, "org-hist-e2", [Rating.SATISFIED] * 10)
    await handle.execute_update(EvaluationWorkflow.close_now, CloseNow(actor=TOWNSHIP))
    await handle.result()
    return handle


# ----- digest, circular and reminder over one round with a laggard --------------------------


def _store_roster(sessions: sessionmaker[Session], orgs: list[Organisation]) -> None:
    """What the roster import would have stored (the digest reads instructors from it)."""
    with sessions.begin() as session:
        for number, org in enumerate(orgs, start=1):
            session.merge(
                OrganisationRow(
                    org_id=org.id,
                    name=org.name,
                    org_type=org.type.value,
                    township=org.township,
                    system=org.system,
                    member_count=org.member_count,
                    secretary=org.secretary,
                    instructor=org.instructor,
                    active=True,
                    row_number=number,
                    updated_at=datetime.now(UTC),
                )
            )


async def _round_with_a_laggard(bench: Bench) -> Organisation:
    """Two organisations in ``ROUND``: one does every phase on time, one lets the first
    deadline pass (red in the read model two working days later)."""
    if bench.laggard is not None:
        return bench.laggard
    diligent, laggard = _org("hist-a1"), _org("hist-b1", "白沙镇", "张指导")
    _store_roster(bench.sessions, [diligent, laggard])
    plans = {}
    bench.round_starts_at = await bench.now()
    for org in (diligent, laggard):
        plan = org_plan(org, bench.round_starts_at, round_id=ROUND)
        plans[org.id] = plan
        handle = await start_campaign(bench.env.client, bench.task_queue, plan)
        if org is diligent:
            for _phase in WORKING_PHASES:
                await do_current_phase(handle, plan, await bench.now())
        else:
            await status(handle)
    plan = plans[laggard.id]
    deadline = plan.phase(WORKING_PHASES[0]).deadline
    late = plan.calendar.build().after(deadline, Span(working_days=2))
    await bench.env.sleep(late - await bench.now())
    for _ in range(400):  # the projection is written by an activity: wait in real time
        with bench.sessions() as session:
            red = session.scalar(
                select(func.count()).where(
                    CampaignStatusRow.round_id == ROUND, CampaignStatusRow.light == "red"
                )
            )
        if red == 1:
            bench.laggard = laggard
            return laggard
        await asyncio.sleep(0.05)
    raise RuntimeError("the laggard never turned red in the read model")


async def daily_digest(bench: Bench) -> AnyHandle:
    """The day's supervisor digests of a round with one laggard."""
    await _round_with_a_laggard(bench)
    handle = await bench.env.client.start_workflow(
        DailyDigestWorkflow.run,
        DailyDigestInput(round_id=ROUND),
        id=f"digest/{ROUND}-{uuid.uuid4().hex[:8]}",
        task_queue=bench.task_queue,
    )
    await handle.result()
    return handle


async def circular(bench: Bench) -> AnyHandle:
    """The round's circular (通报): files written, county and townships notified."""
    await _round_with_a_laggard(bench)
    handle = await bench.env.client.start_workflow(
        CircularWorkflow.run,
        CircularInput(round_id=ROUND),
        id=f"circular/{ROUND}-{uuid.uuid4().hex[:8]}",
        task_queue=bench.task_queue,
    )
    await handle.result()
    return handle


async def supervisor_reminder(bench: Bench) -> AnyHandle:
    """A township's 催办 to the laggard's secretary (built as the dashboard builds it)."""
    laggard = await _round_with_a_laggard(bench)
    with bench.sessions() as session:
        row = session.get(CampaignStatusRow, (ROUND, laggard.id))
        assert row is not None
        phase, deadline = Phase(row.phase), row.deadline
    day = local_date(await bench.now())
    reminder = SupervisorReminder(
        round_id=ROUND,
        org_id=laggard.id,
        org_name=laggard.name,
        secretary=laggard.secretary,
        phase=phase,
        deadline=deadline,
        day=day,
        actor=TOWNSHIP,
    )
    handle = await bench.env.client.start_workflow(
        SupervisorReminderWorkflow.run,
        reminder,
        id=reminder_workflow_id(ROUND, laggard.id, day),
        task_queue=bench.task_queue,
    )
    await handle.result()
    return handle


async def what_if_batch(bench: Bench) -> WorkflowHistory:
    """A what-if over the shared round, read from its read model as the service reads a live
    county (one organisation done, one two working days late in 动员部署): 动员部署 extended
    by five working days for everyone, both arms on a throw-away time-skipping server of
    their own with the what-if's worker (``what_if_run.rehearse``); the draft arm's batch."""
    await _round_with_a_laggard(bench)
    assert bench.round_starts_at is not None
    plan = seed_plan()
    round_plan = plan.round("round-1")
    schedule = resolve_schedule(plan, round_plan, bench.round_starts_at, rebased=True)
    now = await bench.now()
    with bench.sessions() as session:
        live = read_live(
            session,
            ROUND,
            round_name="历史记录轮次",
            plan=plan,
            round_plan_id=round_plan.id,
            schedule=schedule,
            now=now,
        )
    change = DraftChange(
        kind=ChangeKind.EXTEND_PHASE,
        phase=Phase.MOBILISATION,
        by=Span(working_days=5),
        reason="记录推演历史",
    )
    # As rehearse_live does: the draft checked, paces from the mix (no forecast model kept).
    check_change(live, change)
    paces, _ = draw_paces(live.starts, {}, now=now, windows=live.windows, seed=1)
    env = await start_time_skipping_env()
    try:
        outcome = await rehearse(
            round_id=ROUND,
            plan=plan,
            round_plan_id=round_plan.id,
            schedule=schedule,
            change=change,
            starts_at=now,
            starts=live.starts,
            paces=paces,
            env=env,
        )
        assert outcome.batches == 2, outcome
        changed = env.client.get_workflow_handle(outcome.workflow_ids[-1])
        return await changed.fetch_history()
    finally:
        await env.shutdown()


# Name (the file's stem) -> scenario. A new behaviour worth guarding gets a new entry here.
SCENARIOS: dict[str, Callable[[Bench], Awaitable[AnyHandle | WorkflowHistory]]] = {
    "evaluation_rectification": evaluation_rectification,
    "evaluation_closed_early": evaluation_closed_early,
    "daily_digest": daily_digest,
    "circular": circular,
    "supervisor_reminder": supervisor_reminder,
    "what_if_batch": what_if_batch,
}


async def record(names: list[str], *, overwrite: bool) -> list[Path]:
    """Run the scenarios ``names`` and write their histories; returns the files written."""
    todo = [n for n in names if overwrite or not (HISTORIES / f"{n}.json").exists()]
    if not todo:
        return []
    written = []
    with tempfile.TemporaryDirectory(prefix="cz-histories-") as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'readmodel.db'}")
        create_schema(engine)
        sessions = session_factory(engine)
        env = await start_time_skipping_env()
        try:
            task_queue = f"histories-{uuid.uuid4()}"
            data_dir = Path(tmp) / "data"
            async with build_worker(
                env.client, task_queue=task_queue, sessions=sessions, data_dir=data_dir
            ):
                bench = Bench(env, task_queue, sessions, data_dir)
                for name in todo:
                    made = await SCENARIOS[name](bench)
                    if isinstance(made, WorkflowHistory):
                        history = made
                    else:
                        history = await made.fetch_history()
                    path = HISTORIES / f"{name}.json"
                    path.write_text(history.to_json(), encoding="utf-8")
                    written.append(path)
                    print(f"recorded {path.relative_to(HISTORIES.parents[1])}", flush=True)
        finally:
            await env.shutdown()
            engine.dispose()
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line: record the named (or all) scenarios whose file is missing."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="scenarios to record (default: all)")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace existing files (review the diff!)"
    )
    args = parser.parse_args(argv)
    if args.list:
        for name, scenario in SCENARIOS.items():
            mark = "recorded" if (HISTORIES / f"{name}.json").exists() else "missing"
            print(f"{name:28} {mark:9} {(scenario.__doc__ or '').splitlines()[0]}")
        return 0
    unknown = sorted(set(args.names) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(unknown)} (see --list)")
    written = asyncio.run(record(args.names or list(SCENARIOS), overwrite=args.overwrite))
    if not written:
        print("nothing to record: every history exists (use --overwrite to replace)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
