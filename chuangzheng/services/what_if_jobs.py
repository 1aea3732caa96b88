"""The what-if's background job: a county's rehearsal takes minutes, so the page starts it in
a process of its own and polls a status file.

- :func:`start_job` checks the draft against the live county, audits the start and launches
  ``python -m chuangzheng.services.what_if_jobs run-job`` (:func:`launcher`; the API's
  event loop and worker never carry it). One at a time per round and :data:`MAX_RUNNING` in
  all; a job is killed after :data:`JOB_TIMEOUT`. The round must be of one of the caller's
  counties (:func:`chuangzheng.services.callers.visible_round`).
- :func:`run_job` is the job's body in that process: read the live county, rehearse both
  arms (:func:`chuangzheng.services.what_if.rehearse_live`), write the result.
- :func:`job_status` and :func:`job_result` read the round's latest job and finished result.
  Both are JSON files under the data directory (``what-if/<hash of the round>/``), so any
  API process answers for them.

**One at a time, whatever the number of API processes.** The job states are those files,
so the check (none running) and the start (the new ``job.json`` written, the process
launched) happen under an exclusive ``flock`` of ``what-if/jobs.lock`` in the same data
directory (:func:`_exclusive`): every API process sharing the directory, and every request
thread in one process (each takes the lock on a file description of its own), passes
through it one at a time, so a second start sees the first job running and is refused
(409). Every write of a state file under the lock — a job marked failed by a reader, the
job's own progress and final state — is serialised the same way, so a reader never marks a
job failed that has just written its result. Each write goes to a temporary file of its own
(a fresh name) in the same directory, then ``os.replace`` (a reader never sees half a file,
two writers never share a temporary name). A file lock rather than a database row: the
states already live in the data directory that every API process and the job share, and
the job's own process has no business writing to the read model. (The directory's file
system must honour ``flock`` across the hosts that share it, as NFS and CephFS do.) A job
launched by an API process on another host (another pod on the same volume) is judged by
the clock only — its pid means nothing here — so it is never taken for dead while it may
still run (:func:`_lost`).

The use cases themselves (the live county, checking, rehearsing and applying a draft) are
in :mod:`chuangzheng.services.what_if`; this module only runs them in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.orm import Session

from chuangzheng.services.callers import Caller, audit_row, require_role, visible_round
from chuangzheng.services.errors import Conflict, InvalidInput
from chuangzheng.services.what_if import WhatIfReport, check_change, live_county, rehearse_live
from chuangzheng.supervisor import with_parent_death_signal
from domain.organisation import Role
from domain.what_if import DraftChange

#: Running what-if jobs at most, over every round (a county's rehearsal takes both cores).
MAX_RUNNING = 1
#: A job still running after this long is killed and reported failed.
JOB_TIMEOUT = timedelta(minutes=15)
#: A job with no process yet is being launched, not lost, for this long.
LAUNCH_GRACE = timedelta(seconds=30)
#: A job launched on another host is taken as lost this long after its timeout (it cannot
#: be looked at from here; its own timeout has stopped it by then).
REMOTE_GRACE = timedelta(minutes=1)
_JOB_DIR = "what-if"
#: The lock every start and every state write takes (see the module).
_LOCK_FILE = "jobs.lock"


class JobState(StrEnum):
    """Where a what-if job stands."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"

    @property
    def label(self) -> str:
        """Chinese label."""
        return {"running": "推演中", "done": "已完成", "failed": "失败"}[self.value]


class JobStatus(BaseModel):
    """A round's latest what-if job."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    round_id: str
    state: JobState
    change: DraftChange
    seed: int = 1
    started_by: str
    started_at: datetime
    finished_at: datetime | None = None
    message: str = ""
    pid: int | None = None
    progress: list[str] = Field(default_factory=list)


def _round_dir(data_dir: Path, round_id: str) -> Path:
    # Round ids are the service's own (letters, digits, -, _), but a hash keeps the path
    # safe whatever a caller sends.
    digest = hashlib.sha256(round_id.encode()).hexdigest()[:24]
    return data_dir / _JOB_DIR / digest


def _write_json(path: Path, data: str) -> None:
    """Write ``path`` whole: a temporary file of this write's own in the same directory,
    then an atomic rename (a reader never sees half a file; concurrent writers never share
    a temporary file, so none renames another's away from under it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # A fresh name per write (as the upload storage's), created exclusively, with the mode
    # the umask gives (the job's process and every API process read these files).
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
    try:
        with partial.open("x", encoding="utf-8") as out:
            out.write(data)
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise


