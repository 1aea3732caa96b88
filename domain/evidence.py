"""Check submitted evidence against a step's field rules; every problem names its field."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

from domain.calendar import deadline_day, local_date
from domain.commitments import coverage, describe_uncovered
from domain.errors import FieldError
from domain.plan import EvidenceField, FieldKind, StepPlan
from domain.text import TextRefused, clean_name, is_blank, refusal, visible_length

BALLOT_KEYS: tuple[str, ...] = (
    "satisfied",
    "fairly_satisfied",
    "basically_satisfied",
    "unsatisfied",
)


def _as_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return None
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    return None


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    # isdecimal, not isdigit: "²" and "①" are digits that int() refuses (a 409 with Python's
    # own message once); full-width "４０" is decimal and reads as 40.
    if isinstance(value, str) and value.strip().lstrip("-").isdecimal():
        return int(value.strip())
    return None


def phase_window(
    opens_at: datetime, deadline: datetime, opened_at: datetime | None = None
) -> tuple[date, date]:
    """The days a ``within_phase`` date may fall on: from the day the organisation actually
    entered the phase (``opened_at``; one that finished the previous phase early enters
    before the planned opening ``opens_at``, one that finished it late enters after) to the
    deadline's day. Without ``opened_at`` (a record from before it was kept), or for a phase
    entered only after its deadline's day (the window would be empty), from the planned
    opening's day."""
    first_day, last_day = local_date(opens_at), deadline_day(deadline)
    if opened_at is not None and local_date(opened_at) <= last_day:
        first_day = local_date(opened_at)
    return first_day, last_day


class _Context:
    """What rules compare against: the organisation's size, the phase window and, for the
    admission rule on dates, today (None: no date is refused for being in the future)."""

    def __init__(
        self,
        member_count: int,
        window: tuple[date, date],
        today: date | None,
    ) -> None:
        self.member_count = member_count
        self.first_day, self.last_day = window
        self.today = today


def _check_date(spec: EvidenceField, value: Any, ctx: _Context) -> str | None:
    day = _as_date(value)
    if day is None:
        return "应为日期，格式 YYYY-MM-DD"
    if ctx.today is not None and day > ctx.today:
        return f"不能晚于今天（{ctx.today.isoformat()}）"
    if spec.within_phase and not (ctx.first_day <= day <= ctx.last_day):
        return f"应在本阶段期间（{ctx.first_day} 至 {ctx.last_day}）"
    return None


def _check_integer(spec: EvidenceField, value: Any, ctx: _Context) -> str | None:
    number = _as_int(value)
    if number is None:
        return "应为整数"
    if spec.min is not None and number < spec.min:
        return f"不能少于 {spec.min:g}"
    if spec.max is not None and number > spec.max:
        return f"不能多于 {spec.max:g}"
    if (
        spec.max_share_of_members is not None
        and number > ctx.member_count * spec.max_share_of_members
    ):
        return f"为 {number}，超过本组织党员人数 {ctx.member_count}"
    if (
        spec.min_share_of_members is not None
        and number < ctx.member_count * spec.min_share_of_members
    ):
        share = round(spec.min_share_of_members * 100)
        return f"为 {number}，不足党员人数 {ctx.member_count} 的 {share}%"
    return None


def _check_text(spec: EvidenceField, value: Any, ctx: _Context) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return "应为非空文本"
    if spec.min_length is not None and len(value.strip()) < spec.min_length:
        return f"内容过短，至少 {spec.min_length} 字"
    return None


def _check_document(spec: EvidenceField, value: Any, ctx: _Context) -> str | None:
    if isinstance(value, Mapping) and value.get("name") and value.get("sha256"):
        digest = str(value["sha256"])
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            return "文件摘要（sha256）格式不正确"
        return None
    return "应为已上传的文件（含 name 与 sha256）"


def _check_people(spec: EvidenceField, value: Any, ctx: _Context) -> str | None:
    if not isinstance(value, list) or not all(isinstance(p, str) and p.strip() for p in value):
        return "应为人员姓名列表"
    if spec.min_items is not None and len(value) < spec.min_items:
        return f"至少 {spec.min_items} 人"
    if len(set(value)) != len(value):
        return "人员重复"
    return None


