"""群众评议: the upper level (or, for its members, the organisation) opens a ballot with
one-time tokens, follows it, may close it early, and reads the result. Casting is public
(``api.public.ballots`` over ``activities.evaluations``).

Opening checks the caller's scope on the organisation (:class:`NotFound` outside it), the
role (:class:`Refused` ``forbidden``), that the round is kicked off (:class:`Conflict`
``not_started``), that the organisation is in the 群众评议 phase by the read model
(:class:`Conflict` ``wrong_phase``: seed 002 §五(四) holds the evaluation of organisations
and of members there, and a result below the threshold orders rectification on the phase the
organisation is in), the request and the rater composition against the plan and the roster
(:class:`InvalidInput` naming the field: at most as many party-member ballots as the
organisation has members, at most ``domain.evaluation.MAX_RATERS`` in all, and a member
evaluation's member on the organisation's 党员名册 when it has one), then stores the
evaluation and its token hashes in one transaction, audited, and starts
``EvaluationWorkflow``, which holds the window; if the workflow cannot start, the evaluation
is taken back out. One live or published evaluation per subject and round
(:class:`Conflict` ``evaluation_exists``).

Functions that take a session do database work only: call them from a worker thread, never
on an event loop. Evaluations are answered as documents (plain JSON values).
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import anyio.to_thread
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from activities.evaluations import register_evaluation
from activities.tables import (
    BallotTokenRow,
    CampaignStatusRow,
    EvaluationRow,
    PartyMemberRow,
    RoundDefinitionRow,
)
from chuangzheng.plans import parse_plan
from chuangzheng.services import workflow_calls
from chuangzheng.services.callers import Caller, audit_row, visible_organisation
from chuangzheng.services.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    Refused,
    domain_refusals,
    from_domain,
)
from chuangzheng.settings import Settings
from domain.calendar import CalendarGap
from domain.errors import FieldError, ValidationFailed
from domain.evaluation import (
    EvaluationResult,
    EvaluationTarget,
    RaterKind,
    check_composition,
    check_rater_limits,
    phase_refusal,
)
from domain.machine import PhaseStatus
from domain.organisation import SUPERVISOR_ROLES, Organisation, Role
from domain.phases import Phase
from workflows.evaluation import EvaluationWorkflow, evaluation_workflow_id
from workflows.evaluation_contracts import CloseNow, EvaluationInput, EvaluationStatus
from workflows.ids import organisation_workflow_id

if TYPE_CHECKING:
    from chuangzheng.bootstrap import Services

P = ParamSpec("P")
T = TypeVar("T")

#: Statuses of an evaluation whose ballot is still to be tallied.
_LIVE = ("opening", "open", "closed")
_NO_EVALUATION = "评议不存在或无权查看"


@dataclass(frozen=True)
class EvaluationRequest:
    """What to open: the target (the organisation, or one of its members by name) and the
    raters, as counts by kind (``raters``) or a names list (``rater_names``: name and kind;
    the names are only counted, never stored), exactly one of the two."""

    target: EvaluationTarget = EvaluationTarget.ORGANISATION
    member: str | None = None
    raters: Mapping[RaterKind, int] | None = None
    rater_names: Sequence[tuple[str, RaterKind]] | None = None


def rater_counts(request: EvaluationRequest) -> tuple[dict[RaterKind, int], str]:
    """Raters by kind and the field they came from; :class:`InvalidInput` naming every bad
    field."""
    errors: list[FieldError] = []
    if (request.raters is None) == (request.rater_names is None):
        errors.append(FieldError("raters", "请给出各类评议人数或评议人名单（二选一）"))
    if request.target is EvaluationTarget.MEMBER and not (request.member or "").strip():
        errors.append(FieldError("member", "党员评议须写明被评议党员姓名"))
    if request.target is EvaluationTarget.ORGANISATION and request.member is not None:
        errors.append(FieldError("member", "评议基层党组织时不填党员姓名"))
    if errors:
        raise from_domain(ValidationFailed(errors))
    if request.raters is not None:
        return {kind: request.raters.get(kind, 0) for kind in RaterKind}, "raters"
    names = request.rater_names or []
    seen: set[str] = set()
    for index, (name, _) in enumerate(names):
        if name.strip() in seen:
            errors.append(FieldError(f"rater_names[{index}].name", "姓名重复"))
        seen.add(name.strip())
    if errors:
        raise from_domain(ValidationFailed(errors))
    counts = dict.fromkeys(RaterKind, 0)
    for _, kind in names:
        counts[kind] += 1
    return counts, "rater_names"


@dataclass(frozen=True)
class _Subject:
    """What opening reads of the read model: the organisation (its 党员人数), the round's
    definition, where the organisation's campaign stands (None: no status yet), whether it
    has a 党员名册 and whether the member to evaluate is on it."""

    org: Organisation
    definition: RoundDefinitionRow | None
    status: CampaignStatusRow | None
    has_member_roster: bool
    on_member_roster: bool


def check_phase(subject: _Subject) -> None:
    """:class:`Conflict` ``wrong_phase`` unless the organisation is in 群众评议, naming the
    phase it is in and the one it must be in."""
    status = subject.status
    phase = Phase(status.phase) if status is not None else None
    phase_status = (
        PhaseStatus(status.phase_status)
        if status is not None and status.phase_status is not None
        else None
    )
    closed = status is not None and status.closed
    reason = phase_refusal(subject.org.name, phase, phase_status, closed)
    if reason is not None:
        raise Conflict("wrong_phase", reason)


def check_member(subject: _Subject, request: EvaluationRequest) -> None:
    """A member evaluation names someone on the organisation's 党员名册 (:class:`InvalidInput`
    on ``member`` otherwise). Without a 名册 (only the county roster's count is known; the
    名册 is imported for 公开承诺 and is optional) any name is taken: there is nothing to
    check it against, and refusing would leave such organisations without 党员评议."""
    if request.target is not EvaluationTarget.MEMBER or not subject.has_member_roster:
        return
    if not subject.on_member_roster:
        name = (request.member or "").strip()
        raise from_domain(
            ValidationFailed(
                [
                    FieldError(
                        "member",
                        f"“{name}”不在{subject.org.name}的党员名册中：党员评议只能评议本组织党员",
                    )
                ]
            )
        )


def may_open(caller: Caller, target: EvaluationTarget) -> None:
    """Who organises an evaluation: the upper levels, and for a member also the
    organisation's secretary; :class:`Refused` (``forbidden``) otherwise."""
    allowed = SUPERVISOR_ROLES | ({Role.SECRETARY} if target is EvaluationTarget.MEMBER else set())
    if caller.role not in allowed:
        who = "上级党组织" if target is EvaluationTarget.ORGANISATION else "本组织或上级党组织"
        raise Refused("forbidden", f"只有{who}可以组织此项评议")


