"""Ballot tokens never reach a log (issue 13, item 1): the API process as production runs it
(``chuangzheng api``: uvicorn with the project's JSON logging and its access log), asked for
ballot pages by token; neither uvicorn's access lines nor the app's own structlog lines
carry the token."""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.public.log_redaction import BallotTokenRedactor, redact
from tests.api.conftest import Stack, free_port


@pytest.fixture
def api_process(stack: Stack, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``chuangzheng api`` over the stack's read model and dev server; its stderr (the JSON
    log) goes to a file."""
    port = free_port()
    settings = stack.settings
    env = {
        **os.environ,
        "CZ_ENVIRONMENT": "test",
        "CZ_DATA_DIR": str(settings.data_dir),
        "CZ_DATABASE_URL": settings.database_url,
        "CZ_TEMPORAL_ADDRESS": settings.temporal_address,
        "CZ_TASK_QUEUE": settings.task_queue,
        "CZ_SECRET_KEY": settings.secret_key,
        "CZ_API_PORT": str(port),
        "CZ_LOG_FORMAT": "json",
        "CZ_LOG_LEVEL": "INFO",
    }
    log = tmp_path / "api.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "chuangzheng.cli", "api"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/ui/login", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"API did not start: {log.read_text()}")
                time.sleep(0.2)
            yield base, log
        finally:
            process.terminate()
            process.wait(timeout=30)


@pytest.mark.one_database(
    "sqlite",
    why="what reaches the API process's log does not depend on the database behind it",
)
def test_ballot_tokens_are_not_in_the_api_processes_log(api_process: tuple[str, Path]) -> None:
    base, log = api_process
    tokens = [secrets.token_urlsafe(16) for _ in range(3)]
    paths = [f"/ballot/{tokens[0]}", f"/public/ballot/{tokens[1]}", f"/ballot/{tokens[2]}?x=1"]
    for path in paths:
        assert httpx.get(base + path, timeout=10).status_code in (200, 404, 409)
    time.sleep(1)  # the access line is written after the response
    text = log.read_text(encoding="utf-8")
    assert "/ballot/***" in text, text[-2000:]  # the access log is on, and redacted
    for t in tokens:
        assert t not in text


def _record(path: str) -> logging.LogRecord:
    # The shape of uvicorn's access record: '%s - "%s %s HTTP/%s" %d'.
    return logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", path, "1.1", 200), None,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("path", "kept"),
    [
        ("/ballot/k4P28y-secret_TOKEN", "/ballot/***"),
        ("/ballot/k4P28y-secret_TOKEN?lang=zh", "/ballot/***?lang=zh"),
        ("/public/ballot/secret", "/public/ballot/***"),
        ("/ui/activate?code=secret&next=/ui/", "/ui/activate?code=***&next=/ui/"),
        ("/activate/secret", "/activate/***"),
        ("/x?token=secret", "/x?token=***"),
    ],
)
def test_the_filter_cuts_every_secret_a_url_carries(path: str, kept: str) -> None:
    record = _record(path)
    BallotTokenRedactor().filter(record)
    assert "secret" not in record.getMessage() and kept in record.getMessage()


@pytest.mark.parametrize(
    "path", ["/ballot/results/ev-1", "/public/ballot/results/ev-1", "/ballot", "/api/v1/rounds/r1"]
)
def test_paths_without_secrets_are_left_alone(path: str) -> None:
    assert redact(path) == path
