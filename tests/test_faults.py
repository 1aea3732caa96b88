"""Faults against the real processes: the Temporal dev server with a file database, the worker
(``python -m chuangzheng.cli worker``) and the API (uvicorn) each in a process of its own,
configured through the environment as in production (``benchmarks.stack.Stack``), over a
SQLite read model.

- The dev server is stopped across a deadline and restarted on the same port and database:
  every rung due in the gap fires once, late, and is recorded with when it was due.
- The read model is locked (``BEGIN EXCLUSIVE`` from another connection) for 30 s while a
  deadline storm of 20 organisations is being recorded: the activities fail, are retried with
  back-off, and the projection converges with nothing counted twice.
- The worker is SIGKILLed in the middle of a phase, with one submission just accepted and
  another sent while it is down: neither is lost, neither is recorded twice.

One stack serves the module; each test kicks off a round of its own, limited to a township of
its own. The figures of each run are printed (``-s``) for docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import yaml
from sqlalchemy import select
from temporalio.api.enums.v1 import EventType, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

from activities.db import session_factory
from activities.tables import CampaignEventRow, CampaignStatusRow, NoticeRow, SubmissionRow
from benchmarks.stack import COUNTY, PASSWORD, Stack, generate_roster, redirected_output
from chuangzheng.sample_evidence import sample_evidence
from chuangzheng.services.accounts import upsert_user
from chuangzheng.temporal_server import start_dev_server_env
from domain.organisation import Organisation, Role
from domain.phases import Phase
from domain.plan_loader import load_plan
from workflows.ids import organisation_workflow_id

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parent.parent
OUTAGE_TOWN, STORM_TOWN, KILL_TOWN = "断电镇", "风暴镇", "重启镇"
OUTAGE_ORGS, STORM_ORGS, KILL_ORGS = 5, 20, 2
#: Every rung at the deadline, so everything the ladder does falls due at one instant.
RUNGS_AT_THE_DEADLINE = 3
#: Per organisation when the whole ladder fires: each rung's addressee and the secretary's
#: copy (6), the circular to the township and the rectification order to the secretary.
LADDER_NOTICES = 8
#: How long the dev server stays down after the deadline, and the read model locked.
OUTAGE_AFTER_DEADLINE = 25.0
LOCK_SECONDS = 30.0
#: How far ahead of the kick-off the deadline is set: the kick-off (a round of 5 or 20) must
#: be done, and every workflow waiting on its timer, before the fault begins (5 s and 2 s
#: before the deadline). Kick-offs take 1–3 s here; these are real seconds of suite time.
OUTAGE_DEADLINE_IN, STORM_DEADLINE_IN = 25, 30


# ----- the plan and the round ------------------------------------------------------------------
def fault_plan(first_phase_minutes: int, township: str) -> str:
    """The demo plan (minute-scale: no calendar involved) limited to ``township``, its first
    phase lasting ``first_phase_minutes``, every rung due at the deadline itself."""
    data = yaml.safe_load((ROOT / "plans/demo.yaml").read_text("utf-8"))
    for rung in data["ladder"]["rungs"]:
        rung["delay"] = {"minutes": 0}
    round_plan = data["rounds"][0]
    round_plan["phases"][0]["duration"] = {"minutes": first_phase_minutes}
    round_plan["scope"] = dict(round_plan.get("scope") or {}) | {"townships": [township]}
    return str(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))


async def sign_in(http: httpx.AsyncClient, username: str) -> dict[str, str]:
    response = await http.post(
        "/api/v1/auth/login", json={"username": username, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def kick_off(
    stack: Stack, http: httpx.AsyncClient, township: str, count: int, deadline_in: float | None
) -> tuple[str, datetime | None]:
    """Kick off a round over ``township`` whose first deadline falls ``deadline_in`` seconds
    from now (an hour when None); wait until its ``count`` organisations run. Returns the
    round id and the deadline."""
    round_id = f"fault-{uuid.uuid4().hex[:8]}"
    minutes = 60 if deadline_in is None else 2
    body: dict[str, Any] = {
        "round_id": round_id,
        "round_plan_id": "demo",
        "plan_yaml": fault_plan(minutes, township),
    }
    deadline = None
    if deadline_in is not None:
        deadline = datetime.now(UTC) + timedelta(seconds=deadline_in)
        body["starts_at"] = (deadline - timedelta(minutes=minutes)).isoformat()
    county = await sign_in(http, COUNTY)
    created = await http.post("/api/v1/rounds", json=body, headers=county)
    assert created.status_code in (200, 201), created.text
    kicked = await http.post(f"/api/v1/rounds/{round_id}/kickoff", headers=county)
    assert kicked.status_code in (200, 201, 202), kicked.text
    await stack.wait_started(round_id, count, timeout=120)
    return round_id, deadline


async def sleep_until(moment: datetime) -> None:
    await asyncio.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()))


async def wait_for(check: Any, timeout: float, what: str) -> Any:
    """Poll the synchronous ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.5)


