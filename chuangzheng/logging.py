"""Structured logging for the API, worker and CLI.

Everything goes through structlog's :class:`~structlog.stdlib.ProcessorFormatter`, so records
from the stdlib loggers of temporalio, uvicorn and SQLAlchemy look the same as our own and
carry the same context (request id, organisation, round, workflow and activity ids) bound via
:mod:`structlog.contextvars`.

Each process logs to stderr; ``make run`` points every child's stderr at its own JSON file
under ``<data_dir>/logs`` and its own log at ``run.log`` (``log_file``). The Temporal SDK's
Rust core logs through the same handler once the process installs its runtime
(:func:`chuangzheng.telemetry.install_temporal_runtime`).
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
import structlog.tracebacks

if TYPE_CHECKING:
    from chuangzheng.settings import Settings

# Marks the root handler we install, so a second call replaces it instead of adding another.
_HANDLER_NAME = "chuangzheng"


def _use_console(settings: Settings, log_file: Path | None) -> bool:
    """Console output for humans at a terminal, JSON for log collectors, files and CI."""
    if log_file is not None:
        return False
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


def _drop_color_message(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    """uvicorn repeats its message with terminal colour codes in ``color_message``."""
    event.pop("color_message", None)
    return event


def configure_logging(settings: Settings, *, log_file: Path | None = None) -> None:
    """Configure structlog and the stdlib root logger; safe to call more than once.

    Records go to stderr, or as JSON lines appended to ``log_file`` when given.
    """
    level = logging.getLevelNamesMapping().get(settings.log_level.upper(), logging.INFO)
    shared = _shared_processors()
    # Rendering happens only in the handler's formatter, so the structlog chain below is the
    # same on every call and loggers cached by ``cache_logger_on_first_use`` stay valid.
    # Tracebacks never show local variables: they may hold passwords, tokens or personal data.
    render: list[Any]
    if _use_console(settings, log_file):
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
            _drop_color_message,
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
    handler: logging.Handler
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == _HANDLER_NAME:
            root.removeHandler(existing)
            existing.close()
    root.addHandler(handler)
    root.setLevel(level)
    if log_file is not None:  # warnings.warn would otherwise print on the console
        logging.captureWarnings(True)

    # Let library loggers propagate to our root handler instead of printing their own format.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "temporalio", "sqlalchemy"):
        lib_logger = logging.getLogger(name)
        lib_logger.handlers.clear()
        lib_logger.propagate = True
    # SQLAlchemy echoes every statement at INFO; keep it quiet unless explicitly debugging.
    logging.getLogger("sqlalchemy.engine").setLevel(max(level, logging.WARNING))
    # transitions logs every state entry at INFO: thousands of lines per round, no news.
    logging.getLogger("transitions").setLevel(max(level, logging.WARNING))
