"""The 预警 sent by a running round's own daily checks: the real CampaignRound workflow on
the time-skipping server, the project's worker (``build_worker``) with a forecast model kept
under its data directory, and a SQLite read model of the test's own.

The round's organisations enter 动员部署: a diligent one settles all its required steps
but the last, the others (the laggard among them) do nothing. Over the working mornings'
checks before the deadline each laggard's instructor gets exactly one 预警, the diligent
one's none.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.db import create_schema, make_engine, session_factory
from activities.roster_files import read_roster_file
from activities.round_progress import store_plan
from activities.tables import CampaignStatusRow, OrganisationRow, RoundDefinitionRow, notices
from chuangzheng.sample_evidence import sample_actors, sample_evidence
from chuangzheng.services.forecast import model_path, save_model
from chuangzheng.services.forecast_training import PriorRound, fit_simulated
from chuangzheng.services.forecast_warning import NOT_BEFORE
from chuangzheng.simulation.model import CharacterMix
from domain.actions import CloseRound, DecideSubmission, SubmitEvidence
from domain.phases import Phase
from domain.schedule import build_org_plan, resolve_schedule
from tests.workflows.support import COUNTY, ROOT, seed_plan, write_roster
from worker import build_worker
from workflows.contracts import RoundProgress
from workflows.ids import organisation_workflow_id, round_workflow_id
from workflows.organisation import OrganisationCampaignWorkflow
from workflows.round import CampaignRound
from workflows.round_contracts import CampaignRoundInput, RoundTerms

PHASE = Phase.MOBILISATION


@pytest.fixture
def own_sessions(tmp_path: Path) -> sessionmaker[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / 'read.db'}")
    create_schema(engine)
    return session_factory(engine)


async def test_a_running_round_warns_the_laggard_once_and_the_diligent_never(
    time_skipping_env: WorkflowEnvironment,
    own_sessions: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    task_queue = f"early-warning-{uuid.uuid4()}"  # a worker of this test's own
    env, sessions = time_skipping_env, own_sessions
    round_id = "r-early-warning"
    roster_path = write_roster(tmp_path / "roster.csv", 8)
    plan = seed_plan()
    round_plan = plan.round("round-1")
    orgs = read_roster_file(roster_path).in_scope(
        types=round_plan.scope.types, townships=round_plan.scope.townships
    )
    laggard, diligent = orgs[0], orgs[1]
    kicked_off = await env.get_current_time()
    schedule = resolve_schedule(plan, round_plan, kicked_off, rebased=True)
    window = next(w for w in schedule.windows if w.phase is PHASE)
    with sessions.begin() as session:
        for i, org in enumerate(orgs):
            session.add(
                OrganisationRow(
                    org_id=org.id, name=org.name, org_type=org.type.value,
                    township=org.township, system=org.system,
                    member_count=org.member_count, secretary=org.secretary,
                    instructor=org.instructor, active=True, row_number=i + 1,
                    updated_at=kicked_off,
                )
            )  # fmt: skip
        # What the API's kick-off writes: the plan text the forecast resolves the windows from.
        session.add(
            RoundDefinitionRow(
                round_id=round_id, plan_source="seed-002",
                plan_yaml=(ROOT / "plans/seed-002.yaml").read_text("utf-8"),
                round_plan_id="round-1", starts_at=kicked_off, created_by="county",
                created_at=kicked_off, kicked_off_at=kicked_off,
            )
        )  # fmt: skip
    # Fitted on a small paced simulated round; the county office's threshold.
    model = fit_simulated((1,), (CharacterMix(),), limit=60, prior=PriorRound.PERSISTENT)
    save_model(model.with_threshold(0.3), model_path(tmp_path))

    worker = build_worker(env.client, task_queue=task_queue, sessions=sessions, data_dir=tmp_path)
    async with worker:
        handle: WorkflowHandle[CampaignRound, RoundProgress] = await env.client.start_workflow(
            CampaignRound.run,
            CampaignRoundInput(
                terms=RoundTerms(
                    round_id=round_id,
                    round_plan_id="round-1",
                    roster_source=str(roster_path),
                    actor=COUNTY,
                    starts_at=kicked_off,
                ),
                plan_ref=store_plan(sessions, plan),
                schedule=schedule,
            ),
            id=round_workflow_id(round_id),
            task_queue=task_queue,
        )

        def entered() -> int:
            with sessions() as session:
                return len(
                    session.scalars(
                        select(CampaignStatusRow.org_id).where(
                            CampaignStatusRow.round_id == round_id
                        )
                    ).all()
                )

        for _ in range(300):
            if entered() == len(orgs):
                break
            await asyncio.sleep(0.1)
        assert entered() == len(orgs)
        # The diligent organisation settles every required step of the phase but the last.
        org_plan = build_org_plan(plan, round_plan, schedule, diligent, round_id=round_id)
        phase_plan = org_plan.phase(PHASE)
        required = [s for s in phase_plan.steps if s.required]
        assert len(required) >= 2
        diligent_handle = env.client.get_workflow_handle_for(
            OrganisationCampaignWorkflow.run, organisation_workflow_id(round_id, diligent.id)
        )
        now = await env.get_current_time()
        for step in required[:-1]:
            submitter, decider = sample_actors(step, diligent)
            values = sample_evidence(
                step, diligent, opens_at=window.opens_at, deadline=window.deadline, now=now
            )
            await diligent_handle.execute_update(
                OrganisationCampaignWorkflow.submit_evidence,
                SubmitEvidence(actor=submitter, step_id=step.id, values=values),
            )
            if decider is not None:
                await diligent_handle.execute_update(
                    OrganisationCampaignWorkflow.decide_submission,
                    DecideSubmission(actor=decider, step_id=step.id, accept=True),
                )

        # Skip to two working days before the deadline: every daily check on the way.
        span = window.deadline - window.opens_at
        assert span > timedelta(days=4)
        await env.sleep(window.deadline - timedelta(days=2) - await env.get_current_time())

        with sessions() as session:
            sent = session.execute(
                select(notices.c.org_id, notices.c.phase, notices.c.recipient_key,
                       notices.c.created_at)
                .where(notices.c.round_id == round_id, notices.c.kind == "early_warning")
            ).all()  # fmt: skip
        # Everyone who did nothing (the laggard among them) is warned once; the diligent
        # organisation never.
        assert sorted((row.org_id, row.phase, row.recipient_key) for row in sent) == sorted(
            (org.id, PHASE.value, org.instructor) for org in orgs if org is not diligent
        )
        assert laggard.id in {row.org_id for row in sent}
        # Sent by a check past NOT_BEFORE of the window and before the deadline.
        for row in sent:
            at = row.created_at.replace(tzinfo=kicked_off.tzinfo)
            assert window.opens_at + span * NOT_BEFORE <= at < window.deadline
        history = await handle.fetch_history()
        checks = sum(
            1
            for ev in history.events
            if ev.HasField("activity_task_scheduled_event_attributes")
            and ev.activity_task_scheduled_event_attributes.activity_type.name == "check_round"
        )
        assert checks >= 3  # the kick-off's and at least two working mornings'

        for org in orgs:
            await env.client.get_workflow_handle(organisation_workflow_id(round_id, org.id)).signal(
                "close_round", CloseRound(actor=COUNTY, reason="测试结束")
            )
        await env.client.get_workflow_handle(round_workflow_id(round_id)).terminate("测试结束")
