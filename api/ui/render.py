"""The dashboard's Jinja environment: autoescaped templates, Shanghai-time filters, labels."""

from __future__ import annotations

from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from api.ui.org_view import EVENT_LABELS, documents
from domain.calendar import SHANGHAI
from domain.lights import Light
from domain.machine import PhaseStatus, StepStatus
from domain.organisation import ORG_TYPE_LABELS, SYSTEM_LABELS, OrgType, Role, System
from domain.phases import PHASE_LABELS, WORKING_PHASES, Phase

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

ROLE_LABELS: dict[str, str] = {role: role.label for role in Role}
# Short system names for tables and filters (the full ones name the leading department).
SYSTEM_SHORT: dict[str, str] = {s.value: SYSTEM_LABELS[s].split("（")[0] for s in System}
LIGHT_ORDER: tuple[str, ...] = ("red", "yellow", "blue", "green")


def local(value: Any, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """An aware datetime shown in Asia/Shanghai; dates and other values as they are."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(SHANGHAI).strftime(fmt)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _label(value: Any, kind: str) -> str:
    """The Chinese label of an enum value stored as a string (unknown values as they are)."""
    key = getattr(value, "value", value)
    return str(_label_tables()[kind].get(key, key if key is not None else ""))


@cache
def _label_tables() -> dict[str, Any]:
    """The label tables, built once (a page of 100 rows asks for hundreds of labels)."""
    return {
        "phase": {p.value: PHASE_LABELS[p] for p in Phase},
        "light": {lt.value: lt.label for lt in Light},
        "type": {t.value: ORG_TYPE_LABELS[t] for t in OrgType},
        "system": SYSTEM_SHORT,
        "role": {str(k): v for k, v in ROLE_LABELS.items()},
        "phase_status": {s.value: s.label for s in PhaseStatus},
        "step_status": {s.value: s.label for s in StepStatus},
    }


templates.env.filters["local"] = local
templates.env.filters["label"] = _label
templates.env.globals.update(
    PHASES=[(p.value, p.label) for p in WORKING_PHASES],
    ALL_PHASES=[(p.value, p.label) for p in (*WORKING_PHASES, Phase.COMPLETED)],
    LIGHTS=[(lt, Light(lt).label) for lt in LIGHT_ORDER],
    SYSTEMS=list(SYSTEM_SHORT.items()),
    TYPES=[(t.value, ORG_TYPE_LABELS[t]) for t in OrgType],
    ROLE_LABELS={str(k): v for k, v in ROLE_LABELS.items()},
    event_labels=EVENT_LABELS,
    documents=documents,
)


def page(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """Render dashboard template ``name``; ``user`` in the context drives the navigation."""
    return templates.TemplateResponse(request, name, context, status_code=status_code)
