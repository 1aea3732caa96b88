"""Exactly once across a crash: the worker is SIGKILLed while notices go out by mail and is
restarted; every expected notice is filed in its recipient's mailbox exactly once.

Mail's idempotency key is the ``Message-ID``: mail stores suppress a second delivery of the
same id to the same mailbox (Cyrus ``duplicatesuppression``, Exchange's duplicate detection,
Gmail), and the receiver here files mail the same way. On the wire, only the sends the kill
caught half-recorded go out a second time, with the same ``Message-ID``; the test checks that
exactly those do and nothing else. (Robots take no key; their interrupted posts are held as
``uncertain`` for an operator instead, see ``test_channels``.)

Everything is real: the Temporal CLI dev server (in-memory), the worker as ``python -m
worker`` in a subprocess configured through its environment, a channels YAML routing every
role to mail, a SQLite read model, and an aiosmtpd receiver recording each mail. The round
is the demo plan kicked off 20 minutes in the past for a generated county, so the first
phase is long overdue and the whole ladder fires at once: eight notices per organisation.

The receiver kills the worker from inside the SMTP transaction that brings it to a fifth of
the expected mails, before answering ``250``: that delivery is claimed in the ledger and has
reached the receiver, but can never be recorded as sent. It is sent again once its 60 s lease
has passed. Every other delivery caught at that moment between the receiver's ``250`` and its
``sent`` record is in the same state (one per organisation's running activity at most, as each
activity sends its notices one after another); the test reads them from the ledger right
after the kill and requires the duplicates to be exactly those, each sent twice, no more.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import IO

import pytest
import pytest_asyncio
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session
from sqlalchemy import Engine, func, select
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.channels.config import EMAIL
from activities.channels.deliveries import DeliveryStatus
from activities.channels.smtp import message_id
from activities.db import create_schema, make_engine, session_factory
from activities.roster_files import read_roster_file
from activities.round_progress import store_plan
from activities.tables import notice_deliveries, notices
from chuangzheng.ports import free_port
from chuangzheng.temporal_server import start_dev_server_env
from domain.calendar import Span
from domain.campaign import Campaign
from domain.campaign_rules import new_state
from domain.notices import Notice
from domain.organisation import Role
from domain.plan import CampaignPlan
from domain.plan_loader import load_plan, resolve_kickoff
from domain.schedule import build_org_plan, is_rebased, resolve_schedule
from tests.workflows.support import COUNTY, ROOT
from workflows.ids import round_workflow_id
from workflows.round import CampaignRound
from workflows.round_contracts import CampaignRoundInput, RoundTerms

ORGANISATIONS = 40
ROUND = "r-kill"
FROM_ADDRESS = "cxzy@example.gov.cn"
#: Every recipient of the ladder is reached by mail, so every notice is a mail.
ROUTED_ROLES = (
    Role.SECRETARY,
    Role.INSTRUCTOR,
    Role.TOWNSHIP,
    Role.GUIDANCE_GROUP,
    Role.COUNTY_OFFICE,
)
#: Per organisation when the whole demo ladder fires: three escalations to the rungs'
#: addressees, the same three to the secretary, the circular to the township and the
#: rectification order to the secretary.
NOTICES_PER_ORGANISATION = 8
KILL_AT_SHARE = 0.2
#: The ledger's lease in this test's channels file (the default is 60 s).
LEASE_SECONDS = 15
#: A killed activity is retried once its heartbeat is missed and then waits for the lease of
#: the delivery it left claimed, plus retry back-off: well under two minutes.
RECOVERY_LIMIT = 120.0


# ----- the SMTP receiver -------------------------------------------------------------------------
@dataclass(frozen=True)
class ReceivedMail:
    """What the receiver keeps of one accepted mail."""

    message_id: str
    to: str
    subject: str


@dataclass
class RecordingMailbox:
    """An aiosmtpd handler recording every accepted mail; thread-safe for the test to read.

    ``on_mail`` is called with the running count inside the SMTP transaction, before the
    ``250`` reply, so a callback that kills the sender does so mid-delivery.
    """

    on_mail: Callable[[int], None] = lambda count: None
    mails: list[ReceivedMail] = field(default_factory=list)
    #: The mailboxes as a store with duplicate suppression files them: (to, Message-ID) -> n.
    filed: Counter[tuple[str, str]] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        """Parse and record the mail, let the callback see the count, accept."""
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        mail = message_from_bytes(raw, policy=policy.default)
        received = ReceivedMail(
            message_id=str(mail["Message-ID"]), to=str(mail["To"]), subject=str(mail["Subject"])
        )
        with self.lock:
            self.mails.append(received)
            key = (received.to, received.message_id)
            if key not in self.filed:
                self.filed[key] += 1
            count = len(self.mails)
        self.on_mail(count)
        return "250 OK"

    def snapshot(self) -> list[ReceivedMail]:
        """A copy of the mails received so far."""
        with self.lock:
            return list(self.mails)


# ----- fixtures ----------------------------------------------------------------------------------
@pytest_asyncio.fixture(loop_scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal CLI dev server (in-memory) for this test alone."""
    env = await start_dev_server_env()
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def mailbox() -> Iterator[tuple[RecordingMailbox, int]]:
    """A running SMTP receiver on a free localhost port, and that port."""
    box = RecordingMailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """The read model: a SQLite file with the schema, shared by the worker and the test."""
    engine = make_engine(f"sqlite:///{tmp_path / 'chuangzheng.db'}")
    create_schema(engine)
    try:
        yield engine
    finally:
        engine.dispose()


