"""总结交流经验 (issue 15, seed 002 §六(五)): a secretary and a township submit good-practice
briefings to a round; the county office selects one and circulates it to the inbox of the
county office, the guidance group and every township of the round, and on their channels
(a real aiosmtpd mailbox and a local robot server); circulated, it is listed for everyone.
Over the real read model on SQLite and PostgreSQL, each write audited."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from activities.channels import deliveries_of, router_from_config
from activities.channels.config import ChannelsConfig
from activities.channels.deliveries import DeliveryStatus
from activities.tables import AuditRow, CampaignStatusRow, DigestRow, OrganisationRow, RoundRow
from api.auth import User
from api.callers import service_caller
from chuangzheng.services import briefings
from chuangzheng.services.callers import Caller
from chuangzheng.services.errors import Conflict, InvalidInput, NotFound, Refused
from chuangzheng.settings import Settings
from domain.organisation import Role
from tests.activities.receivers import MailBox, Robots

ROUND = "br-round"
# (org id, township, secretary account's scope)
ORGS = [("o1", "城关镇"), ("o2", "城关镇"), ("o3", "青石镇")]
TEXT = (
    "我村党支部推行党员设岗定责，把全村划为十二个网格，每名党员联系十户群众，"
    "每月上门走访一次，收集意见建议三十余条，办结群众身边实事二十件，群众满意率明显提高。"
)


def _caller(username: str, role: Role, scope_key: str = "") -> Caller:
    return service_caller(
        User(username=username, display_name=username, role=role, scope_key=scope_key)
    )


SECRETARY_O1 = _caller("sec-o1", Role.SECRETARY, "o1")
SECRETARY_O3 = _caller("sec-o3", Role.SECRETARY, "o3")
TOWNSHIP = _caller("tw-qingshi", Role.TOWNSHIP, "青石镇")
COUNTY = _caller("county", Role.COUNTY_OFFICE)


def _store(sessions: sessionmaker[Session]) -> None:
    now = datetime.now(UTC)
    with sessions.begin() as session:
        session.add(
            RoundRow(
                round_id=ROUND,
                name="第一轮：迎接建党90周年",
                campaign_id="seed-002",
                round_plan_id="round-1",
                starts_at=now,
                status="running",
                kicked_off_by="county",
                updated_at=now,
            )
        )
        for number, (org_id, township) in enumerate(ORGS, 1):
            name = f"{township}{org_id}村党支部"
            session.add(
                OrganisationRow(
                    org_id=org_id,
                    name=name,
                    org_type="rural",
                    township=township,
                    system="rural",
                    member_count=20,
                    secretary=f"书记{org_id}",
                    instructor="张指导",
                    active=True,
                    row_number=number,
                    updated_at=now,
                )
            )
            session.add(
                CampaignStatusRow(
                    round_id=ROUND,
                    org_id=org_id,
                    org_name=name,
                    township=township,
                    system="rural",
                    org_type="rural",
                    phase="public_commitment",
                    phase_status="open",
                    light="green",
                    overdue=False,
                    deadline=None,
                    top_rung=None,
                    closed=False,
                    event_seq=1,
                    updated_at=now,
                )
            )


def _config(mailbox: MailBox, robots: Robots) -> ChannelsConfig:
    """Guidance groups by mail, townships by a WeCom robot, the county office by DingTalk."""
    return ChannelsConfig.model_validate(
        {
            "public_base_url": "https://cxzy.example.gov.cn",
            "routes": {
                "guidance_group": ["email"],
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
                "guidance_group": {"email": "rural-group@example.gov.cn"},
                "township": {"wecom": "乡镇群"},
                "county_office": {"dingtalk": "县委群"},
            },
        }
    )


@pytest.mark.asyncio
async def test_submitted_selected_circulated_to_inbox_and_channels_once(
    sessions: sessionmaker[Session], mailbox: MailBox, robots: Robots, tmp_path: Path
) -> None:
    _store(sessions)
    uploads = tmp_path / "uploads"
    mine = briefings.submit(
        sessions,
        SECRETARY_O1,
        ROUND,
        title="党员设岗定责 网格联系群众",
        text=TEXT,
        org_id="o1",
        attachment=briefings.Attachment("做法.pdf", b"%PDF-1.4 briefing"),
        upload_dir=uploads,
    )
    assert (mine["source"], mine["status_label"]) == ("城关镇o1村党支部", "已报送")
    township = briefings.submit(
        sessions, TOWNSHIP, ROUND, title="乡镇党委经验", text=TEXT, township="青石镇",
        upload_dir=uploads,
    )  # fmt: skip
    assert township["source"] == "青石镇党委" and township["org_id"] is None

    # Refusals name the field; a secretary reaches only their own organisation.
    with pytest.raises(NotFound):
        briefings.submit(
            sessions, SECRETARY_O1, ROUND, title="别的村的简报", text=TEXT, org_id="o3",
            upload_dir=uploads,
        )  # fmt: skip
    with pytest.raises(InvalidInput) as short:
        briefings.submit(
            sessions, SECRETARY_O1, ROUND, title="短", text="太短", org_id="o1", upload_dir=uploads
        )
    assert sorted(e["field"] for e in short.value.errors) == ["text", "title"]
    with pytest.raises(InvalidInput) as bad_file:
        briefings.submit(
            sessions, SECRETARY_O1, ROUND, title="带附件的简报", text=TEXT, org_id="o1",
            attachment=briefings.Attachment("x.exe", b"MZ"), upload_dir=uploads,
        )  # fmt: skip
    assert [e["field"] for e in bad_file.value.errors] == ["file"]
    with pytest.raises(InvalidInput) as disguised:  # shown as "xfdp.png"
        briefings.submit(
            sessions, SECRETARY_O1, ROUND, title="带附件的简报", text=TEXT, org_id="o1",
            attachment=briefings.Attachment("x\u202egnp.pdf", b"%PDF-1.4"), upload_dir=uploads,
        )  # fmt: skip
    assert [e["field"] for e in disguised.value.errors] == ["file"]
    with pytest.raises(Refused):
        briefings.submit(sessions, COUNTY, ROUND, title="县委办报送", text=TEXT, upload_dir=uploads)

    # Before selection: the submitter's side and the county office see it, nobody else.
    with sessions() as session:
        assert {b["briefing_id"] for b in briefings.list_briefings(session, COUNTY, ROUND)} == {
            mine["briefing_id"],
            township["briefing_id"],
        }
        assert briefings.list_briefings(session, SECRETARY_O3, ROUND) == []
        own = briefings.list_briefings(session, SECRETARY_O1, ROUND)
        assert [b["briefing_id"] for b in own] == [mine["briefing_id"]]
        with pytest.raises(NotFound):
            briefings.briefing_file(session, SECRETARY_O3, ROUND, mine["briefing_id"], uploads)
    with pytest.raises(Refused):
        briefings.circulate(sessions, SECRETARY_O1, ROUND, mine["briefing_id"])

    circulated, messages = briefings.circulate(
        sessions, COUNTY, ROUND, mine["briefing_id"], note="网格化联系群众的做法值得推广。"
    )
    # The county office, the rural guidance group and both townships: one message each.
    assert circulated["status"] == "circulated" and circulated["recipients"] == 4
    assert sorted((m["recipient_role"], m["recipient_key"]) for m in messages) == [
        ("county_office", "county"),
        ("guidance_group", "rural"),
        ("township", "城关镇"),
        ("township", "青石镇"),
    ]
    router = router_from_config(sessions, _config(mailbox, robots), Settings())
    assert await briefings.send(router, messages) == 4
    [mail] = mailbox.mails
    assert "经验交流" in mail["Subject"] and "党员设岗定责" in mail["Subject"]
    assert "编者按：网格化联系群众的做法值得推广。" in mail.get_content()
    assert len(robots.on("/wecom/send")) == 2 and len(robots.on("/robot/send")) == 1
    for message in messages:
        statuses = [d.status for d in deliveries_of(sessions, message["message_id"])]
        assert statuses == [DeliveryStatus.SENT]

    # Once: a second selection is refused and sends nothing.
    with pytest.raises(Conflict):
        briefings.circulate(sessions, COUNTY, ROUND, mine["briefing_id"])
    assert len(mailbox.mails) == 1

    with sessions() as session:
        # Listed for everyone in the round now, circulated first, with its attachment.
        listed = briefings.list_briefings(session, SECRETARY_O3, ROUND)
        assert listed[0]["briefing_id"] == mine["briefing_id"]
        assert listed[0]["note"] == "网格化联系群众的做法值得推广。"
        found = briefings.briefing_file(session, SECRETARY_O3, ROUND, mine["briefing_id"], uploads)
        assert found.path.read_bytes() == b"%PDF-1.4 briefing" and found.filename == "做法.pdf"
        inbox = session.scalars(
            select(DigestRow).where(DigestRow.kind == "briefing", DigestRow.round_id == ROUND)
        ).all()
        assert len(inbox) == 4
        assert all(r.link_path.endswith(mine["briefing_id"]) for r in inbox)
        audited = session.scalars(
            select(AuditRow.action).where(AuditRow.round_id == ROUND).order_by(AuditRow.at)
        ).all()
    assert audited == ["briefing_submitted", "briefing_submitted", "briefing_circulated"]
