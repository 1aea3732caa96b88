"""One Idempotency-Key is bound to one request from the moment it is first used, whatever the
concurrency and whichever API process answers (the read model, SQLite or PostgreSQL, is the
shared place): over the real stack (dev server, the project's worker, uvicorn).

The defect these keep (found by an outside tester): 20 concurrent submissions with one key,
half for one step and half for another, were all answered 200, the second half told their
step was accepted, while only the first step was recorded: the key was checked against
stored answers only, and the workflow deduplicates its commands by key alone. Now the key is
claimed with the request's fingerprint before the Update is sent."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread
import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment

from activities.db import make_engine, session_factory
from activities.tables import IdempotencyRow
from api import idempotency as api_keys
from api.auth import User
from api.errors import ApiError, temporal_unavailable
from api.routers.action_bodies import Submit
from api.routers.actions import caller
from chuangzheng.services import idempotency, workflow_calls
from chuangzheng.services.errors import InvalidInput, Refused, TemporalUnavailable
from chuangzheng.services.idempotency import IN_PROGRESS, STALE_CLAIM, claim_key
from chuangzheng.services.organisation_actions import (
    ActionOutcome,
    OrganisationAction,
    OrganisationActions,
    UnkeptAnswers,
    fingerprint,
)
from domain.organisation import Role
from tests.api.conftest import Stack, start_demo_round, token
from tests.api.test_campaign_api import evidence
from tests.api.test_organisation_actions_service import submissions

pytestmark = pytest.mark.asyncio(loop_scope="session")

SECRETARY = User(username="sec-a", display_name="sec-a", role=Role.SECRETARY, scope_key="org-a")
MEETING, GROUP = "hold_mobilisation_meeting", "set_up_leading_group"


@pytest.fixture
def sessions(stack: Stack) -> Iterator[sessionmaker[Session]]:
    """The read model of the stack, as the bootstrap's session factory."""
    engine = make_engine(stack.settings.database_url)
    yield session_factory(engine)
    engine.dispose()


async def fresh_round(http: httpx.AsyncClient, stack: Stack, name: str) -> tuple[str, Any]:
    """A round of its own (org-a's steps all open) and org-a's status in it."""
    rid = await start_demo_round(stack, f"{name}-{uuid.uuid4().hex[:8]}")
    secretary = await token(http, "sec-a")
    status = (
        await http.get(f"/api/v1/rounds/{rid}/organisations/org-a/status", headers=secretary)
    ).json()
    return rid, status


def bodies(stack: Stack, status: Any) -> dict[str, dict[str, Any]]:
    """A valid submission for each of the two steps, by step."""
    return {
        step: {"step_id": step, "values": evidence(stack, status, step)}
        for step in (MEETING, GROUP)
    }


def fields(body: dict[str, Any]) -> dict[str, Any]:
    """What the route hands the service for ``body``."""
    return Submit.model_validate(body).model_dump(mode="json")


async def test_one_key_sent_at_once_with_two_bodies_applies_one_and_refuses_the_other(
    http: httpx.AsyncClient, stack: Stack, dev_server: WorkflowEnvironment
) -> None:
    rid, status = await fresh_round(http, stack, "race")
    by_step = bodies(stack, status)
    headers = {**await token(http, "sec-a"), "Idempotency-Key": f"race-{uuid.uuid4()}"}
    url = f"/api/v1/rounds/{rid}/organisations/org-a/submissions"
    steps = [MEETING if i % 2 == 0 else GROUP for i in range(20)]

    answers = await asyncio.gather(
        *(http.post(url, json=by_step[step], headers=headers) for step in steps)
    )

    accepted = {
        step for step, answer in zip(steps, answers, strict=True) if answer.status_code == 200
    }
    assert len(accepted) == 1, [(a.status_code, a.text) for a in answers]
    (applied,) = accepted
    (other,) = {MEETING, GROUP} - accepted
    for step, answer in zip(steps, answers, strict=True):
        if step == other:  # every caller of the other body is refused, at once
            assert answer.status_code == 422, answer.text
            assert answer.json()["code"] == "idempotency_key_reused"
        else:  # every caller of the applied body gets the same answer
            assert answer.status_code == 200, answer.text
            assert answer.content == answers[steps.index(applied)].content
            assert answer.json()["result"]["step_id"] == applied
    ran = [a for s, a in zip(steps, answers, strict=True) if s == applied]
    assert sum("Idempotent-Replayed" not in a.headers for a in ran) == 1
    # The workflow holds one body, and only that one.
    client = dev_server.client
    assert await submissions(client, rid, applied) == 1
    assert await submissions(client, rid, other) == 0
    # Sent afterwards, one after another: the same answers.
    later = await http.post(url, json=by_step[other], headers=headers)
    assert later.status_code == 422 and later.json()["code"] == "idempotency_key_reused"
    again = await http.post(url, json=by_step[applied], headers=headers)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.content == ran[0].content


