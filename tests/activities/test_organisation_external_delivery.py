"""Delivery serves the external channels only (``EXTERNAL_DELIVERY_PATCH``).

A late organisation climbs the whole ladder on a worker whose notifier routes the
instructor's notices to a WeCom group robot (a local HTTP server standing in for it) and
every other role to the inbox alone. The outbox (``record_outbox``) records every notice in
the inbox and answers which ones a channel carries: ``deliver_notices`` is scheduled for
those alone, by id, and the robot receives each once. The other roles' notices are in the
inbox and were never handed to an activity. (``test_organisation_small_inputs.py`` has the
inbox-only worker, where no ``deliver_notices`` is scheduled at all.)

The test runs on a time-skipping server of its own, so the shared server's clock is left
alone, and over a SQLite read model of its own. With CZ_RECORD_HISTORIES=1 it records
``organisation_external_delivery`` for the replay test.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

from sqlalchemy import func, select
from temporalio.api.enums.v1 import EventType

from activities.channels import ChannelsConfig, router_from_config
from activities.db import create_schema, make_engine, session_factory
from activities.tables import CampaignStatusRow, NoticeRow
from chuangzheng.settings import Settings
from chuangzheng.temporal_server import start_time_skipping_env
from domain.organisation import Role
from tests.activities.receivers import Robots
from tests.workflows.support import (
    leave_next_phase_past_its_top_rung,
    org_plan,
    organisation,
    record_history,
    start_campaign,
    status,
)
from worker import build_worker
from workflows.organisation import EXTERNAL_DELIVERY_PATCH

GROUP = "青石镇指导员群"
ROBOT_PATH = "/wecom/send"


def _config(receiver: Robots, instructor: str) -> ChannelsConfig:
    """The instructor on a WeCom robot; every other role on the inbox alone."""
    return ChannelsConfig.model_validate(
        {
            "routes": {"instructor": ["wecom"]},
            "robots": {GROUP: {"kind": "wecom", "url": receiver.url(f"{ROBOT_PATH}?key=K1")}},
            "recipients": [
                {"role": "instructor", "key": instructor, "addresses": {"wecom": GROUP}}
            ],
        }
    )


async def test_only_the_notices_a_channel_carries_are_handed_to_deliver_notices(
    tmp_path: Path, robots: Robots
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'readmodel.db'}")
    create_schema(engine)
    sessions = session_factory(engine)
    org = organisation("org-external-01")
    router = router_from_config(sessions, _config(robots, org.instructor), Settings())
    round_id = f"r-external-{uuid.uuid4().hex[:6]}"
    queue = f"external-{uuid.uuid4()}"
    env = await start_time_skipping_env()
    try:
        async with build_worker(env.client, task_queue=queue, sessions=sessions, notifier=router):
            plan = org_plan(org, await env.get_current_time(), round_id=round_id)
            handle = await start_campaign(env.client, queue, plan)
            # Nothing done in 公开承诺 past the top rung: reminder, rungs, circular, order.
            await leave_next_phase_past_its_top_rung(env, handle, plan)
            state = (await status(handle)).state
            for _ in range(300):  # the last flush and its delivery may still be running
                with sessions() as session:
                    row = session.get(CampaignStatusRow, (round_id, org.id))
                    instructor_notices = session.scalar(
                        select(func.count())
                        .select_from(NoticeRow)
                        .where(
                            NoticeRow.round_id == round_id,
                            NoticeRow.recipient_role == Role.INSTRUCTOR.value,
                        )
                    )
                # Every instructor notice at the robot: the last delivery's POST may still be
                # on its way after the read model has caught up.
                caught_up = row is not None and row.event_seq == state.event_seq
                if (
                    caught_up
                    and instructor_notices
                    and (len(robots.on(ROBOT_PATH)) >= instructor_notices)
                ):
                    break
                await asyncio.sleep(0.1)
            events = list((await handle.fetch_history()).events)
            await record_history(handle, "organisation_external_delivery")
            await handle.terminate("test done")
    finally:
        await env.shutdown()
        engine.dispose()

    markers = [
        e.marker_recorded_event_attributes.SerializeToString()
        for e in events
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
    ]
    assert any(EXTERNAL_DELIVERY_PATCH.encode() in marker for marker in markers)
    handed: list[str] = []
    for e in events:
        if e.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            continue
        attributes = e.activity_task_scheduled_event_attributes
        assert attributes.activity_type.name == "deliver_notices"  # recording is local
        payload = json.loads(attributes.input.payloads[0].data)
        assert set(payload) == {"notice_ids"}  # by id: the outbox has just recorded them
        handed += payload["notice_ids"]

    with sessions() as session:
        inbox = {
            row.notice_id: Role(row.recipient_role)
            for row in session.scalars(select(NoticeRow).where(NoticeRow.round_id == round_id))
        }
    to_instructor = sorted(n for n, role in inbox.items() if role is Role.INSTRUCTOR)
    assert len(inbox) >= 8 and to_instructor  # the ladder reached more roles than this one
    assert sorted(handed) == to_instructor  # each once, and nothing for the inbox-only roles
    assert len(robots.on(ROBOT_PATH)) == len(to_instructor)
