"""Structured logging for the API, worker and CLI.

Everything goes through structlog's :class:`~structlog.stdlib.ProcessorFormatter`, so records
from the stdlib loggers of temporalio, uvicorn and SQLAlchemy look the same as our own and
carry the same context (request id, organisation, round, workflow and activity ids) bound via
:mod:`structlog.contextvars`.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from typing import TYPE_CHECKING, Any

import structlog
import structlog.tracebacks

if TYPE_CHECKING:
    from chuangzheng.settings import Settings

# Marks the root handler we install, so a second call replaces it instead of adding another.
_HANDLER_NAME = "chuangzheng"


def _use_console(settings: Settings) -> bool:
    """Console output for humans at a terminal, JSON for log collectors and CI."""
    if settings.log_format == "console":
        return True
    if settings.log_format == "json":
        return False
    return sys.stderr.isatty()


def _shared_processors() -> list[Any]:
    """Processors applied both to structlog events and to foreign (stdlib) records."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]


def configure_logging(settings: Settings) -> None:
    """Configure structlog and the stdlib root logger; safe to call more than once."""
    level = logging.getLevelNamesMapping().get(settings.log_level.upper(), logging.INFO)
    shared = _shared_processors()
    # Rendering happens only in the handler's formatter, so the structlog chain below is the
    # same on every call and loggers cached by ``cache_logger_on_first_use`` stay valid.
    # Tracebacks never show local variables: they may hold passwords, tokens or personal data.
    render: list[Any]
    if _use_console(settings):
        exc_formatter: Any = (
            structlog.dev.RichTracebackFormatter(
                show_locals=False, color_system="truecolor" if sys.stderr.isatty() else None
            )
            if importlib.util.find_spec("rich") is not None
            else structlog.dev.plain_traceback
        )
        render = [
            structlog.dev.ConsoleRenderer(
                colors=sys.stderr.isatty(), exception_formatter=exc_formatter
            )
        ]
    else:
        render = [
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            ),
            structlog.processors.JSONRenderer(ensure_ascii=False),  # keep Chinese readable
        ]

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            # Hand the event dict to the stdlib handler, whose formatter renders it.
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *render,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == _HANDLER_NAME:
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)

    # Let library loggers propagate to our root handler instead of printing their own format.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "temporalio", "sqlalchemy"):
        lib_logger = logging.getLogger(name)
        lib_logger.handlers.clear()
        lib_logger.propagate = True
    # SQLAlchemy echoes every statement at INFO; keep it quiet unless explicitly debugging.
    logging.getLogger("sqlalchemy.engine").setLevel(max(level, logging.WARNING))
    # transitions logs every state entry at INFO: thousands of lines per round, no news.
    logging.getLogger("transitions").setLevel(max(level, logging.WARNING))
