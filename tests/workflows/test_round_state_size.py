"""The bounded round's continue-as-new input does not grow with the county: at 100,000
organisations it is the size it is at 10 (only the digits of its counters differ), and a
small round that really continues as new carries an input of that size and its progress."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from activities.round_contracts import RoundAggregate
from activities.round_progress import store_plan
from chuangzheng.temporal_server import data_converter
from domain.actions import CloseRound
from domain.lights import Light
from domain.phases import WORKING_PHASES, Phase
from domain.schedule import resolve_schedule
from domain.state import Outcome
from tests.workflows.support import COUNTY, seed_plan, write_roster
from workflows.contracts import RoundExtensionRequest
from workflows.ids import round_workflow_id
from workflows.round import CampaignRound
from workflows.round_contracts import (
    CampaignRoundInput,
    RoundAction,
    RoundActionKind,
    RoundCursor,
    RoundState,
    RoundTerms,
)

NOW = datetime(2026, 12, 1, 1, tzinfo=UTC)
# The digits of the counters that scale (offset, total, counts) are all that may differ.
DIGITS_ALLOWANCE = 200
LIMIT = 64 * 1024


def carried_input(organisations: int) -> CampaignRoundInput:
    """The round's continue-as-new input mid-round with ``organisations`` started: every
    field as the workflow fills it (cursor, two round-wide actions, the last aggregate)."""
    plan = seed_plan()
    schedule = resolve_schedule(plan, plan.round("round-1"), NOW)
    third = organisations // 3
    aggregate = RoundAggregate(
        round_id="r-size",
        reported=organisations,
        finished=third,
        by_phase={Phase.MOBILISATION: organisations - third, Phase.COMPLETED: third},
        by_light={Light.GREEN: organisations - third, Light.YELLOW: third},
        overdue=third,
        behind=third,
        outcomes={p: {Outcome.ON_TIME: third, Outcome.LATE: third} for p in WORKING_PHASES},
        as_of=NOW,
    )
    extension = RoundExtensionRequest(
        actor=COUNTY,
        phase=Phase.MOBILISATION,
        new_deadline=NOW + timedelta(days=30),
        reason="统一顺延",
        request_id="req-1",
    )
    return CampaignRoundInput(
        terms=RoundTerms(
            round_id="r-size", round_plan_id="round-1", roster_source="/data/r.csv", actor=COUNTY
        ),
        plan_ref="sha256-" + "0" * 56,
        state=RoundState(
            schedule=schedule,
            starts_at=NOW,
            cursor=RoundCursor(offset=organisations, total=organisations, done=True),
            actions=[
                RoundAction(kind=RoundActionKind.EXTENSION, request_id="req-1", extension=extension)
            ],
            actions_sent=1,
            next_check=NOW + timedelta(days=1),
            last=aggregate,
        ),
    )


def payload_size(value: object) -> int:
    """Bytes of the payload Temporal stores for ``value`` (the project's data converter)."""
    (payload,) = data_converter().payload_converter.to_payloads([value])
    return payload.ByteSize()


def test_carried_input_is_the_same_size_at_100000_organisations_as_at_10() -> None:
    small, large = payload_size(carried_input(10)), payload_size(carried_input(100_000))
    assert large - small <= DIGITS_ALLOWANCE
    assert large < LIMIT


@pytest.mark.usefixtures("worker")
async def test_round_continues_as_new_with_a_small_input_and_its_progress(
    time_skipping_env: WorkflowEnvironment,
    task_queue: str,
    sessions: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    env = time_skipping_env
    round_id = "r-bounded-can"
    roster = write_roster(tmp_path / "roster.csv", 8)
    plan = seed_plan()
    now = await env.get_current_time()
    handle = await env.client.start_workflow(
        CampaignRound.run,
        CampaignRoundInput(
            terms=RoundTerms(
                round_id=round_id,
                round_plan_id="round-1",
                roster_source=str(roster),
                actor=COUNTY,
                starts_at=now,
                # One organisation per start activity: the history passes 100 events while
                # starting, so the round continues as new mid-kick-off.
                start_chunk=1,
                history_limit=100,
                cohort_check_every=timedelta(hours=1),
            ),
            plan_ref=store_plan(sessions, plan),
            schedule=resolve_schedule(plan, plan.round("round-1"), now),
        ),
        id=round_workflow_id(round_id),
        task_queue=task_queue,
    )
    first_run = handle.first_execution_run_id or (await handle.describe()).run_id
    progress = await handle.query(CampaignRound.progress)
    for _ in range(30):
        if progress.starting_done and progress.reported == 8:
            break
        await env.sleep(timedelta(hours=1))
        progress = await handle.query(CampaignRound.progress)
    assert progress.started == 8 and progress.total == 8 and progress.reported == 8

    history = await env.client.get_workflow_handle(handle.id, run_id=first_run).fetch_history()
    continued = [
        e
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    ]
    assert continued, "the round should have continued as new"
    carried = continued[0].workflow_execution_continued_as_new_event_attributes.input
    assert sum(p.ByteSize() for p in carried.payloads) < LIMIT

    await handle.execute_update(CampaignRound.close, CloseRound(actor=COUNTY, reason="测试结束"))
    final = await handle.result()
    assert final.closed and final.started == 8
