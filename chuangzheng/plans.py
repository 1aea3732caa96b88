"""Round plans: the shipped plan files under ``plans/`` or an uploaded YAML text.

The services (``chuangzheng.services.rounds``), the API (through ``api.plans``, which
re-exports this module) and the pages load plans here.

A plan's calendar is what the plan supplies plus the ``chinese-calendar`` package. The
supplementary calendar files under ``plans/calendars/`` (e.g. a provisional guess at a year
the State Council has not yet published) are merged in only when the plan names them in
``calendar.include``: nothing is merged silently, so a round that reaches a year with no
data is refused with the year named, at upload and at kick-off.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from chuangzheng.settings import repo_root
from domain.actions import CalendarUpdate
from domain.errors import FieldError, PlanError
from domain.plan import CalendarPlan, CampaignPlan
from domain.plan_loader import calendar_update, load_calendar, load_plan, resolve_kickoff
from domain.schedule import RoundSchedule
from domain.state import Actor

_PLAN_ID = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")


def plans_dir() -> Path:
    """Where shipped plans live."""
    return repo_root() / "plans"


def calendar_library() -> dict[str, CalendarPlan]:
    """The supplementary calendar files a plan may choose by name (``calendar.include``)."""
    return {
        path.stem: load_calendar(path.read_text("utf-8"))
        for path in sorted((plans_dir() / "calendars").glob("*.yaml"))
    }


def shipped_plan_text(plan_id: str) -> str:
    """The YAML of a shipped plan, or a field error naming ``plan_id``."""
    path = plans_dir() / f"{plan_id}.yaml"
    if not _PLAN_ID.match(plan_id) or not path.is_file():
        shipped = "、".join(sorted(p.stem for p in plans_dir().glob("*.yaml")))
        raise PlanError([FieldError(field="plan_id", reason=f"没有该计划，可选：{shipped}")])
    return path.read_text("utf-8")


def parse_plan(text: str) -> CampaignPlan:
    """Load and check a plan's YAML (raises :class:`PlanError` with every field error)."""
    return load_plan(text, calendars=calendar_library())


def check_kickoff(plan: CampaignPlan, round_plan_id: str, starts_at: datetime) -> RoundSchedule:
    """The round's schedule for a start at ``starts_at``, resolved as the round will run it;
    a year with no calendar data is a :class:`PlanError` on ``starts_at`` naming the year
    (422), before any workflow starts."""
    return resolve_kickoff(plan, round_plan_id, starts_at, field="starts_at")


def calendar_update_for(
    plan: CampaignPlan,
    round_plan_id: str,
    starts_at: datetime,
    calendar_yaml: str,
    *,
    update_id: str,
    actor: Actor,
    reason: str,
) -> CalendarUpdate:
    """The audited round action for a running round from newly published calendar data (a
    calendar file's YAML, as in ``plans/calendars/``): what the round workflow's
    ``update_calendar`` takes. Field errors name ``calendar`` (422)."""
    published = load_calendar(calendar_yaml)
    return calendar_update(
        plan,
        round_plan_id,
        starts_at,
        published,
        update_id=update_id,
        actor=actor,
        reason=reason,
    )
