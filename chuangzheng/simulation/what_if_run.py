"""Running a what-if: both arms on a fresh time-skipping server, in batches.

:func:`rehearse` starts the time-skipping test server (or uses the one given), a worker
for :class:`.what_if_workflow.WhatIfBatch` only, and one workflow per batch of
organisations for each arm — the unchanged plan and the draft — all at once; the server
skips virtual time whenever every batch waits on a timer. Both arms get the same carried
state and the same paces, so any difference is the draft's.
"""

from __future__ import annotations

import time as wallclock
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from chuangzheng.temporal_server import start_time_skipping_env
from domain.phases import Phase
from domain.plan import CampaignPlan, LadderPlan
from domain.schedule import RoundSchedule
from domain.state import Outcome
from domain.what_if import (
    ArmTally,
    DraftChange,
    OrgStart,
    TallyDifference,
    changed_ladder,
    difference,
    merge_tallies,
)

from .model import PlannedAction
from .what_if_engine import BatchInput, BatchResult, OrgPace, label_order
from .what_if_workflow import WhatIfBatch

#: Organisations per batch workflow: big enough that a county is a few dozen workflows,
#: small enough that one batch's busiest instant stays well inside a workflow task.
BATCH_SIZE = 150
#: A batch's workflow task may take this long (the first one carries the batch in).
TASK_TIMEOUT = timedelta(seconds=60)
#: Workflow tasks the what-if's worker runs at once: they are CPU work in one process, so
#: more would only make each one slower.
WORKFLOW_TASKS = 4
#: The workflows the what-if's own worker runs (not worker.py's: they never run on the
#: service's Temporal). The replay test replays their recorded histories with these, in
#: debug mode as the worker runs them (tests/histories/what_if_batch.json).
WORKFLOWS: tuple[type, ...] = (WhatIfBatch,)


class WhatIfOutcome(BaseModel):
    """Both arms' tallies, their difference, and per organisation what changed."""

    model_config = ConfigDict(frozen=True)

    unchanged: ArmTally
    changed: ArmTally
    difference: TallyDifference
    # Organisations whose outcome in some phase differs: org id -> (phase, before, after).
    changed_outcomes: dict[str, list[tuple[Phase, Outcome | None, Outcome | None]]]
    batches: int
    wall_seconds: float
    # The unchanged arm's actions per organisation, when asked for (the real-run check).
    actions: dict[str, list[PlannedAction]] = {}
    # Every batch's workflow id, the unchanged arm's first: with a server of the caller's
    # own (``env``), its histories can be fetched afterwards (tests/histories/record.py).
    workflow_ids: tuple[str, ...] = ()


def _batches(
    *,
    round_id: str,
    plan: CampaignPlan,
    round_plan_id: str,
    schedule: RoundSchedule,
    ladder: LadderPlan,
    change: DraftChange | None,
    starts_at: datetime,
    starts: Sequence[OrgStart],
    paces: Sequence[OrgPace],
    batch_size: int,
    record_actions: bool,
) -> list[BatchInput]:
    by_org = {p.org_id: p for p in paces}
    out = []
    for first in range(0, len(starts), batch_size):
        part = tuple(starts[first : first + batch_size])
        out.append(
            BatchInput(
                round_id=round_id,
                plan=plan,
                round_plan_id=round_plan_id,
                schedule=schedule,
                ladder=ladder,
                change=change,
                starts_at=starts_at,
                organisations=part,
                paces=tuple(by_org[s.organisation.id] for s in part if s.organisation.id in by_org),
                record_actions=record_actions,
            )
        )
    return out


async def rehearse(
    *,
    round_id: str,
    plan: CampaignPlan,
    round_plan_id: str,
    schedule: RoundSchedule,
    change: DraftChange,
    starts_at: datetime,
    starts: Sequence[OrgStart],
    paces: Sequence[OrgPace],
    batch_size: int = BATCH_SIZE,
    record_actions: bool = False,
    env: WorkflowEnvironment | None = None,
    on_message: Callable[[str], None] | None = None,
) -> WhatIfOutcome:
    """Run both arms to the end of the round and compare them.

    Raises :class:`domain.errors.ValidationFailed` (before any server starts) when the
    draft does not fit the round's ladder."""
    began = wallclock.monotonic()
    ladder = plan.ladder_for(plan.round(round_plan_id))
    draft_ladder = changed_ladder(ladder, change)
    common = {
        "round_id": round_id,
        "plan": plan,
        "round_plan_id": round_plan_id,
        "schedule": schedule,
        "starts_at": starts_at,
        "starts": starts,
        "paces": paces,
        "batch_size": max(1, batch_size),
    }
    unchanged = _batches(ladder=ladder, change=None, record_actions=record_actions, **common)  # type: ignore[arg-type]
    changed = _batches(ladder=draft_ladder, change=change, record_actions=False, **common)  # type: ignore[arg-type]
    own_env = env is None
    if env is None:
        if on_message:
            on_message("启动时间跳跃测试服务器……")
        env = await start_time_skipping_env()
    try:
        task_queue = f"what-if-{uuid.uuid4()}"
        worker = Worker(
            env.client,
            task_queue=task_queue,
            workflows=list(WORKFLOWS),
            max_concurrent_workflow_tasks=WORKFLOW_TASKS,
            debug_mode=True,
        )
        async with worker:
            if on_message:
                on_message(
                    f"推演开始：{len(starts)} 个组织，每组 {batch_size} 个，"
                    f"两种方案各 {len(unchanged)} 组"
                )
            handles = [
                await env.client.start_workflow(
                    WhatIfBatch.run,
                    batch,
                    id=f"what-if/{round_id}/{arm}/{i}/{uuid.uuid4().hex[:8]}",
                    task_queue=task_queue,
                    task_timeout=TASK_TIMEOUT,
                )
                for arm, batches in (("unchanged", unchanged), ("changed", changed))
                for i, batch in enumerate(batches)
            ]
            # One result at a time: each wait unlocks the server's time skipping once, and
            # concurrent waits would unlock it past the lock a running workflow task holds
            # (the server then skips time under a task, which expires: "Expired workflow
            # task", and the batch never ends). All batches run meanwhile regardless.
            results: list[BatchResult] = []
            for handle in handles:
                results.append(await handle.result())
    finally:
        if own_env:
            await env.shutdown()
    before, after = results[: len(unchanged)], results[len(unchanged) :]
    order = label_order(draft_ladder)
    tally_before = merge_tallies((r.tally for r in before), label_order=order)
    tally_after = merge_tallies((r.tally for r in after), label_order=order)
    outcomes_before = {k: v for r in before for k, v in r.outcomes.items()}
    outcomes_after = {k: v for r in after for k, v in r.outcomes.items()}
    changed_outcomes: dict[str, list[tuple[Phase, Outcome | None, Outcome | None]]] = {}
    for org_id, was in outcomes_before.items():
        now_ = outcomes_after.get(org_id, {})
        diffs = [
            (phase, was.get(phase), now_.get(phase))
            for phase in dict.fromkeys([*was, *now_])
            if was.get(phase) != now_.get(phase)
        ]
        if diffs:
            changed_outcomes[org_id] = diffs
    return WhatIfOutcome(
        unchanged=tally_before,
        changed=tally_after,
        difference=difference(
            tally_before, tally_after, organisations_affected=len(changed_outcomes)
        ),
        changed_outcomes=changed_outcomes,
        batches=len(handles),
        wall_seconds=wallclock.monotonic() - began,
        actions={k: v for r in before for k, v in r.actions.items()},
        workflow_ids=tuple(h.id for h in handles),
    )
