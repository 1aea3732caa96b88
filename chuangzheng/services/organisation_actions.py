"""Act on an organisation: the human actions of one organisation's campaign in one round
(submit evidence, decide a submission, waive a step, ask for and decide an extension,
acknowledge a notice, report and re-check a rectification), each an Update on the
organisation's workflow.

The whole use case is :meth:`OrganisationActions.act`: the caller's scope on the organisation
(outside it: :class:`NotFound`, so nothing leaks), the idempotency key claimed for this
request in the read model (or the answer of a key already spent, or the refusal of a key
bound to another request), the Update (whose validator checks the role and the rules), the
status read by a query, and the answer kept for retries. The API's action routes call it;
the pages, which check the scope themselves and keep no stored answers (a form's key is
deduplicated by the workflow), call its core :func:`perform`. Rectification orders are not
here: only the evaluation workflow issues them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import structlog
from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from activities.tables import IdempotencyRow
from chuangzheng.services import idempotency as keys
from chuangzheng.services import workflow_calls
from chuangzheng.services.callers import visible_organisation
from chuangzheng.services.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    Refused,
    TemporalUnavailable,
)
from chuangzheng.services.evidence_checks import check_evidence
from chuangzheng.services.field_errors import invalid_input
from chuangzheng.services.idempotency import (
    IN_PROGRESS,
    abandon_claim,
    claim_key,
    command_key,
    key_reused,
    lookup_answer,
    release_claim,
    stale_claim,
    store_answer,
)
from domain import actions
from domain.campaign_rules import CampaignStatus
from domain.organisation import Organisation
from domain.state import Actor
from workflows.contracts import ActionResult
from workflows.ids import organisation_workflow_id

if TYPE_CHECKING:
    from chuangzheng.bootstrap import Services

log = structlog.get_logger(__name__)


class OrganisationAction(StrEnum):
    """The actions, named as the workflow's Updates they run."""

    SUBMIT_EVIDENCE = "submit_evidence"
    DECIDE_SUBMISSION = "decide_submission"
    WAIVE_STEP = "waive_step"
    REQUEST_EXTENSION = "request_extension"
    DECIDE_EXTENSION = "decide_extension"
    ACKNOWLEDGE_ESCALATION = "acknowledge_escalation"
    REPORT_RECTIFICATION = "report_rectification"
    RECHECK_RECTIFICATION = "recheck_rectification"

    @property
    def command(self) -> type[BaseModel]:
        """The domain command the Update takes."""
        return COMMANDS[self]


#: Each action's domain command: the caller's fields plus the actor and the idempotency key.
COMMANDS: dict[OrganisationAction, type[BaseModel]] = {
    OrganisationAction.SUBMIT_EVIDENCE: actions.SubmitEvidence,
    OrganisationAction.DECIDE_SUBMISSION: actions.DecideSubmission,
    OrganisationAction.WAIVE_STEP: actions.WaiveStep,
    OrganisationAction.REQUEST_EXTENSION: actions.RequestExtension,
    OrganisationAction.DECIDE_EXTENSION: actions.DecideExtension,
    OrganisationAction.ACKNOWLEDGE_ESCALATION: actions.AcknowledgeEscalation,
    OrganisationAction.REPORT_RECTIFICATION: actions.ReportRectification,
    OrganisationAction.RECHECK_RECTIFICATION: actions.RecheckRectification,
}

#: How long the whole status after an Update may take to read (the ``status`` query): a
#: quiet server answers in tens of milliseconds; a worker busy with a deadline storm answers
#: queries behind its workflow tasks, and the action is already done by then, so the answer
#: goes without the status (``ActionOutcome.minimal``) instead of waiting or failing.
STATUS_AFTER_UPDATE_TIMEOUT = timedelta(seconds=1)

