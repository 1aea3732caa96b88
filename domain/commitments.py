"""公开承诺 as a procedure: a commitment's life and the rules each move must satisfy.

承诺 (record, drafted) → 审诺 (submitted; the upper level approves or returns it with a
reason) → 公示/亮诺 (published for a notice period counted in PRC working days) → 践诺
(fulfilment ledger entries with evidence) → 评诺 (a review verdict at leadership review or
evaluation). The moves are declared as data for one shared ``transitions`` machine, like
:mod:`domain.machine`; everything else is plain rules that raise Chinese, field-naming
errors. Coverage — every rostered member has a commitment or a recorded reason for absence —
is computed here and also enforced by the workflow's evidence guard
(:func:`domain.evidence._check_commitments`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from transitions import Machine, MachineError

from domain.calendar import WorkingCalendar, end_of_day, local_date, require_aware
from domain.errors import DomainError, FieldError, ValidationFailed
from domain.text import free_text_problem

#: 公示 lasts this many working days unless the publisher says otherwise.
DEFAULT_NOTICE_WORKING_DAYS = 5
MAX_NOTICE_WORKING_DAYS = 30
MAX_ITEMS = 20
MAX_TEXT = 2000


class CommitmentKind(StrEnum):
    """Whose commitment: the organisation's own or one member's."""

    ORGANISATION = "organisation"
    MEMBER = "member"

    @property
    def label(self) -> str:
        """Chinese label."""
        return {"organisation": "党组织承诺", "member": "党员承诺"}[self.value]


class CommitmentStatus(StrEnum):
    """Where a commitment stands."""

    DRAFTED = "drafted"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    RETURNED = "returned"
    PUBLISHED = "published"
    REVIEWED = "reviewed"

    @property
    def label(self) -> str:
        """Chinese label."""
        return {
            "drafted": "草拟",
            "submitted": "待审诺",
            "approved": "审诺通过",
            "returned": "已退回",
            "published": "已公示",
            "reviewed": "已评诺",
        }[self.value]

    @property
    def counts_for_coverage(self) -> bool:
        """A commitment counts once it went to the upper level and was not sent back."""
        return self not in (CommitmentStatus.DRAFTED, CommitmentStatus.RETURNED)


class Verdict(StrEnum):
    """评诺: how far a commitment was kept."""

    FULFILLED = "fulfilled"
    PARTLY = "partly"
    UNFULFILLED = "unfulfilled"

    @property
    def label(self) -> str:
        """Chinese label."""
        return {"fulfilled": "已兑现", "partly": "部分兑现", "unfulfilled": "未兑现"}[self.value]


class ReviewOccasion(StrEnum):
    """When 评诺 happens: at the leadership review or at the public evaluation."""

    LEADERSHIP_REVIEW = "leadership_review"
    PUBLIC_EVALUATION = "public_evaluation"

    @property
    def label(self) -> str:
        """Chinese label."""
        return {"leadership_review": "领导点评", "public_evaluation": "群众评议"}[self.value]


_S = CommitmentStatus
COMMITMENT_TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "revise", "source": [_S.DRAFTED, _S.RETURNED], "dest": _S.DRAFTED},
    {"trigger": "submit", "source": [_S.DRAFTED, _S.RETURNED], "dest": _S.SUBMITTED},
    {"trigger": "approve", "source": _S.SUBMITTED, "dest": _S.APPROVED},
    {"trigger": "return_commitment", "source": _S.SUBMITTED, "dest": _S.RETURNED},
    {"trigger": "publish", "source": _S.APPROVED, "dest": _S.PUBLISHED},
    # Reviewed twice at most in practice (点评, then 评议); the later verdict is the current one.
    {"trigger": "review", "source": [_S.PUBLISHED, _S.REVIEWED], "dest": _S.REVIEWED},
]

# The refusal of each move when the commitment is in the wrong state ({} = the state's label).
_REFUSALS: dict[str, str] = {
    "revise": "承诺{}，不能再修改",
    "submit": "承诺{}，不能提交审诺",
    "approve": "承诺{}，没有待审诺的内容",
    "return_commitment": "承诺{}，没有待审诺的内容",
    "publish": "承诺{}，审诺通过后才能公示",
    "review": "承诺{}，公示后才能评诺",
}

COMMITMENT_MACHINE = Machine(
    model=None,
    states=list(CommitmentStatus),
    transitions=COMMITMENT_TRANSITIONS,
    initial=None,
    auto_transitions=False,
    model_attribute="status",
)


@dataclass
class _Model:
    status: CommitmentStatus


def move(status: CommitmentStatus, trigger: str) -> CommitmentStatus:
    """The status after ``trigger``, or a :class:`DomainError` (``invalid_transition``)."""
    model = _Model(CommitmentStatus(status))
    try:
        COMMITMENT_MACHINE.events[trigger].trigger(model)
    except MachineError as exc:
        reason = _REFUSALS[trigger].format(f"当前为“{model.status.label}”")
        raise DomainError(reason, code="invalid_transition") from exc
    return model.status


@dataclass(frozen=True)
class ItemDraft:
    """One concrete commitment item (承诺事项) and the day it is to be kept."""

    content: str
    due: date


def check_commitment(content: str, items: Sequence[ItemDraft], *, today: date) -> None:
    """Refuse an empty or vague commitment: it needs words, items, and future due dates.
    Words are counted as a reader sees them (:func:`domain.text.free_text_problem`):
    zero-width characters are no content, and direction overrides are refused."""
    errors: list[FieldError] = []
    if problem := free_text_problem(content, short="承诺内容不能为空"):
        errors.append(FieldError(field="content", reason=problem))
    elif len(content) > MAX_TEXT:
        errors.append(FieldError(field="content", reason=f"承诺内容不能超过{MAX_TEXT}字"))
    if not items:
        errors.append(FieldError(field="items", reason="至少应有一项具体承诺事项及兑现日期"))
    elif len(items) > MAX_ITEMS:
        errors.append(FieldError(field="items", reason=f"承诺事项不能超过{MAX_ITEMS}项"))
    for index, item in enumerate(items):
        if problem := free_text_problem(item.content, short="承诺事项不能为空"):
            errors.append(FieldError(field=f"items[{index}].content", reason=problem))
        if item.due < today:
            errors.append(
                FieldError(field=f"items[{index}].due", reason=f"兑现日期不能早于今天（{today}）")
            )
    if errors:
        raise ValidationFailed(errors)


def require_reason(reason: str, action: str, *, field: str = "reason") -> str:
    """The trimmed reason, or a refusal saying ``action`` needs one (a reason of spaces or
    zero-width characters is none); one with a direction override is refused as invalid."""
    missing = f"{action}须说明理由"
    problem = free_text_problem(reason, short=missing)
    if problem is not None:
        code = "reason_required" if problem == missing else "invalid"
        raise DomainError(problem, code=code, field=field)
    return reason.strip()


def check_optional_text(text: str, field: str) -> str:
    """Free text that may be left empty (an approval's comment, a 已兑现 verdict's): the
    trimmed text, or a refusal (``invalid``) when it holds a direction override or a control
    character (:func:`domain.text.free_text_problem`)."""
    problem = free_text_problem(text, minimum=0)
    if problem is not None:
        raise DomainError(problem, code="invalid", field=field)
    return text.strip()


def notice_ends(published_at: datetime, working_days: int, calendar: WorkingCalendar) -> datetime:
    """End of 公示: the end of the ``working_days``-th working day after publication."""
    if not 1 <= working_days <= MAX_NOTICE_WORKING_DAYS:
        raise DomainError(
            f"公示期应为 1–{MAX_NOTICE_WORKING_DAYS} 个工作日",
            code="invalid",
            field="notice_working_days",
        )
    day = calendar.add_working_days(local_date(published_at), working_days)
    return end_of_day(day)


def is_public(published_at: datetime | None, now: datetime) -> bool:
    """Whether the public may see a commitment: from its publication on, never before."""
    return published_at is not None and require_aware(published_at) <= require_aware(now)


def is_file_ref(value: object) -> bool:
    """An uploaded file reference ``{name, sha256}`` (sha256 as 64 lowercase hex digits)."""
    if not isinstance(value, Mapping) or not value.get("name"):
        return False
    digest = str(value.get("sha256", ""))
    return len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)


def check_fulfilment(
    status: CommitmentStatus, *, fulfilled_on: date, description: str, evidence: object, today: date
) -> None:
    """践诺: only a published commitment, a day not in the future, words and a file."""
    if status not in (CommitmentStatus.PUBLISHED, CommitmentStatus.REVIEWED):
        raise DomainError(
            f"承诺当前为“{status.label}”，公示后才能登记践诺", code="invalid_transition"
        )
    errors: list[FieldError] = []
    if fulfilled_on > today:
        errors.append(FieldError(field="fulfilled_on", reason=f"兑现日期不能晚于今天（{today}）"))
    if problem := free_text_problem(description, short="请填写兑现情况"):
        errors.append(FieldError(field="description", reason=problem))
    if not is_file_ref(evidence):
        errors.append(FieldError(field="evidence", reason="应为已上传的文件（含 name 与 sha256）"))
    if errors:
        raise ValidationFailed(errors)


def check_review(verdict: Verdict, comment: str) -> None:
    """评诺: a verdict short of 已兑现 must say what is missing."""
    if verdict is not Verdict.FULFILLED:
        require_reason(comment, f"评定为“{verdict.label}”", field="comment")
    else:
        check_optional_text(comment, "comment")


@dataclass(frozen=True)
class Coverage:
    """Who on the roster is covered by a commitment, excused with a reason, or neither."""

    members: tuple[str, ...]
    committed: frozenset[str]
    excused: frozenset[str]

    @property
    def uncovered(self) -> tuple[str, ...]:
        """Rostered members with neither a commitment nor a reason, in roster order."""
        return tuple(m for m in self.members if m not in self.committed | self.excused)

    @property
    def covered(self) -> int:
        """How many distinct members are committed or excused."""
        return len(self.committed | self.excused)


def coverage(members: Iterable[str], committed: Iterable[str], excused: Iterable[str]) -> Coverage:
    """Coverage of ``members`` (ids or names) by commitments and recorded absences."""
    return Coverage(tuple(dict.fromkeys(members)), frozenset(committed), frozenset(excused))


def describe_uncovered(names: Sequence[str], *, shown: int = 5) -> str:
    """Chinese wording naming the first few uncovered members."""
    listed = "、".join(f"“{n}”" for n in names[:shown])
    more = f"等 {len(names)} 人" if len(names) > shown else ""
    return f"党员{listed}{more}既未作出承诺也未登记缺席理由"


@dataclass(frozen=True)
class RosteredCommitment:
    """A member's counted commitment as the workflow's evidence carries it."""

    member_id: str
    name: str
    content: str
    due: date


def step_evidence(
    members: Sequence[tuple[str, str]],
    commitments: Sequence[RosteredCommitment],
    absences: Sequence[tuple[str, str]],
) -> dict[str, Any]:
    """The ``member_commitments`` evidence value: the roster snapshot (member ids), every
    counted commitment and every recorded absence, so the workflow's guard checks coverage
    against the real roster rather than a number the secretary typed."""
    names = dict(members)
    return {
        "members": [member_id for member_id, _ in members],
        "commitments": [
            {"member": c.member_id, "name": c.name, "content": c.content, "due": c.due.isoformat()}
            for c in commitments
        ],
        "absences": [
            {"member": member_id, "name": names.get(member_id, ""), "reason": reason}
            for member_id, reason in absences
        ],
    }


__all__ = [
    "COMMITMENT_TRANSITIONS",
    "DEFAULT_NOTICE_WORKING_DAYS",
    "CommitmentKind",
    "CommitmentStatus",
    "Coverage",
    "ItemDraft",
    "ReviewOccasion",
    "RosteredCommitment",
    "Verdict",
    "check_commitment",
    "check_fulfilment",
    "check_optional_text",
    "check_review",
    "coverage",
    "describe_uncovered",
    "is_file_ref",
    "is_public",
    "move",
    "notice_ends",
    "require_reason",
    "step_evidence",
]
