"""The API's contract under schemathesis (issue 13, "what to keep in ``make test``"): every
operation of ``/openapi.json``, signed in as the county office and as a secretary, a bounded
and repeatable number of generated requests each, against the real stack (dev server, worker,
uvicorn API). No answer may be a 5xx, and every answer's status, content type and body must
be the ones the document declares.

The stack is shared with the other API tests, so the fuzzing acts on objects of its own: a
round of its own (every ``round_id``), org-a in it (every ``org_id``: the secretary's own
organisation, so both callers reach the routes' real work) and a throw-away account (every
``username``). Requests come from an address of their own (``X-Forwarded-For``), so failed
sign-ins throttle nobody else. Excluded, with the reason, in :data:`EXCLUDED`.

The worker runs on the session's event loop and schemathesis calls with blocking
``requests``, so the fuzzing runs in a thread while the loop keeps serving the worker.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from openpyxl import load_workbook  # type: ignore[import-untyped]
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import Stack, start_demo_round, token

pytestmark = pytest.mark.asyncio(loop_scope="session")

#: Generated requests per operation and caller (derandomized: the same requests every run):
#: valid ones, and ones the document forbids (a wrong type, a missing field, no token).
EXAMPLES: dict[GenerationMode, int] = {GenerationMode.POSITIVE: 5, GenerationMode.NEGATIVE: 2}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
#: Operations not fuzzed over the shared stack, and why.
EXCLUDED: dict[str, str] = {
    # Replaces the whole county roster: a generated file that parses would deactivate every
    # other test's organisations (the roster import has its own hostile-file tests).
    "POST /api/v1/roster": "replaces the shared roster",
    # Ends the session of the token the fuzzing signs its requests with: every later
    # request would be 401 (sign-out is covered by tests/api/test_sign_in.py).
    "POST /api/v1/auth/logout": "ends the fuzzing's own session",
    # Every generated current password is wrong and counts as a failed sign-in: the shared
    # county and secretary accounts would be blocked (429) for the rest of the suite
    # (covered by tests/api/test_password_change.py).
    "POST /api/v1/users/me/password": "counts failed sign-ins against the shared accounts",
}

#: Operations that end what the others act on (the fuzzing's own round): run after them.
LAST = frozenset({"POST /api/v1/rounds/{round_id}/close"})


@dataclass
class Tally:
    """What the run did, for the assertion and for docs/reliability.md."""

    operations: set[str] = field(default_factory=set)
    requests: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def _fuzz_operation(
    operation: Any,
    mode: GenerationMode,
    call: Callable[[Any], requests.Response],
    fixed: dict[str, str],
    tally: Tally,
) -> None:
    """Up to :data:`EXAMPLES` generated requests of ``operation`` in ``mode``; failures
    collected."""
    names = {p.name for p in operation.path_parameters}
    path_parameters = {k: v for k, v in fixed.items() if k in names}

    @settings(
        max_examples=EXAMPLES[mode],
        derandomize=True,
        database=None,
        deadline=None,
        # Explicit examples and generation only: a failure is reported as found, unshrunk
        # (shrinking would spend the suite's time budget re-sending requests).
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(mode, path_parameters=path_parameters or None))
    def run(case: Any) -> None:
        response = call(case)
        tally.requests += 1
        tally.statuses[response.status_code] = tally.statuses.get(response.status_code, 0) + 1
        case.validate_response(response, checks=CHECKS)

    try:
        run()
    except Unsatisfiable:
        # Nothing of the operation can be made invalid (no parameters, no body): the
        # negative pass has nothing to send.
        assert mode is GenerationMode.NEGATIVE, operation.label
    # schemathesis reports several failures as one FailureGroup (a BaseExceptionGroup).
    except (Exception, BaseExceptionGroup) as exc:  # every operation's failures are listed
        tally.failures.append(f"{operation.label} ({mode}): {exc}")


def fuzz(document: dict[str, Any], base_url: str, callers: dict[str, dict[str, str]],
         fixed: dict[str, str], modes: tuple[GenerationMode, ...]) -> Tally:  # fmt: skip
    """Every operation of ``document`` but :data:`EXCLUDED`, as each of ``callers``, with
    requests of each of ``modes``."""
    schema = schemathesis.openapi.from_dict(document)
    tally = Tally()
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # every operation's document is usable
        operations.append(result.ok())
    # Closing the round last: the operations before it act on a running round.
    operations.sort(key=lambda o: o.label in LAST)
    with requests.Session() as session:
        for operation in operations:
            if operation.label in EXCLUDED:
                continue
            tally.operations.add(operation.label)
            for headers, mode in itertools.product(callers.values(), modes):

                def call(case: Any, headers: dict[str, str] = headers) -> Any:
                    return case.call(
                        base_url=base_url, session=session, headers=headers, timeout=60
                    )

                started = time.monotonic()
                _fuzz_operation(operation, mode, call, fixed, tally)
                tally.seconds[operation.label] = (
                    tally.seconds.get(operation.label, 0.0) + time.monotonic() - started
                )
    return tally


@pytest.mark.one_database(
    "postgresql",
    why="the fuzzing is about the API's contract, not its SQL; PostgreSQL is the stricter of "
    "the two (column lengths, types), and every other API test still runs on SQLite",
)
async def test_every_operation_answers_as_documented_for_the_county_and_a_secretary(
    stack: Stack,
) -> None:
    rid = await start_demo_round(stack, f"fuzz-{uuid.uuid4().hex[:8]}")
    address = {"X-Forwarded-For": f"198.51.100.{uuid.uuid4().int % 250 + 1}"}
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        document = (await http.get("/openapi.json")).json()
        county = await token(http, "county")
        secretary = await token(http, "sec-a")
        # The account the account operations act on (deactivate, reset, change...).
        target = f"fuzz-{uuid.uuid4().hex[:8]}"
        created = await http.post(
            "/api/v1/accounts",
            json={"username": target, "display_name": "试验账号", "role": "secretary",
                  "scope_key": "org-a"},
            headers=county,
        )  # fmt: skip
        assert created.status_code == 201, created.text
    callers = {"county": county | address, "secretary": secretary | address}
    fixed = {"round_id": rid, "org_id": "org-a", "username": target}
    # Invalid requests are refused before the database is reached, so they run once (over
    # SQLite); valid ones reach the database and run over each (a 500 can be the database's).
    modes: tuple[GenerationMode, ...] = (GenerationMode.POSITIVE,)
    if stack.settings.database_url.startswith("sqlite"):
        modes += (GenerationMode.NEGATIVE,)
    tally = await asyncio.to_thread(fuzz, document, stack.base_url, callers, fixed, modes)
    print(
        f"\nschemathesis ({', '.join(modes)}): {len(tally.operations)} operations × "
        f"{len(callers)} callers, "
        f"{tally.requests} requests, statuses {dict(sorted(tally.statuses.items()))}, "
        f"{len(tally.failures)} failing operations"
    )
    slowest = sorted(tally.seconds.items(), key=lambda item: -item[1])[:5]
    print("slowest: " + ", ".join(f"{label} {seconds:.1f}s" for label, seconds in slowest))
    assert not tally.failures, "\n\n".join(tally.failures)
    # Every operation but the excluded ones was reached, and most requests did real work.
    assert len(tally.operations) == sum(len(ops) for ops in document["paths"].values()) - len(
        EXCLUDED
    )
    assert tally.requests >= len(tally.operations) * len(callers)


async def test_the_checks_fail_on_an_answer_the_document_does_not_declare(stack: Stack) -> None:
    """The checks bite: with 404 taken out of an operation's document, a 404 fails them."""
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        document = (await http.get("/openapi.json")).json()
        county = await token(http, "county")
    del document["paths"]["/api/v1/organisations/{org_id}"]["get"]["responses"]["404"]
    operation = schemathesis.openapi.from_dict(document)["/api/v1/organisations/{org_id}"]["GET"]
    case = operation.Case(path_parameters={"org_id": "no-such-org"})

    def call_and_validate() -> int:
        response = case.call(base_url=stack.base_url, headers=county, timeout=60)
        try:
            case.validate_response(response, checks=CHECKS)
        except (Exception, BaseExceptionGroup) as exc:
            assert "Undocumented status code" in str(exc), exc
            return int(response.status_code)
        raise AssertionError("an undocumented 404 passed the checks")

    assert await asyncio.to_thread(call_and_validate) == 404


