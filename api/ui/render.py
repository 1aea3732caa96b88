"""The dashboard's Jinja environment: autoescaped templates, Shanghai-time filters, labels."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Collection
from contextvars import ContextVar
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from sqlalchemy.orm import Session

from activities.guidance_groups import group_map
from api.ui.org_view import EVENT_LABELS, documents
from domain.calendar import SHANGHAI, deadline_wording
from domain.lights import Light
from domain.machine import PhaseStatus, StepStatus
from domain.organisation import ORG_TYPE_LABELS, SEED_002_SYSTEMS, OrgType, Role
from domain.phases import PHASE_LABELS, WORKING_PHASES, Phase

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

ROLE_LABELS: dict[str, str] = {role: role.label for role in Role}
# Short system names for tables and filters (the full ones name the leading department):
# seed 002's six, for pages of no county; a county's own come from its data (issue 15:
# :func:`county_systems`, put in every signed-in page's context by :func:`page`).
SYSTEM_SHORT: dict[str, str] = {g.key: g.name for g in SEED_002_SYSTEMS}
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


def deadline_text(value: Any, short: bool = False) -> str:
    """A deadline as people read it (:func:`domain.calendar.deadline_wording`): one that ends
    a day is "D 24:00" of its last day D, since "D+1 00:00" reads as one day more. ``short``
    leaves out the year. An ISO text with its offset (a service's answer as JSON) is read as
    the instant it names."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return value
        if parsed.tzinfo is None:
            return value
        value = parsed
    if not isinstance(value, datetime):
        return local(value)
    return deadline_wording(value, "%m-%d" if short else "%Y-%m-%d")


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


@pass_context
def _label_in_page(page_context: Any, value: Any, kind: str) -> str:
    """:func:`_label`, with the guidance groups of the page's county (``SYSTEM_NAMES``)."""
    names = page_context.get("SYSTEM_NAMES")
    if kind == "system" and names:
        key = getattr(value, "value", value)
        if key in names:
            return str(names[key])
    return _label(value, kind)


def county_systems(session: Session, counties: Collection[str]) -> dict[str, str]:
    """Short names of the guidance groups of ``counties`` by key, in the counties' order
    (the county's own data, issue 15), for labels and filters."""
    return {key: group.name for key, group in group_map(session, counties).items()}


#: How long pages keep a county's group names without asking the database again, and so
#: how soon a rename made in another API process shows (this process forgets at once).
SYSTEM_NAMES_TTL = 30.0
# Keyed by the app's session factory too: tests run several apps (databases) in one process.
_system_names: dict[tuple[int, frozenset[str]], tuple[float, dict[str, str]]] = {}


def _names_key(request: Request, counties: Collection[str]) -> tuple[int, frozenset[str]]:
    return (id(getattr(request.app.state, "sessions", None)), frozenset(counties))


def remember_system_names(request: Request, session: Session, counties: Collection[str]) -> None:
    """Read the guidance group names of ``counties`` for the page being served (memoised
    for :data:`SYSTEM_NAMES_TTL` seconds). Called by the pages' sign-in dependency, which
    runs off the event loop: :func:`page` itself never touches the database, since async
    page handlers render on the loop."""
    key = _names_key(request, counties)
    now = time.monotonic()
    cached = _system_names.get(key)
    if cached is None or cached[0] < now:
        cached = (now + SYSTEM_NAMES_TTL, county_systems(session, counties))
        _system_names[key] = cached
    request.state.system_names = cached[1]


def forget_system_names() -> None:
    """Drop the memoised group names (after a county changed its groups)."""
    _system_names.clear()


templates.env.filters["local"] = local
templates.env.filters["deadline"] = deadline_text
templates.env.filters["label"] = _label_in_page
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


#: The flash messages a redirect carries to the next page (shown as 系统提示), and the query
#: parameter of their signature.
FLASH_KEYS: tuple[str, str] = ("msg", "error")
FLASH_SIGNATURE = "sig"
#: The app's secret key while a page request runs (set by ``api.ui.session.UiRoute``), so
#: that ``api.ui.session.redirect`` signs without every router passing the settings.
flash_key: ContextVar[str | None] = ContextVar("flash_key", default=None)


def flash_signature(key: str, msg: str, error: str) -> str:
    """The HMAC of a redirect's flash messages under the app's secret key."""
    mac = hmac.new(key.encode(), f"ui-flash\0{msg}\0{error}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()[:18]).decode()


def _signed_flashes(request: Request, context: dict[str, Any]) -> dict[str, Any]:
    """``context`` without the flash messages that came from the URL unsigned: anyone can
    craft ``/ui/my?error=您的账号存在安全风险…``, and a page must not show it as the
    system's alert. Messages a router put in the context itself are its own and stay."""
    query = request.query_params
    from_url = [k for k in FLASH_KEYS if query.get(k) and context.get(k) == query.get(k)]
    if not from_url:
        return context
    settings = getattr(request.app.state, "settings", None)
    expected = (
        flash_signature(settings.secret_key, *(query.get(k, "") for k in FLASH_KEYS))
        if settings is not None
        else ""
    )
    if expected and hmac.compare_digest(expected.encode(), query.get(FLASH_SIGNATURE, "").encode()):
        return context
    return {**context, **{k: "" for k in from_url}}


def page(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """Render dashboard template ``name``; ``user`` in the context drives the navigation
    and names the county whose guidance groups label and filter the page (``SYSTEMS``).
    Flash messages are shown only when signed (:func:`_signed_flashes`)."""
    context = _signed_flashes(request, context)
    names: dict[str, str] | None = getattr(request.state, "system_names", None)
    counties = getattr(context.get("user"), "counties", None)
    if names is None and counties:  # a page whose user came another way: memoised only
        cached = _system_names.get(_names_key(request, counties))
        names = cached[1] if cached is not None else None
    if names is not None and "SYSTEM_NAMES" not in context:
        context = {**context, "SYSTEM_NAMES": names, "SYSTEMS": list(names.items())}
    return templates.TemplateResponse(request, name, context, status_code=status_code)


#: Pages linked on either side of the current one; the first and last are always linked.
PAGER_SPAN = 4


def pager(page_no: int, pages: int) -> list[int | None]:
    """The page numbers the pager links, None where it leaves a gap: the first, the last
    and ``PAGER_SPAN`` either side of the current page (374 pages of laggards were 374
    links, each carrying the filters)."""
    shown = sorted({1, pages, *range(page_no - PAGER_SPAN, page_no + PAGER_SPAN + 1)})
    out: list[int | None] = []
    for n in (n for n in shown if 1 <= n <= pages):
        last = out[-1] if out else None
        if last is not None and n == last + 2:
            out.append(last + 1)  # a gap of one page: link it rather than "…"
        elif last is not None and n > last + 2:
            out.append(None)
        out.append(n)
    return out