def evaluation_document(row: EvaluationRow, used: int | None = None) -> dict[str, Any]:
    """An evaluation: status, window, ``used`` votes so far (a count only), the links to
    its slips and public result and, once tallied, the result (``valid`` marks invalid
    ones)."""
    result = EvaluationResult.model_validate(row.result) if row.result is not None else None
    base = f"/api/v1/evaluations/{row.evaluation_id}"
    document: dict[str, Any] = {
        "evaluation_id": row.evaluation_id,
        "round_id": row.round_id,
        "org_id": row.org_id,
        "target": row.target,
        "subject": row.subject,
        "seq": row.seq,
        "status": row.status,
        "issued": {"member": row.issued_members, "non_member": row.issued_non_members},
        "opens_at": row.opens_at,
        "closes_at": row.closes_at,
        "closed_at": row.closed_at,
        "published_at": row.published_at,
        "votes_so_far": used,
        "valid": None if result is None else result.valid,
        "verdict": row.verdict,
        "satisfaction": row.satisfaction,
        "rectification": row.rectification,
        "links": {
            "tokens_html": f"{base}/tokens?format=html",
            "tokens_pdf": f"{base}/tokens?format=pdf",
            "public_results": f"/ballot/results/{row.evaluation_id}",
        },
    }
    if result is not None:
        document["result"] = result.model_dump(mode="json") | {"turnout": result.turnout}
    return document


def visible_evaluation(session: Session, caller: Caller, evaluation_id: str) -> EvaluationRow:
    """The evaluation if ``caller`` covers its organisation; :class:`NotFound` otherwise."""
    row = session.get(EvaluationRow, evaluation_id)
    if row is None:
        raise NotFound(_NO_EVALUATION)
    visible_organisation(session, caller, row.org_id)
    return row


def evaluations_of(
    session: Session, caller: Caller, round_id: str, org_id: str
) -> list[dict[str, Any]]:
    """Every evaluation of the organisation (and its members) in the round, oldest first."""
    visible_organisation(session, caller, org_id)
    rows = session.scalars(
        select(EvaluationRow)
        .where(EvaluationRow.round_id == round_id, EvaluationRow.org_id == org_id)
        .order_by(EvaluationRow.created_at)
    ).all()
    return [evaluation_document(r) for r in rows]


