"""Round plans: the shipped plan files under ``plans/`` or an uploaded YAML text.

Every supplementary calendar under ``plans/calendars/`` is merged into the plan, so a plan
whose round reaches a year the State Council has not yet published still resolves.
"""

from __future__ import annotations

import re
from pathlib import Path

from chuangzheng.settings import repo_root
from domain.errors import FieldError, PlanError
from domain.plan import CalendarPlan, CampaignPlan
from domain.plan_loader import load_calendar, load_plan

_PLAN_ID = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")


def plans_dir() -> Path:
    """Where shipped plans live."""
    return repo_root() / "plans"


def supplement() -> CalendarPlan | None:
    """Every supplementary calendar merged into one (None when there is none)."""
    merged: CalendarPlan | None = None
    for path in sorted((plans_dir() / "calendars").glob("*.yaml")):
        calendar = load_calendar(path.read_text("utf-8"))
        merged = calendar if merged is None else merged.merged(calendar)
    return merged


def shipped_plan_text(plan_id: str) -> str:
    """The YAML of a shipped plan, or a field error naming ``plan_id``."""
    path = plans_dir() / f"{plan_id}.yaml"
    if not _PLAN_ID.match(plan_id) or not path.is_file():
        shipped = "、".join(sorted(p.stem for p in plans_dir().glob("*.yaml")))
        raise PlanError([FieldError(field="plan_id", reason=f"没有该计划，可选：{shipped}")])
    return path.read_text("utf-8")


def parse_plan(text: str) -> CampaignPlan:
    """Load and check a plan's YAML (raises :class:`PlanError` with every field error)."""
    return load_plan(text, supplement=supplement())
