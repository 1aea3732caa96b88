"""Keep ballot tokens out of the access log.

A ballot's QR code carries its one-time token in the URL (``/public/ballot/<token>``), and
uvicorn's access log would write that URL with the caster's address and the time: exactly
the link between a person and a ballot that secrecy forbids. This filter rewrites the path
before the record is formatted, wherever uvicorn runs the app (``make run``, production).
"""

from __future__ import annotations

import logging
import re

_BALLOT_TOKEN = re.compile(r"(/public/ballot/)(?!results/)[^/?\s]+")
REDACTED = r"\1***"


class BallotTokenRedactor(logging.Filter):
    """Replaces the token in ``/public/ballot/<token>`` in any log record's arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite string arguments (uvicorn passes the path as one); keep the record."""
        if isinstance(record.args, tuple):
            record.args = tuple(
                _BALLOT_TOKEN.sub(REDACTED, a) if isinstance(a, str) else a for a in record.args
            )
        if isinstance(record.msg, str):
            record.msg = _BALLOT_TOKEN.sub(REDACTED, record.msg)
        return True


def install() -> None:
    """Attach the filter to uvicorn's access logger (once)."""
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, BallotTokenRedactor) for f in logger.filters):
        logger.addFilter(BallotTokenRedactor())