#: The status code an action's stored answer carries (the table is shared with the API's
#: generic wrapper, which replays it as the response's status).
_STORED_STATUS = 200
#: The refusals after which an action's claim is given back: the Update was refused by its
#: validator or never sent (a missing workflow, a finished campaign, a malformed command),
#: so the workflow never saw the key and a corrected request may use it. Any other failure
#: (Temporal did not answer, a cancellation, a bug) may have come after the Update was
#: applied: the key stays bound to the request (:func:`~chuangzheng.services.idempotency.
#: abandon_claim`).
_NOTHING_DONE = (Refused, InvalidInput, NotFound, Conflict)


def parse_action(name: str) -> OrganisationAction:
    """The action named ``name`` (a form's hidden field); :class:`InvalidInput` otherwise."""
    try:
        return OrganisationAction(name)
    except ValueError:
        raise InvalidInput(
            "invalid", "请求参数有误", [{"field": "action", "reason": "未知操作"}]
        ) from None


@dataclass(frozen=True)
class Caller:
    """Who acts: the actor the workflow records (account, name, role, address) and the
    organisations the caller's role covers (for an account, ``api.scope.covers``)."""

    actor: Actor
    covers: Callable[[Organisation], bool]


@dataclass(frozen=True)
class ActionAnswer:
    """What an action produced: the Update's small result and, when asked for, the whole
    status after it (read by a query, which writes no history)."""

    result: ActionResult
    status: CampaignStatus | None

    def document(self) -> dict[str, Any]:
        """The answer as plain JSON: the status's fields (if read) and ``result``."""
        result = {"result": self.result.model_dump(mode="json")}
        if self.status is None:
            return result
        return self.status.model_dump(mode="json") | result


@dataclass(frozen=True)
class ActionOutcome:
    """The answer of :meth:`OrganisationActions.act`: the Update's result, the answer as
    stored for retries (JSON), and whether it was replayed from an earlier call."""

    result: ActionResult
    body: bytes
    replayed: bool
    #: Where the call's time went, in seconds, in order (``scope``: the scope check and the
    #: key's lookup; ``update``; ``status``: the query; ``store``: the answer kept for
    #: retries). The API sends them as ``Server-Timing``; a benchmark reads them there.
    timings: tuple[tuple[str, float], ...] = ()
    #: The answer is the Update's result only (asked for, or the status was not read in
    #: time); otherwise the whole status with the result.
    minimal: bool = False
    #: With ``defer_store``: keeps the answer for retries (blocking; run it in a thread,
    #: after answering). None when there is nothing to keep or it is kept already.
    keep_answer: Callable[[], None] | None = None


def build_command(
    action: OrganisationAction,
    actor: Actor,
    fields: Mapping[str, Any],
    idempotency_key: str | None,
) -> BaseModel:
    """The action's domain command from the caller's ``fields``; the idempotency key is made
    per account, so two users' keys never collide in the workflow's deduplication."""
    try:
        return action.command.model_validate(
            dict(fields)
            | {"actor": actor, "idempotency_key": command_key(actor.user, idempotency_key)}
        )
    except ValidationError as exc:
        raise invalid_input(exc, action.command) from None


class Laps:
    """A stopwatch: ``laps("name")`` records the time since the previous lap (or since it
    was made) under ``name``."""

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self.laps: list[tuple[str, float]] = []

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.laps.append((name, now - self._last))
        self._last = now


def _no_lap(_name: str) -> None:
    return None


