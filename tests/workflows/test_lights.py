"""Traffic lights in the time-skipping server: blue then red as virtual time passes, and
yellow for the organisation behind its township's cohort (the round's cohort check).

Both run the minute-scale demo plan and end their workflows: the session's virtual clock is
shared, and re-based seed-002 rounds in later tests must stay within the calendar years the
tests vouch for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.round_contracts import RoundAggregate
from activities.round_progress import round_aggregate, store_plan
from activities.tables import CampaignEventRow, CampaignStatusRow
from domain.actions import CloseRound
from domain.lights import Light, blue_at
from domain.organisation import SYSTEM_LABELS, Organisation, System
from domain.phases import Phase
from domain.plan import CampaignPlan
from domain.plan_loader import load_plan, resolve_kickoff
from domain.schedule import OrgPlan, build_org_plan, resolve_schedule
from tests.workflows.support import (
    COUNTY,
    ROOT,
    do_current_phase,
    organisation,
    start_campaign,
    status,
)
from workflows import search_attributes as sa
from workflows.ids import organisation_workflow_id, round_workflow_id
from workflows.organisation import OrganisationCampaignWorkflow
from workflows.round import CampaignRound
from workflows.round_contracts import CampaignRoundInput, RoundTerms

pytestmark = pytest.mark.usefixtures("worker")

T = TypeVar("T")
OrgHandle = WorkflowHandle[OrganisationCampaignWorkflow, Any]


def demo_plan() -> CampaignPlan:
    """The shipped minute-scale plan: blue 2 minutes before each 3-4 minute deadline."""
    return load_plan((ROOT / "plans/demo.yaml").read_text("utf-8"))


def demo_org_plan(org: Organisation, starts_at: datetime, round_id: str) -> OrgPlan:
    """An organisation's plan for the demo round, re-based to ``starts_at`` as the round does."""
    plan = demo_plan()
    round_plan = plan.rounds[0]
    schedule = resolve_schedule(plan, round_plan, starts_at, rebased=True)
    return build_org_plan(plan, round_plan, schedule, org, round_id=round_id)


async def eventually(probe: Callable[[], Awaitable[T]], ok: Callable[[T], bool]) -> T:
    """Poll ``probe`` until ``ok``: activities and signals run in real time after a skip."""
    value = await probe()
    for _ in range(150):
        if ok(value):
            return value
        await asyncio.sleep(0.1)
        value = await probe()
    return value


def read_model_light(sessions: sessionmaker[Session], round_id: str, org_id: str) -> str | None:
    """``campaign_status.light`` of one organisation, or None before its first write."""
    with sessions() as session:
        return session.scalar(
            select(CampaignStatusRow.light).where(
                CampaignStatusRow.round_id == round_id, CampaignStatusRow.org_id == org_id
            )
        )


async def lights(
    handle: OrgHandle, sessions: sessionmaker[Session], round_id: str, org_id: str
) -> tuple[Light, str | None, str | None]:
    """The light as the status query, the CzLight search attribute and the read model say."""
    current = await status(handle)
    described = await handle.describe()
    return (
        current.state.light,
        described.typed_search_attributes.get(sa.LIGHT),
        read_model_light(sessions, round_id, org_id),
    )


def read_model_aggregate(sessions: sessionmaker[Session], round_id: str) -> RoundAggregate:
    """The round's counts as the read model has them now: what the round fetches at each
    check (``load_round_aggregate``) and the API's status page shows."""
    with sessions() as session:
        return round_aggregate(session, round_id, as_of=datetime.now(UTC))


async def aggregate(sessions: sessionmaker[Session], round_id: str) -> RoundAggregate:
    return await asyncio.to_thread(read_model_aggregate, sessions, round_id)


def all_say(light: Light) -> Callable[[tuple[Light, str | None, str | None]], bool]:
    return lambda seen: seen == (light, light.value, light.value)


async def test_light_turns_blue_then_red_as_time_passes(
    time_skipping_env: WorkflowEnvironment, task_queue: str, sessions: sessionmaker[Session]
) -> None:
    env = time_skipping_env
    round_id, org = "r-lights-time", organisation("org-light-01")
    plan = demo_org_plan(org, await env.get_current_time(), round_id)
    handle = await start_campaign(env.client, task_queue, plan)
    deadline = (await status(handle)).state.current().deadline
    turns_blue = blue_at(
        deadline=deadline, blue_within=plan.ladder.blue_within, calendar=plan.calendar.build()
    )

    def seen() -> Awaitable[tuple[Light, str | None, str | None]]:
        return lights(handle, sessions, round_id, org.id)

    assert await eventually(seen, all_say(Light.GREEN)) == (Light.GREEN, "green", "green")

    await env.sleep(turns_blue - await env.get_current_time() - timedelta(seconds=20))
    assert await eventually(seen, all_say(Light.GREEN)) == (Light.GREEN, "green", "green")

    await env.sleep(timedelta(seconds=40))
    assert await eventually(seen, all_say(Light.BLUE)) == (Light.BLUE, "blue", "blue")

    await env.sleep(deadline - await env.get_current_time() + timedelta(seconds=20))
    assert await eventually(seen, all_say(Light.RED)) == (Light.RED, "red", "red")
    assert (await status(handle)).state.overdue
    await handle.signal(OrganisationCampaignWorkflow.close_round, CloseRound(actor=COUNTY))
    assert (await handle.result()).closed