def evaluation(session: Session, caller: Caller, evaluation_id: str) -> dict[str, Any]:
    """Status, window, votes so far (a count only) and, once closed, the tally."""
    row = visible_evaluation(session, caller, evaluation_id)
    used = session.scalar(
        select(func.count()).where(
            BallotTokenRow.evaluation_id == evaluation_id, BallotTokenRow.used.is_(True)
        )
    )
    return evaluation_document(row, used or 0)


def printable(session: Session, caller: Caller, evaluation_id: str) -> EvaluationRow:
    """The evaluation whose slips the organiser prints, while its ballot is open
    (:class:`Conflict` ``window_closed`` afterwards: the tokens are the ballots' keys)."""
    row = visible_evaluation(session, caller, evaluation_id)
    may_open(caller, EvaluationTarget(row.target))
    if row.status not in ("opening", "open"):
        raise Conflict("window_closed", "投票已截止，不再打印选票凭证")
    return row


async def _in_thread(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    return await anyio.to_thread.run_sync(functools.partial(func, *args, **kwargs))


@dataclass(frozen=True)
class Evaluations:
    """The commands with their dependencies: the read model's session factory, the Temporal
    client and the settings (the secret the tokens derive from, the task queue)."""

    sessions: sessionmaker[Session]
    temporal: Client
    settings: Settings

    @classmethod
    def from_services(cls, services: Services) -> Evaluations:
        """The use cases over the bootstrap's services."""
        return cls(
            sessions=services.sessions, temporal=services.temporal, settings=services.settings
        )

    def check_opener(
        self, session: Session, caller: Caller, org_id: str, target: EvaluationTarget
    ) -> None:
        """Scope, then role: what :meth:`open` checks first (a caller may run it first too,
        e.g. so a refusal wins over replaying a stored answer)."""
        visible_organisation(session, caller, org_id)
        may_open(caller, target)

    async def open(
        self, caller: Caller, round_id: str, org_id: str, request: EvaluationRequest
    ) -> dict[str, Any]:
        """Open the ballot: check, store the evaluation and its token hashes, start the
        window's workflow. The answer is the evaluation (no votes yet)."""
        member = (request.member or "").strip() or None
        loaded = await _in_thread(self._load, caller, round_id, org_id, member)
        org, definition = loaded.org, loaded.definition
        may_open(caller, request.target)
        if definition is None:
            raise NotFound("轮次不存在")
        if definition.kicked_off_at is None:
            raise Conflict("not_started", "本轮活动尚未启动，不能开展评议")
        # Before the workflow starts: its result orders rectification on the current phase.
        check_phase(loaded)
        counts, field = rater_counts(request)
        check_member(loaded, request)
        with domain_refusals():
            plan = await _in_thread(parse_plan, definition.plan_yaml)
        rules = plan.evaluation
        problems = check_composition(rules.for_target(request.target), counts, field)
        problems += check_rater_limits(counts, org.member_count, field)
        if problems:
            raise InvalidInput(
                "invalid_composition",
                "评议人员构成不符合计划要求",
                [{"field": e.field, "reason": e.reason} for e in problems],
            )
        try:
            plan.calendar.build().deadline_after(datetime.now(UTC), rules.window)
        except CalendarGap as gap:
            raise from_domain(ValidationFailed([FieldError("window", str(gap))])) from None
        subject = (request.member or "").strip() or org.name
        # The step its published result settles (seed 002's 组织群众评议), if the plan has one.
        step = plan.round(definition.round_plan_id).ballot_step(request.target, org.type)
        evaluation = EvaluationInput(
            evaluation_id=f"ev-{secrets.token_hex(8)}",
            round_id=round_id,
            org_id=org_id,
            org_workflow_id=organisation_workflow_id(round_id, org_id),
            target=request.target,
            subject=subject,
            opened_by=caller.actor,
            rules=rules,
            calendar=plan.calendar,
            step_id=step.id if step is not None else None,
            # The phase a 整改通知 from its result may hold (check_phase: 群众评议); once the
            # organisation has left it, the order is refused.
            phase=Phase(loaded.status.phase) if loaded.status is not None else None,
        )
        try:
            workflow_id = await _in_thread(self._register, caller, evaluation, counts)
        except IntegrityError:
            raise Conflict("evaluation_exists", "该对象本轮已有进行中的评议") from None
        await self._start(evaluation, workflow_id)
        return await _in_thread(self._document, evaluation.evaluation_id)

    def _load(self, caller: Caller, round_id: str, org_id: str, member: str | None) -> _Subject:
        with self.sessions() as session:
            org = visible_organisation(session, caller, org_id)
            members = select(PartyMemberRow.member_id).where(
                PartyMemberRow.org_id == org_id, PartyMemberRow.active.is_(True)
            )
            named = members.where(PartyMemberRow.name == member)
            return _Subject(
                org=org,
                definition=session.get(RoundDefinitionRow, round_id),
                status=session.get(CampaignStatusRow, (round_id, org_id)),
                has_member_roster=session.scalar(members.limit(1)) is not None,
                on_member_roster=member is not None and session.scalar(named.limit(1)) is not None,
            )

    def _register(
        self, caller: Caller, evaluation: EvaluationInput, raters: Mapping[RaterKind, int]
    ) -> str:
        target_key = (
            evaluation.target.value
            if evaluation.target is EvaluationTarget.ORGANISATION
            else f"member/{evaluation.subject}"
        )
        with self.sessions.begin() as session:
            earlier = session.scalars(
                select(EvaluationRow).where(
                    EvaluationRow.round_id == evaluation.round_id,
                    EvaluationRow.org_id == evaluation.org_id,
                    EvaluationRow.target == evaluation.target.value,
                    EvaluationRow.subject == evaluation.subject,
                )
            ).all()
            if any(e.status in (*_LIVE, "published") for e in earlier):
                raise Conflict("evaluation_exists", "该对象本轮已有进行中或已公布的评议")
            seq = len(earlier) + 1
            workflow_id = evaluation_workflow_id(
                evaluation.round_id, evaluation.org_id, target_key, seq
            )
            now = datetime.now(UTC)
            register_evaluation(
                session,
                self.settings.secret_key,
                evaluation=evaluation,
                seq=seq,
                workflow_id=workflow_id,
                raters=raters,
                now=now,
            )
            session.add(
                audit_row(
                    caller,
                    "evaluation_opened",
                    round_id=evaluation.round_id,
                    org_id=evaluation.org_id,
                    detail={
                        "evaluation_id": evaluation.evaluation_id,
                        "target": evaluation.target.value,
                        "subject": evaluation.subject,
                        "issued": {kind.value: n for kind, n in raters.items()},
                    },
                    now=now,
                )
            )
            return workflow_id

    async def _start(self, evaluation: EvaluationInput, workflow_id: str) -> None:
        """Start the window's workflow; if it cannot start, take the evaluation back out."""
        try:
            with workflow_calls.temporal_trouble("start_evaluation", workflow_id):
                handle = await self.temporal.start_workflow(
                    EvaluationWorkflow.run,
                    evaluation,
                    id=workflow_id,
                    task_queue=self.settings.task_queue,
                )
                await handle.execute_update(EvaluationWorkflow.opened)
        except Exception:
            await _in_thread(self._take_back, evaluation.evaluation_id)
            raise

    def _take_back(self, evaluation_id: str) -> None:
        with self.sessions.begin() as session:
            session.query(BallotTokenRow).filter_by(evaluation_id=evaluation_id).delete()
            session.query(EvaluationRow).filter_by(evaluation_id=evaluation_id).delete()

    def _document(self, evaluation_id: str) -> dict[str, Any]:
        with self.sessions() as session:
            row = session.get(EvaluationRow, evaluation_id)
            assert row is not None  # registered above, in this request
            return evaluation_document(row, 0)

    async def close(self, caller: Caller, evaluation_id: str) -> dict[str, Any]:
        """The organiser closes the ballot now (the meeting is over); tallying follows. The
        answer is the evaluation's ``stage``."""
        row = await _in_thread(self._closable, caller, evaluation_id)
        status = await workflow_calls.update(
            self.temporal,
            row.workflow_id,
            "close_now",
            CloseNow(actor=caller.actor),
            EvaluationStatus,
        )
        await _in_thread(self._audit_close, caller, row, status.stage.value)
        return {"evaluation_id": evaluation_id, "stage": status.stage.value}

    def _closable(self, caller: Caller, evaluation_id: str) -> EvaluationRow:
        with self.sessions() as session:
            row = visible_evaluation(session, caller, evaluation_id)
            may_open(caller, EvaluationTarget(row.target))
            return row

    def _audit_close(self, caller: Caller, row: EvaluationRow, stage: str) -> None:
        with self.sessions.begin() as session:
            session.add(
                audit_row(
                    caller,
                    "evaluation_closed",
                    round_id=row.round_id,
                    org_id=row.org_id,
                    detail={"evaluation_id": row.evaluation_id, "stage": stage},
                )
            )
