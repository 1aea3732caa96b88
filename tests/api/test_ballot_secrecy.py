"""Ballot secrecy (issue 13, "what to keep in make test"), on the real stack: the API as
production runs it (``chuangzheng api`` in its own process, JSON logs, uvicorn's access log
on, at DEBUG so nothing is filtered by level), the project's worker and the dev server.

After ballots are opened, printed, shown by token and cast (and cast again, and with a
wrong token), no raw token is in: the API process's log, anything the test process logged
or printed (the worker's activities, the in-process API), the database (the SQLite file's
bytes with its journal, or every row of PostgreSQL), any file under the data directory, or
the Temporal histories of the evaluation's and the organisation's workflows. And twenty
simultaneous casts of one token: exactly one accepted, nineteen refused, one ballot counted.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select
from temporalio.client import Client

from activities.db import make_engine
from activities.tables import BallotRow, BallotTokenRow, EvaluationRow, metadata
from domain.evaluation_rules import FIVE_GOODS
from tests.api.conftest import PASSWORD, Stack, free_port, start_demo_round, wait_for
from tests.api.test_evaluation_guards import reach_public_evaluation
from workflows.ids import organisation_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")
TOKEN_IN_URL = re.compile(r"/ballot/([A-Za-z0-9_\-]{22})\b")
RATERS = {"raters": {"member": 8, "non_member": 4}}
PARALLEL = 20


@pytest.fixture(scope="module")
def api_process(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """``chuangzheng api`` over the stack's database, dev server and task queue; its
    stderr (the JSON log, access lines included) goes to a file."""
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
        "CZ_LOG_LEVEL": "DEBUG",
    }
    log = tmp_path_factory.mktemp("secrecy") / "api.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "chuangzheng.cli", "api"],
            env=env,
            stdout=stderr,
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


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def secrecy_round(stack: Stack) -> str:
    """A demo round whose org-a and org-b are in 群众评议 (where evaluations are opened)."""
    rid = await start_demo_round(stack, f"secret-{uuid.uuid4().hex[:8]}")
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        await reach_public_evaluation(http, rid, ("org-a", "org-b"))
    return rid


async def _token(http: httpx.AsyncClient, username: str) -> dict[str, str]:
    answer = await http.post(
        "/api/v1/auth/login", json={"username": username, "password": PASSWORD}
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


async def _open(
    http: httpx.AsyncClient, round_id: str, org: str, user: str
) -> tuple[str, list[str]]:
    """Open an evaluation of ``org`` and print its slips: its id and its tokens."""
    headers = await _token(http, user)
    opened = await http.post(
        f"/api/v1/rounds/{round_id}/organisations/{org}/evaluations", json=RATERS, headers=headers
    )
    assert opened.status_code == 201, opened.text
    evaluation_id: str = opened.json()["evaluation_id"]
    page = await http.get(f"/api/v1/evaluations/{evaluation_id}/tokens", headers=headers)
    assert page.status_code == 200, page.text
    tokens = list(dict.fromkeys(TOKEN_IN_URL.findall(page.text)))
    assert len(tokens) == 12
    pdf = await http.get(f"/api/v1/evaluations/{evaluation_id}/tokens?format=pdf", headers=headers)
    assert pdf.status_code == 200
    return evaluation_id, tokens


def _ballot(token: str, rating: str = "satisfied") -> dict[str, str]:
    return {"token": token} | {item.id: rating for item in FIVE_GOODS}


async def _close(http: httpx.AsyncClient, evaluation_id: str, user: str) -> dict[str, Any]:
    headers = await _token(http, user)
    closed = await http.post(f"/api/v1/evaluations/{evaluation_id}/close", headers=headers)
    assert closed.status_code == 202, closed.text

    async def settled() -> dict[str, Any] | None:
        view = (await http.get(f"/api/v1/evaluations/{evaluation_id}", headers=headers)).json()
        return view if view["status"] in ("published", "invalid") else None

    result: dict[str, Any] = await wait_for(settled)
    return result


def _database_bytes(stack: Stack) -> tuple[bytes, int]:
    """Everything the read model holds, as bytes: the SQLite file and its journals, or
    every row of every PostgreSQL table rendered as text; and how many files or rows."""
    url = stack.settings.database_url
    if url.startswith("sqlite"):
        path = Path(url.removeprefix("sqlite:///"))
        files = [p for p in path.parent.glob(path.name + "*") if p.is_file()]
        # Read by another process: this one holds SQLite connections to the file (the
        # stack's API and worker), and closing any descriptor of it here would drop their
        # POSIX locks (SQLite's "how to corrupt a database": concurrent writers then tear
        # the file). A `cat` has locks of its own to lose, none.
        content = subprocess.run(["cat", *map(str, files)], capture_output=True, check=True)
        return content.stdout, len(files)
    engine = make_engine(url)
    try:
        chunks: list[str] = []
        with engine.connect() as connection:
            for table in metadata.sorted_tables:
                chunks += [repr(tuple(row)) for row in connection.execute(select(table))]
        return "\n".join(chunks).encode(), len(chunks)
    finally:
        engine.dispose()


async def _history_bytes(client: Client, workflow_id: str) -> bytes:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    # The events' wire bytes (payloads as stored) and the JSON (payloads base64-encoded).
    raw = b"".join(event.SerializeToString() for event in history.events)
    return raw + history.to_json().encode()


def _workflow_ids(stack: Stack, evaluation_ids: list[str]) -> list[str]:
    engine = make_engine(stack.settings.database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(
                    EvaluationRow.workflow_id, EvaluationRow.round_id, EvaluationRow.org_id
                ).where(EvaluationRow.evaluation_id.in_(evaluation_ids))
            ).all()
    finally:
        engine.dispose()
    return [r.workflow_id for r in rows] + [
        organisation_workflow_id(r.round_id, r.org_id) for r in rows
    ]


async def test_no_token_in_any_log_database_file_or_history(
    stack: Stack,
    secrecy_round: str,
    api_process: tuple[str, Path],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    dev_server: Any,
) -> None:
    base, log = api_process
    caplog.set_level(logging.DEBUG)
    # The test's own HTTP client logs the URLs it asks for: it is the voter, not the service.
    caplog.set_level(logging.WARNING, logger="httpx")
    caplog.set_level(logging.WARNING, logger="httpcore")
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        evaluation_id, tokens = await _open(http, secrecy_round, "org-a", "ins-zhang")
        for t in tokens:  # every slip's page shown (the QR code's URL)
            assert (await http.get(f"/ballot/{t}")).status_code == 200
        for t in tokens[:9]:
            assert (await http.post("/ballot", data=_ballot(t))).status_code == 303
        again = await http.post("/ballot", data=_ballot(tokens[0], "unsatisfied"))
        assert again.status_code == 409
        assert (await http.get(f"/ballot/{tokens[0]}")).status_code == 409
        incomplete = await http.post("/ballot", data={"token": tokens[9], "leadership": "x"})
        assert incomplete.status_code == 422
        final = await _close(http, evaluation_id, "ins-zhang")
        assert final["status"] == "published" and final["result"]["cast"] == 9
        late = await http.post("/ballot", data=_ballot(tokens[10]))
        assert late.status_code == 409
    await asyncio.sleep(1)  # access lines are written after their response

    # The logs: the API process's (uvicorn's access log and the app's), and the test
    # process's (the worker, the in-process stack), captured at DEBUG.
    text = log.read_text(encoding="utf-8")
    assert "/ballot/***" in text and '"POST /ballot' in text, text[-2000:]  # access log on
    captured = capfd.readouterr()
    in_process = caplog.text + captured.out + captured.err
    assert evaluation_id in text + in_process  # the logs do speak of this evaluation
    # The database, and every file the service keeps.
    database, stores = _database_bytes(stack)
    assert evaluation_id.encode() in database
    data_files = [p for p in stack.settings.data_dir.rglob("*") if p.is_file()]
    # The histories of the evaluation's workflow and of the organisation's.
    client: Client = dev_server.client
    histories = [await _history_bytes(client, w) for w in _workflow_ids(stack, [evaluation_id])]
    assert evaluation_id.encode() in histories[0]  # the evaluation's own history is read
    for t in tokens:
        assert t not in text, "API process log"
        assert t not in in_process, "test process log"
        assert t.encode() not in database, "database"
        for path in data_files:
            assert t.encode() not in path.read_bytes(), path
        for history in histories:
            assert t.encode() not in history, "Temporal history"
    FIGURES.update(
        tokens=len(tokens),
        log_bytes=len(text) + len(in_process),
        database_stores=stores,
        data_files=len(data_files),
        histories=len(histories),
    )


#: What the last run searched (printed for docs/reliability.md with ``-s``).
FIGURES: dict[str, int] = {}


async def test_twenty_parallel_casts_of_one_token_count_once(
    stack: Stack, secrecy_round: str, api_process: tuple[str, Path]
) -> None:
    base, _ = api_process
    async with httpx.AsyncClient(
        base_url=base, timeout=60, limits=httpx.Limits(max_connections=PARALLEL)
    ) as http:
        evaluation_id, tokens = await _open(http, secrecy_round, "org-b", "tw-chengguan")
        start = asyncio.Event()

        async def cast() -> httpx.Response:
            await start.wait()
            return await http.post("/ballot", data=_ballot(tokens[0]))

        casts = [asyncio.create_task(cast()) for _ in range(PARALLEL)]
        await asyncio.sleep(0.1)
        start.set()
        answers = await asyncio.gather(*casts)
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [303] + [409] * (PARALLEL - 1), statuses
        assert all("已经投过票" in a.text for a in answers if a.status_code == 409)
        engine = make_engine(stack.settings.database_url)
        try:
            with engine.connect() as connection:
                ballots = connection.execute(
                    select(BallotRow).where(BallotRow.evaluation_id == evaluation_id)
                ).all()
                used = connection.execute(
                    select(BallotTokenRow).where(
                        BallotTokenRow.evaluation_id == evaluation_id,
                        BallotTokenRow.used.is_(True),
                    )
                ).all()
        finally:
            engine.dispose()
        assert len(ballots) == 1 and len(used) == 1
        final = await _close(http, evaluation_id, "tw-chengguan")
        assert final["result"]["cast"] == 1  # the tally counts one (and 1 of 12 is no quorum)
        assert final["status"] == "invalid" and final["verdict"] == "no_quorum"