@contextlib.contextmanager
def _exclusive(data_dir: Path) -> Iterator[None]:
    """Hold the what-if lock of ``data_dir`` (blocking; held for milliseconds): across API
    processes sharing the directory and across threads of one process (each call opens its
    own file description, and ``flock`` locks belong to the description). Not re-entrant."""
    root = data_dir / _JOB_DIR
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / _LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A child that exited but was not reaped yet is a zombie: not running.
    with contextlib.suppress(OSError, ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def _host() -> str:
    """This machine (a pod's name under Kubernetes): process ids mean something only here."""
    return socket.gethostname()


def _launch_record(folder: Path, job_id: str) -> tuple[int | None, str | None]:
    """The pid of the job's process and the host it was launched on (its ``.pid`` file,
    written by :func:`start_job`); (None, None) before it is written."""
    try:
        text = (folder / f"{job_id}.pid").read_text(encoding="utf-8")
    except OSError:
        return None, None
    with contextlib.suppress(ValueError):
        return int(text), None  # a bare pid: written before hosts were recorded, here
    try:
        record = json.loads(text)
        return int(record["pid"]), str(record["host"])
    except (ValueError, KeyError, TypeError):
        return None, None


def _read_status(path: Path) -> tuple[JobStatus, str | None] | None:
    """The job's state and the host its process runs on (None: this one, or not known)."""
    try:
        status = JobStatus.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValidationError):
        return None
    pid, host = _launch_record(path.parent, status.job_id)
    if status.state is JobState.RUNNING and status.pid is None and pid is not None:
        status = status.model_copy(update={"pid": pid})
    return status, host


def _lost(status: JobStatus, host: str | None) -> JobStatus | None:
    """``status`` marked failed if it says running but its process is gone or it ran past
    :data:`JOB_TIMEOUT` (then the process is killed); None if it stands as it is.

    A job launched on another host (another API pod on the shared data directory) cannot be
    looked at from here — its pid means nothing on this host — so it stands until it is
    overdue by :data:`REMOTE_GRACE` more (its own timeout has ended it by then); the host
    that launched it sees it die at once."""
    launching = status.pid is None and datetime.now(UTC) - status.started_at < LAUNCH_GRACE
    if status.state is not JobState.RUNNING or launching:
        return None
    elapsed = datetime.now(UTC) - status.started_at
    if host is not None and host != _host():
        if elapsed <= JOB_TIMEOUT + REMOTE_GRACE:
            return None
        return status.model_copy(
            update={
                "state": JobState.FAILED,
                "finished_at": datetime.now(UTC),
                "message": "推演超时，已终止",
            }
        )
    overdue = elapsed > JOB_TIMEOUT
    if overdue and _alive(status.pid) and status.pid is not None:
        with contextlib.suppress(OSError):
            os.kill(status.pid, signal.SIGKILL)
    if not overdue and _alive(status.pid):
        return None
    return status.model_copy(
        update={
            "state": JobState.FAILED,
            "finished_at": datetime.now(UTC),
            "message": "推演超时，已终止" if overdue else "推演进程意外退出",
        }
    )


def _status_held(data_dir: Path, round_id: str) -> JobStatus | None:
    """:func:`job_status` with the lock already held (read again, settled, written)."""
    path = _round_dir(data_dir, round_id) / "job.json"
    found = _read_status(path)
    if found is None:
        return None
    status, host = found
    failed = _lost(status, host)
    if failed is None:
        return status
    _write_json(path, failed.model_dump_json())
    return failed


def job_status(data_dir: Path, round_id: str) -> JobStatus | None:
    """The round's latest job, or None. A running job whose process is gone, or that ran
    past :data:`JOB_TIMEOUT` (then killed), is reported failed."""
    found = _read_status(_round_dir(data_dir, round_id) / "job.json")
    if found is None or _lost(*found) is None:
        return found[0] if found is not None else None
    # Marked failed under the lock, on the state as it is then: the job may have written
    # its final state in the meantime, which must not be overwritten.
    with _exclusive(data_dir):
        return _status_held(data_dir, round_id)