# ----- the round and what it must send -----------------------------------------------------------
def demo_plan() -> CampaignPlan:
    """The demo plan, with rectification due in an hour instead of three minutes.

    Otherwise the 整改逾期 notices to the county office would start falling due three minutes
    after the kick-off, in the middle of a slow recovery, and the expected set would depend
    on how long the test took.
    """
    plan = load_plan((ROOT / "plans/demo.yaml").read_text("utf-8"))
    ladder = plan.ladder.model_copy(update={"rectification_period": Span(minutes=60)})
    return plan.model_copy(update={"ladder": ladder})


def make_roster(path: Path) -> Path:
    """A generated county of :data:`ORGANISATIONS` organisations, as the demo makes it."""
    script = ROOT / "deploy/demo/make_roster.py"
    subprocess.run(
        [sys.executable, str(script), "--count", str(ORGANISATIONS), "--output", str(path)],
        check=True,
    )
    return path


def expected_notices(
    plan: CampaignPlan, roster_path: Path, starts_at: datetime, now: datetime
) -> dict[str, Notice]:
    """Every notice the round must send by ``now``, by id, from the domain itself.

    Each organisation's campaign is opened and ticked at ``now`` exactly as its workflow
    does on its first task.
    """
    round_plan = plan.rounds[0]
    schedule = resolve_schedule(
        plan, round_plan, starts_at, rebased=is_rebased(round_plan, starts_at)
    )
    expected: dict[str, Notice] = {}
    for org in read_roster_file(roster_path).organisations:
        org_plan = build_org_plan(plan, round_plan, schedule, org, round_id=ROUND)
        campaign = Campaign(org_plan, new_state(org_plan))
        campaign.settle(now)
        campaign.tick(now)
        _, outbox = campaign.take_outbox()
        assert len(outbox) == NOTICES_PER_ORGANISATION, [n.notice_id for n in outbox]
        expected |= {n.notice_id: n for n in outbox if n.recipient_role in ROUTED_ROLES}
    return expected


def write_channels_file(path: Path, port: int, notices_: dict[str, Notice]) -> dict[str, str]:
    """A channels YAML routing every role to mail with one address per recipient.

    Returns each notice's expected address.
    """
    addresses: dict[tuple[Role, str], str] = {}
    for notice in notices_.values():
        who = (notice.recipient_role, notice.recipient_key)
        addresses.setdefault(who, f"{who[0].value}-{len(addresses):03d}@example.gov.cn")
    config = {
        "public_base_url": "https://cxzy.example.gov.cn",
        "routes": {role.value: [EMAIL] for role in ROUTED_ROLES},
        "smtp": {
            "host": "127.0.0.1",
            "port": port,
            "security": "none",
            "from_address": FROM_ADDRESS,
            "timeout_seconds": 5,
        },
        # The shortest lease the channel's timeout allows (3 x 5 s): the killed worker's
        # claims are taken over 15 s after it died instead of the default 60 s.
        "delivery_lease_seconds": LEASE_SECONDS,
        "recipients": [
            {"role": role.value, "key": key, "addresses": {EMAIL: address}}
            for (role, key), address in addresses.items()
        ],
    }
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), "utf-8")
    return {nid: addresses[(n.recipient_role, n.recipient_key)] for nid, n in notices_.items()}