# ----- the read model --------------------------------------------------------------------------
def escalations(stack: Stack, round_id: str) -> list[CampaignEventRow]:
    assert stack.engine is not None
    with session_factory(stack.engine)() as session:
        return list(
            session.scalars(
                select(CampaignEventRow).where(
                    CampaignEventRow.round_id == round_id, CampaignEventRow.kind == "escalated"
                )
            )
        )


def round_notices(stack: Stack, round_id: str) -> list[NoticeRow]:
    assert stack.engine is not None
    with session_factory(stack.engine)() as session:
        return list(session.scalars(select(NoticeRow).where(NoticeRow.round_id == round_id)))


def statuses(stack: Stack, round_id: str) -> list[CampaignStatusRow]:
    assert stack.engine is not None
    with session_factory(stack.engine)() as session:
        return list(
            session.scalars(select(CampaignStatusRow).where(CampaignStatusRow.round_id == round_id))
        )


def ladder_complete(stack: Stack, round_id: str, organisations: int) -> bool:
    """Every organisation's whole ladder is in the read model: its rungs and their notices."""
    ladder = [n for n in round_notices(stack, round_id) if n.kind != "reminder"]
    return (
        len(escalations(stack, round_id)) >= organisations * RUNGS_AT_THE_DEADLINE
        and len(ladder) >= organisations * LADDER_NOTICES
    )


def assert_ladder_once(stack: Stack, round_id: str, org_ids: set[str]) -> list[CampaignEventRow]:
    """Each organisation's rungs and notices recorded exactly once; the escalations."""
    rungs = escalations(stack, round_id)
    assert Counter((e.org_id, e.detail["rung"]) for e in rungs) == {
        (org, rung): 1 for org in org_ids for rung in range(RUNGS_AT_THE_DEADLINE)
    }
    notices = round_notices(stack, round_id)
    per_notice = Counter((n.org_id, n.kind, n.rung, n.recipient_role) for n in notices)
    assert set(per_notice.values()) == {1}, per_notice
    ladder = Counter(n.org_id for n in notices if n.kind != "reminder")
    assert ladder == dict.fromkeys(org_ids, LADDER_NOTICES)
    reminders = Counter(n.org_id for n in notices if n.kind == "reminder")
    assert reminders == dict.fromkeys(org_ids, 1)
    rows = statuses(stack, round_id)
    assert {r.org_id for r in rows} == org_ids
    assert all(r.top_rung == RUNGS_AT_THE_DEADLINE - 1 and r.light == "red" for r in rows)
    return rungs


def org_ids(stack: Stack, round_id: str) -> set[str]:
    return {row.org_id for row in statuses(stack, round_id)}