def _commitment_entries(value: list[Any]) -> tuple[set[str], str | None]:
    """The members committed in a ``[{member, content, due}]`` list, or the first problem."""
    members: set[str] = set()
    for index, item in enumerate(value, start=1):
        if not isinstance(item, Mapping):
            return members, f"第{index}条应包含 member、content、due"
        if not str(item.get("member", "")).strip() or not str(item.get("content", "")).strip():
            return members, f"第{index}条缺少承诺人或承诺内容"
        if _as_date(item.get("due")) is None:
            return members, f"第{index}条的兑现日期（due）应为 YYYY-MM-DD"
        members.add(str(item["member"]).strip())
    return members, None


def _absences(value: Any) -> tuple[set[str], str | None]:
    """The members excused in a ``[{member, reason}]`` list, or the first problem."""
    if not isinstance(value, list):
        return set(), "的缺席登记（absences）应为列表"
    excused: set[str] = set()
    for index, item in enumerate(value, start=1):
        if not isinstance(item, Mapping) or not str(item.get("member", "")).strip():
            return excused, f"第{index}条缺席登记应包含 member 与 reason"
        member = str(item["member"]).strip()
        if not str(item.get("reason") or "").strip():
            return excused, f"中缺席党员“{member}”未说明理由"
        excused.add(member)
    return excused, None


def _roster_problem(value: Mapping[str, Any], committed: set[str]) -> tuple[set[str], str | None]:
    """With a roster snapshot: everyone on it is committed or excused, nobody else is."""
    roster = value.get("members")
    if not isinstance(roster, list) or not all(isinstance(m, str) and m.strip() for m in roster):
        return set(), "的党员名册（members）应为党员姓名或编号列表"
    names = [m.strip() for m in roster]
    duplicates = sorted({m for m in names if names.count(m) > 1})
    if duplicates:
        return set(), f"的党员名册（members）中“{duplicates[0]}”重复"
    excused, problem = _absences(value.get("absences", []))
    if problem is not None:
        return set(), problem
    strangers = sorted((committed | excused) - set(names))
    if strangers:
        return set(), f"中“{strangers[0]}”不在党员名册中"
    both = sorted(committed & excused)
    if both:
        return set(), f"中“{both[0]}”既有承诺又登记了缺席"
    covered = coverage(names, committed, excused)
    if covered.uncovered:
        return set(), "中" + describe_uncovered(covered.uncovered)
    return committed | excused, None


def _check_commitments(spec: EvidenceField, value: Any, ctx: _Context) -> str | None:
    # Two shapes: the original bare list of commitments, and (from the commitment ledger)
    # {"members": roster snapshot, "commitments": [...], "absences": [{member, reason}]}, in
    # which an absence with a reason covers its member like a commitment does.
    with_roster = isinstance(value, Mapping)
    entries = value.get("commitments", []) if isinstance(value, Mapping) else value
    if not isinstance(entries, list):
        return "应为党员承诺列表，或含 members、commitments、absences 的对象"
    members, problem = _commitment_entries(entries)
    if problem is None and isinstance(value, Mapping):
        members, problem = _roster_problem(value, members)
    if problem is not None:
        return problem
    if spec.coverage_of_members is not None:
        needed = math.ceil(ctx.member_count * spec.coverage_of_members - 1e-9)
        if len(members) < needed:
            done = "作出承诺或登记缺席理由" if with_roster else "作出承诺"
            return f"仅 {len(members)} 名党员{done}，应至少 {needed} 名"
    return None


def _check_ballots(spec: EvidenceField, value: Any, ctx: _Context) -> str | None:
    if not isinstance(value, Mapping) or set(value) != set(BALLOT_KEYS):
        return "应给出 满意/比较满意/基本满意/不满意 四项票数"
    counts = [_as_int(value[k]) for k in BALLOT_KEYS]
    if any(c is None or c < 0 for c in counts):
        return "票数应为非负整数"
    if sum(c or 0 for c in counts) == 0:
        return "有效票数为 0"
    return None


def _check_scores(spec: EvidenceField, value: Any, ctx: _Context) -> str | None:
    if not isinstance(value, Mapping) or not value:
        return "应为“项目: 分数”的映射"
    for item, score in value.items():
        if isinstance(score, bool) or not isinstance(score, int | float):
            return f"“{item}”的分数应为数字"
        too_low = spec.min is not None and score < spec.min
        if too_low or (spec.max is not None and score > spec.max):
            return f"“{item}”的分数超出范围"
    return None


