"""What every benchmark gets: the scale, an organisation-count override and a cache shared by
the benchmarks of one run (e.g. one simulated round serves two benchmarks)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from benchmarks.stack import Stack
from chuangzheng.settings import WorkerRole

Scale = Literal["smoke", "full"]


@dataclass
class Context:
    scale: Scale = "full"
    #: Overrides every benchmark's organisation count (e.g. 2,000 instead of 10,000).
    orgs: int | None = None
    cache: dict[str, Any] = field(default_factory=dict)
    #: One stack (server, worker, API) for every benchmark of the run: the smoke run's
    #: default, so it takes seconds; full runs give each benchmark a fresh server.
    share_stack: bool = False
    #: The project's worker processes, one per role (``--worker-roles``).
    worker_roles: tuple[WorkerRole, ...] = (WorkerRole.ALL,)
    #: Leave each stack's folder (logs of the dev server, workers and API, the read model)
    #: for a post-mortem (``--keep-stacks``).
    keep_stacks: bool = False
    #: The province benchmark's counties (``--counties``), its organisations split among them.
    counties: int = 10
    #: The province benchmark without its raw baseline (``--no-baseline``), to save time.
    no_baseline: bool = False
    #: The storm with the instructors on a WeCom group robot (``--robot``): every rung-0
    #: notice also goes out over HTTP, through ``deliver_notices``.
    robot: bool = False
    _shared: Stack | None = None

    @contextlib.asynccontextmanager
    async def stack(self, label: str, fresh: bool = False) -> AsyncIterator[Stack]:
        """A fresh stack for the benchmark, or the run's shared one (unless ``fresh``: a
        benchmark whose processes are configured otherwise, e.g. the storm's ``--robot``)."""
        if fresh or not self.share_stack:
            async with Stack(label, keep=self.keep_stacks, worker_roles=self.worker_roles) as stack:
                yield stack
            return
        if self._shared is None:
            self._shared = await Stack(
                "shared", keep=self.keep_stacks, worker_roles=self.worker_roles
            ).__aenter__()
        yield self._shared

    async def close(self) -> None:
        if self._shared is not None:
            await self._shared.__aexit__(None, None, None)
            self._shared = None

    def pick(self, smoke: int, full: int) -> int:
        """The organisation count for this scale, unless overridden."""
        if self.orgs is not None:
            return self.orgs
        return smoke if self.scale == "smoke" else full

    @property
    def smoke(self) -> bool:
        return self.scale == "smoke"
