"""Notices on the channels never cross counties (issue 14), against a real SMTP receiver and
the read model on SQLite and PostgreSQL.

Two counties each have a township 城关镇 with an instructor 张指导, and each its own county
office: the stored recipient keys (``城关镇``, ``张指导``, ``county``) are the same in both.
The inbox keeps them apart through the notice's organisation (``tests/api/test_counties``);
the channels file's address book used to match on role and key alone, so county B's notice
to its 张指导 went to county A's 张指导's mailbox, and county B's office's to county A's
office mailbox. Now an address entry belongs to one county, and a message goes only to
addresses of its organisation's (or round's) county.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from activities.channels import ChannelsConfig, router_from_config
from activities.roster_store import store_roster
from activities.tables import RoundRow
from chuangzheng.services.code_mail import CodeMailer
from chuangzheng.services.counties import create_county
from chuangzheng.settings import Settings
from domain.calendar import SHANGHAI
from domain.machine import PhaseStatus
from domain.notices import Notice, NoticeKind, build_notice
from domain.organisation import DEFAULT_COUNTY, Organisation, OrgType, Role, Roster, supervisors_of
from domain.phases import Phase
from domain.state import PhaseState, StepState
from tests.activities.receivers import MailBox

COUNTY_B = "yixian"
NOW = datetime(2024, 3, 11, 9, 30, tzinfo=SHANGHAI)


def _org(org_id: str) -> Organisation:
    return Organisation(
        id=org_id,
        name="城关镇东关村党支部",
        type=OrgType.RURAL,
        township="城关镇",
        system="rural",  # a key, as the roster gives it
        instructor="张指导",
        secretary="李书记",
        member_count=42,
    )


ORG_A, ORG_B = _org("a-001"), _org("b-001")


def _config(port: int) -> ChannelsConfig:
    return ChannelsConfig.model_validate(
        {
            "routes": {r: ["email"] for r in ("instructor", "township", "county_office")},
            "smtp": {
                "host": "127.0.0.1",
                "port": port,
                "security": "none",
                "from_address": "cxzy@example.gov.cn",
            },
            "role_addresses": {"county_office": {"email": "office-a@example.gov.cn"}},
            "county_role_addresses": {
                COUNTY_B: {"county_office": {"email": "office-b@example.gov.cn"}}
            },
            "recipients": [
                {
                    "role": "instructor",
                    "key": "张指导",
                    "addresses": {"email": "zhang-a@example.gov.cn"},
                },
                {
                    "role": "instructor",
                    "key": "张指导",
                    "county": COUNTY_B,
                    "addresses": {"email": "zhang-b@example.gov.cn"},
                },
                # County B's township has no address: its notices stay in the inbox.
                {
                    "role": "township",
                    "key": "城关镇",
                    "addresses": {"email": "chengguan-a@example.gov.cn"},
                },
            ],
        }
    )


def _late() -> PhaseState:
    deadline = datetime(2024, 3, 6, 17, 30, tzinfo=SHANGHAI)
    return PhaseState(
        phase=Phase.MOBILISATION,
        status=PhaseStatus.OPEN,
        opens_at=deadline - timedelta(days=14),
        deadline=deadline,
        planned_deadline=deadline,
        steps=[StepState(step_id="meeting", name="召开动员大会", required=True)],
    )


def _notice(org: Organisation, round_id: str, role: Role) -> Notice:
    return build_notice(
        kind=NoticeKind.ESCALATION,
        round_id=round_id,
        org=org,
        phase=_late(),
        who=supervisors_of(org)[role],
        now=NOW,
        rung=1,
        rung_name="督办",
        working_days_overdue=3,
    )


def _two_counties(sessions: sessionmaker[Session]) -> None:
    now = datetime.now(UTC)
    with sessions.begin() as session:
        create_county(session, code=COUNTY_B, name="乙县", now=now)
        store_roster(session, Roster(organisations=(ORG_A,)), now=now)
        store_roster(session, Roster(organisations=(ORG_B,)), now=now, county=COUNTY_B)
        for rid, county in (("ra", DEFAULT_COUNTY), ("rb", COUNTY_B)):
            session.add(
                RoundRow(
                    round_id=rid,
                    county=county,
                    name=rid,
                    campaign_id="c",
                    round_plan_id="p",
                    starts_at=now,
                    status="running",
                    kicked_off_by="county",
                    updated_at=now,
                )
            )


async def test_each_countys_notices_reach_only_its_own_addresses(
    sessions: sessionmaker[Session], mailbox: MailBox
) -> None:
    _two_counties(sessions)
    router = router_from_config(sessions, _config(mailbox.port), Settings())
    sent: dict[str, list[str]] = {}
    for label, notice in (
        ("A instructor", _notice(ORG_A, "ra", Role.INSTRUCTOR)),
        ("B instructor", _notice(ORG_B, "rb", Role.INSTRUCTOR)),
        ("A township", _notice(ORG_A, "ra", Role.TOWNSHIP)),
        ("B township", _notice(ORG_B, "rb", Role.TOWNSHIP)),
        ("A office", _notice(ORG_A, "ra", Role.COUNTY_OFFICE)),
        ("B office", _notice(ORG_B, "rb", Role.COUNTY_OFFICE)),
    ):
        before = len(mailbox.recipients)
        await router.deliver(notice)
        sent[label] = [a for rcpt in mailbox.recipients[before:] for a in rcpt]
    assert sent == {
        "A instructor": ["zhang-a@example.gov.cn"],
        "B instructor": ["zhang-b@example.gov.cn"],
        "A township": ["chengguan-a@example.gov.cn"],
        "B township": [],  # not county A's 城关镇: inbox only
        "A office": ["office-a@example.gov.cn"],
        "B office": ["office-b@example.gov.cn"],
    }
    # The keys stored are the same in both counties: only the organisation tells them apart.
    a, b = _notice(ORG_A, "ra", Role.INSTRUCTOR), _notice(ORG_B, "rb", Role.INSTRUCTOR)
    assert (a.recipient_role, a.recipient_key) == (b.recipient_role, b.recipient_key)


def test_activation_codes_go_to_the_own_countys_person_only() -> None:
    """An account's one-time code is mailed to a personal address of its own county only:
    county B's 张指导 never gets county A's 张指导's code, nor the other way round."""
    config = _config(25)
    assert config.smtp is not None
    mailer = CodeMailer(config=config, smtp=config.smtp, base_url="https://cxzy.example")
    assert mailer.personal_address(Role.INSTRUCTOR, ["张指导"]) == "zhang-a@example.gov.cn"
    assert (
        mailer.personal_address(Role.INSTRUCTOR, ["张指导"], COUNTY_B) == "zhang-b@example.gov.cn"
    )
    assert mailer.personal_address(Role.TOWNSHIP, ["城关镇"], COUNTY_B) is None
