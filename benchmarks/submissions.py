"""Evidence submissions through the HTTP API, timed, and the raw no-op Updates they are
compared with. A submission is followed by the county office returning it (退回, untimed)
so the same step can be submitted again: one organisation can be submitted for endlessly."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic_core import to_jsonable_python

from benchmarks.stack import Api, Stack
from domain.organisation import Organisation


@dataclass
class Timed:
    """Latencies (s) with the epoch each call started, errors and timeouts."""

    calls: list[tuple[float, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    timeouts: int = 0

    def latencies(self, since: float = 0.0, until: float = float("inf")) -> list[float]:
        return [lat for at, lat in self.calls if since <= at <= until]

    def failures(self, since: float = 0.0, until: float = float("inf")) -> int:
        return len(self.errors)  # errors are rare; counted over the whole run


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class Submitter:
    """Submits the first step of an organisation's open phase, then returns it."""

    def __init__(self, stack: Stack, api: Api, round_id: str, plan_yaml: str) -> None:
        from domain.plan_loader import load_plan

        self.stack = stack
        self.api = api
        self.round_id = round_id
        self.plan = load_plan(plan_yaml)

    def body(self, org: Organisation) -> dict[str, Any]:
        from chuangzheng.sample_evidence import sample_evidence

        row = self.stack.rows(
            "SELECT phase, opened_at, deadline FROM phase_status WHERE round_id = :r "
            "AND org_id = :o AND status = 'open' ORDER BY opened_at LIMIT 1",
            r=self.round_id,
            o=org.id,
        )
        phase_name, opened_at, deadline = row[0]
        round_plan = self.plan.rounds[0]
        phase_plan = next(p for p in round_plan.phases if p.phase.value == phase_name)
        step = phase_plan.steps_for(org.type)[0]
        opens = _aware(datetime.fromisoformat(str(opened_at)))
        ends = _aware(datetime.fromisoformat(str(deadline)))
        values = sample_evidence(step, org, opens_at=opens, deadline=ends, now=datetime.now(UTC))
        return {"step_id": step.id, "values": to_jsonable_python(values)}

    def path(self, org: Organisation, what: str) -> str:
        return f"/api/v1/rounds/{self.round_id}/organisations/{org.id}/{what}"

    async def cycle(self, org: Organisation, body: dict[str, Any], timed: Timed) -> None:
        """One timed submission, then the untimed return that reopens the step."""
        started, t0 = time.time(), time.perf_counter()
        try:
            response = await self.api.post(self.path(org, "submissions"), body)
        except httpx.TimeoutException:
            timed.timeouts += 1
            return
        except httpx.HTTPError as exc:
            timed.errors.append(repr(exc)[:200])
            return
        latency = time.perf_counter() - t0
        if response.status_code >= 300:
            timed.errors.append(f"{response.status_code} {response.text[:200]}")
            await asyncio.sleep(0.5)
            return
        timed.calls.append((started, latency))
        back = {"step_id": body["step_id"], "accept": False, "reason": "基准测试：退回重交"}
        try:
            await self.api.post(self.path(org, "decisions"), back)
        except httpx.HTTPError as exc:
            timed.errors.append(f"decision: {exc!r}"[:200])

    async def loop(self, org: Organisation, timed: Timed, stop: asyncio.Event) -> None:
        body = self.body(org)
        while not stop.is_set():
            await self.cycle(org, body, timed)


async def raw_update(handle: Any, timed: Timed) -> None:
    """One timed no-op Update (``bump``) of a baseline workflow."""
    started, t0 = time.time(), time.perf_counter()
    try:
        await handle.execute_update("bump", 1)
    except Exception as exc:  # an RPC error is an error of the baseline, counted
        timed.errors.append(repr(exc)[:200])
        return
    timed.calls.append((started, time.perf_counter() - t0))


async def raw_loop(handle: Any, timed: Timed, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await raw_update(handle, timed)
