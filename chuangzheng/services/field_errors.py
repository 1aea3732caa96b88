"""pydantic's validation errors as ``{field, reason}`` with Chinese reasons: the one
translation the services and the API share (``api.errors`` answers a malformed request body
with it, each service a malformed form or body), so no English ``msg`` reaches a user.

A service names the field in Chinese too: the model's field ``description`` (every request
model gives one, for the OpenAPI document) leads the reason, e.g. ``抽查比例（0–1）：数值过大，
最大为 1``; ``field`` stays the machine name clients match on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from chuangzheng.services.errors import InvalidInput

# pydantic error types -> Chinese reasons.
REASONS: dict[str, str] = {
    "missing": "缺少必填项",
    "extra_forbidden": "不认识的字段",
    "string_type": "应为文本",
    "string_too_short": "不能为空",
    "string_too_long": "内容过长",
    "string_pattern_mismatch": "格式不正确",
    "int_parsing": "应为整数",
    "int_type": "应为整数",
    "int_from_float": "应为整数",
    "float_parsing": "应为数字",
    "float_type": "应为数字",
    "decimal_parsing": "应为数字",
    "finite_number": "应为有限的数字",
    "bool_parsing": "应为 true 或 false",
    "bool_type": "应为 true 或 false",
    "date_parsing": "日期格式应为 YYYY-MM-DD",
    "date_type": "日期格式应为 YYYY-MM-DD",
    "date_from_datetime_parsing": "日期格式应为 YYYY-MM-DD",
    "date_from_datetime_inexact": "应为日期，不带时刻",
    "datetime_parsing": "时间格式应为 ISO 8601（如 2025-01-06T09:00:00+08:00）",
    "datetime_type": "时间格式应为 ISO 8601（如 2025-01-06T09:00:00+08:00）",
    "datetime_from_date_parsing": "时间格式应为 ISO 8601",
    "timezone_aware": "时间必须带时区",
    "dict_type": "应为对象",
    "model_type": "应为对象",
    "model_attributes_type": "应为对象",
    "list_type": "应为列表",
    "json_invalid": "不是有效的 JSON",
    "json_type": "不是有效的 JSON",
    "enum": "取值不在允许范围内",
    "literal_error": "取值不在允许范围内",
    "greater_than_equal": "数值过小",
    "greater_than": "数值过小",
    "less_than_equal": "数值过大",
    "less_than": "数值过大",
    "too_short": "条目过少",
    "too_long": "条目过多",
    "uuid_parsing": "格式不正确",
    "url_parsing": "不是有效的网址",
}

# Errors whose reason names the limit (``ctx`` carries it): the user learns what is allowed.
LIMIT_REASONS: dict[str, str] = {
    "string_too_long": "内容过长，最多 {max_length} 个字符",
    "string_too_short": "内容过短，至少 {min_length} 个字符",
    "too_long": "条目过多，最多 {max_length} 项",
    "too_short": "条目过少，至少 {min_length} 项",
    "less_than_equal": "数值过大，最大为 {le}",
    "less_than": "数值过大，应小于 {lt}",
    "greater_than_equal": "数值过小，最小为 {ge}",
    "greater_than": "数值过小，应大于 {gt}",
}

#: What an error type without a translation says: never pydantic's English message.
UNKNOWN_REASON = "取值无效"

# "不能为空" is what a one-character minimum means to a user; a longer minimum is named.
_NOT_EMPTY = {"string_too_short": 1, "too_short": 1}


def reason(error: Mapping[str, Any]) -> str:
    """A pydantic error's reason in Chinese. A model validator's own ``ValueError`` is ours
    and already Chinese: its text is kept (without pydantic's ``Value error,`` prefix)."""
    kind = str(error.get("type", ""))
    ctx = error.get("ctx") or {}
    if kind in ("value_error", "assertion_error"):
        text = str(error.get("msg", "")).removeprefix("Value error, ")
        text = text.removeprefix("Assertion failed, ")
        return text if text and not text.isascii() else UNKNOWN_REASON
    if kind in _NOT_EMPTY and ctx.get("min_length") == _NOT_EMPTY[kind]:
        return "不能为空"
    template = LIMIT_REASONS.get(kind)
    if template is not None:
        try:
            return template.format(**ctx)
        except (KeyError, IndexError):
            pass
    if kind in REASONS:
        return REASONS[kind]
    # A custom error type of ours (``PydanticCustomError``, e.g. the evidence limits'
    # ``value_too_large``) carries its own Chinese message: keep it.
    text = str(error.get("msg", ""))
    return text if text and not text.isascii() else UNKNOWN_REASON


def _label(model: type[BaseModel] | None, loc: Sequence[Any]) -> str | None:
    if model is None or not loc:
        return None
    field = model.model_fields.get(str(loc[0]))
    if field is None:
        return None
    return field.description or field.title


def field_errors(
    exc: ValidationError, model: type[BaseModel] | None = None
) -> list[dict[str, str]]:
    """``exc``'s errors as ``{field, reason}``: the dotted location (``body`` for the whole
    request) and the Chinese reason, led by the field's Chinese name where ``model``'s field
    has a description (a nested location keeps its index: ``督导人员[2]``)."""
    problems = []
    for error in exc.errors():
        loc = tuple(error.get("loc", ()))
        text = reason(error)
        label = _label(model, loc)
        if label:
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[1:])
            text = f"{label}{where}：{text}"
        problems.append({"field": ".".join(str(p) for p in loc) or "body", "reason": text})
    return problems


def invalid_input(exc: ValidationError, model: type[BaseModel] | None = None) -> InvalidInput:
    """A malformed form or body as the service's refusal, every field named."""
    return InvalidInput("invalid", "请求参数有误", field_errors(exc, model))
