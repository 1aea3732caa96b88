"""The answers of the action routes, over the real stack (dev server, the project's worker,
uvicorn, the read model on SQLite and PostgreSQL): what the two kinds of answer say after an
Update, where the server says the time went (``Server-Timing``), and the answer kept for
retries after the response (``defer_store``) without a second effect: until it is kept the
key's claim holds it, and a claim whose answer was never kept costs a retry only a wait and
then a deduplicated Update."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment

from activities.db import make_engine, session_factory
from activities.tables import IdempotencyRow
from api.auth import User
from api.routers.action_bodies import Submit
from api.routers.actions import caller
from chuangzheng.services import idempotency
from chuangzheng.services.errors import Conflict
from chuangzheng.services.idempotency import IN_PROGRESS, STALE_CLAIM
from chuangzheng.services.organisation_actions import (
    UNKEPT,
    OrganisationAction,
    OrganisationActions,
)
from domain.organisation import Role
from tests.api.conftest import Stack, start_demo_round, token
from tests.api.test_campaign_api import evidence
from tests.api.test_organisation_actions_service import submissions

pytestmark = pytest.mark.asyncio(loop_scope="session")

SECRETARY = User(username="sec-a", display_name="sec-a", role=Role.SECRETARY, scope_key="org-a")
MINIMAL = {"Prefer": "return=minimal"}
REPRESENTATION = {"Prefer": "return=representation"}


@pytest.fixture
def sessions(stack: Stack) -> Iterator[sessionmaker[Session]]:
    """The read model of the stack, as the bootstrap's session factory."""
    engine = make_engine(stack.settings.database_url)
    yield session_factory(engine)
    engine.dispose()


def timing(response: httpx.Response) -> dict[str, float]:
    """The ``Server-Timing`` header as phase -> milliseconds."""
    phases: dict[str, float] = {}
    for part in response.headers["Server-Timing"].split(","):
        name, _, duration = part.strip().partition(";dur=")
        phases[name] = float(duration)
    return phases


def step_of(document: dict[str, Any], step_id: str) -> dict[str, Any]:
    """The step ``step_id`` of the current phase in a whole-status answer."""
    state = document["state"]
    phase = next(p for p in state["phases"] if p["phase"] == state["phase"])
    step: dict[str, Any] = next(s for s in phase["steps"] if s["step_id"] == step_id)
    return step


async def test_both_answers_reflect_the_action_and_say_where_the_time_went(
    http: httpx.AsyncClient, stack: Stack, round_id: str
) -> None:
    secretary, instructor = await token(http, "sec-a"), await token(http, "ins-zhang")
    base = f"/api/v1/rounds/{round_id}/organisations/org-a"
    status = (await http.get(f"{base}/status", headers=secretary)).json()
    step_id = "hold_mobilisation_meeting"
    body = {"step_id": step_id, "values": evidence(stack, status, step_id)}

    # return=minimal: the Update's result only, with the step's new status; no query ran.
    keyed = {**secretary, **MINIMAL, "Idempotency-Key": f"k-{uuid.uuid4()}"}
    minimal = await http.post(f"{base}/submissions", json=body, headers=keyed)
    assert minimal.status_code == 200, minimal.text
    assert set(minimal.json()) == {"result"}
    assert minimal.headers["Preference-Applied"] == "return=minimal"
    assert minimal.json()["result"]["step_status"] == "submitted"
    assert list(timing(minimal)) == ["scope", "update"]
    assert all(ms >= 0 for ms in timing(minimal).values())
    # The answer is kept after the response; a retry finds it (held or stored) either way.
    again = await http.post(f"{base}/submissions", json=body, headers=keyed)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.content == minimal.content

    # return=representation: the whole status after the Update (the query ran after it),
    # the step returned in both the state and the result.
    back = {"step_id": step_id, "accept": False, "reason": "材料不全，请补充"}
    whole = await http.post(
        f"{base}/decisions", json=back, headers={**instructor, **REPRESENTATION}
    )
    assert whole.status_code == 200, whole.text
    assert whole.json()["result"]["step_status"] == "returned"
    assert step_of(whole.json(), step_id)["status"] == "returned"
    assert list(timing(whole)) == ["scope", "update", "status"]
    assert whole.headers["Preference-Applied"] == "return=representation"

    # No preference: the default answer is the Update's result alone (no status query).
    again_body = {"step_id": step_id, "values": evidence(stack, status, step_id)}
    default = await http.post(f"{base}/submissions", json=again_body, headers=secretary)
    assert default.status_code == 200, default.text
    assert set(default.json()) == {"result"}
    assert default.json()["result"]["step_status"] == "submitted"
    assert list(timing(default)) == ["scope", "update"]
    assert default.headers["Preference-Applied"] == "return=minimal"


