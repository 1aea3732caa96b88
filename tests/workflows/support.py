"""Helpers for workflow tests: the seed-002 plan re-based to the test server's clock, an
organisation, the actors, and a diligent secretary."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from chuangzheng.sample_evidence import sample_actors, sample_evidence
from domain.actions import DecideSubmission, SubmitEvidence
from domain.campaign import CampaignStatus
from domain.machine import StepStatus
from domain.organisation import Organisation, OrgType, Role, System
from domain.plan import CalendarPlan, CampaignPlan
from domain.plan_loader import load_calendar, load_plan
from domain.schedule import OrgPlan, build_org_plan, resolve_schedule
from domain.state import Actor
from workflows.contracts import OrganisationCampaignInput
from workflows.ids import organisation_workflow_id
from workflows.organisation import OrganisationCampaignWorkflow

ROOT = Path(__file__).resolve().parents[2]

#: ``CZ_TEST_MAX_CACHED_WORKFLOWS=0`` (``make test-nocache``) gives every worker the tests
#: build a workflow cache of that size: at 0 every workflow task replays the whole history,
#: which catches non-determinism a warm cache hides.
MAX_CACHED_WORKFLOWS_VARIABLE = "CZ_TEST_MAX_CACHED_WORKFLOWS"
#: ``worker.build_worker``'s own default, when the variable is not set.
DEFAULT_MAX_CACHED_WORKFLOWS = 1000


def max_cached_workflows() -> int:
    """The workflow cache size for workers built by tests (see
    :data:`MAX_CACHED_WORKFLOWS_VARIABLE`)."""
    value = os.environ.get(MAX_CACHED_WORKFLOWS_VARIABLE, "").strip()
    if not value:
        return DEFAULT_MAX_CACHED_WORKFLOWS
    try:
        size = int(value)
    except ValueError:
        raise ValueError(
            f"{MAX_CACHED_WORKFLOWS_VARIABLE} must be an integer, got {value!r}"
        ) from None
    if size < 0:
        raise ValueError(f"{MAX_CACHED_WORKFLOWS_VARIABLE} must be 0 or more, got {size}")
    return size


# The test server's clock starts today and every test that skips time moves it on for the
# rest of the session (a whole seed-002 round skips 14 months), so round one re-based to the
# server's "now" runs into 2028 and later, for which nobody has holiday data yet: tests
# vouch for those years as plain weekends. The plan itself refuses such a year
# (tests/domain/test_plan_loading.py shows it).
TEST_ONLY_YEARS = CalendarPlan(supplied_years=tuple(range(2028, 2041)))


@cache
def seed_plan() -> CampaignPlan:
    """The shipped seed-002 plan with the provisional 2027 calendar (and 2028–2040 for tests)."""
    supplement = load_calendar((ROOT / "plans/calendars/2027-provisional.yaml").read_text("utf-8"))
    return load_plan(
        (ROOT / "plans/seed-002.yaml").read_text("utf-8"),
        supplement=supplement.merged(TEST_ONLY_YEARS),
    )


def organisation(org_id: str = "org-test-1", members: int = 18) -> Organisation:
    """A village branch like those in seed 000."""
    return Organisation(
        id=org_id,
        name=f"青石镇柳树村党支部{org_id[-2:]}",
        type=OrgType.RURAL,
        township="青石镇",
        system=System.RURAL,
        instructor="王指导",
        secretary="李书记",
        member_count=members,
    )


def secretary(org: Organisation) -> Actor:
    """The organisation's secretary (第一责任人)."""
    return Actor(user=org.secretary, name=org.secretary, role=Role.SECRETARY)


def instructor(org: Organisation) -> Actor:
    """The organisation's instructor (指导员)."""
    return Actor(user=org.instructor, name=org.instructor, role=Role.INSTRUCTOR)


COUNTY = Actor(user="county", name="县委活动办", role=Role.COUNTY_OFFICE)


def org_plan(org: Organisation, starts_at: datetime, round_id: str = "r-test") -> OrgPlan:
    """The organisation's plan for round one of seed 002, re-based to ``starts_at``."""
    plan = seed_plan()
    round_plan = plan.round("round-1")
    schedule = resolve_schedule(plan, round_plan, starts_at, rebased=True)
    return build_org_plan(plan, round_plan, schedule, org, round_id=round_id)


