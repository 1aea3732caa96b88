"""The round use cases called directly (``chuangzheng.services.rounds``), against the real
stack the API tests use (dev server, the project's worker, the read model): kicking off twice
starts one set of workflows, a closed round is not kicked off again, and a start that reaches
a year with no calendar data is refused naming the year before any workflow starts or anything
is written."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from activities.db import make_engine, session_factory
from activities.tables import AuditRow, RoundDefinitionRow, RoundRow
from chuangzheng.schedules import circular_schedule_id, digest_schedule_id
from chuangzheng.services import rounds
from chuangzheng.services.errors import Conflict, InvalidInput, NotFound, Refused
from domain.calendar import SHANGHAI
from domain.organisation import Role
from domain.phases import Phase
from domain.state import Actor
from domain.text import BIDI_REASON
from tests.api.conftest import Stack, wait_for
from workflows.ids import organisation_workflow_id, round_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")

COUNTY = Actor(user="county", name="county", role=Role.COUNTY_OFFICE, ip="127.0.0.1")
ANOTHER_COUNTY = Actor(user="county-2", name="county-2", role=Role.COUNTY_OFFICE, ip="127.0.0.1")
SECRETARY = Actor(user="sec-a", name="sec-a", role=Role.SECRETARY, ip="127.0.0.1")
SEED = (Path(__file__).resolve().parents[2] / "plans" / "seed-002.yaml").read_text("utf-8")
# Round two of seed-002 started tomorrow (a round may not start in the past; late 2026 or
# after) runs into 2027, which chinese-calendar lacks.
REBASED = datetime.combine(datetime.now(SHANGHAI).date() + timedelta(days=1), time(9), SHANGHAI)


@pytest.fixture
def sessions(stack: Stack) -> Iterator[sessionmaker[Session]]:
    """The read model of the stack, as the bootstrap's session factory."""
    engine = make_engine(stack.settings.database_url)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def service(
    stack: Stack, dev_server: WorkflowEnvironment, sessions: sessionmaker[Session]
) -> rounds.Rounds:
    """The round commands over the stack's read model, Temporal and task queue."""
    return rounds.Rounds(sessions=sessions, temporal=dev_server.client, settings=stack.settings)


async def executions(client: Client, workflow_id: str) -> int:
    """How many executions (runs) of ``workflow_id`` Temporal holds."""
    return len([w async for w in client.list_workflows(f'WorkflowId = "{workflow_id}"')])


async def test_kicking_off_twice_starts_one_set_of_workflows(
    service: rounds.Rounds, sessions: sessionmaker[Session], dev_server: WorkflowEnvironment
) -> None:
    rid = f"rsvc-{uuid.uuid4().hex[:8]}"
    created = await rounds.create_round(
        sessions, COUNTY, round_id=rid, plan_id="demo", round_plan_id="demo"
    )
    assert (created.status, created.kicked_off_at) == ("created", None)

    first = await service.kick_off(COUNTY, rid)
    again = await service.kick_off(ANOTHER_COUNTY, rid)
    assert first.status == again.status == "running"
    assert first.kicked_off_at is not None and again.kicked_off_at == first.kicked_off_at
    assert again.starts_at == first.starts_at

    client = dev_server.client
    handle = client.get_workflow_handle(round_workflow_id(rid))
    assert (await handle.describe()).workflow_type == "CampaignRound"
    org_ids = [organisation_workflow_id(rid, org) for org in ("org-a", "org-b", "org-c")]

    async def all_started() -> bool:
        try:
            for workflow_id in org_ids:
                await client.get_workflow_handle(workflow_id).describe()
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                return False
            raise
        return True

    await wait_for(all_started)

    async def listed() -> bool:  # visibility lags behind the starts
        counts = [await executions(client, w) for w in (round_workflow_id(rid), *org_ids)]
        return all(counts) and counts == [1] * len(counts)

    await wait_for(listed)
    with sessions() as session:
        audits = session.scalars(
            select(AuditRow.user).where(
                AuditRow.round_id == rid, AuditRow.action == "round_kicked_off"
            )
        ).all()
        assert audits == ["county"]  # the first kick-off's record, not the repeat's
        row = session.get(RoundRow, rid)
        assert row is not None and row.kicked_off_by == "county"
        status = rounds.round_status(session, rid, role=Role.COUNTY_OFFICE, as_of=datetime.now(UTC))
        hidden = rounds.round_status(session, rid, role=Role.SECRETARY, as_of=datetime.now(UTC))
    assert status.status == "running" and status.progress is not None
    assert hidden.progress is None