async def test_a_status_not_read_in_time_leaves_a_done_action_with_its_result(
    http: httpx.AsyncClient,
    stack: Stack,
    dev_server: WorkflowEnvironment,
    sessions: sessionmaker[Session],
) -> None:
    rid = await start_demo_round(stack, f"busy-{uuid.uuid4().hex[:8]}")
    client = dev_server.client
    service = OrganisationActions(sessions=sessions, temporal=client)
    secretary = await token(http, "sec-a")
    status = (
        await http.get(f"/api/v1/rounds/{rid}/organisations/org-a/status", headers=secretary)
    ).json()
    step_id = "hold_mobilisation_meeting"
    fields = Submit.model_validate(
        {"step_id": step_id, "values": evidence(stack, status, step_id)}
    ).model_dump(mode="json")
    key = f"k-{uuid.uuid4()}"
    # A budget no query can meet: the status query times out after the Update succeeded.
    done = await service.act(
        caller(SECRETARY, None), round_id=rid, org_id="org-a",
        action=OrganisationAction.SUBMIT_EVIDENCE, fields=fields, idempotency_key=key,
        status_budget=timedelta(microseconds=1),
    )  # fmt: skip
    assert done.minimal and not done.replayed
    assert [name for name, _ in done.timings] == ["scope", "update", "status_skipped", "store"]
    assert done.result.step_status is not None and done.result.step_status.value == "submitted"
    assert json.loads(done.body) == {"result": done.result.model_dump(mode="json")}
    assert await submissions(client, rid, step_id) == 1
    # The kept answer is the minimal one: a retry replays it, still minimal.
    again = await service.act(
        caller(SECRETARY, None), round_id=rid, org_id="org-a",
        action=OrganisationAction.SUBMIT_EVIDENCE, fields=fields, idempotency_key=key,
    )  # fmt: skip
    assert again.replayed and again.minimal and again.body == done.body
    # With a budget a quiet server meets, the whole status comes with the result.
    back = await service.act(
        caller(User("ins-zhang", "ins-zhang", Role.INSTRUCTOR, "张指导"), None),
        round_id=rid, org_id="org-a", action=OrganisationAction.DECIDE_SUBMISSION,
        fields={"step_id": step_id, "accept": False, "reason": "请补充"},
    )  # fmt: skip
    assert not back.minimal and "state" in json.loads(back.body)