async def test_two_api_processes_share_the_binding(
    http: httpx.AsyncClient,
    stack: Stack,
    dev_server: WorkflowEnvironment,
    sessions: sessionmaker[Session],
) -> None:
    """Two services with their own held answers (two API processes: only the read model is
    shared), each sent both bodies at once with one key, answering as the route does (the
    answer kept after it is given)."""
    rid, status = await fresh_round(http, stack, "procs")
    by_step = bodies(stack, status)
    key = f"race-{uuid.uuid4()}"
    processes = [
        OrganisationActions(sessions=sessions, temporal=dev_server.client, held=UnkeptAnswers())
        for _ in range(2)
    ]

    async def send(service: OrganisationActions, step: str) -> ActionOutcome | InvalidInput:
        try:
            outcome = await service.act(
                caller(SECRETARY, None), round_id=rid, org_id="org-a",
                action=OrganisationAction.SUBMIT_EVIDENCE, fields=fields(by_step[step]),
                idempotency_key=key, with_status=False, defer_store=True,
            )  # fmt: skip
        except InvalidInput as exc:
            return exc
        if outcome.keep_answer is not None:
            await anyio.to_thread.run_sync(outcome.keep_answer)
        return outcome

    sent = [(processes[i % 2], MEETING if i % 4 < 2 else GROUP) for i in range(16)]
    results = await asyncio.gather(*(send(service, step) for service, step in sent))

    outcomes = {
        step: [r for (_, s), r in zip(sent, results, strict=True) if s == step]
        for step in (MEETING, GROUP)
    }
    (applied,) = [s for s, rs in outcomes.items() if all(isinstance(r, ActionOutcome) for r in rs)]
    (other,) = {MEETING, GROUP} - {applied}
    assert all(
        isinstance(r, InvalidInput) and r.code == "idempotency_key_reused" for r in outcomes[other]
    )
    done = [r for r in outcomes[applied] if isinstance(r, ActionOutcome)]
    assert len({r.body for r in done}) == 1
    assert sum(not r.replayed for r in done) == 1
    assert await submissions(dev_server.client, rid, applied) == 1
    assert await submissions(dev_server.client, rid, other) == 0


async def test_one_body_sent_at_once_has_one_effect_and_one_answer(
    http: httpx.AsyncClient, stack: Stack, dev_server: WorkflowEnvironment
) -> None:
    rid, status = await fresh_round(http, stack, "twins")
    body = bodies(stack, status)[MEETING]
    headers = {**await token(http, "sec-a"), "Idempotency-Key": f"twin-{uuid.uuid4()}"}
    url = f"/api/v1/rounds/{rid}/organisations/org-a/submissions"

    answers = await asyncio.gather(*(http.post(url, json=body, headers=headers) for _ in range(10)))

    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert len({a.content for a in answers}) == 1
    assert sum("Idempotent-Replayed" not in a.headers for a in answers) == 1
    assert await submissions(dev_server.client, rid, MEETING) == 1


