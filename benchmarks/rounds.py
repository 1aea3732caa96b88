"""Campaign rounds for the benchmarks: plans built from the demo plan, rounds kicked off
through the API (``POST /rounds`` and ``/kickoff``, the public entry point: the round
workflow's type and contract change with the project), and the size of workflow histories.

:func:`kick_off_direct` starts the round workflow with the legacy contract
(``CampaignRoundWorkflow`` with ``RoundInput(kickoff=…)``), only to force an early
continue-as-new where the API still starts that type (to see the state it carries)."""

from __future__ import annotations

import builtins
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from benchmarks.stack import ROOT, Api, Stack
from domain.organisation import Organisation

DEMO_PLAN = ROOT / "plans" / "demo.yaml"
LEGACY_ROUND_WORKFLOW = "CampaignRoundWorkflow"


def plan_yaml(
    first_phase_minutes: int,
    *,
    townships: list[str] | None = None,
    spaced_ladder: bool = False,
) -> str:
    """The demo plan (minute-scale, so no calendar is involved) with its first phase lasting
    ``first_phase_minutes`` and the round limited to ``townships`` when given.

    ``spaced_ladder``: the ladder keeps the demo's rungs and actions but spaced as seed 002
    spaces them around a deadline, which the demo squeezes into minutes: the blue light and
    the reminder come well before the deadline (here: from the phase's opening, in the
    organisation's first workflow task), and the later rungs long after it (seed 002:
    working days; here: one and two hours). The deadline then wakes each organisation once,
    for the first rung only, as a real deadline does; with the demo's spacing the blue
    light, the reminder and rungs 1 and 2 wake it four more times within four minutes of
    the deadline.
    """
    data = yaml.safe_load(DEMO_PLAN.read_text("utf-8"))
    round_plan = data["rounds"][0]
    round_plan["phases"][0]["duration"] = {"minutes": first_phase_minutes}
    if spaced_ladder:
        ladder = data["ladder"]
        ladder["reminder_lead"] = {"minutes": first_phase_minutes}
        ladder["blue_within"] = {"minutes": first_phase_minutes}
        for rung, minutes in zip(ladder["rungs"], (0, 60, 120), strict=True):
            rung["delay"] = {"minutes": minutes}
    if townships is not None:
        round_plan["scope"] = dict(round_plan.get("scope") or {}) | {"townships": townships}
    return str(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))


def new_round_id(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


async def kick_off(
    stack: Stack,
    round_id: str,
    organisations: Sequence[Organisation] | None = None,
    *,
    first_phase_minutes: int = 24 * 60,
    townships: list[str] | None = None,
    starts_at: datetime | None = None,
) -> float:
    """Create and kick off a round of the demo plan through the API as the county office
    (``organisations``, if given, become the county's roster first); the seconds the two
    requests took."""
    if organisations is not None:
        stack.seed_county(organisations)
    await stack.start_api()
    async with Api(stack.api_url) as api:
        began = time.time()
        await api.create_and_kick_off(
            round_id,
            plan_yaml=plan_yaml(first_phase_minutes, townships=townships),
            starts_at=starts_at,
        )
        return time.time() - began


async def round_workflow_type(stack: Stack, round_id: str) -> str:
    """The workflow type the kick-off started for ``round_id``."""
    from workflows.ids import round_workflow_id

    described = await stack.client.get_workflow_handle(round_workflow_id(round_id)).describe()
    return str(described.workflow_type)


async def kick_off_direct(
    stack: Stack,
    round_id: str,
    roster_csv: Path,
    *,
    first_phase_minutes: int = 24 * 60,
    history_limit: int | None = None,
) -> None:
    """Start the round workflow with the project's own contract, as the API's kick-off does
    (no HTTP, no schedules). ``history_limit``: continue-as-new sooner, if the contract has
    the knob (to see the carried state)."""
    from domain.organisation import Role
    from domain.plan_loader import load_plan
    from domain.state import Actor
    from workflows.contracts import RoundInput, RoundKickoff
    from workflows.ids import round_workflow_id

    plan = load_plan(plan_yaml(first_phase_minutes))
    extra: dict[str, Any] = {}
    fields = RoundKickoff.model_fields
    if history_limit is not None and "history_limit" in fields:
        extra["history_limit"] = history_limit
    if "cohort_check_every" in fields:  # a minute-scale plan: as the API sets it
        extra["cohort_check_every"] = timedelta(minutes=1)
    kickoff = RoundKickoff(
        round_id=round_id,
        plan=plan,
        round_plan_id=plan.rounds[0].id,
        roster_source=str(roster_csv),
        actor=Actor(user="county", role=Role.COUNTY_OFFICE),
        starts_at=datetime.now(UTC),
        **extra,
    )
    await stack.client.start_workflow(
        LEGACY_ROUND_WORKFLOW,
        RoundInput(kickoff=kickoff),
        id=round_workflow_id(round_id),
        task_queue=stack.task_queue,
    )


@dataclass
class HistorySize:
    """A workflow's history over all its runs (continue-as-new chain)."""

    runs: int = 0
    events: int = 0
    bytes: int = 0
    update_result_bytes: int = 0
    #: Bytes of each run, first run first.
    run_bytes: list[int] = field(default_factory=list)
    #: Bytes per event type (``ACTIVITY_TASK_SCHEDULED`` …), every run.
    bytes_by_type: dict[str, int] = field(default_factory=dict)
    #: Event times (epoch seconds) of the timers that fired and of the Updates accepted.
    timers_fired: list[float] = field(default_factory=list)
    updates_accepted: list[float] = field(default_factory=list)
    #: The latest run's input (what the last continue-as-new carried, or the first input).
    latest_input: builtins.bytes = b""
    start_input_bytes: list[int] = field(default_factory=list)
    continue_as_new_bytes: list[int] = field(default_factory=list)


async def history_size(client: Client, workflow_id: str) -> HistorySize:
    """Events and serialized (protobuf) bytes of ``workflow_id``'s history over every run
    (following continue-as-new back from the latest), with the inputs each run started and
    continued with, and the bytes of Update results."""
    size = HistorySize()
    run_id: str | None = None
    while True:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        size.runs += 1
        run_bytes = 0
        for event in history.events:
            run_bytes += event.ByteSize()
            size.events += 1
            size.bytes += event.ByteSize()
            kind = event.event_type
            name = EventType.Name(kind).removeprefix("EVENT_TYPE_")
            size.bytes_by_type[name] = size.bytes_by_type.get(name, 0) + event.ByteSize()
            if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
                attrs = event.workflow_execution_started_event_attributes
                size.start_input_bytes.insert(0, attrs.input.ByteSize())
                if not size.latest_input and attrs.input.payloads:
                    size.latest_input = attrs.input.payloads[0].data
            elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
                attrs_can = event.workflow_execution_continued_as_new_event_attributes
                size.continue_as_new_bytes.insert(0, attrs_can.input.ByteSize())
            elif kind == EventType.EVENT_TYPE_TIMER_FIRED:
                size.timers_fired.append(_epoch(event.event_time))
            elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
                size.updates_accepted.append(_epoch(event.event_time))
            elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
                outcome = event.workflow_execution_update_completed_event_attributes.outcome
                size.update_result_bytes += outcome.ByteSize()
        size.run_bytes.insert(0, run_bytes)
        started = history.events[0].workflow_execution_started_event_attributes
        if not started.continued_execution_run_id:
            size.timers_fired.sort()
            size.updates_accepted.sort()
            return size
        run_id = started.continued_execution_run_id


def _epoch(stamp: Any) -> float:
    return float(stamp.seconds) + float(stamp.nanos) / 1e9
