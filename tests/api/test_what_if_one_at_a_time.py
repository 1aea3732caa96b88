"""What-if jobs run one at a time (``what_if_jobs.MAX_RUNNING``), however the starts arrive.

An outside tester sent 4 concurrent ``POST /api/v1/rounds/{id}/what-if``: 2–3 jobs started
although one at a time is the rule (the check and the start were not one step), and some
answered 500 (``FileNotFoundError …/job.part -> job.json``: every write used the same
temporary file). Here concurrent starts — request threads of the real API, threads calling
the use case, and separate processes sharing the data directory as API processes do — start
exactly one job; every other start is refused with the documented 409 (``what_if_running``
for the same round, ``what_if_busy`` for another), in Chinese, and none fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from activities.db import make_engine, session_factory
from activities.tables import AuditRow
from chuangzheng.services import what_if_jobs
from chuangzheng.services.errors import Conflict
from domain.what_if import DraftChange
from tests.api.conftest import Stack, start_demo_round, token, wait_for
from tests.api.service_county import caller, county, demo_round

pytestmark = pytest.mark.asyncio(loop_scope="session")

__all__ = ["county"]

#: Concurrent starts in each test.
STARTS = 6
CHANGE = {"kind": "rectification_period", "period": {"minutes": 2}, "reason": "并发"}
REFUSALS = {
    "what_if_running": "本轮已有推演正在进行，请等待其完成",
    "what_if_busy": "已有其他轮次的推演正在进行，请稍后再试",
}


def _stop(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)


async def test_concurrent_api_starts_start_one_job(stack: Stack) -> None:
    """Concurrent starts over two rounds through the API: one 202, every other start 409
    with the documented code and Chinese message, no 500."""
    rounds = [
        await start_demo_round(stack, f"wio-{uuid.uuid4().hex[:8]}"),
        await start_demo_round(stack, f"wio-{uuid.uuid4().hex[:8]}"),
    ]
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=120) as http:
        headers = await token(http, "county")
        answers = await asyncio.gather(
            *(
                http.post(
                    f"/api/v1/rounds/{rounds[i % 2]}/what-if",
                    json={"change": CHANGE, "seed": i},
                    headers=headers,
                )
                for i in range(STARTS)
            )
        )
        codes = sorted(a.status_code for a in answers)
        assert codes == [202] + [409] * (STARTS - 1), [(a.status_code, a.text) for a in answers]
        [started] = [a.json() for a in answers if a.status_code == 202]
        winner = started["round_id"]
        try:
            for answer in answers:
                if answer.status_code != 409:
                    continue
                body = answer.json()
                assert REFUSALS[body["code"]] == body["message"], body
            # The same round's losers were told it runs; the other round's, that one runs.
            for i, answer in enumerate(answers):
                if answer.status_code == 409:
                    same = rounds[i % 2] == winner
                    assert answer.json()["code"] == (
                        "what_if_running" if same else "what_if_busy"
                    ), answer.text
            # One job on the winning round, none on the other.
            for rid in rounds:
                view = await http.get(f"/api/v1/rounds/{rid}/what-if", headers=headers)
                assert view.status_code == 200, view.text
                job = view.json()["job"]
                if rid == winner:
                    assert job is not None and job["job_id"] == started["job_id"]
                else:
                    assert job is None, job
        finally:
            # Stop the job (SIGTERM, as the service stopping does) so later tests may start one.
            _stop(started["pid"])

            async def stopped() -> bool:
                view = await http.get(f"/api/v1/rounds/{winner}/what-if", headers=headers)
                return bool(view.json()["job"]["state"] != "running")

            await wait_for(stopped, timeout=60)


# ----- the use case, from threads and from processes --------------------------------------------


def _sleeper(_data_dir: Path, _round_id: str) -> int:
    """A stand-in job process (alive until stopped), slow to launch: the window in which a
    second start used to slip through."""
    time.sleep(0.3)
    return subprocess.Popen(
        ["sleep", "120"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    ).pid


_ROUND_DIR = what_if_jobs._round_dir


def _slow_round_dir(data_dir: Path, round_id: str) -> Path:
    """The job folder's path, found slowly: reading a job's state takes a while on a busy
    disk, and the check before a start must not rely on it being quick."""
    time.sleep(0.02)
    return _ROUND_DIR(data_dir, round_id)


def _no_live_read(setattr: Any = setattr) -> None:
    """The live county's read and the draft's check are not what is tested here; the job
    folder is found slowly (:func:`_slow_round_dir`)."""
    setattr(what_if_jobs, "live_county", lambda *_a, **_k: SimpleNamespace(starts={}))
    setattr(what_if_jobs, "check_change", lambda *_a, **_k: None)
    setattr(what_if_jobs, "_round_dir", _slow_round_dir)


def _start(sessions: sessionmaker[Session], data_dir: Path, rid: str) -> tuple[str, Any, str]:
    """One start: ("started", pid, "") or ("refused", code, message)."""
    change = DraftChange.model_validate(CHANGE)
    try:
        with sessions.begin() as session:
            status = what_if_jobs.start_job(
                session, caller("county"), rid, change, data_dir=data_dir, launch=_sleeper
            )
    except Conflict as exc:
        return "refused", exc.code, exc.message
    return "started", status.pid, ""


def _start_in_process(url: str, data_dir: str, rid: str, gate: Any, out: Any) -> None:
    """A separate process (as a second API process is) starting a job on the shared data
    directory and database."""
    _no_live_read()
    engine = make_engine(url)
    try:
        with engine.connect():  # connected before the gate: the starts meet at the check
            pass
        gate.wait()
        out.put(_start(session_factory(engine), Path(data_dir), rid))
    except BaseException as exc:
        out.put(("error", repr(exc), ""))
    finally:
        engine.dispose()


def _check_one_started(
    results: list[tuple[str, Any, str]], sessions: sessionmaker[Session], data_dir: Path, rid: str
) -> None:
    started = [pid for kind, pid, _ in results if kind == "started"]
    try:
        assert len(results) == STARTS
        assert not [r for r in results if r[0] == "error"], results
        assert len(started) == 1, results
        refused = [(code, message) for kind, code, message in results if kind == "refused"]
        assert refused == [("what_if_running", REFUSALS["what_if_running"])] * (STARTS - 1)
        status = what_if_jobs.job_status(data_dir, rid)
        assert status is not None and status.state is what_if_jobs.JobState.RUNNING
        assert status.pid == started[0]
        with sessions() as session:
            audited = session.scalars(
                select(AuditRow.action).where(AuditRow.action == "what_if_started")
            ).all()
        assert len(audited) == 1
        # No temporary file left behind.
        assert not list((data_dir / "what-if").rglob("*.part"))
    finally:
        for pid in started:
            _stop(pid)


async def test_concurrent_starts_in_threads_start_one_job(
    county: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rid = await demo_round(county, "r-threads")
    _no_live_read(monkeypatch.setattr)
    gate = threading.Barrier(STARTS)

    def one(_i: int) -> tuple[str, Any, str]:
        gate.wait()
        return _start(county, tmp_path, rid)

    with ThreadPoolExecutor(STARTS) as pool:
        results = list(pool.map(one, range(STARTS)))
    _check_one_started(results, county, tmp_path, rid)


async def test_concurrent_starts_in_processes_start_one_job(
    county: sessionmaker[Session], tmp_path: Path
) -> None:
    rid = await demo_round(county, "r-processes")
    bind = county.kw["bind"]
    url = bind.url.render_as_string(hide_password=False)
    # Forked (a spawned process would import the whole test stack again, for minutes on two
    # cores); each builds its own engine and session, as a separate API process has them.
    context = multiprocessing.get_context("fork")
    gate = context.Barrier(STARTS)
    out = context.Queue()
    workers = [
        context.Process(target=_start_in_process, args=(url, str(tmp_path), rid, gate, out))
        for _ in range(STARTS)
    ]
    for worker in workers:
        worker.start()
    results = [out.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    _check_one_started(results, county, tmp_path, rid)


async def test_concurrent_writes_of_one_state_file_never_fail(tmp_path: Path) -> None:
    """Every write has a temporary file of its own: writers of the same file at once (the
    job's progress, a reader marking it failed, a start) never rename one another's away."""
    path = tmp_path / "what-if" / "r" / "job.json"
    gate = threading.Barrier(8)

    def writer(i: int) -> None:
        gate.wait()
        for n in range(50):
            what_if_jobs._write_json(path, f'{{"writer": {i}, "n": {n}}}')

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(writer, range(8)))
    assert path.read_text(encoding="utf-8").endswith(', "n": 49}')
    assert [p.name for p in path.parent.iterdir()] == ["job.json"]


async def test_a_job_launched_on_another_host_is_not_taken_for_dead(
    county: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two API pods on one data volume: a job the other pod launched has a pid that means
    nothing here, so this pod never marks it failed for it (and starts a second job); only
    the clock ends it, once its own timeout has."""
    rid = await demo_round(county, "r-elsewhere")
    _no_live_read(monkeypatch.setattr)
    monkeypatch.setattr(what_if_jobs, "_host", lambda: "api-pod-a")
    kind, _pid, _ = _start(county, tmp_path, rid)
    assert kind == "started"
    folder = what_if_jobs._round_dir(tmp_path, rid)
    status = what_if_jobs.job_status(tmp_path, rid)
    assert status is not None and status.pid is not None
    _stop(status.pid)  # its pid names no process here: pod B launched it (below)
    (folder / f"{status.job_id}.pid").write_text(
        f'{{"pid": {status.pid}, "host": "api-pod-b"}}', encoding="utf-8"
    )
    # From pod A: pod B's job stands, and a second start is refused.
    assert what_if_jobs.job_status(tmp_path, rid).state is what_if_jobs.JobState.RUNNING  # type: ignore[union-attr]
    assert _start(county, tmp_path, rid) == (
        "refused",
        "what_if_running",
        REFUSALS["what_if_running"],
    )
    # Past its timeout and the grace: taken as ended, and a new job may start.
    late = status.started_at - what_if_jobs.JOB_TIMEOUT - what_if_jobs.REMOTE_GRACE
    (folder / "job.json").write_text(
        status.model_copy(update={"started_at": late, "pid": None}).model_dump_json(),
        encoding="utf-8",
    )
    ended = what_if_jobs.job_status(tmp_path, rid)
    assert ended is not None and ended.state is what_if_jobs.JobState.FAILED
    assert ended.message == "推演超时，已终止"
    again, pid, _ = _start(county, tmp_path, rid)
    assert again == "started"
    _stop(pid)