async def test_bodies_the_framework_cannot_parse_are_invalid_input_not_400(stack: Stack) -> None:
    """Defects schemathesis found: a JSON body that is not UTF-8 and a broken multipart form
    were answered 400, which no operation documents; they are 422 with the field named."""
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        county = await token(http, "county")
        not_utf8 = await http.post(
            "/api/v1/rounds",
            content=b"]\x8d\rP",
            headers=county | {"Content-Type": "application/json"},
        )
        boundary = "21ac14c4f85de75cb441db9316a86deb"
        broken_form = await http.post(
            "/api/v1/members/import",
            content=f"--{boundary}\r\n51--{boundary}--\r\n".encode(),
            headers=county | {"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
    for response in (not_utf8, broken_form):
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "invalid"
        assert response.json()["errors"] == [{"field": "body", "reason": "请求体格式不正确"}]


async def test_the_audit_export_holds_a_username_typed_with_a_control_character(
    stack: Stack,
) -> None:
    """Defect schemathesis found: a sign-in attempt with a control character in the
    username is audited, and from then on every audit export answered 500 (openpyxl refuses
    the character). The character is dropped from the cell; the export is whole."""
    odd = f"\x01fuzz-{uuid.uuid4().hex[:6]}\x1b"
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        refused = await http.post(
            "/api/v1/auth/login",
            json={"username": odd, "password": "x"},
            headers={"X-Forwarded-For": f"198.51.100.{uuid.uuid4().int % 250 + 1}"},
        )
        assert refused.status_code == 401, refused.text
        county = await token(http, "county")
        exported = await http.get("/api/v1/audit.xlsx", headers=county)
    assert exported.status_code == 200, exported.text[:300]
    sheet = load_workbook(io.BytesIO(exported.content)).active
    assert sheet is not None
    cells = {str(c.value) for row in sheet.iter_rows() for c in row if c.value is not None}
    assert odd.strip("\x01\x1b") in cells
