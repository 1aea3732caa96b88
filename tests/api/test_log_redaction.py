"""Ballot tokens are cut out of uvicorn's access log records (ballot secrecy)."""

from __future__ import annotations

import logging

from api.public.log_redaction import BallotTokenRedactor


def _access_record(path: str) -> logging.LogRecord:
    # The shape uvicorn's access logger uses: '%s - "%s %s HTTP/%s" %d'.
    return logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", path, "1.1", 200), None,
    )  # fmt: skip


def test_token_in_ballot_url_is_redacted() -> None:
    record = _access_record("/public/ballot/Abc123-secret_TOKEN?x=1")
    assert BallotTokenRedactor().filter(record) is True
    message = record.getMessage()
    assert "secret" not in message and "/public/ballot/***?x=1" in message


def test_other_paths_are_left_alone() -> None:
    for path in ("/public/ballot/results/ev-1", "/api/v1/rounds/r1", "/public/ballot"):
        record = _access_record(path)
        BallotTokenRedactor().filter(record)
        assert path in record.getMessage()