async def test_a_deferred_answer_is_replayed_before_and_after_it_is_kept(
    http: httpx.AsyncClient,
    stack: Stack,
    dev_server: WorkflowEnvironment,
    sessions: sessionmaker[Session],
) -> None:
    rid = await start_demo_round(stack, f"keep-{uuid.uuid4().hex[:8]}")
    client = dev_server.client
    service = OrganisationActions(sessions=sessions, temporal=client)
    secretary = await token(http, "sec-a")
    status = (
        await http.get(f"/api/v1/rounds/{rid}/organisations/org-a/status", headers=secretary)
    ).json()
    step_id = "hold_mobilisation_meeting"
    fields = Submit.model_validate(
        {"step_id": step_id, "values": evidence(stack, status, step_id)}
    ).model_dump(mode="json")
    key = f"k-{uuid.uuid4()}"

    async def act() -> Any:
        return await service.act(
            caller(SECRETARY, None), round_id=rid, org_id="org-a",
            action=OrganisationAction.SUBMIT_EVIDENCE, fields=fields, idempotency_key=key,
            with_status=False, defer_store=True,
        )  # fmt: skip

    first = await act()
    assert not first.replayed and first.keep_answer is not None
    with sessions() as session:  # not written yet (the caller writes it after answering):
        claim = session.get(IdempotencyRow, ("sec-a", key))  # the key's claim holds it
        assert claim is not None and claim.status_code == IN_PROGRESS and claim.body == b""
    held = await act()  # a retry meanwhile: answered from the held answer, no Update
    assert held.replayed and held.body == first.body and held.keep_answer is None

    first.keep_answer()
    with sessions() as session:
        row = session.get(IdempotencyRow, ("sec-a", key))
        assert row is not None and row.body == first.body
    assert UNKEPT.get("sec-a", key) is None
    stored = await act()  # and after: from the table
    assert stored.replayed and stored.body == first.body
    assert await submissions(client, rid, step_id) == 1


async def test_an_answer_that_could_not_be_kept_costs_only_a_deduplicated_update(
    http: httpx.AsyncClient,
    stack: Stack,
    dev_server: WorkflowEnvironment,
    sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rid = await start_demo_round(stack, f"lost-{uuid.uuid4().hex[:8]}")
    client = dev_server.client
    service = OrganisationActions(sessions=sessions, temporal=client)
    secretary = await token(http, "sec-a")
    status = (
        await http.get(f"/api/v1/rounds/{rid}/organisations/org-a/status", headers=secretary)
    ).json()
    step_id = "hold_mobilisation_meeting"
    fields = Submit.model_validate(
        {"step_id": step_id, "values": evidence(stack, status, step_id)}
    ).model_dump(mode="json")
    key = f"k-{uuid.uuid4()}"

    async def act() -> Any:
        return await service.act(
            caller(SECRETARY, None), round_id=rid, org_id="org-a",
            action=OrganisationAction.SUBMIT_EVIDENCE, fields=fields, idempotency_key=key,
            with_status=False, defer_store=True,
        )  # fmt: skip

    first = await act()
    # The response was never sent (its store never ran), or this is another process: no
    # answer held, the claim still "in progress". A retry waits, then is told to retry.
    UNKEPT.release("sec-a", key)
    monkeypatch.setattr(idempotency, "TWIN_PATIENCE", 0.3)
    with pytest.raises(Conflict) as running:
        await act()
    assert running.value.code == "in_progress"
    # Once the claim is stale (its process taken to be dead), the retry takes it over.
    with sessions.begin() as session:
        session.execute(
            update(IdempotencyRow)
            .where(IdempotencyRow.username == "sec-a", IdempotencyRow.key == key)
            .values(created_at=datetime.now(UTC) - STALE_CLAIM - timedelta(seconds=1))
        )
    retried = await act()
    assert not retried.replayed  # the Update ran again ...
    assert retried.result == first.result
    assert await submissions(client, rid, step_id) == 1  # ... and the workflow applied it once
    assert retried.keep_answer is not None
    retried.keep_answer()


async def test_the_openapi_document_declares_the_answer_headers(http: httpx.AsyncClient) -> None:
    document = (await http.get("/openapi.json")).json()
    actions = [
        operation["post"]
        for path, operation in document["paths"].items()
        if "/organisations/{org_id}/" in path
        and "post" in operation
        and path.rsplit("/", 1)[-1] in {"submissions", "decisions", "waivers", "acknowledgements"}
    ]
    assert len(actions) == 4
    for operation in actions:
        headers = operation["responses"]["200"]["headers"]
        assert {"Server-Timing", "Preference-Applied", "Idempotent-Replayed"} <= set(headers)
