"""Daily digests and circular notices go out on the channels too: the digest and circular
activities run (in Temporal's activity environment) over a real read model with laggards in
two townships, and a real aiosmtpd server and a local robot server receive the messages.
Running them again sends nothing more."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import ActivityEnvironment

from activities.channels import deliveries_of, router_from_config
from activities.channels.config import ChannelsConfig
from activities.channels.deliveries import DeliveryStatus
from activities.channels.smtp import message_id
from activities.digests import DigestActivities
from activities.tables import CampaignStatusRow, OrganisationRow
from chuangzheng.settings import Settings
from domain.calendar import SHANGHAI
from tests.activities.receivers import MailBox, Robots
from workflows.digest import CircularRun, DigestRun

ROUND = "dg-round"
NOW = datetime(2024, 3, 20, 8, 0, tzinfo=SHANGHAI)
# (org id, township, instructor, light, overdue)
ORGS = [
    ("o1", "城关镇", "张指导", "red", True),
    ("o2", "城关镇", "张指导", "green", False),
    ("o3", "青石镇", "王指导", "red", True),
    ("o4", "青石镇", "王指导", "blue", False),
]


def _config(mailbox: MailBox, robots: Robots) -> ChannelsConfig:
    """Instructors by mail, townships by a WeCom robot, the county office by DingTalk."""
    return ChannelsConfig.model_validate(
        {
            "public_base_url": "https://cxzy.example.gov.cn",
            "routes": {
                "instructor": ["email"],
                "township": ["wecom"],
                "county_office": ["dingtalk"],
            },
            "smtp": {
                "host": "127.0.0.1",
                "port": mailbox.port,
                "security": "none",
                "from_address": "cxzy@example.gov.cn",
            },
            "robots": {
                "乡镇群": {"kind": "wecom", "url": robots.url("/wecom/send?key=K")},
                "县委群": {"kind": "dingtalk", "url": robots.url("/robot/send?access_token=T")},
            },
            "role_addresses": {
                "instructor": {"email": "instructors@example.gov.cn"},
                "township": {"wecom": "乡镇群"},
                "county_office": {"dingtalk": "县委群"},
            },
        }
    )


def _store(sessions: sessionmaker[Session]) -> None:
    deadline = datetime(2024, 3, 11, 23, 59, tzinfo=SHANGHAI)
    with sessions.begin() as session:
        for number, (org_id, township, instructor, light, overdue) in enumerate(ORGS, 1):
            session.add(
                OrganisationRow(
                    org_id=org_id,
                    name=f"{township}{org_id}党支部",
                    org_type="rural",
                    township=township,
                    system="rural",
                    member_count=20,
                    secretary=f"书记{org_id}",
                    instructor=instructor,
                    active=True,
                    row_number=number,
                    updated_at=datetime.now(UTC),
                )
            )
            session.add(
                CampaignStatusRow(
                    round_id=ROUND,
                    org_id=org_id,
                    org_name=f"{township}{org_id}党支部",
                    township=township,
                    system="rural",
                    org_type="rural",
                    phase="mobilisation",
                    phase_status="open",
                    light=light,
                    overdue=overdue,
                    deadline=deadline if overdue else deadline + timedelta(days=30),
                    top_rung=0 if overdue else None,
                    closed=False,
                    event_seq=1,
                    updated_at=datetime.now(UTC),
                )
            )


@pytest.mark.asyncio
async def test_digests_and_circular_notices_reach_mail_and_robots_once(
    sessions: sessionmaker[Session], mailbox: MailBox, robots: Robots, tmp_path: Path
) -> None:
    _store(sessions)
    router = router_from_config(sessions, _config(mailbox, robots), Settings())
    acts = DigestActivities(sessions, tmp_path, sender=router)
    env = ActivityEnvironment()

    report = await env.run(acts.send_digests, DigestRun(round_id=ROUND, now=NOW))
    # Each instructor has one laggard: one mail each, in Chinese, listing the laggard.
    assert report.sent >= 2
    to_instructors = {m["Subject"]: m for m in mailbox.mails}
    assert len(mailbox.mails) == 2, [m["Subject"] for m in mailbox.mails]
    bodies = "\n".join(m.get_content() for m in mailbox.mails)
    assert "城关镇o1党支部" in bodies and "青石镇o3党支部" in bodies
    assert all("每日督办摘要" in subject for subject in to_instructors)
    assert "青石镇o4党支部" in bodies  # blue: listed under 需关注
    # Townships (WeCom) and the county office (DingTalk) got their digests too.
    wecom = robots.on("/wecom/send")
    assert len(wecom) == 2 and all(p["msgtype"] == "markdown" for p in wecom)
    assert any("城关镇o1党支部" in p["markdown"]["content"] for p in wecom)
    [county] = robots.on("/robot/send")
    assert "每日督办摘要" in county["markdown"]["title"]

    # A retry or a second run the same day sends nothing more.
    again = await env.run(acts.send_digests, DigestRun(round_id=ROUND, now=NOW))
    assert again.sent == 0 and len(mailbox.mails) == 2 and len(robots.received) == 3

    circular = await env.run(acts.publish_circular, CircularRun(round_id=ROUND, now=NOW))
    # The circular's notices: the county office and each township, on their channels.
    assert circular.notices_sent == 3
    circular_posts = robots.received[3:]
    assert len(circular_posts) == 3
    texts = [
        body["markdown"].get("content") or body["markdown"]["text"] for _, _, body in circular_posts
    ]
    assert all("通报" in text for text in texts)
    assert any("青石镇o3党支部" in text for text in texts)
    republished = await env.run(acts.publish_circular, CircularRun(round_id=ROUND, now=NOW))
    assert republished.already_published and len(robots.received) == 6

    # Mail carries the digest's stable Message-ID; the ledger holds one sent delivery each.
    assert {m["Message-ID"] for m in mailbox.mails} == {
        message_id(r, "cxzy@example.gov.cn") for r in report.recipients if "instructor" in r
    }
    routed = [r for r in report.recipients if "guidance_group" not in r]  # not routed: inbox only
    assert len(routed) == 5
    for row_id in routed:
        assert [d.status for d in deliveries_of(sessions, row_id)] == [DeliveryStatus.SENT]