async def perform(
    temporal: Client,
    *,
    actor: Actor,
    round_id: str,
    org_id: str,
    action: OrganisationAction,
    fields: Mapping[str, Any],
    idempotency_key: str | None,
    with_status: bool,
    lap: Callable[[str], None] = _no_lap,
    status_budget: timedelta | None = None,
) -> ActionAnswer:
    """Run ``action``'s Update on the organisation's workflow (the caller has checked the
    scope); with ``with_status``, read the whole status after it. With a ``status_budget``
    the status is read for at most that long: the action is done by then, so a status not
    read in time (a busy worker: a deadline storm) leaves the answer without it
    (``status`` None) rather than turning a done action into an error; without one, a
    query that times out is :class:`TemporalUnavailable` (for callers whose answer must
    carry the status). A retry with the same ``idempotency_key`` has one effect: the
    workflow deduplicates the command. ``lap`` is told when the Update and the query are
    done (see :class:`Laps`)."""
    command = build_command(action, actor, fields, idempotency_key)
    workflow_id = organisation_workflow_id(round_id, org_id)
    result = await workflow_calls.update(temporal, workflow_id, action.value, command, ActionResult)
    lap("update")
    if not with_status:
        return ActionAnswer(result=result, status=None)
    # The Update returns a small result (it is stored in history, for every organisation);
    # the whole status comes from a query, which writes none.
    if status_budget is None:
        status = await workflow_calls.query(temporal, workflow_id, "status", CampaignStatus)
        lap("status")
        return ActionAnswer(result=result, status=status)
    try:
        status = await workflow_calls.query(
            temporal, workflow_id, "status", CampaignStatus, rpc_timeout=status_budget
        )
    except TemporalUnavailable:
        lap("status_skipped")
        return ActionAnswer(result=result, status=None)
    lap("status")
    return ActionAnswer(result=result, status=status)


def fingerprint(
    action: OrganisationAction, round_id: str, org_id: str, fields: Mapping[str, Any]
) -> str:
    """What a request asked, so a key reused for another request is recognised."""
    canonical = json.dumps(
        to_jsonable_python(
            {"action": action.value, "round_id": round_id, "org_id": org_id, "fields": fields}
        ),
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:64]


class UnkeptAnswers:
    """Answers given but not kept yet (``defer_store``), in this process: a retry that
    arrives while its answer is still being written is answered from here, as it would be
    from the table once written. Another process does not see them; there a retry runs the
    Update again, which the workflow deduplicates (one effect, a fresh answer)."""

    #: Answers held at most; beyond, the oldest is dropped (a response whose sending failed
    #: never runs its store, so its answer would otherwise stay).
    LIMIT = 10_000

    def __init__(self) -> None:
        self._answers: dict[tuple[str, str], tuple[str, bytes]] = {}

    def hold(self, username: str, key: str, fingerprint: str, body: bytes) -> None:
        """Hold an answer until it is kept."""
        if len(self._answers) >= self.LIMIT:
            self._answers.pop(next(iter(self._answers)), None)
        self._answers[(username, key)] = (fingerprint, body)

    def get(self, username: str, key: str) -> IdempotencyRow | None:
        """The held answer as the row it will become, if any."""
        held = self._answers.get((username, key))
        if held is None:
            return None
        return IdempotencyRow(
            username=username,
            key=key,
            fingerprint=held[0],
            status_code=_STORED_STATUS,
            body=held[1],
            created_at=datetime.now(UTC),
        )

    def release(self, username: str, key: str) -> None:
        """Forget an answer (kept, or failed to be)."""
        self._answers.pop((username, key), None)


#: This process's answers being kept.
UNKEPT = UnkeptAnswers()


def _keep(
    held: UnkeptAnswers,
    sessions: sessionmaker[Session],
    username: str,
    key: str,
    fingerprint: str,
    body: bytes,
) -> None:
    """Store a held answer in the request's claim, then release it. A failure (raised) keeps
    it held: a retry to this process is still answered from it; for the other processes the
    claim stays "in progress" (bound to the request), so their copies wait, are told to retry
    (409 ``in_progress``), and once the claim is stale
    (:data:`~chuangzheng.services.idempotency.STALE_CLAIM`) run the Update again, which the
    workflow applies once."""
    store_answer(sessions, username, key, fingerprint, _STORED_STATUS, body)
    held.release(username, key)


def _encode(document: dict[str, Any]) -> bytes:
    # The document is plain JSON already (model_dump(mode="json")): the C encoder takes it.
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def _replay(row: IdempotencyRow, timings: list[tuple[str, float]]) -> ActionOutcome:
    document = json.loads(row.body)
    return ActionOutcome(
        result=ActionResult.model_validate(document["result"]),
        body=row.body,
        replayed=True,
        timings=tuple(timings),
        minimal="state" not in document,
    )


