"""Load a plan from YAML text into typed models; every error names its field and reason."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, time
from typing import Any

import yaml
from pydantic import ValidationError

from domain.actions import CalendarUpdate
from domain.calendar import SHANGHAI, CalendarGap, deadline_day
from domain.errors import FieldError, PlanError
from domain.phases import Phase
from domain.plan import CalendarPlan, CampaignPlan
from domain.schedule import RoundSchedule, reresolve_round, resolve_round
from domain.state import Actor

# pydantic's English messages, in the words a county office clerk reads.
_REASONS: dict[str, str] = {
    "missing": "缺少必填项",
    "extra_forbidden": "不认识的字段（请检查拼写）",
    "date_from_datetime_parsing": "日期格式应为 YYYY-MM-DD",
    "date_parsing": "日期格式应为 YYYY-MM-DD",
    "date_type": "应为日期（YYYY-MM-DD）",
    "int_parsing": "应为整数",
    "int_type": "应为整数",
    "int_from_float": "应为整数",
    "float_parsing": "应为数字",
    "float_type": "应为数字",
    "bool_parsing": "应为 true 或 false",
    "bool_type": "应为 true 或 false",
    "string_type": "应为文本",
    "string_too_short": "不能为空",
    "string_pattern_mismatch": "只能使用小写字母、数字、下划线和连字符",
    "list_type": "应为列表",
    "tuple_type": "应为列表",
    "dict_type": "应为映射（键: 值）",
    "model_type": "应为映射（键: 值）",
    "too_short": "项数不足",
    "greater_than": "数值过小",
    "greater_than_equal": "数值过小",
    "less_than_equal": "数值过大",
    "less_than": "数值过大",
    "finite_number": "应为有限的数字",
    "int_parsing_size": "数值过大",
    "too_long": "项数过多",
    "string_too_long": "文本过长",
    "string_unicode": "应为文本",
    "set_type": "应为列表",
    "frozen_set_type": "应为列表",
    "set_item_not_hashable": "列表项应为文本或数字",
    "invalid_key": "键应为文本",
    "decimal_type": "应为数字",
    "decimal_parsing": "应为数字",
    "decimal_max_digits": "数字位数过多",
    "decimal_max_places": "小数位数过多",
    "decimal_whole_digits": "整数部分位数过多",
    "time_type": "应为时间（HH:MM）",
    "time_parsing": "时间格式应为 HH:MM",
    "datetime_type": "应为日期时间",
    "datetime_parsing": "日期时间格式无效",
    "datetime_from_date_parsing": "日期时间格式无效",
    "date_from_datetime_inexact": "应为日期（YYYY-MM-DD），不带时间",
    "time_delta_type": "应为时长",
    "time_delta_parsing": "时长格式无效",
    "timezone_naive": "不应带时区",
    "timezone_aware": "应带时区",
    "union_tag_invalid": "类型取值无效",
    "union_tag_not_found": "缺少类型字段",
    "recursion_loop": "嵌套层数过深",
    "recursion_depth_exceeded": "嵌套层数过深",
}


def _path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts) or "(plan)"


def _reason(error: Any) -> str:
    kind = error["type"]
    if kind == "enum":
        expected = error.get("ctx", {}).get("expected", "")
        return f"取值必须是 {expected} 之一"
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    if kind == "literal_error":
        return f"取值必须是 {error.get('ctx', {}).get('expected', '')} 之一"
    # A kind not translated above still reaches a clerk in Chinese, pydantic's words after.
    return _REASONS.get(kind, f"取值无效（{error['msg']}）")


def field_errors(exc: ValidationError, *, prefix: str = "") -> list[FieldError]:
    """Translate a pydantic error into field errors with dotted paths and Chinese reasons."""
    errors: list[FieldError] = []
    for error in exc.errors():
        # Drop pydantic's internal tags (e.g. function-after) from the location.
        loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and "[" in p))
        path = _path(loc)
        errors.append(
            FieldError(field=f"{prefix}{path}" if prefix else path, reason=_reason(error))
        )
    return errors


def _parse_yaml(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except ValueError as exc:  # PyYAML raises a bare ValueError for dates like 2010-02-30
        raise PlanError([FieldError(field="(yaml)", reason=f"日期或数值无效：{exc}")]) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"第{mark.line + 1}行第{mark.column + 1}列" if mark is not None else "未知位置"
        raise PlanError([FieldError(field="(yaml)", reason=f"YAML 格式错误（{where}）")]) from exc
    except (AttributeError, TypeError, OverflowError, KeyError, IndexError) as exc:
        # PyYAML's constructors trust their tags: "!!timestamp" on a non-date is an
        # AttributeError, a year past 9999 an OverflowError. Bad input, not a server error.
        raise PlanError(
            [FieldError(field="(yaml)", reason="YAML 内容无效（标签与取值不符）")]
        ) from exc
    except RecursionError:
        # PyYAML's parser recurses once per nesting level: "a: [[[[…" a few hundred deep
        # (a 2 KB upload) would otherwise be an unhandled error, a 500.
        raise PlanError([FieldError(field="(yaml)", reason="嵌套层数过深")]) from None


def load_plan(
    text: str,
    *,
    supplement: CalendarPlan | None = None,
    calendars: Mapping[str, CalendarPlan] | None = None,
) -> CampaignPlan:
    """Parse and validate a plan; check every round's deadlines against the calendar.

    The plan's calendar is what the plan itself supplies plus the ``chinese-calendar``
    package. ``calendars`` are the supplementary calendar files available by name (e.g.
    ``{"2027-provisional": ...}``): only those the plan names in ``calendar.include`` are
    merged in. ``supplement`` is one the caller chose explicitly (the CLI's
    ``--calendar``).
    """
    data = _parse_yaml(text)
    if not isinstance(data, dict):
        raise PlanError([FieldError(field="(plan)", reason="计划文件应为一个映射（键: 值）")])
    try:
        plan = CampaignPlan.model_validate(data)
    except ValidationError as exc:
        raise PlanError(field_errors(exc)) from exc
    calendar = _with_includes(plan.calendar, calendars or {})
    if supplement is not None:
        calendar = calendar.merged(supplement)
    if calendar != plan.calendar:
        plan = plan.model_copy(update={"calendar": calendar})
    check_calendar(plan)
    return plan


def _with_includes(calendar: CalendarPlan, available: Mapping[str, CalendarPlan]) -> CalendarPlan:
    """The plan's calendar with the supplementary files it names merged in."""
    errors: list[FieldError] = []
    merged = calendar
    for index, name in enumerate(calendar.include):
        chosen = available.get(name)
        if chosen is None:
            known = "、".join(sorted(available)) or "无"
            errors.append(
                FieldError(
                    field=f"calendar.include[{index}]",
                    reason=f"没有补充日历 {name}（可选：{known}）",
                )
            )
            continue
        merged = merged.merged(chosen)
    if errors:
        raise PlanError(errors)
    return merged


