"""群众评议 in the database: issuing tokens, casting ballots, closing, tallying, publishing.

Tokens are derived, not stored: token *i* of an evaluation is an HMAC of the evaluation id
and *i* under the server's secret key, so the printable list can be produced again (a lost
printout) while the database keeps only each token's SHA-256. :func:`cast_ballot` burns the
token and stores the ballot in one transaction, outside any workflow, and stores nothing
that ties the two together. The activities close the window, tally and publish.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.tables import BallotRow, BallotTokenRow, EvaluationItemRow, EvaluationRow
from domain.errors import FieldError
from domain.evaluation import (
    BallotItem,
    EvaluationResult,
    EvaluationRules,
    EvaluationTarget,
    RaterKind,
    Rating,
    check_ballot,
    judge,
    tally,
)
from workflows.activity_refs import (
    CLOSE_EVALUATION,
    OPEN_EVALUATION,
    ORDER_EVALUATION_RECTIFICATION,
    PUBLISH_EVALUATION,
    SETTLE_EVALUATION_STEP,
)
from workflows.contracts import ActionResult
from workflows.evaluation_contracts import (
    CloseEvaluation,
    EvaluationInput,
    EvaluationStage,
    EvaluationWindow,
    PublishEvaluation,
    RectificationRequest,
    StepSettlement,
)


class BallotRefused(Exception):
    """A ballot the rules refuse: an HTTP status, a stable code, a Chinese message."""

    def __init__(
        self, status: int, code: str, message: str, errors: list[FieldError] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.errors = errors or []


def token_for(secret: str, evaluation_id: str, index: int) -> str:
    """The ``index``-th ballot token of an evaluation (22 URL-safe characters, 128 bits)."""
    mac = hmac.new(secret.encode(), f"ballot:{evaluation_id}:{index}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()[:16]).decode().rstrip("=")


def token_hash(token: str) -> str:
    """What the database keeps of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def kind_of(index: int, members: int) -> RaterKind:
    """Tokens 0..members-1 are for members, the rest for non-members (the printed order)."""
    return RaterKind.MEMBER if index < members else RaterKind.NON_MEMBER


def issue_tokens(
    session: Session, secret: str, evaluation_id: str, members: int, non_members: int
) -> None:
    """Store the hashes of an evaluation's tokens (in the caller's transaction)."""
    session.add_all(
        BallotTokenRow(
            token_hash=token_hash(token_for(secret, evaluation_id, i)),
            evaluation_id=evaluation_id,
            rater_kind=kind_of(i, members).value,
            used=False,
        )
        for i in range(members + non_members)
    )


def register_evaluation(
    session: Session,
    secret: str,
    *,
    evaluation: EvaluationInput,
    seq: int,
    workflow_id: str,
    raters: Mapping[RaterKind, int],
    now: datetime,
) -> EvaluationRow:
    """The evaluation's row (status ``opening``) and its token hashes, in the caller's
    transaction; the workflow's first activity opens the window."""
    members = raters.get(RaterKind.MEMBER, 0)
    non_members = raters.get(RaterKind.NON_MEMBER, 0)
    row = EvaluationRow(
        evaluation_id=evaluation.evaluation_id,
        round_id=evaluation.round_id,
        org_id=evaluation.org_id,
        target=evaluation.target.value,
        subject=evaluation.subject,
        seq=seq,
        workflow_id=workflow_id,
        status=EvaluationStage.OPENING.value,
        rules=evaluation.rules.model_dump(mode="json"),
        issued_members=members,
        issued_non_members=non_members,
        opened_by=evaluation.opened_by.user,
        opened_by_role=evaluation.opened_by.role.value,
        created_at=now,
    )
    session.add(row)
    session.flush()  # the row first: a duplicate (round, org, target, subject, seq) fails here
    issue_tokens(session, secret, evaluation.evaluation_id, members, non_members)
    return row


def items_of(row: EvaluationRow) -> list[BallotItem]:
    """The ballot items the evaluation opened with."""
    rules = EvaluationRules.model_validate(row.rules)
    return list(rules.for_target(EvaluationTarget(row.target)).items)