def job_result(data_dir: Path, round_id: str) -> WhatIfReport | None:
    """The round's latest finished what-if, or None."""
    path = _round_dir(data_dir, round_id) / "result.json"
    try:
        return WhatIfReport.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValidationError):
        return None


def _running_jobs(data_dir: Path) -> int:
    """Jobs running now over every round (a dead or overdue one is marked failed); with the
    lock held."""
    root = data_dir / _JOB_DIR
    if not root.is_dir():
        return 0
    count = 0
    for path in root.glob("*/job.json"):
        try:
            round_id = JobStatus.model_validate_json(path.read_text(encoding="utf-8")).round_id
        except (OSError, ValidationError):
            continue
        status = _status_held(data_dir, round_id)
        count += int(status is not None and status.state is JobState.RUNNING)
    return count


def start_job(
    session: Session,
    caller: Caller,
    round_id: str,
    change: DraftChange,
    *,
    data_dir: Path,
    seed: int = 1,
    launch: Callable[[Path, str], int],
) -> JobStatus:
    """Start a what-if of the round in a process of its own (county office only); audited.
    :class:`NotFound` for a round of a county ``caller`` does not see; :class:`Conflict`
    (409) while the round has one running (``what_if_running``), or :data:`MAX_RUNNING` run
    in all (``what_if_busy``) — checked and started under the data directory's lock, so
    concurrent starts, from any number of API processes, start one job. The draft is checked
    against the live county first, so a bad draft fails here, not in the job. ``launch``
    starts the process (:func:`launcher`: ``python -m chuangzheng.services.what_if_jobs
    run-job``) and returns its pid."""
    require_role(caller, {Role.COUNTY_OFFICE}, "只有县委活动办可以发起推演")
    if not 0 <= seed < 2**31:
        raise InvalidInput("invalid", "随机种子有误", [{"field": "seed", "reason": "须为非负整数"}])
    # Of the caller's counties before anything of the round is read (many counties).
    visible_round(session, caller, round_id)
    live = live_county(session, round_id, now=datetime.now(UTC))
    check_change(live, change)
    folder = _round_dir(data_dir, round_id)
    with _exclusive(data_dir):
        current = _status_held(data_dir, round_id)
        if current is not None and current.state is JobState.RUNNING:
            raise Conflict("what_if_running", "本轮已有推演正在进行，请等待其完成")
        if _running_jobs(data_dir) >= MAX_RUNNING:
            raise Conflict("what_if_busy", "已有其他轮次的推演正在进行，请稍后再试")
        now = datetime.now(UTC)
        job_id = f"{now:%Y%m%d%H%M%S}-{os.urandom(3).hex()}"
        status = JobStatus(
            job_id=job_id,
            round_id=round_id,
            state=JobState.RUNNING,
            change=change,
            seed=seed,
            started_by=caller.username,
            started_at=now,
            progress=[f"已读取本轮 {len(live.starts)} 个组织的当前状态，准备推演"],
        )
        # Written before the lock is let go: the next start sees this job running.
        _write_json(folder / "job.json", status.model_dump_json())
        try:
            pid = launch(data_dir, round_id)
        except BaseException:
            failed = status.model_copy(
                update={
                    "state": JobState.FAILED,
                    "finished_at": datetime.now(UTC),
                    "message": "推演进程未能启动",
                }
            )
            _write_json(folder / "job.json", failed.model_dump_json())
            raise
        # Beside the status, not in it: the job's process may already be writing its status
        # (even its final one), which this must never overwrite.
        _write_json(folder / f"{job_id}.pid", json.dumps({"pid": pid, "host": _host()}))
    session.add(
        audit_row(
            caller,
            "what_if_started",
            round_id=round_id,
            org_id=None,
            detail={
                "job_id": job_id,
                "change": change.model_dump(mode="json"),
                "description": change.describe(),
                "seed": seed,
            },
            now=now,
        )
    )
    return status.model_copy(update={"pid": pid})


#: The job's process reads its database URL here (never on its command line, where any
#: user of the machine could read a password).
DATABASE_ENV = "CZ_WHAT_IF_DATABASE_URL"


