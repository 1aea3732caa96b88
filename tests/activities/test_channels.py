"""Notification channels against real receivers started by the tests.

A local SMTP server (aiosmtpd) receives the mails; a local HTTP server plays the WeCom and
DingTalk robots. Notices come from the real domain (``build_notice`` over a late phase).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from activities.channels import (
    ChannelRouter,
    ChannelsConfig,
    DeliveryFailed,
    DeliveryStatus,
    build_notifier,
    deliveries_of,
    failed_deliveries,
    router_from_config,
)
from activities.channels.config import SmtpSettings
from activities.channels.deliveries import IN_FLIGHT_LEASE, Claim, claim_delivery
from activities.channels.message import from_notice
from activities.channels.smtp import SmtpChannel, message_id
from activities.contracts import NoticeBatch
from activities.db import create_schema, make_engine, session_factory
from activities.notifier import InboxNotifier
from activities.recording import RecordingActivities
from chuangzheng.settings import Settings
from domain.calendar import SHANGHAI
from domain.machine import PhaseStatus
from domain.notices import Notice, NoticeKind, build_notice
from domain.organisation import Organisation, OrgType, Role, System, supervisors_of
from domain.phases import Phase
from domain.state import PhaseState, StepState
from tests.activities.receivers import MailBox, Robots, free_port

ROUND = "2024-r1"
NOW = datetime(2024, 3, 11, 9, 30, tzinfo=SHANGHAI)
BASE_URL = "https://cxzy.example.gov.cn"
DING_SECRET = "SECtest-secret-值"
ORG = Organisation(
    id="org-001",
    name="城关镇东关村党支部",
    type=OrgType.RURAL,
    township="城关镇",
    system=System.RURAL,
    instructor="张指导",
    secretary="李书记",
    member_count=42,
)


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[DbSession]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'channels.db'}")
    create_schema(engine)
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()


def channels_config(mailbox: MailBox, robots: Robots) -> ChannelsConfig:
    """Instructors by mail and WeCom, townships by DingTalk (signed), all on local receivers."""
    return ChannelsConfig.model_validate(
        {
            "public_base_url": BASE_URL,
            "routes": {"instructor": ["email", "wecom"], "township": ["dingtalk"]},
            "smtp": {
                "host": "127.0.0.1",
                "port": mailbox.port,
                "security": "none",
                "from_address": "cxzy@example.gov.cn",
            },
            "robots": {
                "城关镇指导员群": {"kind": "wecom", "url": robots.url("/wecom/send?key=K1")},
                "城关镇党委群": {
                    "kind": "dingtalk",
                    "url": robots.url("/robot/send?access_token=T1"),
                    "secret": DING_SECRET,
                },
            },
            "role_addresses": {"township": {"dingtalk": "城关镇党委群"}},
            "recipients": [
                {
                    "role": "instructor",
                    "key": "张指导",
                    "addresses": {"email": "zhang@example.gov.cn", "wecom": "城关镇指导员群"},
                }
            ],
        }
    )


@pytest.fixture
def router(sessions: sessionmaker[DbSession], mailbox: MailBox, robots: Robots) -> ChannelRouter:
    return router_from_config(sessions, channels_config(mailbox, robots), Settings())


# ----- notices from the domain -----------------------------------------------------------------
def late_phase() -> PhaseState:
    """Mobilisation, past its deadline, with the mobilisation meeting still missing."""
    deadline = datetime(2024, 3, 6, 17, 30, tzinfo=SHANGHAI)
    return PhaseState(
        phase=Phase.MOBILISATION,
        status=PhaseStatus.OPEN,
        opens_at=deadline - timedelta(days=14),
        deadline=deadline,
        planned_deadline=deadline,
        steps=[
            StepState(step_id="meeting", name="召开动员大会", required=True),
            StepState(step_id="plan", name="制定实施方案", required=False),
        ],
    )


def escalation(role: Role, rung: int, rung_name: str) -> Notice:
    return build_notice(
        kind=NoticeKind.ESCALATION,
        round_id=ROUND,
        org=ORG,
        phase=late_phase(),
        who=supervisors_of(ORG)[role],
        now=NOW,
        rung=rung,
        rung_name=rung_name,
        working_days_overdue=3,
    )


TO_INSTRUCTOR = escalation(Role.INSTRUCTOR, 1, "指导员督办")
TO_TOWNSHIP = escalation(Role.TOWNSHIP, 2, "乡镇党委督办")
LINK = f"{BASE_URL}/orgs/org-001?round={ROUND}"


def statuses(sessions: sessionmaker[DbSession], notice: Notice) -> dict[str, DeliveryStatus]:
    return {d.channel: d.status for d in deliveries_of(sessions, notice.notice_id)}


# ----- content in the documented formats -------------------------------------------------------
async def test_mail_arrives_with_chinese_subject_and_body(
    router: ChannelRouter, mailbox: MailBox
) -> None:
    assert await router.deliver(TO_INSTRUCTOR) is True

    [mail] = mailbox.mails
    assert mailbox.recipients == [["zhang@example.gov.cn"]]
    assert mail["Subject"] == "【指导员督办】城关镇东关村党支部动员部署阶段逾期3个工作日"
    assert mail["From"].addresses[0].display_name == "县委创先争优活动领导小组办公室"
    assert mail["Message-ID"] == message_id(TO_INSTRUCTOR.notice_id, "cxzy@example.gov.cn")
    body = mail.get_body(("plain",))
    assert body is not None and body.get_content_charset() == "utf-8"
    text = body.get_content()
    assert "致：指导员张指导" in text
    assert "城关镇东关村党支部（城关镇，书记李书记）" in text  # who is late
    assert "“召开动员大会”（待提交）" in text  # with which step
    assert "2024年03月06日 17:30" in text  # the deadline
    assert "逾期3个工作日" in text
    assert "请督促其尽快完成并签收本通知" in text  # what is expected
    assert f"详情及签收：{LINK}" in text
    assert "制定实施方案" not in text  # optional steps are not demanded


async def test_wecom_robot_gets_documented_markdown(router: ChannelRouter, robots: Robots) -> None:
    await router.deliver(TO_INSTRUCTOR)

    [(path, query, body)] = robots.received
    assert (path, query) == ("/wecom/send", {"key": ["K1"]})
    assert set(body) == {"msgtype", "markdown"} and body["msgtype"] == "markdown"
    assert set(body["markdown"]) == {"content"}
    content = body["markdown"]["content"]
    assert content.startswith(f"### {TO_INSTRUCTOR.title}\n")
    assert "逾期3个工作日" in content and "召开动员大会" in content
    assert f"[查看详情并签收]({LINK})" in content


async def test_dingtalk_robot_gets_signed_markdown(router: ChannelRouter, robots: Robots) -> None:
    before = int(time.time() * 1000)
    await router.deliver(TO_TOWNSHIP)

    [(path, query, body)] = robots.received
    assert path == "/robot/send"
    assert set(query) == {"access_token", "timestamp", "sign"} and query["access_token"] == ["T1"]
    timestamp = query["timestamp"][0]
    assert before <= int(timestamp) <= int(time.time() * 1000)
    digest = hmac.new(
        DING_SECRET.encode(), f"{timestamp}\n{DING_SECRET}".encode(), hashlib.sha256
    ).digest()
    assert query["sign"] == [base64.b64encode(digest).decode()]  # parse_qs undid the urlencoding
    assert body == {
        "msgtype": "markdown",
        "markdown": {"title": TO_TOWNSHIP.title, "text": body["markdown"]["text"]},
    }
    assert "致：城关镇党委" in body["markdown"]["text"] and LINK in body["markdown"]["text"]


async def test_robot_messages_go_over_one_kept_connection(
    router: ChannelRouter, robots: Robots
) -> None:
    # A client per message loaded the trust store each time (~20 ms on the worker's loop)
    # and opened a connection each time: a deadline storm with robots waited on both.
    for n in range(3):
        await router.deliver(TO_INSTRUCTOR.model_copy(update={"notice_id": f"kept/{n}"}))
    await router.deliver(TO_TOWNSHIP)

    assert len(robots.on("/wecom/send")) == 3 and len(robots.on("/robot/send")) == 1
    assert len(set(robots.peers)) == 1  # WeCom and DingTalk share the client, on one socket


async def test_long_notice_is_cut_for_wecom_but_keeps_its_link(
    router: ChannelRouter, robots: Robots
) -> None:
    long = TO_INSTRUCTOR.model_copy(update={"body": "未完成事项说明。" * 400})
    await router.deliver(long)

    content = robots.on("/wecom/send")[0]["markdown"]["content"]
    assert len(content.encode("utf-8")) <= 4096
    assert content.count("……") == 1 and LINK in content


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 (made by the openssl CLI)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not available")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.mark.parametrize("security", ["starttls", "ssl"])
async def test_mail_over_tls_with_login(
    certificate: tuple[Path, Path], security: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = certificate
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(*args: Any) -> AuthResult:
        data = args[-1]
        assert isinstance(data, LoginPassword)
        logins.append((data.login, data.password))
        return AuthResult(success=data.password == b"pw-secret")

    box = MailBox(port=free_port())
    tls_args: dict[str, Any] = (
        {"tls_context": server_tls, "require_starttls": True}
        if security == "starttls"
        else {"ssl_context": server_tls, "auth_require_tls": False}
    )
    controller = Controller(
        box, hostname="127.0.0.1", port=box.port, authenticator=authenticator, **tls_args
    )
    controller.start()
    monkeypatch.setenv("CZ_TEST_SMTP_PASSWORD", "pw-secret")
    settings = SmtpSettings.model_validate(
        {
            "host": "127.0.0.1",
            "port": box.port,
            "security": security,
            "username": "cxzy",
            "password": "env:CZ_TEST_SMTP_PASSWORD",
            "from_address": "cxzy@example.gov.cn",
        }
    )
    channel = SmtpChannel(
        settings, base_url=BASE_URL, tls_context=ssl.create_default_context(cafile=str(cert))
    )
    try:
        await channel.send(from_notice(TO_INSTRUCTOR), "zhang@example.gov.cn")
    finally:
        controller.stop()

    assert logins == [(b"cxzy", b"pw-secret")]
    [mail] = box.mails
    assert mail["Subject"] == TO_INSTRUCTOR.title


# ----- exactly once, failures visible, retries -------------------------------------------------
async def test_same_batch_twice_sends_each_message_once(
    router: ChannelRouter, sessions: sessionmaker[DbSession], mailbox: MailBox, robots: Robots
) -> None:
    activities = RecordingActivities(sessions, router)
    batch = NoticeBatch(notices=[TO_INSTRUCTOR, TO_TOWNSHIP])

    first = await activities.deliver_notices(batch)
    second = await activities.deliver_notices(batch)

    assert (first.delivered, first.already_delivered) == (2, 0)
    assert (second.delivered, second.already_delivered) == (0, 2)
    assert len(mailbox.mails) == 1
    assert len(robots.on("/wecom/send")) == 1 and len(robots.on("/robot/send")) == 1
    [mail, wecom] = deliveries_of(sessions, TO_INSTRUCTOR.notice_id)
    assert (mail.channel, mail.status, mail.attempts) == ("email", DeliveryStatus.SENT, 1)
    assert (wecom.address, wecom.sent_at) == ("城关镇指导员群", wecom.updated_at)


@pytest.mark.parametrize(
    "reply",
    [(500, "robot down"), (200, '{"errcode":93000,"errmsg":"invalid webhook url"}')],
    ids=["http-500", "errcode"],
)
async def test_failed_robot_stays_failed_with_error_until_a_retry_sends_it(
    router: ChannelRouter,
    sessions: sessionmaker[DbSession],
    mailbox: MailBox,
    robots: Robots,
    reply: tuple[int, str],
) -> None:
    robots.replies["/wecom/send"] = reply
    with pytest.raises(DeliveryFailed, match="wecom"):
        await router.deliver(TO_INSTRUCTOR)

    [failed] = failed_deliveries(sessions)
    assert (failed.channel, failed.attempts) == ("wecom", 1)
    assert failed.last_error is not None and (
        "HTTP 500" in failed.last_error or "93000" in failed.last_error
    )
    assert statuses(sessions, TO_INSTRUCTOR)["email"] is DeliveryStatus.SENT

    # Temporal retries the activity while the robot is still down: one more attempt, recorded.
    with pytest.raises(DeliveryFailed):
        await router.deliver(TO_INSTRUCTOR)
    assert failed_deliveries(sessions)[0].attempts == 2

    # The robot is back: the next retry sends it; the mail, already sent, is not sent again.
    del robots.replies["/wecom/send"]
    assert await router.deliver(TO_INSTRUCTOR) is True
    assert statuses(sessions, TO_INSTRUCTOR) == {
        "email": DeliveryStatus.SENT,
        "wecom": DeliveryStatus.SENT,
    }
    [delivery] = [
        d for d in deliveries_of(sessions, TO_INSTRUCTOR.notice_id) if d.channel == "wecom"
    ]
    assert (delivery.attempts, delivery.last_error) == (3, None)
    assert len(mailbox.mails) == 1 and len(robots.on("/wecom/send")) == 3


async def test_operator_retry_of_failed_deliveries(
    router: ChannelRouter, sessions: sessionmaker[DbSession], robots: Robots
) -> None:
    robots.replies["/robot/send"] = (503, "busy")
    with pytest.raises(DeliveryFailed):
        await router.deliver(TO_TOWNSHIP)
    assert await router.retry_failed() == (0, 1)

    del robots.replies["/robot/send"]
    # Another county's operator resends only their own county's: nothing of this one.
    assert await router.retry_failed(county="another-county") == (0, 0)
    assert [d.notice_id for d in failed_deliveries(sessions)] == [TO_TOWNSHIP.notice_id]
    assert await router.retry_failed() == (1, 0)
    assert failed_deliveries(sessions) == []
    assert statuses(sessions, TO_TOWNSHIP) == {"dingtalk": DeliveryStatus.SENT}


async def test_claim_is_a_lease_against_overlapping_attempts(
    sessions: sessionmaker[DbSession],
) -> None:
    def claim(at: datetime) -> Claim:
        return claim_delivery(sessions, notice_id="n1", channel="email", address="a@b.cn", now=at)

    assert claim(NOW) is Claim.CLAIMED
    assert claim(NOW + timedelta(seconds=5)) is Claim.IN_FLIGHT
    # The worker died mid-send: after the lease, the mail is claimed (and sent) again; the
    # Message-ID lets the mailbox drop the copy.
    assert claim(NOW + timedelta(minutes=2)) is Claim.CLAIMED


async def test_interrupted_robot_post_is_never_repeated_automatically(
    sessions: sessionmaker[DbSession], router: ChannelRouter, robots: Robots
) -> None:
    # A robot post claimed by an attempt whose worker then died (no outcome recorded).
    stale = datetime.now(UTC) - IN_FLIGHT_LEASE - timedelta(seconds=1)
    address = "城关镇党委群"
    claim_delivery(
        sessions, notice_id=TO_TOWNSHIP.notice_id, channel="dingtalk", address=address, now=stale
    )
    # The retried activity must not post again: the group may already have it.
    assert await router.deliver(TO_TOWNSHIP) is True  # the inbox row is new
    assert robots.received == []
    [delivery] = deliveries_of(sessions, TO_TOWNSHIP.notice_id)
    assert delivery.status is DeliveryStatus.UNCERTAIN
    assert delivery.last_error is not None and "未自动重发" in delivery.last_error
    assert await router.deliver(TO_TOWNSHIP) is False  # still left alone
    assert [d.notice_id for d in failed_deliveries(sessions)] == [TO_TOWNSHIP.notice_id]
    # The operator checked the group and resends: it arrives once.
    assert await router.retry_failed() == (1, 0)
    assert len(robots.received) == 1
    assert statuses(sessions, TO_TOWNSHIP) == {"dingtalk": DeliveryStatus.SENT}


async def test_the_channels_files_lease_decides_when_a_dead_claim_is_settled(
    sessions: sessionmaker[DbSession], mailbox: MailBox, robots: Robots
) -> None:
    # Claimed 31 s ago by a worker that then died: within the default 60 s lease, past a
    # 30 s one (the shortest the robots' 10 s timeout allows).
    stale = datetime.now(UTC) - timedelta(seconds=31)
    claim_delivery(
        sessions,
        notice_id=TO_TOWNSHIP.notice_id,
        channel="dingtalk",
        address="城关镇党委群",
        now=stale,
    )
    default = router_from_config(sessions, channels_config(mailbox, robots), Settings())
    with pytest.raises(DeliveryFailed, match="另一次投递正在进行"):
        await default.deliver(TO_TOWNSHIP)
    config = channels_config(mailbox, robots).model_copy(update={"delivery_lease_seconds": 30})
    short = router_from_config(sessions, config, Settings())
    assert await short.deliver(TO_TOWNSHIP) is False  # the inbox row exists already
    assert robots.received == []
    [delivery] = deliveries_of(sessions, TO_TOWNSHIP.notice_id)
    assert delivery.status is DeliveryStatus.UNCERTAIN


# ----- configuration ---------------------------------------------------------------------------
def test_without_channels_file_the_inbox_alone_is_used(
    sessions: sessionmaker[DbSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CZ_CHANNELS_FILE", raising=False)
    assert isinstance(build_notifier(sessions, Settings()), InboxNotifier)


def test_example_channels_file_builds_a_router(
    sessions: sessionmaker[DbSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    example = Path(__file__).resolve().parents[2] / "deploy" / "channels.example.yaml"
    monkeypatch.setenv("CZ_CHANNELS_FILE", str(example))
    monkeypatch.setenv("CZ_SMTP_PASSWORD", "pw")
    monkeypatch.setenv("CZ_DINGTALK_SECRET", "SECxyz")
    assert isinstance(build_notifier(sessions, Settings()), ChannelRouter)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"routes": {"instructor": ["fax"]}}, "未知的渠道"),
        ({"role_addresses": {"township": {"dingtalk": "不存在的群"}}}, "未定义的dingtalk机器人"),
        ({"smtp": None}, "缺少 smtp"),
        # Longer than the delivery ledger's column: PostgreSQL would refuse its row.
        ({"role_addresses": {"township": {"email": "a" * 310 + "@example.org"}}}, "地址过长"),
        # Robots time out after 10 s: a lease under 30 s could hand a send still under way to
        # another attempt.
        ({"delivery_lease_seconds": 29}, "delivery_lease_seconds（29秒）过短"),
        ({"smtp": {"host": "h", "from_address": "a@b.cn", "timeout_seconds": 30}}, "90秒"),
    ],
)
def test_inconsistent_configuration_is_refused(
    change: dict[str, Any], message: str, mailbox: MailBox, robots: Robots
) -> None:
    data = channels_config(mailbox, robots).model_dump(mode="json") | change
    with pytest.raises(ValueError, match=message):
        ChannelsConfig.model_validate(data)
