"""Evidence submissions through the HTTP API, timed, and the raw no-op Updates they are
compared with. A submission is followed by the county office returning it (退回, untimed)
so the same step can be submitted again: one organisation can be submitted for endlessly.
The return is the organisation's guidance group's: nobody decides what their own role
entered."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic_core import to_jsonable_python

from benchmarks.stack import Api, Stack, guidance_username
from domain.organisation import Organisation

#: The headers that ask an action for the Update's result only (the API's default; no status
#: query) or for the whole status after it (one query more).
MINIMAL = {"Prefer": "return=minimal"}
REPRESENTATION = {"Prefer": "return=representation"}


@dataclass
class Timed:
    """Latencies (s) with the epoch each call started, errors and timeouts; for calls through
    the API also where the server says the time went (its ``Server-Timing``, per call: phase
    -> seconds, plus ``outside``: the latency the phases do not account for: authentication,
    HTTP, the framework, waiting for the event loop)."""

    calls: list[tuple[float, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    timeouts: int = 0
    phases: list[tuple[float, dict[str, float]]] = field(default_factory=list)

    def latencies(self, since: float = 0.0, until: float = float("inf")) -> list[float]:
        return [lat for at, lat in self.calls if since <= at <= until]

    def phase_summary(self, since: float = 0.0, until: float = float("inf")) -> str:
        """``phase p50/p95`` in ms for the calls started in the window (empty: none)."""
        picked = [phases for at, phases in self.phases if since <= at <= until]
        names = list(dict.fromkeys(name for phases in picked for name in phases))
        parts = []
        for name in names:
            values = sorted(p[name] for p in picked if name in p)
            p50 = values[len(values) // 2]
            p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
            parts.append(f"{name} {p50 * 1000:.0f}/{p95 * 1000:.0f} (n={len(values)})")
        return ", ".join(parts)


def server_timing(header: str | None, latency: float) -> dict[str, float]:
    """Phases (s) of a ``Server-Timing`` header, and ``outside``: the rest of ``latency``."""
    phases: dict[str, float] = {}
    for part in (header or "").split(","):
        name, _, rest = part.strip().partition(";dur=")
        if name and rest:
            phases[name] = float(rest) / 1000
    if phases:
        phases["outside"] = latency - sum(phases.values())
    return phases


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
        # The guidance groups' clients that return the submissions, by system.
        self._reviewers: dict[str, Api] = {}
        self._signing_in = asyncio.Lock()

    async def _reviewer(self, org: Organisation) -> Api:
        system = str(org.system)
        async with self._signing_in:
            if system not in self._reviewers:
                reviewer = Api(str(self.api.http.base_url), username=guidance_username(system))
                self._reviewers[system] = await reviewer.__aenter__()
        return self._reviewers[system]

    async def aclose(self) -> None:
        """Sign the reviewers' clients out (their connections closed)."""
        for reviewer in self._reviewers.values():
            await reviewer.__aexit__()
        self._reviewers.clear()

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

    async def _post(
        self, path: str, body: dict[str, Any], *, minimal: bool, api: Api | None = None
    ) -> httpx.Response:
        """``Api.post`` (a fresh Idempotency-Key) as ``api`` (the county office unless
        given), asking for ``MINIMAL`` or ``REPRESENTATION``."""
        api = api or self.api
        headers = api.headers | {"Idempotency-Key": uuid.uuid4().hex}
        return await api.http.post(
            path, json=body, headers=headers | (MINIMAL if minimal else REPRESENTATION)
        )

    async def cycle(
        self, org: Organisation, body: dict[str, Any], timed: Timed, *, minimal: bool = False
    ) -> None:
        """One timed submission, then the untimed return that reopens the step. ``minimal``:
        the submission asks for the Update's result only (``Prefer: return=minimal``, the
        API's default and what the pages' forms do); otherwise for the whole status after it
        (``Prefer: return=representation``)."""
        started, t0 = time.time(), time.perf_counter()
        try:
            response = await self._post(self.path(org, "submissions"), body, minimal=minimal)
        except httpx.TimeoutException:
            timed.timeouts += 1
            return
        except httpx.HTTPError as exc:
            timed.errors.append(repr(exc)[:200])
            return
        latency = time.perf_counter() - t0
        if response.status_code >= 300:
            timed.errors.append(f"{response.status_code} {response.text[:200]}")
            if response.status_code == 409:
                # The step waits for review: an earlier submission took effect though its
                # answer was an error, or a return failed. Return it, so the loop goes on
                # measuring instead of counting the same refusal every half second.
                await self._give_back(org, body, timed, minimal=minimal)
            await asyncio.sleep(0.5)
            return
        timed.calls.append((started, latency))
        phases = server_timing(response.headers.get("Server-Timing"), latency)
        if phases:
            timed.phases.append((started, phases))
        await self._give_back(org, body, timed, minimal=minimal)

    async def _give_back(
        self, org: Organisation, body: dict[str, Any], timed: Timed, *, minimal: bool
    ) -> None:
        """The untimed return (退回) that reopens the step; a failed one is counted."""
        back = {"step_id": body["step_id"], "accept": False, "reason": "基准测试：退回重交"}
        try:
            reviewer = await self._reviewer(org)
            response = await self._post(
                self.path(org, "decisions"), back, minimal=minimal, api=reviewer
            )
        except httpx.HTTPError as exc:
            timed.errors.append(f"decision: {exc!r}"[:200])
            return
        if response.status_code >= 300:
            timed.errors.append(f"decision: {response.status_code} {response.text[:160]}")

    async def loop(
        self, org: Organisation, timed: Timed, stop: asyncio.Event, *, minimal: bool = False
    ) -> None:
        body = self.body(org)
        while not stop.is_set():
            await self.cycle(org, body, timed, minimal=minimal)


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