@dataclass(frozen=True)
class OrganisationActions:
    """The use case with its dependencies: the read model's session factory (scope checks,
    the keys' claims and stored answers) and the Temporal client, as the bootstrap built
    them; ``held``: this process's answers not kept yet (:data:`UNKEPT`)."""

    sessions: sessionmaker[Session]
    temporal: Client
    held: UnkeptAnswers = UNKEPT

    @classmethod
    def from_services(cls, services: Services) -> OrganisationActions:
        """The use case over the bootstrap's services."""
        return cls(sessions=services.sessions, temporal=services.temporal)

    async def act(
        self,
        caller: Caller,
        *,
        round_id: str,
        org_id: str,
        action: OrganisationAction,
        fields: Mapping[str, Any],
        idempotency_key: str | None = None,
        with_status: bool = True,
        defer_store: bool = False,
        status_budget: timedelta = STATUS_AFTER_UPDATE_TIMEOUT,
    ) -> ActionOutcome:
        """Run ``action`` on ``org_id`` in ``round_id`` for ``caller``, once per
        ``idempotency_key``: a retry with the same key and request gets the first answer
        (``replayed``), the same key with another request is :class:`InvalidInput`.

        The key is claimed in the read model, bound to this request's fingerprint, before the
        Update is sent (the workflow deduplicates its commands by key alone: without the
        claim, another request sent at once with the same key would be answered as accepted
        and have no effect). So whatever the concurrency and whichever API process answers:
        another request with the key is refused at once; a copy of this request waits for
        this one's answer and replays it (409 ``in_progress`` after
        :data:`~chuangzheng.services.idempotency.TWIN_PATIENCE`), and never sends a second
        Update while this one runs. A refused Update gives the key back (a corrected request
        may use it); one whose outcome is unknown (Temporal did not answer) leaves it bound
        to this request, which may retry at once. A claim whose process died is taken over
        by the same request once stale.

        The whole status (``with_status``) is read for at most ``status_budget``; past it the
        answer is the Update's result only (``minimal``): the action is done all the same.

        With ``defer_store`` the answer is not kept yet: the outcome's ``keep_answer`` (a
        plain function, database work for a worker thread) keeps it, and the caller runs it
        after answering (the API: once the response is sent). On SQLite a write waits for the
        one write lock, which a deadline storm's recording transactions hold; the answer need
        not wait with it. Until it is kept, a retry to this process is answered from
        :attr:`held`; one to another process waits for it (the claim is still in progress).

        Raises :class:`NotFound` outside the caller's scope (before any replay: a caller who
        lost the scope learns nothing more) or when the organisation is not in the round,
        :class:`InvalidInput` when submitted evidence names a file not uploaded for the round
        and organisation or a member off its roster (``evidence_checks``, before the Update)
        or when the key is bound to another request, :class:`Refused` when the workflow's
        validator refuses, :class:`Conflict` on a finished campaign or when a copy of the
        request is still running past the wait (code ``in_progress``) and
        :class:`TemporalUnavailable` when Temporal does not answer.
        """
        username = caller.actor.user
        lap = Laps()
        digest = fingerprint(action, round_id, org_id, fields) if idempotency_key else ""
        stored = await self._claim(
            caller, round_id, org_id, action, fields, idempotency_key, digest
        )
        lap("scope")
        if stored is not None:
            return _replay(stored, lap.laps)
        try:
            answer = await perform(
                self.temporal,
                actor=caller.actor,
                round_id=round_id,
                org_id=org_id,
                action=action,
                fields=fields,
                idempotency_key=idempotency_key,
                with_status=with_status,
                lap=lap,
                status_budget=status_budget,
            )
        except BaseException as exc:
            if idempotency_key is not None:
                await self._give_up(username, idempotency_key, digest, exc)
            raise
        body = _encode(answer.document())
        keep = None
        if idempotency_key is not None:
            self.held.hold(username, idempotency_key, digest, body)
            keep = functools.partial(
                _keep, self.held, self.sessions, username, idempotency_key, digest, body
            )
        if keep is not None and not defer_store:
            await anyio.to_thread.run_sync(keep)
            lap("store")
            keep = None
        return ActionOutcome(
            result=answer.result,
            body=body,
            replayed=False,
            timings=tuple(lap.laps),
            minimal=answer.status is None,
            keep_answer=keep,
        )

    async def _claim(
        self,
        caller: Caller,
        round_id: str,
        org_id: str,
        action: OrganisationAction,
        fields: Mapping[str, Any],
        key: str | None,
        digest: str,
    ) -> IdempotencyRow | None:
        """The scope check, then the key claimed for this request: None when the Update is
        this request's to send, or the answer (a copy's) to replay. A copy still running is
        waited for (polled by reads, no write), up to
        :data:`~chuangzheng.services.idempotency.TWIN_PATIENCE`; a claim given back or gone
        stale meanwhile is claimed anew (the scope checked again)."""
        check = functools.partial(
            self._check_and_claim, caller, round_id, org_id, action, fields, key, digest
        )
        row = await anyio.to_thread.run_sync(check)
        if row is None or key is None:
            return None
        patience = anyio.current_time() + keys.TWIN_PATIENCE
        while row is not None:
            if row.fingerprint != digest:
                raise key_reused()
            if row.status_code != IN_PROGRESS:
                return row
            if anyio.current_time() > patience:
                raise Conflict(keys.TWIN_RUNNING, keys.TWIN_RUNNING_MESSAGE)
            await anyio.sleep(keys.TWIN_POLL)
            row = await anyio.to_thread.run_sync(self._look, caller.actor.user, key)
            if row is None or (row.fingerprint == digest and stale_claim(row, datetime.now(UTC))):
                row = await anyio.to_thread.run_sync(check)
        return None

    def _look(self, username: str, key: str) -> IdempotencyRow | None:
        """The key's row as a waiting copy sees it: the answer held in this process, or the
        read model's row (a read: waiting takes no write lock)."""
        held = self.held.get(username, key)
        if held is not None:
            return held
        with self.sessions() as session:
            return lookup_answer(session, username, key)

    def _check_and_claim(
        self,
        caller: Caller,
        round_id: str,
        org_id: str,
        action: OrganisationAction,
        fields: Mapping[str, Any],
        key: str | None,
        digest: str,
    ) -> IdempotencyRow | None:
        """One session, one thread hop: the scope check, the key's row if it has one (an
        answer to replay or a refusal needs no write), the evidence's checks against the
        read model, then the claim (:func:`~chuangzheng.services.idempotency.claim_key`),
        the only write, last, so SQLite's write lock is held for the insert alone."""
        username = caller.actor.user
        with self.sessions() as session:
            visible_organisation(session, caller, org_id)
            if key is not None:
                stored = self.held.get(username, key) or lookup_answer(session, username, key)
                if stored is not None and not (
                    stored.fingerprint == digest and stale_claim(stored, datetime.now(UTC))
                ):
                    # A replayed answer is not checked again: it was checked when it ran.
                    return stored
            if action is OrganisationAction.SUBMIT_EVIDENCE:
                check_evidence(session, round_id, org_id, fields.get("values"))
            if key is None:
                return None
            row = claim_key(session, username, key, digest, datetime.now(UTC))
            session.commit()
            return row

    async def _give_up(self, username: str, key: str, digest: str, exc: BaseException) -> None:
        """After the Update failed: give the key back when nothing was done, otherwise leave
        it bound to this request (see :data:`_NOTHING_DONE`). Shielded from cancellation; a
        failure here is logged, not raised (the request's own error is what the caller gets,
        and the claim goes stale in time)."""
        nothing_done = isinstance(exc, _NOTHING_DONE)
        with anyio.CancelScope(shield=True):
            try:
                if nothing_done:
                    await anyio.to_thread.run_sync(release_claim, self.sessions, username, key)
                else:
                    await anyio.to_thread.run_sync(
                        abandon_claim, self.sessions, username, key, digest, datetime.now(UTC)
                    )
            except Exception:
                log.warning("idempotency_claim_not_left", key=key, exc_info=True)
