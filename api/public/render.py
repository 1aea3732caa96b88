"""The Jinja environment of the public pages (autoescaped; Chinese text, no scripts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from domain.calendar import SHANGHAI

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def _local(value: Any, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """An aware datetime shown in Asia/Shanghai; dates as they are."""
    if value is None:
        return ""
    if hasattr(value, "astimezone") and getattr(value, "tzinfo", None) is not None:
        return str(value.astimezone(SHANGHAI).strftime(fmt))
    return str(value)


templates.env.filters["local"] = _local


def page(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """Render public template ``name`` with ``context``."""
    return templates.TemplateResponse(request, name, context, status_code=status_code)
