"""The Jinja environment of the public pages (autoescaped; Chinese text, no scripts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from api.ui.render import deadline_text
from domain.calendar import SHANGHAI, deadline_day

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def _local(value: Any, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """An aware datetime shown in Asia/Shanghai; dates as they are."""
    if value is None:
        return ""
    if hasattr(value, "astimezone") and getattr(value, "tzinfo", None) is not None:
        return str(value.astimezone(SHANGHAI).strftime(fmt))
    return str(value)


def _deadline_day(value: Any) -> Any:
    """The local day a deadline closes (the commitments' 公示期 ends on it); blank for none."""
    return deadline_day(value) if value else ""


# Every public page's filters, here with its environment (not where one page's router
# happens to be imported). Deadlines (the ballot's 投票截止, the commitments' 公示期) read
# as the dashboard's: the last day, "D 24:00", not the stored next midnight.
templates.env.filters["local"] = _local
templates.env.filters["deadline"] = deadline_text
templates.env.filters["deadline_day"] = _deadline_day


def page(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """Render public template ``name`` with ``context``."""
    return templates.TemplateResponse(request, name, context, status_code=status_code)
