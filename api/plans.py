"""Round plans, for the API's routers and pages: the loading itself is
:mod:`chuangzheng.plans` (the services use it too, and a service never imports ``api``)."""

from __future__ import annotations

from chuangzheng.plans import (
    calendar_library,
    calendar_update_for,
    check_kickoff,
    parse_plan,
    plans_dir,
    shipped_plan_text,
)

__all__ = [
    "calendar_library",
    "calendar_update_for",
    "check_kickoff",
    "parse_plan",
    "plans_dir",
    "shipped_plan_text",
]
