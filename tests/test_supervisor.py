"""The supervisor alone, over tiny Python children: a crashed child is restarted with back-off
and logged; stop() gives SIGTERM, then SIGKILL to a child that ignores it."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path

from chuangzheng.supervisor import Backoff, ProcessSpec, Supervisor

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