ROSTER_HEADER = "组织编号,组织名称,组织类型,所属乡镇,所属系统,党员人数,书记,指导员"


def write_roster(path: Path, org_ids: list[str]) -> None:
    """Village branches of one township and one system, like ``support.organisation``."""
    rows = [
        f"{o.id},{o.name},农村,{o.township},{SYSTEM_LABELS[System.RURAL]},"
        f"{o.member_count},{o.secretary},{o.instructor}"
        for o in map(organisation, org_ids)
    ]
    path.write_text("\n".join([ROSTER_HEADER, *rows]) + "\n", encoding="utf-8")


async def test_the_laggard_of_its_township_turns_yellow_until_it_catches_up(
    time_skipping_env: WorkflowEnvironment,
    task_queue: str,
    sessions: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    env = time_skipping_env
    round_id = "r-lights-cohort"
    org_ids = [f"org-yl-{i:02d}" for i in range(1, 7)]
    laggard, diligent = org_ids[-1], org_ids[:-1]
    roster = tmp_path / "roster.csv"
    write_roster(roster, org_ids)
    now = await env.get_current_time()
    every = timedelta(minutes=1)
    plan = demo_plan()
    round_plan_id = plan.rounds[0].id
    # As the API kicks off: the plan stored once, the schedule resolved at kick-off.
    round_input = CampaignRoundInput(
        terms=RoundTerms(
            round_id=round_id,
            round_plan_id=round_plan_id,
            roster_source=str(roster),
            actor=COUNTY,
            starts_at=now,
            cohort_check_every=every,
        ),
        plan_ref=store_plan(sessions, plan),
        schedule=resolve_kickoff(plan, round_plan_id, now),
    )
    round_handle = await env.client.start_workflow(
        CampaignRound.run,
        round_input,
        id=round_workflow_id(round_id),
        task_queue=task_queue,
    )
    # The round's kick-off cursor is its own; the counts come from the read model (which
    # the round reads on its timer, between checks only as of its last one).
    progress = await eventually(
        lambda: round_handle.query(CampaignRound.progress), lambda p: p.starting_done
    )
    assert (progress.started, progress.total) == (len(org_ids), len(org_ids))
    counts = await eventually(
        lambda: aggregate(sessions, round_id), lambda a: a.reported == len(org_ids)
    )
    assert counts.by_phase == {Phase.MOBILISATION: 6}

    handles: dict[str, OrgHandle] = {
        org_id: env.client.get_workflow_handle_for(
            OrganisationCampaignWorkflow.run, organisation_workflow_id(round_id, org_id)
        )
        for org_id in org_ids
    }
    plans = {org_id: demo_org_plan(organisation(org_id), now, round_id) for org_id in org_ids}
    # Five branches finish 动员部署 in the first days; the laggard does nothing.
    for org_id in diligent:
        await do_current_phase(handles[org_id], plans[org_id], await env.get_current_time())
    await eventually(
        lambda: aggregate(sessions, round_id),
        lambda a: a.by_phase.get(Phase.PUBLIC_COMMITMENT) == 5,
    )

    def seen(org_id: str) -> Awaitable[tuple[Light, str | None, str | None]]:
        return lights(handles[org_id], sessions, round_id, org_id)

    # Past the first cohort check after the kick-off's (1 minute of a 4-minute phase: a
    # quarter elapsed).
    await env.sleep(every + timedelta(seconds=5))
    assert await eventually(lambda: seen(laggard), all_say(Light.YELLOW)) == (
        Light.YELLOW,
        "yellow",
        "yellow",
    )
    for org_id in diligent:
        assert await seen(org_id) == (Light.GREEN, "green", "green")
    assert (await status(handles[laggard])).state.behind_schedule
    # The round's counts: the lights, and its stored verdicts (round_verdicts).
    counts = await eventually(
        lambda: aggregate(sessions, round_id),
        lambda a: a.by_light.get(Light.YELLOW) == 1 and a.behind == 1,
    )
    assert (counts.by_light, counts.behind) == ({Light.GREEN: 5, Light.YELLOW: 1}, 1)
    with sessions() as session:
        kinds = session.scalars(
            select(CampaignEventRow.kind).where(
                CampaignEventRow.round_id == round_id, CampaignEventRow.org_id == laggard
            )
        ).all()
    assert "behind_schedule" in kinds

    # The laggard catches up; at the next check it is back on schedule.
    await do_current_phase(handles[laggard], plans[laggard], await env.get_current_time())
    assert (await status(handles[laggard])).state.phase is Phase.PUBLIC_COMMITMENT
    await env.sleep(every)
    back = await eventually(lambda: seen(laggard), lambda s: s[0] is not Light.YELLOW)
    assert back[0] in (Light.GREEN, Light.BLUE)
    assert await eventually(lambda: seen(laggard), all_say(back[0])) == (
        back[0],
        back[0].value,
        back[0].value,
    )
    assert not (await status(handles[laggard])).state.behind_schedule
    for org_id in diligent:
        assert (await seen(org_id))[0] is not Light.YELLOW
    counts = await eventually(lambda: aggregate(sessions, round_id), lambda a: a.behind == 0)
    assert (counts.behind, counts.by_light.get(Light.YELLOW, 0)) == (0, 0)

    await round_handle.execute_update(
        CampaignRound.close, CloseRound(actor=COUNTY, reason="测试结束")
    )
    final = await round_handle.result()
    # Closed, with the counts it fetched from the read model after the close went out.
    assert final.closed and (final.started, final.reported) == (6, 6)
