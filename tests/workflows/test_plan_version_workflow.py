"""A plan version applied to a running round (time-skipping server, the project's worker and
its SQLite read model), through the service the API, the page, the CLI and the what-if use:

- a bad draft (a phase's steps changed) is refused naming the field, and nothing changes;
- two concurrent calls with one idempotency key apply the version once (one number, one
  audit row);
- an organisation whose first phase is completed keeps it as it was and its open phase
  moves; an organisation still in the first phase gets the new deadline, and its ladder
  fires at the new time, not the old;
- every organisation's timeline in the read model shows the change, and the audit lists
  version 1 and version 2 with what it changed;
- a draft made from version 1 after version 2 was applied is refused (stale).

The demo plan (minutes) keeps the virtual clock short. With CZ_RECORD_HISTORIES=1 it
records ``round_plan_version.json`` and ``organisation_plan_version.json``.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.round_progress import store_plan
from activities.tables import AuditRow, CampaignEventRow, PhaseStatusRow, RoundDefinitionRow
from chuangzheng.services.errors import InvalidInput, Refused
from chuangzheng.services.plan_versions import (
    apply_plan_version,
    current_plan,
    plan_versions,
    plan_yaml,
)
from domain.actions import CloseRound
from domain.calendar import Span
from domain.campaign import CampaignStatus
from domain.machine import PhaseStatus
from domain.organisation import Role
from domain.phases import Phase
from domain.plan import CampaignPlan, Rung
from domain.plan_loader import load_plan
from domain.schedule import build_org_plan, resolve_round
from tests.workflows.support import (
    COUNTY,
    ROOT,
    do_current_phase,
    record_history,
    status,
    write_roster,
)
from tests.workflows.test_round_bounded import create_row, eventually
from workflows.ids import organisation_workflow_id, round_workflow_id
from workflows.organisation import OrganisationCampaignWorkflow
from workflows.round import CampaignRound
from workflows.round_contracts import CampaignRoundInput, RoundTerms

pytestmark = pytest.mark.usefixtures("worker")

OrgHandle = WorkflowHandle[OrganisationCampaignWorkflow, Any]

ORGS = 8  # the generated roster covers every type
ROUND_PLAN = "demo"


async def started(handle: OrgHandle) -> CampaignStatus | None:
    """The organisation's status once the round has started its workflow, else None."""
    try:
        return await status(handle)
    except RPCError:
        return None


def demo_plan() -> CampaignPlan:
    return load_plan((ROOT / "plans/demo.yaml").read_text("utf-8"))


def draft_of(plan: CampaignPlan) -> CampaignPlan:
    """Version 2: 动员部署 4 → 10 minutes, 公开承诺 4 → 5, a rung added after the
    instructor's, the rectification period 3 → 5 minutes."""
    round_plan = plan.round(ROUND_PLAN)
    phases = list(round_plan.phases)
    phases[0] = phases[0].model_copy(update={"duration": Span(minutes=10)})
    phases[1] = phases[1].model_copy(update={"duration": Span(minutes=5)})
    ladder = plan.ladder
    township = Rung(name="乡镇党委约谈", recipient=Role.TOWNSHIP, delay=Span(minutes=1))
    new_ladder = ladder.model_copy(
        update={
            "rungs": (ladder.rungs[0], township, *ladder.rungs[1:]),
            "rectification_period": Span(minutes=5),
        }
    )
    return plan.model_copy(
        update={
            "ladder": new_ladder,
            "rounds": (round_plan.model_copy(update={"phases": tuple(phases)}),),
        }
    )


