"""Keep ballot tokens (and any other secret a URL carries) out of the logs.

A ballot's QR code carries its one-time token in the URL (``/ballot/<token>``; older links
``/public/ballot/<token>``), and uvicorn's access log would write that URL with the
caster's address and the time: exactly the link between a person and a ballot that secrecy
forbids, and a token someone reading the log could still cast. This filter rewrites the
path before the record is formatted, wherever uvicorn runs the app (``make run``,
production). Secrets in a query string (``?token=``, ``?code=``, ``?access_token=``) and a
path segment after ``/activate/`` are cut the same way.
"""

from __future__ import annotations

import logging
import re

# The segment after /ballot/ (not the published results), and after /activate/.
_PATH_SECRET = re.compile(r"(/(?:ballot|activate|activation)/)(?!results(?:[/?\s]|$))[^/?#\s\"]+")
# A secret-named query parameter's value.
_QUERY_SECRET = re.compile(
    r"([?&](?:token|code|access_token|activation_code|password)=)[^&#\s\"]+", re.IGNORECASE
)
REDACTED = r"\1***"


def redact(text: str) -> str:
    """``text`` with every secret a URL may carry replaced by ``***``."""
    return _QUERY_SECRET.sub(REDACTED, _PATH_SECRET.sub(REDACTED, text))


class BallotTokenRedactor(logging.Filter):
    """Replaces the token in ``/ballot/<token>`` (and the other secrets :func:`redact` knows)
    in any log record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite string arguments (uvicorn passes the path as one); keep the record."""
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def install() -> None:
    """Attach the filter to uvicorn's access logger (once)."""
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, BallotTokenRedactor) for f in logger.filters):
        logger.addFilter(BallotTokenRedactor())
