"""Temporal Schedules of a round: the daily digest and the weekly circular (通报).

Schedules, not a sleeping workflow, because an operator can see, pause, trigger and edit them
in the Temporal UI, and the server keeps firing them across worker restarts. Times are local
(Asia/Shanghai) wall-clock times; the server handles the zone.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from workflows.digest import CircularInput, CircularWorkflow, DailyDigestInput, DailyDigestWorkflow

TIME_ZONE = "Asia/Shanghai"
_HH_MM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
# A digest fired late (server or worker down at 08:30) is still worth sending that morning;
# one a day late is not, and tomorrow's run covers it.
DIGEST_CATCHUP = timedelta(hours=6)
CIRCULAR_CATCHUP = timedelta(days=1)


def digest_schedule_id(round_id: str) -> str:
    """``digest/<round_id>``: the round's daily digest schedule."""
    return f"digest/{round_id}"


def circular_schedule_id(round_id: str) -> str:
    """``circular/<round_id>``: the round's weekly circular schedule."""
    return f"circular/{round_id}"


def _clock(text: str) -> tuple[int, int]:
    """``"08:30"`` -> (8, 30); anything else is a ValueError naming the expected form."""
    match = _HH_MM.match(text.strip())
    if match is None:
        raise ValueError(f"时间格式应为 HH:MM（如 08:30），收到：{text!r}")
    return int(match.group(1)), int(match.group(2))


def _calendar(at: str, *, iso_weekday: int | None = None) -> ScheduleSpec:
    """A spec firing at local time ``at`` every day, or on ``iso_weekday`` (1 = Monday)."""
    hour, minute = _clock(at)
    if iso_weekday is not None and not 1 <= iso_weekday <= 7:
        raise ValueError(f"星期应为 1（周一）到 7（周日），收到：{iso_weekday}")
    hours, minutes = (ScheduleRange(hour),), (ScheduleRange(minute),)
    if iso_weekday is None:
        calendar = ScheduleCalendarSpec(hour=hours, minute=minutes)
    else:
        # Temporal counts weekdays from Sunday = 0; ISO counts Monday = 1 ... Sunday = 7.
        days = (ScheduleRange(iso_weekday % 7),)
        calendar = ScheduleCalendarSpec(hour=hours, minute=minutes, day_of_week=days)
    return ScheduleSpec(calendars=[calendar], time_zone_name=TIME_ZONE)


def digest_schedule(round_id: str, *, digest_time: str, task_queue: str) -> Schedule:
    """The daily digest schedule of ``round_id`` at local ``digest_time``."""
    return Schedule(
        action=ScheduleActionStartWorkflow(
            DailyDigestWorkflow.run,
            DailyDigestInput(round_id=round_id),
            id=f"digest/{round_id}",  # the server appends the fire time
            task_queue=task_queue,
        ),
        spec=_calendar(digest_time),
        policy=SchedulePolicy(catchup_window=DIGEST_CATCHUP),
    )


def circular_schedule(
    round_id: str, *, weekday: int, circular_time: str, task_queue: str
) -> Schedule:
    """The weekly circular schedule of ``round_id`` (ISO ``weekday``, local time)."""
    return Schedule(
        action=ScheduleActionStartWorkflow(
            CircularWorkflow.run,
            CircularInput(round_id=round_id),
            id=f"circular/{round_id}",
            task_queue=task_queue,
        ),
        spec=_calendar(circular_time, iso_weekday=weekday),
        policy=SchedulePolicy(catchup_window=CIRCULAR_CATCHUP),
    )


async def _create_or_update(client: Client, schedule_id: str, schedule: Schedule) -> None:
    """Create the schedule, or replace the spec and action of an existing one."""
    try:
        await client.create_schedule(schedule_id, schedule)
    except ScheduleAlreadyRunningError:

        def replace(current: ScheduleUpdateInput) -> ScheduleUpdate:
            # Keep the operator's pause state and notes; take our spec, action and policy.
            state = current.description.schedule.state
            return ScheduleUpdate(schedule=dataclasses.replace(schedule, state=state))

        await client.get_schedule_handle(schedule_id).update(replace)


async def ensure_schedules(
    client: Client,
    round_id: str,
    *,
    task_queue: str,
    digest_time: str = "08:30",
    circular_weekday: int = 1,
    circular_time: str = "09:00",
) -> tuple[str, str]:
    """Create (or bring up to date) the round's digest and circular schedules; idempotent.

    Returns the two schedule ids. Times are local Asia/Shanghai ``HH:MM``; the circular runs
    on ISO ``circular_weekday`` (1 = Monday).
    """
    digest = digest_schedule(round_id, digest_time=digest_time, task_queue=task_queue)
    circular = circular_schedule(
        round_id, weekday=circular_weekday, circular_time=circular_time, task_queue=task_queue
    )
    ids = digest_schedule_id(round_id), circular_schedule_id(round_id)
    await _create_or_update(client, ids[0], digest)
    await _create_or_update(client, ids[1], circular)
    return ids


async def delete_schedules(client: Client, round_id: str) -> None:
    """Delete the round's schedules (e.g. when the round closes); missing ones are fine."""
    for schedule_id in (digest_schedule_id(round_id), circular_schedule_id(round_id)):
        try:
            await client.get_schedule_handle(schedule_id).delete()
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise


__all__ = [
    "TIME_ZONE",
    "circular_schedule",
    "circular_schedule_id",
    "delete_schedules",
    "digest_schedule",
    "digest_schedule_id",
    "ensure_schedules",
]