def find_token(session: Session, token: str) -> tuple[BallotTokenRow, EvaluationRow]:
    """The token's row and its evaluation; refused when the token is unknown."""
    row = session.get(BallotTokenRow, token_hash(token))
    evaluation = session.get(EvaluationRow, row.evaluation_id) if row is not None else None
    if row is None or evaluation is None:
        raise BallotRefused(404, "invalid_token", "选票凭证无效，请核对二维码或凭证号")
    return row, evaluation


def refuse_unless_open(evaluation: EvaluationRow, now: datetime) -> None:
    """Only an open window takes ballots."""
    if evaluation.status == EvaluationStage.OPENING.value or evaluation.opens_at is None:
        raise BallotRefused(409, "not_open", "评议尚未开始，请稍后再试")
    if evaluation.status != EvaluationStage.OPEN.value or (
        evaluation.closes_at is not None and now >= evaluation.closes_at
    ):
        raise BallotRefused(409, "window_closed", "本次评议投票已截止，不能再投票")


def cast_ballot(
    sessions: sessionmaker[Session], token: str, ratings: Mapping[str, str], now: datetime
) -> None:
    """Check and burn ``token`` and store the ballot, in one transaction.

    The evaluation row is read FOR SHARE (PostgreSQL), so a close (which updates it) waits
    for ballots in flight and ballots after the close see it closed; the token is burnt by a
    conditional update, so two casts with one token cannot both succeed.
    """
    digest = token_hash(token)
    with sessions.begin() as session:
        row = session.get(BallotTokenRow, digest, with_for_update=True)
        if row is None:
            raise BallotRefused(404, "invalid_token", "选票凭证无效，请核对二维码或凭证号")
        evaluation = session.get(EvaluationRow, row.evaluation_id, with_for_update={"read": True})
        assert evaluation is not None
        refuse_unless_open(evaluation, now)
        if row.used:
            raise BallotRefused(409, "token_used", "该选票凭证已经投过票，每张凭证只能投一次")
        errors = check_ballot(items_of(evaluation), ratings)
        if errors:
            raise BallotRefused(422, "invalid_ballot", "选票填写不完整或有误", errors)
        # The window is checked again by the burn itself: on SQLite FOR SHARE locks
        # nothing and the reads above run before this transaction takes the write lock, so
        # a close committed in between would otherwise tally without this ballot and the
        # voter be told it counted.
        still_open = exists().where(
            EvaluationRow.evaluation_id == evaluation.evaluation_id,
            EvaluationRow.status == EvaluationStage.OPEN.value,
        )
        burnt = session.execute(
            update(BallotTokenRow)
            .where(BallotTokenRow.token_hash == digest, BallotTokenRow.used.is_(False), still_open)
            .values(used=True)
            .execution_options(synchronize_session=False)
        )
        if getattr(burnt, "rowcount", 1) != 1:
            session.refresh(evaluation)
            refuse_unless_open(evaluation, now)
            raise BallotRefused(409, "token_used", "该选票凭证已经投过票，每张凭证只能投一次")
        session.add(
            BallotRow(
                ballot_id=secrets.token_hex(16),
                evaluation_id=evaluation.evaluation_id,
                ratings={k: Rating(v).value for k, v in ratings.items()},
            )
        )


def close_and_tally(session: Session, evaluation_id: str, closed_at: datetime) -> EvaluationResult:
    """Close the window (once) and write the tally; a repeat returns the stored result."""
    evaluation = session.get(EvaluationRow, evaluation_id, with_for_update=True)
    if evaluation is None:
        raise ApplicationError(f"没有评议 {evaluation_id}", non_retryable=True)
    if evaluation.result is not None:
        return EvaluationResult.model_validate(evaluation.result)
    evaluation.status, evaluation.closed_at = EvaluationStage.CLOSED.value, closed_at
    session.flush()
    ballots = session.scalars(
        select(BallotRow.ratings).where(BallotRow.evaluation_id == evaluation_id)
    ).all()
    issued = session.scalar(
        select(func.count()).where(BallotTokenRow.evaluation_id == evaluation_id)
    )
    rules = EvaluationRules.model_validate(evaluation.rules)
    target = EvaluationTarget(evaluation.target)
    result = judge(rules, target, issued or 0, tally(items_of(evaluation), ballots))
    for position, item in enumerate(result.items):
        session.add(
            EvaluationItemRow(
                evaluation_id=evaluation_id,
                item_id=item.item_id,
                position=position,
                label=item.label,
                ballots=item.ballots,
                satisfaction=item.satisfaction,
                **{r.value: item.counts[r] for r in Rating},
            )
        )
    evaluation.cast, evaluation.satisfaction = result.cast, result.satisfaction
    evaluation.verdict, evaluation.result = result.verdict.value, result.model_dump(mode="json")
    return result


