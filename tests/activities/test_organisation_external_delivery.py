"""Delivery serves the external channels only (``EXTERNAL_DELIVERY_PATCH``), in the rung's
own workflow task (``LOCAL_DELIVERY_PATCH``).

A late organisation climbs the whole ladder on a worker whose notifier routes the
instructor's notices to a WeCom group robot (a local HTTP server standing in for it) and
every other role to the inbox alone. The outbox (``record_outbox``) records every notice in
the inbox and answers which ones a channel carries; ``deliver_notices`` runs for those
alone, as a local activity, and the robot receives each once. The other roles' notices are
in the inbox and were never handed to an activity. While the robot refuses, each local
delivery fails once and goes on through the regular activity, whose retries deliver every
notice once the robot answers again. (``test_organisation_small_inputs.py`` has the
inbox-only worker, where no ``deliver_notices`` runs at all.)

``organisation_external_delivery.json`` was recorded before ``LOCAL_DELIVERY_PATCH`` (its
deliveries are regular activities, by id) and still replays. The tests run on a
time-skipping server of their own, so the shared server's clock is left alone, and over a
SQLite read model of their own. With CZ_RECORD_HISTORIES=1 the first records
``organisation_local_delivery`` for the replay test.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent

from activities.channels import ChannelsConfig, router_from_config
from activities.db import create_schema, make_engine, session_factory
from activities.tables import CampaignStatusRow, NoticeRow, notice_deliveries
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
from workflows.organisation import EXTERNAL_DELIVERY_PATCH, LOCAL_DELIVERY_PATCH

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


@dataclass
class Climbed:
    """What a late organisation's climb up the ladder left: its history, the inbox by notice
    id and recipient role, and the robot deliveries the ledger says were sent."""

    events: list[HistoryEvent]
    inbox: dict[str, Role]
    sent: list[str]

    @property
    def to_instructor(self) -> list[str]:
        return sorted(n for n, role in self.inbox.items() if role is Role.INSTRUCTOR)

    def markers(self) -> list[bytes]:
        return [
            e.marker_recorded_event_attributes.SerializeToString()
            for e in self.events
            if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        ]

    def scheduled(self) -> list[Any]:
        return [
            e.activity_task_scheduled_event_attributes
            for e in self.events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        ]


async def climb(tmp_path: Path, robots: Robots, *, refusals: int = 0) -> Climbed:
    """Run a late organisation past its top rung, the robot refusing its first ``refusals``
    posts with WeCom's rate-limit error, and wait until every instructor notice is sent."""
    engine = make_engine(f"sqlite:///{tmp_path / 'readmodel.db'}")
    create_schema(engine)
    sessions = session_factory(engine)
    org = organisation("org-external-01")
    router = router_from_config(sessions, _config(robots, org.instructor), Settings())
    round_id = f"r-external-{uuid.uuid4().hex[:6]}"
    queue = f"external-{uuid.uuid4()}"
    robots.refusals[ROBOT_PATH] = refusals
    env = await start_time_skipping_env()
    try:
        async with build_worker(env.client, task_queue=queue, sessions=sessions, notifier=router):
            plan = org_plan(org, await env.get_current_time(), round_id=round_id)
            handle = await start_campaign(env.client, queue, plan)
            # Nothing done in 公开承诺 past the top rung: reminder, rungs, circular, order.
            await leave_next_phase_past_its_top_rung(env, handle, plan)
            state = (await status(handle)).state
            for _ in range(600):  # the last flush and the deliveries may still be running
                with sessions() as session:
                    row = session.get(CampaignStatusRow, (round_id, org.id))
                    sent = list(
                        session.scalars(
                            select(notice_deliveries.c.notice_id).where(
                                notice_deliveries.c.status == "sent"
                            )
                        )
                    )
                    instructors = session.scalar(
                        select(func.count())
                        .select_from(NoticeRow)
                        .where(NoticeRow.recipient_role == Role.INSTRUCTOR.value)
                    )
                if (
                    row is not None
                    and row.event_seq == state.event_seq
                    and len(sent) == instructors
                ):
                    break
                await asyncio.sleep(0.1)
            events = list((await handle.fetch_history()).events)
            if not refusals:
                await record_history(handle, "organisation_local_delivery")
            await handle.terminate("test done")
        with sessions() as session:
            inbox = {
                row.notice_id: Role(row.recipient_role)
                for row in session.scalars(select(NoticeRow).where(NoticeRow.round_id == round_id))
            }
    finally:
        await env.shutdown()
        engine.dispose()
    return Climbed(events=events, inbox=inbox, sent=sorted(sent))


async def test_routed_notices_are_delivered_in_the_rungs_own_workflow_task(
    tmp_path: Path, robots: Robots
) -> None:
    climbed = await climb(tmp_path, robots)
    markers = climbed.markers()
    assert any(EXTERNAL_DELIVERY_PATCH.encode() in marker for marker in markers)
    assert any(LOCAL_DELIVERY_PATCH.encode() in marker for marker in markers)
    # Recording and delivery both ran inside workflow tasks: no activity was scheduled.
    assert climbed.scheduled() == []
    assert len(climbed.inbox) >= 8 and climbed.to_instructor  # the ladder reached more roles
    # Exactly the instructor's notices went out, each once; nothing for the other roles.
    assert climbed.sent == climbed.to_instructor
    posts = [json.dumps(body, sort_keys=True) for body in robots.on(ROBOT_PATH)]
    assert len(posts) == len(set(posts)) == len(climbed.to_instructor)


async def test_a_refusing_robot_falls_back_to_the_activity_and_gets_each_notice_once(
    tmp_path: Path, robots: Robots
) -> None:
    # The first notice's local delivery is refused, then its regular activity's first
    # attempt; the activity's retry gets through, and any later notice goes out locally.
    climbed = await climb(tmp_path, robots, refusals=2)
    assert climbed.to_instructor and climbed.sent == climbed.to_instructor
    fallbacks: list[str] = []
    for attributes in climbed.scheduled():
        assert attributes.activity_type.name == "deliver_notices"  # recording is local
        payload = json.loads(attributes.input.payloads[0].data)
        assert set(payload) == {"notice_ids"}  # by id: the outbox has recorded them
        fallbacks += payload["notice_ids"]
    # Only the refused notice went on as the regular activity (the ladder's rung 0 is the
    # instructor's: with later ones, only the first of them).
    assert len(fallbacks) == 1 and fallbacks[0] == climbed.to_instructor[0]
    assert any(LOCAL_DELIVERY_PATCH.encode() in marker for marker in climbed.markers())
    # Every notice was accepted exactly once, the refused one on its retry.
    accepted = [json.dumps(body, sort_keys=True) for path, body in robots.accepted]
    assert len(accepted) == len(set(accepted)) == len(climbed.to_instructor)
    assert len(robots.on(ROBOT_PATH)) == len(climbed.to_instructor) + 2