async def test_a_claim_whose_request_died_expires_for_that_request_only(
    http: httpx.AsyncClient,
    stack: Stack,
    dev_server: WorkflowEnvironment,
    sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A claim left "in progress" by a process that died between the claim and the answer:
    while fresh, a copy of the request waits and is told to retry; once stale, the same
    request takes it over and has its one effect; another request with the key is still
    refused (the dead request's Update may have been applied, and the workflow would drop
    another command under the same key)."""
    rid, status = await fresh_round(http, stack, "stale")
    by_step = bodies(stack, status)
    key = f"dead-{uuid.uuid4()}"
    headers = {**await token(http, "sec-a"), "Idempotency-Key": key}
    url = f"/api/v1/rounds/{rid}/organisations/org-a/submissions"
    digest = fingerprint(OrganisationAction.SUBMIT_EVIDENCE, rid, "org-a", fields(by_step[MEETING]))
    with sessions.begin() as session:
        assert claim_key(session, "sec-a", key, digest, datetime.now(UTC)) is None

    monkeypatch.setattr(idempotency, "TWIN_PATIENCE", 0.3)
    waited = await http.post(url, json=by_step[MEETING], headers=headers)
    assert waited.status_code == 409 and waited.json()["code"] == "in_progress"
    assert waited.headers["Retry-After"] == "1"
    assert await submissions(dev_server.client, rid, MEETING) == 0

    with sessions.begin() as session:  # the claim ages past STALE_CLAIM
        session.execute(
            update(IdempotencyRow)
            .where(IdempotencyRow.username == "sec-a", IdempotencyRow.key == key)
            .values(created_at=datetime.now(UTC) - STALE_CLAIM - timedelta(seconds=1))
        )
    refused = await http.post(url, json=by_step[GROUP], headers=headers)
    assert refused.status_code == 422 and refused.json()["code"] == "idempotency_key_reused"
    taken = await http.post(url, json=by_step[MEETING], headers=headers)
    assert taken.status_code == 200, taken.text
    assert "Idempotent-Replayed" not in taken.headers
    again = await http.post(url, json=by_step[MEETING], headers=headers)
    assert again.headers["Idempotent-Replayed"] == "true" and again.content == taken.content
    assert await submissions(dev_server.client, rid, MEETING) == 1
    assert await submissions(dev_server.client, rid, GROUP) == 0


async def test_an_unknown_outcome_keeps_the_key_bound_and_a_refusal_gives_it_back(
    http: httpx.AsyncClient,
    stack: Stack,
    dev_server: WorkflowEnvironment,
    sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rid, status = await fresh_round(http, stack, "unknown")
    by_step = bodies(stack, status)
    service = OrganisationActions(sessions=sessions, temporal=dev_server.client)
    real_update = workflow_calls.update

    async def act(step: str, key: str) -> ActionOutcome:
        return await service.act(
            caller(SECRETARY, None), round_id=rid, org_id="org-a",
            action=OrganisationAction.SUBMIT_EVIDENCE, fields=fields(by_step[step]),
            idempotency_key=key, with_status=False,
        )  # fmt: skip

    async def applied_but_unanswered(*args: Any, **kwargs: Any) -> Any:
        await real_update(*args, **kwargs)
        raise TemporalUnavailable()

    # The Update is applied, its answer lost (Temporal timed out): the request fails, and
    # the key stays bound to it, ready for its retry at once.
    key = f"lost-{uuid.uuid4()}"
    monkeypatch.setattr(workflow_calls, "update", applied_but_unanswered)
    with pytest.raises(TemporalUnavailable):
        await act(MEETING, key)
    monkeypatch.setattr(workflow_calls, "update", real_update)
    with pytest.raises(InvalidInput) as reused:  # before: "accepted", and dropped
        await act(GROUP, key)
    assert reused.value.code == "idempotency_key_reused"
    retried = await act(MEETING, key)
    assert not retried.replayed and retried.result.step_id == MEETING
    assert await submissions(dev_server.client, rid, MEETING) == 1
    assert await submissions(dev_server.client, rid, GROUP) == 0

    # A refused Update did nothing: the key goes back, and a corrected request uses it.
    key = f"refused-{uuid.uuid4()}"
    with pytest.raises(Refused):
        await service.act(
            caller(SECRETARY, None), round_id=rid, org_id="org-a",
            action=OrganisationAction.SUBMIT_EVIDENCE,
            fields=fields({"step_id": "no_such_step", "values": {}}), idempotency_key=key,
        )  # fmt: skip
    with sessions() as session:
        assert session.get(IdempotencyRow, ("sec-a", key)) is None
    corrected = await act(GROUP, key)
    assert not corrected.replayed and corrected.result.step_id == GROUP
    assert await submissions(dev_server.client, rid, GROUP) == 1


async def test_the_generic_wrapper_keeps_a_key_bound_after_an_unknown_outcome(
    sessions: sessionmaker[Session],
) -> None:
    """``api.idempotency.run_once`` (the routes whose action is a round's Update, a plan
    version, an evaluation, …): Temporal not answering leaves the key bound to the request,
    which may retry at once; a refusal gives it back."""
    key = f"generic-{uuid.uuid4()}"

    async def unanswered() -> tuple[api_keys.Answer, bool]:
        raise temporal_unavailable()

    async def done() -> tuple[api_keys.Answer, bool]:
        return api_keys.Answer(200, b'{"done":true}'), True

    with pytest.raises(ApiError):
        await api_keys.run_once(sessions, "sec-a", key, "fp-1", unanswered)
    with sessions() as session:
        row = session.get(IdempotencyRow, ("sec-a", key))
        assert row is not None and row.fingerprint == "fp-1" and row.status_code == IN_PROGRESS
    with pytest.raises(ApiError) as reused:
        await api_keys.run_once(sessions, "sec-a", key, "fp-2", done)
    assert reused.value.status_code == 422 and reused.value.code == "idempotency_key_reused"
    answer = await api_keys.run_once(sessions, "sec-a", key, "fp-1", done)
    assert answer == api_keys.Answer(200, b'{"done":true}')

    key = f"generic-{uuid.uuid4()}"

    async def refused() -> tuple[api_keys.Answer, bool]:
        raise ApiError(409, "conflict", "当前状态不允许此操作")

    with pytest.raises(ApiError):
        await api_keys.run_once(sessions, "sec-a", key, "fp-1", refused)
    answer = await api_keys.run_once(sessions, "sec-a", key, "fp-2", done)
    assert not answer.replayed and answer.body == b'{"done":true}'