def load_calendar(text: str) -> CalendarPlan:
    """Parse a supplementary calendar file (the plan's ``calendar`` section on its own)."""
    data = _parse_yaml(text)
    try:
        return CalendarPlan.model_validate(data)
    except ValidationError as exc:
        raise PlanError(field_errors(exc, prefix="calendar.")) from exc


def check_calendar(plan: CampaignPlan) -> None:
    """Refuse a plan whose rounds, at their own start dates, reach a year with no data, or
    end their commendation on or after the day the plan's ``commendation.deadline_before``
    names (seed 002: 七一)."""
    errors: list[FieldError] = []
    for index, round_plan in enumerate(plan.rounds):
        start = datetime.combine(round_plan.starts_on, time(0), SHANGHAI)
        try:
            schedule = resolve_round(plan, round_plan, start)
            errors.extend(_commendation_deadline(plan, index, schedule))
        except CalendarGap as gap:
            errors.append(FieldError(field=f"rounds[{index}]", reason=str(gap)))
        except PlanError as exc:
            errors.extend(
                FieldError(field=f"rounds[{index}].{e.field}", reason=e.reason) for e in exc.errors
            )
    if errors:
        raise PlanError(errors)


def _commendation_deadline(
    plan: CampaignPlan, index: int, schedule: RoundSchedule
) -> list[FieldError]:
    """The commendation phase's deadline against ``commendation.deadline_before``."""
    if plan.commendation is None or plan.commendation.deadline_before is None:
        return []
    day = deadline_day(schedule.window(Phase.COMMENDATION).deadline)
    limit = plan.commendation.deadline_limit(day.year)
    if limit is None or day < limit:
        return []
    position = [p.phase for p in plan.rounds[index].phases].index(Phase.COMMENDATION)
    return [
        FieldError(
            field=f"rounds[{index}].phases[{position}]",
            reason=(
                f"评选表彰阶段截止于{day.isoformat()}，计划要求在{limit.isoformat()}前完成"
                f"（commendation.deadline_before: {plan.commendation.deadline_before}）"
            ),
        )
    ]


def resolve_kickoff(
    plan: CampaignPlan,
    round_plan_id: str,
    kicked_off_at: datetime,
    *,
    field: str = "starts_at",
) -> RoundSchedule:
    """The round's schedule for a kick-off at ``kicked_off_at`` (:func:`resolve_round`), or
    a :class:`PlanError` naming ``field`` and, for a calendar gap, the year: what the API
    answers with 422 at round creation and kick-off, and the CLI prints, before any
    workflow starts."""
    try:
        round_plan = plan.round(round_plan_id)
    except KeyError:
        raise PlanError([FieldError(field="round_plan_id", reason="计划中没有该轮次")]) from None
    try:
        return resolve_round(plan, round_plan, kicked_off_at)
    except CalendarGap as gap:
        raise PlanError([FieldError(field=field, reason=str(gap))]) from None
    except PlanError as exc:
        # E.g. a plan with absolute dates kicked off on another day: the start is at fault.
        raise PlanError([FieldError(field=field, reason=e.reason) for e in exc.errors]) from None


def calendar_update(
    plan: CampaignPlan,
    round_plan_id: str,
    kicked_off_at: datetime,
    published: CalendarPlan,
    *,
    update_id: str,
    actor: Actor,
    reason: str,
    field: str = "calendar",
) -> CalendarUpdate:
    """The round action that applies newly ``published`` calendar data to a running round
    kicked off at ``kicked_off_at``: its windows re-resolved from the same date and the new
    pinned calendar (:func:`domain.schedule.reresolve_round`). A year still without data is
    a :class:`PlanError` on ``field`` naming the year."""
    try:
        round_plan = plan.round(round_plan_id)
    except KeyError:
        raise PlanError([FieldError(field="round_plan_id", reason="计划中没有该轮次")]) from None
    try:
        schedule = reresolve_round(plan, round_plan, kicked_off_at, published)
    except CalendarGap as gap:
        raise PlanError([FieldError(field=field, reason=str(gap))]) from None
    except PlanError as exc:
        raise PlanError([FieldError(field=field, reason=e.reason) for e in exc.errors]) from None
    if schedule.calendar is None:
        raise PlanError([FieldError(field=field, reason="本轮按分钟计时，不使用节假日日历")])
    return CalendarUpdate(
        update_id=update_id,
        calendar=schedule.calendar,
        windows=schedule.windows,
        actor=actor,
        reason=reason,
    )