async def test_a_plan_version_moves_open_deadlines_and_timers_once_and_is_audited(
    time_skipping_env: WorkflowEnvironment,
    task_queue: str,
    sessions: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    env = time_skipping_env
    round_id = "r-plan-version"
    plan = demo_plan()
    now = await env.get_current_time()
    create_row(sessions, round_id, now)
    with sessions.begin() as session:
        session.add(
            RoundDefinitionRow(
                round_id=round_id,
                plan_source="demo",
                plan_yaml=plan_yaml(plan),
                round_plan_id=ROUND_PLAN,
                starts_at=now,
                roster_snapshot=None,
                created_by=COUNTY.user,
                created_at=now,
                kicked_off_at=now,
            )
        )
    roster = write_roster(tmp_path / "roster.csv", ORGS)
    schedule = resolve_round(plan, plan.round(ROUND_PLAN), now)
    round_input = CampaignRoundInput(
        terms=RoundTerms(
            round_id=round_id,
            round_plan_id=ROUND_PLAN,
            roster_source=str(roster),
            actor=COUNTY,
            starts_at=now,
            cohort_check_every=timedelta(hours=1),
        ),
        plan_ref=store_plan(sessions, plan),
        schedule=schedule,
    )
    handle = await env.client.start_workflow(
        CampaignRound.run, round_input, id=round_workflow_id(round_id), task_queue=task_queue
    )
    orgs = [
        env.client.get_workflow_handle_for(
            OrganisationCampaignWorkflow.run,
            organisation_workflow_id(round_id, f"org-{i:04d}"),
        )
        for i in range(1, ORGS + 1)
    ]
    first = await eventually(lambda: started(orgs[0]), lambda s: s is not None)
    assert first is not None
    # The first organisation completes 动员部署 before the change.
    org_plan = build_org_plan(
        plan, plan.round(ROUND_PLAN), schedule, first.organisation, round_id=round_id
    )
    done = await do_current_phase(orgs[0], org_plan, await env.get_current_time())
    assert done.state.phase is Phase.PUBLIC_COMMITMENT
    completed = done.state.phase_state(Phase.MOBILISATION)
    laggard_before = await eventually(lambda: started(orgs[1]), lambda s: s is not None)
    assert laggard_before is not None
    old_deadline = laggard_before.state.current().deadline

    # A bad draft: a step removed from 公开承诺. Refused naming the field; nothing changes.
    round_plan = plan.round(ROUND_PLAN)
    phases = list(round_plan.phases)
    phases[1] = phases[1].model_copy(update={"steps": phases[1].steps[:1]})
    bad = plan.model_copy(
        update={"rounds": (round_plan.model_copy(update={"phases": tuple(phases)}),)}
    )
    with pytest.raises(InvalidInput) as refused:
        await apply_plan_version(
            sessions,
            env.client,
            round_id,
            bad,
            reason="删去一个步骤",
            caller=COUNTY,
            idempotency_key="pv-bad",
            now=await env.get_current_time(),
        )
    assert refused.value.errors[0]["field"] == "rounds[0].phases[1].steps"
    assert "步骤不能在运行中修改" in refused.value.errors[0]["reason"]
    assert (await current_plan(sessions, env.client, round_id, caller=COUNTY)).version == 1

    # Two concurrent calls with one key: applied once, one number.
    draft = draft_of(plan)
    moment = await env.get_current_time()
    results = await asyncio.gather(
        *(
            apply_plan_version(
                sessions,
                env.client,
                round_id,
                draft,
                reason="全县防汛，动员部署统一顺延",
                caller=COUNTY,
                idempotency_key="pv-1",
                now=moment,
            )
            for _ in range(2)
        )
    )
    assert sorted(r.applied for r in results) == [False, True]
    assert {r.version for r in results} == {2}
    assert {r.action_id for r in results} == {f"{round_id}/plan-v2"}
    changes = results[0].changes
    assert any(line.startswith("动员部署阶段截止时间由") for line in changes)
    assert "整改期限由3分钟调整为5分钟" in changes
    assert any("新增第2级督办“乡镇党委约谈”" in line for line in changes)
    current = await current_plan(sessions, env.client, round_id, caller=COUNTY)
    assert current.version == 2 and current.plan == draft

    new_schedule = resolve_round(draft, draft.round(ROUND_PLAN), now)
    new_deadline = new_schedule.window(Phase.MOBILISATION).deadline
    assert new_deadline > old_deadline
    # The completed phase stays; the open phase of the first organisation moves.
    moved = await eventually(
        lambda: status(orgs[0]), lambda s: s.state.applied_plan_versions == ["pv-1"]
    )
    assert moved.state.phase_state(Phase.MOBILISATION) == completed
    assert moved.state.current().deadline == new_schedule.window(Phase.PUBLIC_COMMITMENT).deadline
    assert moved.state.plan_version == 2
    laggard = await eventually(
        lambda: status(orgs[1]), lambda s: s.state.applied_plan_versions == ["pv-1"]
    )
    assert laggard.state.current().deadline == new_deadline

    # Past the old deadline (and its first rung): nothing fires.
    await env.sleep(old_deadline - await env.get_current_time() + timedelta(seconds=30))
    quiet = await status(orgs[1])
    assert quiet.state.current().status is PhaseStatus.OPEN
    assert quiet.state.current().escalations == []
    # Past the new one: the ladder climbs from the new deadline, on the new ladder.
    await env.sleep(new_deadline - await env.get_current_time() + timedelta(seconds=90))
    late = await status(orgs[1])
    phase = late.state.current()
    assert phase.status is PhaseStatus.OVERDUE
    assert [(e.rung, e.name) for e in phase.escalations][:2] == [
        (0, "指导员督促"),
        (1, "乡镇党委约谈"),
    ]
    assert all(e.fired_at >= new_deadline for e in phase.escalations)

    # A draft from version 1 after version 2: refused as stale.
    with pytest.raises(Refused) as stale:
        await apply_plan_version(
            sessions,
            env.client,
            round_id,
            draft_of(draft),
            reason="再次顺延",
            caller=COUNTY,
            idempotency_key="pv-stale",
            base_version=1,
            now=await env.get_current_time(),
        )
    assert stale.value.code == "stale_version"

    # The read model: every organisation's timeline shows the change; the moved phase row
    # has the new deadline; the audit lists both versions with what changed.
    def timeline_orgs() -> set[str]:
        with sessions() as session:
            rows = session.scalars(
                select(CampaignEventRow).where(
                    CampaignEventRow.round_id == round_id,
                    CampaignEventRow.kind == "plan_version_applied",
                )
            ).all()
            return {row.org_id for row in rows}

    assert await eventually(lambda: asyncio.to_thread(timeline_orgs), lambda s: len(s) == ORGS)
    with sessions() as session:
        row = session.get(PhaseStatusRow, (round_id, "org-0001", Phase.PUBLIC_COMMITMENT.value))
        assert row is not None
        assert row.deadline == new_schedule.window(Phase.PUBLIC_COMMITMENT).deadline
        audits = session.scalar(
            select(func.count()).where(
                AuditRow.round_id == round_id, AuditRow.action == "round_plan_version_applied"
            )
        )
        assert audits == 1
        versions = plan_versions(session, round_id)
    assert [v.version for v in versions] == [1, 2]
    assert versions[1].reason == "全县防汛，动员部署统一顺延"
    assert versions[1].changes == changes

    await handle.execute_update(CampaignRound.close, CloseRound(actor=COUNTY, reason="测试结束"))
    await handle.result()
    for org in orgs:
        await org.result()
    await record_history(handle, "round_plan_version")
    await record_history(orgs[1], "organisation_plan_version")