async def activity_attempts(stack: Stack, round_id: str, org_id: str) -> list[tuple[str, int]]:
    """(activity type, attempts) of every activity of the organisation's workflow that
    finished, local ones included, from its history."""
    handle = stack.client.get_workflow_handle(organisation_workflow_id(round_id, org_id))
    history = await handle.fetch_history()
    types: dict[int, str] = {}
    attempts = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attributes = event.activity_task_scheduled_event_attributes
            types[event.event_id] = attributes.activity_type.name
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started = event.activity_task_started_event_attributes
            attempts.append((types[started.scheduled_event_id], started.attempt))
        elif event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            # A local activity (the organisation workflow's record_outbox, patch local-flush):
            # its attempts are in the marker's data.
            marker = event.marker_recorded_event_attributes
            if marker.marker_name == "core_local_activity" and "data" in marker.details:
                data = json.loads(marker.details["data"].payloads[0].data)
                attempts.append((data["activity_type"], data["attempt"]))
    return attempts


# ----- the stack -------------------------------------------------------------------------------
def county(prefix: str, township: str, count: int) -> list[Organisation]:
    return generate_roster(count, township=township, prefix=prefix)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack() -> AsyncIterator[Stack]:
    """The dev server (file database), the worker and the API as processes of their own, and
    a county of three townships, one per test."""
    organisations = [
        *county("o", OUTAGE_TOWN, OUTAGE_ORGS),
        *county("s", STORM_TOWN, STORM_ORGS),
        *county("k", KILL_TOWN, KILL_ORGS),
    ]
    async with Stack("faults") as running:
        running.seed_county(organisations)
        assert running.engine is not None
        with session_factory(running.engine).begin() as session:
            for org in organisations[-KILL_ORGS:]:
                upsert_user(
                    session,
                    username=f"secretary-{org.id}",
                    display_name=org.secretary,
                    password=PASSWORD,
                    role=Role.SECRETARY,
                    scope_key=org.id,
                )
        try:
            await asyncio.gather(running.start_worker(), running.start_api())
            yield running
        except BaseException:
            for process in running.processes:
                print(f"--- {process.name}\n{process.tail(40)}")
            raise


async def restart_dev_server(stack: Stack, down_until: datetime) -> tuple[float, float]:
    """Stop the dev server, keep it down until ``down_until``, start it again on the same
    port and database file. Returns (stopped, up again) as epoch seconds."""
    assert stack.env is not None
    port = int(stack.address.rsplit(":", 1)[1])
    await stack.env.shutdown()
    stopped = time.time()
    stack.env = None
    await sleep_until(down_until)
    with redirected_output(stack.dir / "temporal.log"):
        stack.env = await start_dev_server_env(db_file=stack.dir / "temporal.db", port=port)
    return stopped, time.time()