def launcher(database_url: str) -> Callable[[Path, str], int]:
    """Starts the job's process on ``database_url`` (the caller's read model)."""

    def launch(data_dir: Path, round_id: str) -> int:
        # Detached from the caller's session: the job outlives the request. Not the API
        # process, though: when it stops, the job gets SIGTERM (:func:`stop_on_sigterm`), so
        # stopping the service leaves no rehearsal running.
        argv = [
            sys.executable,
            "-m",
            "chuangzheng.services.what_if_jobs",
            "run-job",
            "--data-dir",
            str(data_dir),
            "--round",
            round_id,
        ]
        process = subprocess.Popen(
            with_parent_death_signal(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, DATABASE_ENV: database_url},
        )
        return process.pid

    return launch


def run_job(session: Session, data_dir: Path, round_id: str) -> JobStatus:
    """The job's body (in its own process): read the live county now, rehearse, and write
    the result and the final status."""
    folder = _round_dir(data_dir, round_id)
    status = JobStatus.model_validate_json((folder / "job.json").read_text(encoding="utf-8"))
    progress = list(status.progress)

    def note(message: str) -> None:
        progress.append(message)
        with _exclusive(data_dir):
            _write_json(
                folder / "job.json",
                status.model_copy(
                    update={"progress": progress[-20:], "pid": os.getpid()}
                ).model_dump_json(),
            )

    try:
        live = live_county(session, round_id, now=datetime.now(UTC), data_dir=data_dir)
        note(
            f"{len(live.starts)} 个组织，其中 {len(live.probabilities)} 个按预测模型给出的进度推演"
        )
        report = asyncio.run(
            stop_on_sigterm(
                asyncio.wait_for(
                    rehearse_live(live, status.change, seed=status.seed, on_message=note),
                    JOB_TIMEOUT.total_seconds(),
                )
            )
        )
    except asyncio.CancelledError:
        final = status.model_copy(
            update={
                "state": JobState.FAILED,
                "finished_at": datetime.now(UTC),
                "message": "服务已停止，推演中断，请重新开始推演",
                "progress": progress[-20:],
            }
        )
    except Exception as exc:
        reason = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        final = status.model_copy(
            update={
                "state": JobState.FAILED,
                "finished_at": datetime.now(UTC),
                "message": f"推演失败：{reason}",
                "progress": progress[-20:],
            }
        )
    else:
        report = report.model_copy(update={"job_id": status.job_id})
        _write_json(folder / "result.json", report.model_dump_json())
        final = status.model_copy(
            update={
                "state": JobState.DONE,
                "finished_at": datetime.now(UTC),
                "message": f"推演完成，用时 {report.wall_seconds:.0f} 秒",
                "progress": progress[-20:],
            }
        )
    with _exclusive(data_dir):
        _write_json(folder / "job.json", final.model_dump_json())
    return final


# ----- the job's process -----------------------------------------------------------------------

_T = TypeVar("_T")


async def stop_on_sigterm(work: Awaitable[_T]) -> _T:
    """Await ``work``; SIGTERM (the API stopping: the job's parent-death signal, or an
    operator) cancels it, so the rehearsal's own time-skipping server is shut down on the way
    out instead of being left running without its job."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await work
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m chuangzheng.services.what_if_jobs run-job --data-dir D --round R``: the
    background job's process (started by :func:`start_job`)."""
    import argparse

    from activities.db import make_engine, session_factory
    from chuangzheng.settings import get_settings

    parser = argparse.ArgumentParser(description="推演（后台任务进程）")
    commands = parser.add_subparsers(dest="command", required=True)
    job = commands.add_parser("run-job")
    job.add_argument("--data-dir", type=Path, required=True)
    job.add_argument("--round", required=True)
    args = parser.parse_args(argv)
    engine = make_engine(os.environ.get(DATABASE_ENV) or get_settings().database_url)
    try:
        with session_factory(engine)() as session:
            final = run_job(session, args.data_dir, args.round)
    finally:
        engine.dispose()
    print(json.dumps({"state": final.state.value, "message": final.message}, ensure_ascii=False))
    return 0 if final.state is JobState.DONE else 1


if __name__ == "__main__":
    raise SystemExit(main())