# ----- the worker subprocess ---------------------------------------------------------------------
@dataclass
class WorkerProcesses:
    """``python -m worker`` subprocesses started by the test; all killed at the end."""

    env: dict[str, str]
    log_path: Path
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _logs: list[IO[bytes]] = field(default_factory=list)

    def start(self) -> subprocess.Popen[bytes]:
        """Start a worker, its output appended to the log file."""
        log = self.log_path.open("ab")
        self._logs.append(log)
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        """Kill every worker still running (by its own pid) and close the logs."""
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
        for log in self._logs:
            log.close()

    def tail(self, lines: int = 40) -> str:
        """The end of the workers' output, for failure messages."""
        if not self.log_path.exists():
            return "(no worker output)"
        text = self.log_path.read_text("utf-8", errors="replace").splitlines()
        return "\n".join(text[-lines:])


def worker_environment(
    tmp_path: Path, client: Client, task_queue: str, db_url: str
) -> dict[str, str]:
    """The worker's settings, all through the environment as in a deployment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CZ_")}
    env.pop("DATABASE_URL", None)
    return env | {
        "CZ_ENVIRONMENT": "test",
        "CZ_SECRET_KEY": f"test-{uuid.uuid4()}",
        "CZ_TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "CZ_TEMPORAL_NAMESPACE": client.namespace,
        "CZ_TASK_QUEUE": task_queue,
        "DATABASE_URL": db_url,
        "CZ_CHANNELS_FILE": str(tmp_path / "channels.yaml"),
        "CZ_DATA_DIR": str(tmp_path / "data"),
        "CZ_LOG_FORMAT": "json",
        "CZ_LOG_LEVEL": "INFO",
    }


# ----- reading the read model --------------------------------------------------------------------
def pending_deliveries(engine: Engine) -> set[str]:
    """Notice ids whose mail delivery is claimed but not closed."""
    t = notice_deliveries
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.c.notice_id).where(
                t.c.channel == EMAIL, t.c.status == DeliveryStatus.PENDING.value
            )
        )
        return {row.notice_id for row in rows}


def mail_ledger(engine: Engine) -> dict[str, tuple[str, str, int]]:
    """Every mail delivery: notice id -> (status, address, attempts)."""
    t = notice_deliveries
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.c.notice_id, t.c.status, t.c.address, t.c.attempts).where(t.c.channel == EMAIL)
        )
        return {row.notice_id: (row.status, row.address, row.attempts) for row in rows}


def inbox_counts(engine: Engine) -> dict[str, int]:
    """Rows of ``notices`` per notice id."""
    with engine.connect() as conn:
        rows = conn.execute(select(notices.c.notice_id, func.count()).group_by(notices.c.notice_id))
        return {notice_id: count for notice_id, count in rows}


async def wait_for(condition: Callable[[], bool], *, limit: float, what: str) -> float:
    """Poll ``condition`` until true; the seconds it took, or fail after ``limit``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > limit:
            pytest.fail(f"timed out after {limit:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


# ----- the test ----------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(420)
async def test_worker_killed_mid_delivery_every_notice_arrives_exactly_once(
    dev_env: WorkflowEnvironment,
    mailbox: tuple[RecordingMailbox, int],
    engine: Engine,
    tmp_path: Path,
) -> None:
    box, port = mailbox
    client = dev_env.client
    plan = demo_plan()
    now = datetime.now(UTC)
    starts_at = now - timedelta(minutes=20)
    roster = make_roster(tmp_path / "roster.csv")
    expected = expected_notices(plan, roster, starts_at, now)
    assert len(expected) == ORGANISATIONS * NOTICES_PER_ORGANISATION
    address_of = write_channels_file(tmp_path / "channels.yaml", port, expected)
    by_message_id = {message_id(nid, FROM_ADDRESS): nid for nid in expected}
    assert len(by_message_id) == len(expected)

    workers = WorkerProcesses(
        env=worker_environment(tmp_path, client, f"kill-{uuid.uuid4()}", str(engine.url)),
        log_path=tmp_path / "worker.log",
    )
    kill_at = int(len(expected) * KILL_AT_SHARE)
    killed = threading.Event()

    def kill_first_worker(count: int) -> None:
        """SIGKILL the first worker from inside the transaction of mail number ``kill_at``."""
        if count == kill_at and not killed.is_set():
            os.kill(workers.started[0].pid, signal.SIGKILL)
            killed.set()

    # Kicked off as the API does: the plan stored once in the read model (the worker reads
    # it by reference) and the schedule resolved at kick-off.
    round_input = CampaignRoundInput(
        terms=RoundTerms(
            round_id=ROUND,
            round_plan_id=plan.rounds[0].id,
            roster_source=str(roster),
            actor=COUNTY,
            starts_at=starts_at,
        ),
        plan_ref=store_plan(session_factory(engine), plan),
        schedule=resolve_kickoff(plan, plan.rounds[0].id, starts_at),
    )
    box.on_mail = kill_first_worker
    t0 = time.monotonic()
    try:
        first = workers.start()
        await client.start_workflow(
            CampaignRound.run,
            round_input,
            id=round_workflow_id(ROUND),
            task_queue=workers.env["CZ_TASK_QUEUE"],
        )
        await wait_for(killed.is_set, limit=90, what=f"{kill_at} mails before the kill")
        assert first.wait(timeout=10) == -signal.SIGKILL
        t_kill = time.monotonic() - t0
        await asyncio.sleep(1)  # let the receiver finish any transaction already complete
        received_at_kill = {m.message_id for m in box.snapshot()}
        # Claimed, received, never recorded as sent: exactly these may arrive twice.
        pending_at_kill = pending_deliveries(engine)
        in_the_gap = {
            nid for nid in pending_at_kill if message_id(nid, FROM_ADDRESS) in received_at_kill
        }

        workers.start()

        def all_sent() -> bool:
            ledger = mail_ledger(engine)
            return len(ledger) == len(expected) and all(
                status == DeliveryStatus.SENT.value for status, _, _ in ledger.values()
            )

        recovery = await wait_for(
            all_sent, limit=RECOVERY_LIMIT, what="every mail recorded as sent"
        )
        await asyncio.sleep(2)  # anything sent twice by mistake would arrive by now
        mails = box.snapshot()
    except BaseException:
        print(workers.tail())
        raise
    finally:
        workers.stop_all()

    counts = Counter(m.message_id for m in mails)
    duplicates = {mid: n - 1 for mid, n in counts.items() if n > 1}
    print(
        f"\nexpected {len(expected)} mails; killed after {len(received_at_kill)} at "
        f"{t_kill:.1f} s; recovered {recovery:.1f} s later (lease {LEASE_SECONDS} s); "
        f"received {len(mails)}, distinct {len(counts)}; "
        f"pending at the kill: {len(pending_at_kill)}, of which received (in the "
        f"send-to-record gap): {len(in_the_gap)}; "
        f"duplicates: {sum(duplicates.values())}"
    )

    # Every expected notice is filed in its recipient's mailbox exactly once.
    assert box.filed == Counter(
        {(address_of[nid], message_id(nid, FROM_ADDRESS)): 1 for nid in expected}
    )
    # Every expected notice arrived, to its recipient, with its subject; nothing else did.
    assert set(counts) == set(by_message_id)
    for mail in mails:
        notice = expected[by_message_id[mail.message_id]]
        assert (mail.to, mail.subject) == (address_of[notice.notice_id], notice.title)

    # The only second copies are of sends the kill caught between the receiver's 250 and the
    # ledger's ``sent`` (at least the one the kill interrupted), each re-sent once after its
    # lease with the same Message-ID.
    assert in_the_gap, "the kill interrupted a send; its claim must have been left pending"
    # Each organisation's activity sends its notices one after another, so a kill catches at
    # most one of its deliveries in the gap: at most one duplicate per running activity.
    gap_per_org = Counter(expected[nid].org_id for nid in in_the_gap)
    assert max(gap_per_org.values()) == 1
    assert duplicates == {message_id(nid, FROM_ADDRESS): 1 for nid in in_the_gap}

    # The inbox holds each notice exactly once, and the ledger records each mail as sent.
    assert inbox_counts(engine) == dict.fromkeys(expected, 1)
    ledger = mail_ledger(engine)
    assert set(ledger) == set(expected)
    for nid, (status, address, attempts) in ledger.items():
        assert (status, address) == (DeliveryStatus.SENT.value, address_of[nid])
        if nid in in_the_gap:
            assert attempts >= 2