async def wait_for_poller(stack: Stack, pid: int, timeout: float = 120) -> None:
    """Until the worker process ``pid`` polls the task queue (its identity is ``pid@host``)."""
    request = DescribeTaskQueueRequest(
        namespace=stack.client.namespace,
        task_queue=TaskQueue(name=stack.task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    deadline = time.monotonic() + timeout
    while True:
        described = await stack.client.workflow_service.describe_task_queue(request)
        if any(poller.identity.startswith(f"{pid}@") for poller in described.pollers):
            return
        assert time.monotonic() < deadline, f"worker {pid} never polled"
        await asyncio.sleep(0.25)


# ----- the tests -------------------------------------------------------------------------------
async def test_dev_server_down_across_a_deadline_every_rung_fires_once_late(
    stack: Stack,
) -> None:
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as http:
        round_id, deadline = await kick_off(
            stack, http, OUTAGE_TOWN, OUTAGE_ORGS, OUTAGE_DEADLINE_IN
        )
    assert deadline is not None
    orgs = org_ids(stack, round_id)
    assert len(orgs) == OUTAGE_ORGS
    stop_at = deadline - timedelta(seconds=5)
    spare = (stop_at - datetime.now(UTC)).total_seconds()
    assert spare > 0, "the kick-off took too long: the deadline came first"
    await sleep_until(stop_at)
    assert escalations(stack, round_id) == []
    stopped, restarted = await restart_dev_server(
        stack, deadline + timedelta(seconds=OUTAGE_AFTER_DEADLINE)
    )
    assert stack.worker is not None
    assert stack.worker.alive(), stack.worker.tail()

    await wait_for(
        lambda: ladder_complete(stack, round_id, OUTAGE_ORGS), 120, "every rung after the restart"
    )
    recovered = time.time()
    await asyncio.sleep(2)  # a rung fired twice would be recorded by now
    rungs = assert_ladder_once(stack, round_id, orgs)
    for rung in rungs:
        # Due at the deadline, in the gap; fired after the restart, late.
        due = datetime.fromisoformat(rung.detail["due_at"])
        assert abs((due - deadline).total_seconds()) < 1, (due, deadline)
        assert rung.at.timestamp() >= restarted - 1, (rung.at, restarted)
    fired = sorted(rung.at.timestamp() for rung in rungs)
    print(
        f"\n[outage] {OUTAGE_ORGS} organisations, {len(rungs)} rungs due at "
        f"{deadline:%H:%M:%S} UTC ({spare:.1f} s to spare after the kick-off); server down "
        f"{stopped - deadline.timestamp():+.1f} s to "
        f"{restarted - deadline.timestamp():+.1f} s around it; rungs fired "
        f"{fired[0] - deadline.timestamp():.1f}–{fired[-1] - deadline.timestamp():.1f} s late, "
        f"all recorded {recovered - restarted:.1f} s after the restart; "
        f"notices {len(round_notices(stack, round_id))}, each once"
    )


async def test_read_model_locked_mid_storm_retries_and_converges_once(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as http:
        round_id, deadline = await kick_off(stack, http, STORM_TOWN, STORM_ORGS, STORM_DEADLINE_IN)
    assert deadline is not None
    orgs = org_ids(stack, round_id)
    assert len(orgs) == STORM_ORGS
    lock_at = deadline - timedelta(seconds=2)
    spare = (lock_at - datetime.now(UTC)).total_seconds()
    assert spare > 0, "the kick-off took too long: the deadline came first"
    await sleep_until(lock_at)
    # Another connection takes the write lock: every write of the worker waits for its busy
    # timeout, then fails (``database is locked``), for the whole storm.
    blocker = sqlite3.connect(stack.dir / "readmodel.db", timeout=1, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        locked = time.time()
        await asyncio.sleep(LOCK_SECONDS)
        during = len(escalations(stack, round_id))  # readers still read (WAL)
        blocker.execute("ROLLBACK")
        unlocked = time.time()
    finally:
        blocker.close()
    assert during == 0, "nothing can have been written while the read model was locked"

    await wait_for(
        lambda: ladder_complete(stack, round_id, STORM_ORGS), 120, "the projection to converge"
    )
    converged = time.time()
    await asyncio.sleep(2)
    assert_ladder_once(stack, round_id, orgs)
    attempts = [
        attempt for org in orgs for attempt in await activity_attempts(stack, round_id, org)
    ]
    retried = [(kind, n) for kind, n in attempts if n > 1]
    assert any(kind == "record_outbox" for kind, _ in retried), attempts
    # Back-off: a 30 s lock costs a handful of attempts (1 s doubling, 5 s busy timeout each),
    # not one a second.
    assert max(n for _, n in retried) <= 8
    print(
        f"\n[lock] {STORM_ORGS} organisations due at {deadline:%H:%M:%S} UTC ({spare:.1f} s to "
        "spare after the kick-off); read model "
        f"locked {locked - deadline.timestamp():+.1f} s to {unlocked - deadline.timestamp():+.1f}"
        f" s; {len(retried)} activities retried (attempts {Counter(n for _, n in retried)}); "
        f"converged {converged - unlocked:.1f} s after the unlock; "
        f"{len(escalations(stack, round_id))} rungs and {len(round_notices(stack, round_id))} "
        f"notices, each once"
    )


def evidence_for(org: Organisation, status: dict[str, Any], step_id: str) -> dict[str, Any]:
    """Valid evidence for a step of the current (first) phase of a fault round."""
    plan = load_plan(fault_plan(60, KILL_TOWN))
    state = status["state"]
    phase = Phase(state["phase"])
    step = next(s for s in plan.round("demo").phase(phase).steps if s.id == step_id)
    current = next(p for p in state["phases"] if p["phase"] == phase.value)
    return sample_evidence(
        step,
        org,
        opens_at=datetime.fromisoformat(current["opens_at"]),
        deadline=datetime.fromisoformat(current["deadline"]),
        now=datetime.fromisoformat(current["opens_at"]),
    )


async def submit_until_accepted(
    http: httpx.AsyncClient, path: str, body: dict[str, Any], headers: dict[str, str]
) -> tuple[int, list[int]]:
    """POST as a client following the API's advice: on 503 (no worker to take the Update
    yet) try again with the same Idempotency-Key. Returns the final status and every one."""
    key = {"Idempotency-Key": uuid.uuid4().hex}
    seen = []
    for _ in range(30):
        response = await http.post(path, json=body, headers=headers | key)
        seen.append(response.status_code)
        if response.status_code != 503:
            return response.status_code, seen
        await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
    return seen[-1], seen


async def test_worker_killed_mid_phase_loses_no_submission(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=120) as http:
        round_id, _ = await kick_off(stack, http, KILL_TOWN, KILL_ORGS, deadline_in=None)
        org = next(o for o in county("k", KILL_TOWN, KILL_ORGS))
        secretary = await sign_in(http, f"secretary-{org.id}")
        base = f"/api/v1/rounds/{round_id}/organisations/{org.id}"
        status = (await http.get(f"{base}/status", headers=secretary)).json()
        assert status["state"]["phase"] == Phase.MOBILISATION.value
        first, second = [s["step_id"] for s in status["state"]["phases"][0]["steps"]][:2]

        # Accepted by the workflow; its recording is in flight when the worker dies.
        before = await http.post(
            f"{base}/submissions",
            json={"step_id": first, "values": evidence_for(org, status, first)},
            headers=secretary | {"Idempotency-Key": uuid.uuid4().hex},
        )
        assert before.status_code == 200, before.text
        assert stack.worker is not None
        killed = stack.worker
        os.kill(killed.pid, signal.SIGKILL)
        assert killed.popen.wait(timeout=10) == -signal.SIGKILL
        t_kill = time.time()
        # Sent while no worker runs; the worker comes back meanwhile.
        during = asyncio.create_task(
            submit_until_accepted(
                http,
                f"{base}/submissions",
                {"step_id": second, "values": evidence_for(org, status, second)},
                secretary,
            )
        )
        await asyncio.sleep(3)
        restarted = await stack.start_worker()
        # The task queue lists the dead worker's poller for a while: wait for the new one's.
        await wait_for_poller(stack, restarted.pid)
        t_up = time.time()
        code, codes = await during
        assert code == 200, codes

        def recorded() -> list[str]:
            assert stack.engine is not None
            with session_factory(stack.engine)() as session:
                return list(
                    session.scalars(
                        select(SubmissionRow.step_id).where(
                            SubmissionRow.round_id == round_id, SubmissionRow.org_id == org.id
                        )
                    )
                )

        await wait_for(lambda: {first, second} <= set(recorded()), 120, "both submissions")
        await asyncio.sleep(2)
        assert sorted(recorded()) == sorted([first, second])  # each once
        phase = (await http.get(f"{base}/status", headers=secretary)).json()["state"]["phases"][0]
        submitted = [s["step_id"] for s in phase["steps"] if s["status"] == "submitted"]
        assert sorted(submitted) == sorted([first, second])
    print(
        f"\n[kill] worker SIGKILLed just after an accepted submission; a new worker polled "
        f"{t_up - t_kill:.1f} s later; the submission sent meanwhile answered {codes}; "
        f"submissions recorded: {len(recorded())} of 2, each once"
    )
