"""The supervisor alone, over tiny Python children: a crashed child is restarted with back-off
and logged; stop() gives SIGTERM, then SIGKILL to a child that ignores it. And the worker
processes ``make run`` asks it for, one per role of ``CZ_WORKER_ROLES``, over a dev server."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

from chuangzheng.run import process_specs
from chuangzheng.settings import Settings
from chuangzheng.supervisor import Backoff, ProcessSpec, Supervisor
from chuangzheng.temporal_server import start_dev_server_env

FAST = Backoff(initial=0.1, maximum=0.4, reset_after=60)


async def wait_for(check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_a_crashed_child_is_restarted_and_its_output_kept(tmp_path: Path) -> None:
    log = tmp_path / "crash.log"
    spec = ProcessSpec(
        name="crash",
        argv=[sys.executable, "-c", "import sys; print('ran', flush=True); sys.exit(3)"],
        log_file=log,
    )
    supervisor = Supervisor(FAST)
    supervisor.start(spec)
    try:
        await wait_for(lambda: supervisor.restarts >= 3)
    finally:
        await supervisor.stop_all(grace=5)
    assert log.read_text().count("ran") >= 3


async def test_stop_terms_then_kills_a_child_that_ignores_sigterm(tmp_path: Path) -> None:
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    polite = "import time; print('ready', flush=True); time.sleep(60)"
    supervisor = Supervisor(FAST)
    for name, code in (("stubborn", stubborn), ("polite", polite)):
        supervisor.start(
            ProcessSpec(name=name, argv=[sys.executable, "-c", code], log_file=tmp_path / name)
        )
    await wait_for(
        lambda: all((tmp_path / n).exists() and "ready" in (tmp_path / n).read_text()
                    for n in ("stubborn", "polite"))
    )  # fmt: skip
    began = time.monotonic()
    await supervisor.stop_all(grace=1.0)
    elapsed = time.monotonic() - began
    assert 0.9 <= elapsed < 5
    assert not supervisor.alive("stubborn") and not supervisor.alive("polite")
    assert supervisor.restarts == 0


async def test_make_run_starts_one_worker_process_per_listed_role(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``CZ_WORKER_ROLES=workflows,activities``: ``make run``'s specs, under the supervisor,
    are two real ``chuangzheng worker --role …`` processes; the first polls the task queue
    for workflow tasks only, the second for activities only. A ``CZ_WORKER_ROLE`` in the
    environment does not override the role each process is given."""
    env = await start_dev_server_env()
    supervisor = Supervisor(FAST)
    try:
        task_queue = f"roles-{uuid.uuid4()}"
        for name, value in {
            "CZ_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
            "CZ_TEMPORAL_NAMESPACE": env.client.namespace,
            "CZ_TASK_QUEUE": task_queue,
            "CZ_DATA_DIR": str(tmp_path / "data"),
            "CZ_DATABASE_URL": f"sqlite:///{tmp_path / 'readmodel.db'}",
            "CZ_WORKER_ROLES": "workflows,activities",
            "CZ_WORKER_ROLE": "all",
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("DATABASE_URL", raising=False)
        monkeypatch.delenv("CZ_WORKERS", raising=False)
        settings = Settings()
        _, services = process_specs(settings)
        workers = [spec for spec in services if spec.name.startswith("worker-")]
        assert [spec.name for spec in workers] == ["worker-1", "worker-2"]
        for spec in workers:
            supervisor.start(spec)

        async def pollers(kind: TaskQueueType.ValueType) -> set[str]:
            described = await env.client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=env.client.namespace,
                    task_queue=TaskQueue(name=task_queue),
                    task_queue_type=kind,
                )
            )
            return {poller.identity.split("@", 1)[0] for poller in described.pollers}

        workflow_pid = activity_pid = ""
        deadline = time.monotonic() + 120  # two interpreters importing the SDK, on a busy box
        while time.monotonic() < deadline:
            workflow_pid, activity_pid = (str(supervisor.pid(s.name)) for s in workers)
            polling_workflows = await pollers(TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW)
            polling_activities = await pollers(TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)
            if workflow_pid in polling_workflows and activity_pid in polling_activities:
                break
            await asyncio.sleep(0.5)
        # Let the pollers of both settle, then check each did only its half.
        await asyncio.sleep(1)
        polling_workflows = await pollers(TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW)
        polling_activities = await pollers(TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)
        logs = "\n".join(spec.log_file.read_text()[-2000:] for spec in workers)
        assert polling_workflows == {workflow_pid}, logs
        assert polling_activities == {activity_pid}, logs
        assert supervisor.restarts == 0, logs
    finally:
        await supervisor.stop_all(grace=5)
        await env.shutdown()