async def start_campaign(
    client: Client, task_queue: str, plan: OrgPlan, **options: object
) -> WorkflowHandle[OrganisationCampaignWorkflow, object]:
    """Start one organisation's workflow directly (no round)."""
    handle = await client.start_workflow(
        OrganisationCampaignWorkflow.run,
        OrganisationCampaignInput(plan=plan, **options),
        id=organisation_workflow_id(plan.round_id, plan.organisation.id),
        task_queue=task_queue,
    )
    return handle


async def status(handle: WorkflowHandle[OrganisationCampaignWorkflow, object]) -> CampaignStatus:
    """The workflow's status query."""
    return await handle.query(OrganisationCampaignWorkflow.status)


async def do_current_phase(
    handle: WorkflowHandle[OrganisationCampaignWorkflow, object],
    plan: OrgPlan,
    now: datetime,
    *,
    accept: bool = True,
) -> CampaignStatus:
    """Submit evidence for every open required step of the current phase, and accept it;
    returns the status afterwards (the Updates themselves return small results)."""
    current = await status(handle)
    org = plan.organisation
    phase_plan = plan.phase(current.state.phase)
    phase_state = current.state.current()
    for step in phase_plan.steps:
        step_state = phase_state.step(step.id)
        if not step.required or step_state is None:
            continue
        # Whom the plan names: 领导点评 by the instructor, signed for by the secretary; the
        # 群众评议 step by its ballot's result, which settles it (no decision).
        submitter, decider = sample_actors(step, org)
        if step_state.status in (StepStatus.OPEN, StepStatus.RETURNED):
            values = sample_evidence(
                step, org, opens_at=phase_state.opens_at, deadline=phase_state.deadline, now=now
            )
            await handle.execute_update(
                OrganisationCampaignWorkflow.submit_evidence,
                SubmitEvidence(actor=submitter, step_id=step.id, values=values),
            )
        if accept and decider is not None:
            await handle.execute_update(
                OrganisationCampaignWorkflow.decide_submission,
                DecideSubmission(actor=decider, step_id=step.id, accept=True),
            )
    return await status(handle)


async def leave_next_phase_past_its_top_rung(
    env: WorkflowEnvironment,
    handle: WorkflowHandle[OrganisationCampaignWorkflow, object],
    plan: OrgPlan,
) -> None:
    """Do the current phase, then nothing in the next one until an hour past its top rung:
    the reminder, every rung, the circular and the rectification order have all fired (a
    late organisation's whole ladder, on the time-skipping clock)."""
    calendar = plan.calendar.build()
    await do_current_phase(handle, plan, await env.get_current_time())
    deadline = (await status(handle)).state.current().deadline
    top_rung = calendar.after(deadline, plan.ladder.rungs[-1].delay)
    await env.sleep(top_rung - await env.get_current_time() + timedelta(hours=1))


def plus(moment: datetime, **kwargs: float) -> datetime:
    """``moment`` + a timedelta."""
    return moment + timedelta(**kwargs)


HISTORIES = ROOT / "tests/histories"


async def record_history(handle: WorkflowHandle[Any, Any], name: str) -> None:
    """With CZ_RECORD_HISTORIES=1, save the workflow's history for the replay test.

    Re-record (and review the diff) only when a workflow change is meant to be incompatible
    and is guarded by ``workflow.patched``; otherwise the old histories must keep replaying.
    """
    if os.environ.get("CZ_RECORD_HISTORIES") != "1":
        return
    history = await handle.fetch_history()
    HISTORIES.mkdir(parents=True, exist_ok=True)
    (HISTORIES / f"{name}.json").write_text(history.to_json(), encoding="utf-8")


def write_roster(path: Path, count: int) -> Path:
    """A generated county of ``count`` organisations (deploy/demo/make_roster.py) at ``path``."""
    script = ROOT / "deploy/demo/make_roster.py"
    subprocess.run(
        [sys.executable, str(script), "--count", str(count), "--output", str(path)], check=True
    )
    return path