def _check_choice(spec: EvidenceField, value: Any, ctx: _Context) -> str | None:
    assert spec.choices is not None
    chosen = value if isinstance(value, list) else [value]
    if not chosen or any(c not in spec.choices for c in chosen):
        return f"应从 {'、'.join(spec.choices)} 中选择"
    return None


_CHECKS: dict[FieldKind, Callable[[EvidenceField, Any, _Context], str | None]] = {
    FieldKind.DATE: _check_date,
    FieldKind.INTEGER: _check_integer,
    FieldKind.TEXT: _check_text,
    FieldKind.DOCUMENT: _check_document,
    FieldKind.PEOPLE: _check_people,
    FieldKind.MEMBER_COMMITMENTS: _check_commitments,
    FieldKind.BALLOTS: _check_ballots,
    FieldKind.SCORES: _check_scores,
    FieldKind.CHOICE: _check_choice,
}


def invisible_text_problems(step: StepPlan, values: Mapping[str, Any]) -> list[FieldError]:
    """Text and people fields of ``values`` that are blank or too short once invisible
    characters (zero-width spaces, joiners) are left out, or that name one person twice;
    and any text carrying a direction override or a control character (``张三\u202e``
    displays reversed what follows it: a reader would not see what was submitted)."""
    errors: list[FieldError] = []
    for spec in step.evidence:
        value = values.get(spec.name)
        where = f"evidence.{spec.name}"
        hidden = _hidden_text(value)
        if hidden is not None:
            errors.append(FieldError(where, f"{spec.label}{hidden}"))
            continue
        if spec.kind is FieldKind.TEXT and isinstance(value, str) and value:
            if is_blank(value):
                errors.append(FieldError(where, f"{spec.label}不能只含空白或不可见字符"))
            elif spec.min_length is not None and visible_length(value) < spec.min_length:
                errors.append(FieldError(where, f"{spec.label}不少于 {spec.min_length} 个字"))
        elif spec.kind is FieldKind.PEOPLE and isinstance(value, list):
            try:
                names = [clean_name(p) for p in value if isinstance(p, str)]
            except TextRefused as refused:
                errors.append(FieldError(where, f"{spec.label}：{refused}"))
                continue
            if any(not n for n in names):
                errors.append(FieldError(where, f"{spec.label}中有空白或不可见字符的姓名"))
            elif len(set(names)) != len(names):
                errors.append(FieldError(where, f"{spec.label}人员重复"))
    return errors


def _hidden_text(value: Any) -> str | None:
    """Why text somewhere in an evidence value (a string, or the strings of a list or a
    mapping: names, member commitments) is refused as :func:`domain.text.refusal` says."""
    if isinstance(value, str):
        return refusal(value)
    if isinstance(value, Mapping):
        value = [*value.keys(), *value.values()]
    if isinstance(value, list):
        for item in value:
            reason = _hidden_text(item)
            if reason is not None:
                return reason
    return None


def validate_evidence(
    step: StepPlan,
    values: Mapping[str, Any],
    *,
    member_count: int,
    opens_at: datetime,
    deadline: datetime,
    opened_at: datetime | None = None,
    today: date | None = None,
) -> list[FieldError]:
    """All problems with ``values`` for ``step``; an empty list means the evidence is valid.

    A ``within_phase`` date falls in :func:`phase_window` (from the actual opening
    ``opened_at`` when given, else the planned ``opens_at``, to the deadline's day); with
    ``today`` (the Asia/Shanghai date of the workflow's time), no date is later than today:
    evidence records what has happened."""
    ctx = _Context(member_count, phase_window(opens_at, deadline, opened_at), today)
    known = {f.name for f in step.evidence}
    errors = [
        FieldError(field=f"evidence.{name}", reason="本步骤不需要此项")
        for name in values
        if name not in known
    ]
    for spec in step.evidence:
        value = values.get(spec.name)
        if value is None or value == "" or value == []:
            if spec.required:
                errors.append(
                    FieldError(field=f"evidence.{spec.name}", reason=f"请填写{spec.label}")
                )
            continue
        problem = _CHECKS[spec.kind](spec, value, ctx)
        if problem is not None:
            errors.append(
                FieldError(field=f"evidence.{spec.name}", reason=f"{spec.label}{problem}")
            )
    return errors
