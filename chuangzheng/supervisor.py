"""A small process supervisor for ``make run``: start commands as child processes, restart a
crashed one with back-off, stop them in order with a bounded grace period.

Each child runs in a session (and process group) of its own, so a Ctrl-C at the terminal
reaches only the supervisor, which then stops the children in order (the API and workers
first, so they drain while the Temporal server is still there, then the server). Signals go
to the child's whole group; whatever is left after the grace period is killed. On Linux a
child also gets SIGTERM if the supervisor dies without stopping it (``setpriv --pdeathsig``),
so even a killed supervisor leaves no orphans.

A child's stdout and stderr are appended to its log file; nothing reaches the console.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

#: util-linux's setpriv sets the parent-death signal and execs the command (same pid).
_SETPRIV = shutil.which("setpriv")


def with_parent_death_signal(argv: Sequence[str]) -> list[str]:
    """``argv`` run so that the child gets SIGTERM when its parent process dies (Linux, where
    util-linux's ``setpriv`` is installed; elsewhere ``argv`` unchanged)."""
    if _SETPRIV is None:
        return list(argv)
    return [_SETPRIV, "--pdeathsig", "TERM", "--", *argv]


@dataclass(frozen=True)
class ProcessSpec:
    """One supervised process: its name, command line, log file and environment."""

    name: str
    argv: Sequence[str]
    log_file: Path
    env: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Backoff:
    """Restart delays: ``initial`` seconds, doubled after each crash up to ``maximum``, back
    to ``initial`` once a process has run for ``reset_after`` seconds."""

    initial: float = 1.0
    maximum: float = 30.0
    reset_after: float = 60.0


@dataclass
class _Child:
    spec: ProcessSpec
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    stopping: bool = False
    stop_requested: asyncio.Event = field(default_factory=asyncio.Event)
    keeper: asyncio.Task[None] | None = None


class Supervisor:
    """Keeps its children running until :meth:`stop` (use from one event loop)."""

    def __init__(self, backoff: Backoff | None = None) -> None:
        self._backoff = backoff or Backoff()
        self._children: dict[str, _Child] = {}

    # ----- starting ---------------------------------------------------------------------------
    def start(self, spec: ProcessSpec) -> None:
        """Start ``spec`` and keep it running (restarted whenever it exits) until stopped."""
        if spec.name in self._children:
            raise ValueError(f"process {spec.name!r} is already supervised")
        child = _Child(spec)
        self._children[spec.name] = child
        child.keeper = asyncio.create_task(self._keep(child), name=f"supervise {spec.name}")

    async def _spawn(self, spec: ProcessSpec) -> asyncio.subprocess.Process:
        spec.log_file.parent.mkdir(parents=True, exist_ok=True)
        argv = with_parent_death_signal(spec.argv)
        with spec.log_file.open("ab") as output:  # the child keeps its own descriptor
            return await asyncio.create_subprocess_exec(
                *argv,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=dict(spec.env) if spec.env is not None else None,
                start_new_session=True,
            )

    async def _keep(self, child: _Child) -> None:
        """Run the child; whenever it exits unasked, log it and start it again after the
        back-off delay."""
        name = child.spec.name
        delay = self._backoff.initial
        while not child.stopping:
            started = time.monotonic()
            try:
                process = await self._spawn(child.spec)
            except OSError as err:
                log.error("process could not start", process=name, error=str(err))
                returncode: int | None = None
            else:
                child.process = process
                log.info("process started", process=name, pid=process.pid)
                if child.stopping:  # stop() came while it was being spawned
                    _signal_group(process, signal.SIGTERM)
                returncode = await process.wait()
            if child.stopping:
                log.info("process stopped", process=name, returncode=returncode)
                return
            ran = time.monotonic() - started
            if ran >= self._backoff.reset_after:
                delay = self._backoff.initial
            child.restarts += 1
            log.warning(
                "process exited; restarting",
                process=name,
                returncode=returncode,
                ran_seconds=round(ran, 1),
                restart_in_seconds=delay,
                restarts=child.restarts,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(child.stop_requested.wait(), timeout=delay)
            delay = min(delay * 2, self._backoff.maximum)

    # ----- looking ----------------------------------------------------------------------------
    def pid(self, name: str) -> int | None:
        """The pid of the running ``name`` (None while it is down or restarting)."""
        process = self._children[name].process
        if process is None or process.returncode is not None:
            return None
        return process.pid

    def alive(self, name: str) -> bool:
        """Whether ``name`` is running right now."""
        return self.pid(name) is not None

    @property
    def restarts(self) -> int:
        """Unasked exits of all children so far (each was followed by a restart)."""
        return sum(child.restarts for child in self._children.values())

    def names(self) -> list[str]:
        """Names of the supervised processes, in start order."""
        return list(self._children)

    # ----- stopping ---------------------------------------------------------------------------
    async def stop(self, names: Iterable[str], grace: float) -> None:
        """SIGTERM the named processes together, wait up to ``grace`` seconds for them to exit,
        then SIGKILL what is left (their whole process groups)."""
        children = [self._children[name] for name in names if name in self._children]
        for child in children:
            child.stopping = True
            child.stop_requested.set()
            if child.process is not None and child.process.returncode is None:
                _signal_group(child.process, signal.SIGTERM)
        keepers = [child.keeper for child in children if child.keeper is not None]
        if not keepers:
            return
        _, pending = await asyncio.wait(keepers, timeout=grace)
        for child in children:
            if child.keeper in pending and child.process is not None:
                log.warning("process did not stop in time; killed", process=child.spec.name)
                _signal_group(child.process, signal.SIGKILL)
        if pending:
            await asyncio.wait(pending, timeout=5)
        for child in children:  # a stopped leader may leave members of its group behind
            if child.process is not None:
                _signal_group(child.process, signal.SIGKILL)

    async def stop_all(self, grace: float) -> None:
        """Stop every process at once (see :meth:`stop`)."""
        await self.stop(self.names(), grace)


def _signal_group(process: asyncio.subprocess.Process, sig: signal.Signals) -> None:
    """Send ``sig`` to the child's process group (its pid: it leads a session of its own)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)