async def test_a_gap_year_is_refused_naming_the_year_before_any_workflow_starts(
    service: rounds.Rounds, sessions: sessionmaker[Session], dev_server: WorkflowEnvironment
) -> None:
    # At creation: refused, nothing written.
    rid = f"rsvc-gap-{uuid.uuid4().hex[:8]}"
    with pytest.raises(InvalidInput) as refused:
        await rounds.create_round(
            sessions,
            COUNTY,
            round_id=rid,
            plan_id="seed-002",
            round_plan_id="round-2",
            starts_at=REBASED,
        )
    assert refused.value.code == "invalid_plan"
    [error] = refused.value.errors
    assert error["field"] == "starts_at" and error["reason"].startswith("2027年")
    with sessions() as session, pytest.raises(NotFound):
        rounds.round_status(session, rid, role=Role.COUNTY_OFFICE, as_of=datetime.now(UTC))

    # At kick-off, for a round stored before the check (or data changed since).
    now = datetime.now(UTC)
    with sessions.begin() as session:
        session.add_all(
            [
                RoundDefinitionRow(
                    round_id=rid,
                    plan_source="seed-002",
                    plan_yaml=SEED,
                    round_plan_id="round-2",
                    starts_at=REBASED,
                    roster_snapshot=None,
                    created_by="county",
                    created_at=now,
                    kicked_off_at=None,
                ),
                RoundRow(
                    round_id=rid,
                    name="第二轮：迎接党的十八大",
                    campaign_id="seed-002",
                    round_plan_id="round-2",
                    starts_at=REBASED,
                    status="created",
                    kicked_off_by="county",
                    updated_at=now,
                ),
            ]
        )
    with pytest.raises(InvalidInput) as at_kickoff:
        await service.kick_off(COUNTY, rid)
    [error] = at_kickoff.value.errors
    assert error["field"] == "starts_at" and "2027年" in error["reason"]
    assert await executions(dev_server.client, round_workflow_id(rid)) == 0
    with pytest.raises(RPCError) as missing:
        await dev_server.client.get_workflow_handle(round_workflow_id(rid)).describe()
    assert missing.value.status is RPCStatusCode.NOT_FOUND
    with sessions() as session:
        status = rounds.round_status(session, rid, role=Role.COUNTY_OFFICE, as_of=now)
        assert (status.status, status.kicked_off_at) == ("created", None)
        definition = session.get(RoundDefinitionRow, rid)
        assert definition is not None and definition.roster_snapshot is None

    # A calendar update needs a kicked-off round.
    with pytest.raises(Conflict) as not_started:
        await service.update_calendar(
            COUNTY, rid, rounds.PublishedCalendar(supplied_years=(2027,)), reason="国务院通知"
        )
    assert not_started.value.code == "not_started"


async def test_round_commands_are_the_county_offices(
    service: rounds.Rounds, sessions: sessionmaker[Session]
) -> None:
    rid = f"rsvc-{uuid.uuid4().hex[:8]}"
    with pytest.raises(Refused) as forbidden:
        await rounds.create_round(
            sessions, SECRETARY, round_id=rid, plan_id="demo", round_plan_id="demo"
        )
    assert forbidden.value.code == "forbidden"
    with pytest.raises(Refused):
        await service.kick_off(SECRETARY, rid)
    with pytest.raises(NotFound):
        await service.kick_off(COUNTY, rid)
    with pytest.raises(InvalidInput) as neither:
        await rounds.create_round(sessions, COUNTY, round_id=rid, round_plan_id="demo")
    assert neither.value.errors[0]["field"] == "plan_id"


async def test_a_closed_round_is_not_kicked_off_again(
    service: rounds.Rounds, sessions: sessionmaker[Session], dev_server: WorkflowEnvironment
) -> None:
    rid = f"rsvc-closed-{uuid.uuid4().hex[:8]}"
    await rounds.create_round(sessions, COUNTY, round_id=rid, plan_id="demo", round_plan_id="demo")
    await service.kick_off(COUNTY, rid)
    await service.close(COUNTY, rid, reason="测试结束")
    # Kicking off is harmless while the round runs (one workflow), but once it has ended a
    # new start would run the round again under the same id and recreate its schedules.
    with pytest.raises(Conflict) as ended:
        await service.kick_off(COUNTY, rid)
    assert ended.value.code == "already_closed"
    with sessions() as session:
        status = rounds.round_status(session, rid, role=Role.COUNTY_OFFICE, as_of=datetime.now(UTC))
        assert status.status == "closed"
    assert await executions(dev_server.client, round_workflow_id(rid)) == 1
    # The schedules the close deleted stay deleted (described directly: listing lags).
    for schedule_id in (digest_schedule_id(rid), circular_schedule_id(rid)):
        with pytest.raises(RPCError) as gone:
            await dev_server.client.get_schedule_handle(schedule_id).describe()
        assert gone.value.status is RPCStatusCode.NOT_FOUND


async def test_round_reasons_count_as_a_reader_sees_them_on_every_path(
    service: rounds.Rounds, round_id: str
) -> None:
    # The pages and the CLI reach the service without the API's request bodies: the service
    # itself refuses a reason of zero-width characters or with a direction override, before
    # the round workflow is asked.
    later = datetime.now(UTC) + timedelta(days=3)
    with pytest.raises(InvalidInput) as blank:
        await service.extend(
            COUNTY, round_id, phase=Phase.MOBILISATION, new_deadline=later, reason="\u200b\u3000"
        )
    assert blank.value.errors == [{"field": "reason", "reason": "理由不能为空"}]
    with pytest.raises(InvalidInput) as disguised:
        await service.close(COUNTY, round_id, reason="到期\u202e结束")
    assert disguised.value.errors == [{"field": "reason", "reason": f"理由{BIDI_REASON}"}]