class EvaluationActivities:
    """The evaluation workflow's I/O: the read model and the organisation's workflow."""

    def __init__(self, sessions: sessionmaker[Session], client: Client) -> None:
        self._sessions = sessions
        self._client = client

    @activity.defn(name=OPEN_EVALUATION.name)
    async def open_evaluation(self, window: EvaluationWindow) -> EvaluationWindow:
        """Open the window (the tokens were issued with the evaluation); idempotent."""
        with self._sessions.begin() as session:
            row = session.get(EvaluationRow, window.evaluation_id, with_for_update=True)
            if row is None:
                raise ApplicationError(f"没有评议 {window.evaluation_id}", non_retryable=True)
            if row.status == EvaluationStage.OPENING.value:
                row.status = EvaluationStage.OPEN.value
                row.opens_at, row.closes_at = window.opens_at, window.closes_at
            assert row.opens_at is not None and row.closes_at is not None
            return EvaluationWindow(
                evaluation_id=row.evaluation_id, opens_at=row.opens_at, closes_at=row.closes_at
            )

    @activity.defn(name=CLOSE_EVALUATION.name)
    async def close_evaluation(self, cmd: CloseEvaluation) -> EvaluationResult:
        """Close the window and tally per item."""
        with self._sessions.begin() as session:
            return close_and_tally(session, cmd.evaluation_id, cmd.closed_at)

    @activity.defn(name=PUBLISH_EVALUATION.name)
    async def publish_evaluation(self, cmd: PublishEvaluation) -> str:
        """Publish a valid result; mark one below the quorum invalid (never published)."""
        with self._sessions.begin() as session:
            row = session.get(EvaluationRow, cmd.evaluation_id, with_for_update=True)
            if row is None or row.result is None:
                raise ApplicationError(f"评议 {cmd.evaluation_id} 尚未计票", non_retryable=True)
            if row.status == EvaluationStage.CLOSED.value:
                valid = EvaluationResult.model_validate(row.result).valid
                row.status = (EvaluationStage.PUBLISHED if valid else EvaluationStage.INVALID).value
                row.published_at = cmd.published_at if valid else None
                row.rectification = cmd.rectification
            return row.status

    @activity.defn(name=ORDER_EVALUATION_RECTIFICATION.name)
    async def order_rectification(self, request: RectificationRequest) -> str:
        """Ask the organisation's workflow for a 整改通知; a refusal is final, not retried."""
        await self._update(request.org_workflow_id, "order_rectification", request.order)
        return "ordered"

    @activity.defn(name=SETTLE_EVALUATION_STEP.name)
    async def settle_step(self, request: StepSettlement) -> str:
        """Settle the organisation's 群众评议 step with the published result (its
        ``submit_evidence``, once per evaluation by its idempotency key); a refusal is final."""
        await self._update(request.org_workflow_id, "submit_evidence", request.submission)
        return "settled"

    async def _update(self, workflow_id: str, update: str, arg: object) -> None:
        handle = self._client.get_workflow_handle(workflow_id)
        try:
            await handle.execute_update(update, arg, result_type=ActionResult)
        except WorkflowUpdateFailedError as exc:
            cause: Any = exc.cause
            raise ApplicationError(
                getattr(cause, "message", None) or str(exc), type="refused", non_retryable=True
            ) from None
        except RPCError as exc:
            if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
                raise ApplicationError(
                    "该组织的活动流程不存在或已结束", type="refused", non_retryable=True
                ) from None
            raise
