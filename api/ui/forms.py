"""Form handling: posted fields, deadlines typed in Shanghai time, and evidence forms
generated from a step's evidence fields (``domain.plan.EvidenceField``) and parsed back into
the values the workflow validates (the same shapes the API takes)."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from fastapi import Request
from starlette.datastructures import FormData, UploadFile

from api.errors import ApiError
from domain.calendar import SHANGHAI
from domain.evidence import BALLOT_KEYS
from domain.plan import EvidenceField, FieldKind, StepPlan

BALLOT_LABELS: dict[str, str] = {
    "satisfied": "满意",
    "fairly_satisfied": "比较满意",
    "basically_satisfied": "基本满意",
    "unsatisfied": "不满意",
}
_SPLIT = re.compile(r"[\n、,，;；]+")
Uploader = Callable[[UploadFile], Awaitable[dict[str, Any]]]


async def form_fields(request: Request) -> dict[str, Any]:
    """The posted form as a dict: one value per name (a list when a name repeats)."""
    form = await request.form()
    fields: dict[str, Any] = {}
    for key in form:
        values = form.getlist(key)
        fields[key] = values if len(values) > 1 else values[0]
    return fields


def local_deadline(text: str) -> datetime:
    """A ``datetime-local`` value (Shanghai time) as an aware instant; 422 if malformed."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ApiError(
            422, "invalid", "请求参数有误",
            [{"field": "new_deadline", "reason": "应为日期时间，如 2026-01-06T18:00"}],
        ) from None  # fmt: skip
    return moment if moment.tzinfo else moment.replace(tzinfo=SHANGHAI)


def prefill(spec: EvidenceField, value: Any) -> str:
    """A stored value as the text its input shows (for correcting a returned submission)."""
    if value is None:
        return ""
    kind = spec.kind
    if kind is FieldKind.PEOPLE and isinstance(value, list):
        return "\n".join(str(v) for v in value)
    if kind is FieldKind.MEMBER_COMMITMENTS and isinstance(value, list):
        return "\n".join(
            f"{c.get('member', '')}|{c.get('content', '')}|{c.get('due', '')}"
            for c in value
            if isinstance(c, dict)
        )
    if kind is FieldKind.SCORES and isinstance(value, dict):
        return "\n".join(f"{k}: {v}" for k, v in value.items())
    if kind is FieldKind.DOCUMENT:
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _number(text: str) -> Any:
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text  # the workflow's validator names the field and the reason


def _parse(spec: EvidenceField, text: str) -> Any:
    kind = spec.kind
    if kind is FieldKind.INTEGER:
        return _number(text)
    if kind is FieldKind.PEOPLE:
        return [p.strip() for p in _SPLIT.split(text) if p.strip()]
    if kind is FieldKind.MEMBER_COMMITMENTS:
        items = []
        for line in (ln for ln in text.splitlines() if ln.strip()):
            member, content, due = ([*re.split(r"[|｜]", line), "", ""])[:3]
            items.append({"member": member.strip(), "content": content.strip(), "due": due.strip()})
        return items
    if kind is FieldKind.SCORES:
        scores: dict[str, Any] = {}
        for line in (ln for ln in text.splitlines() if ln.strip()):
            item, _, score = line.replace("：", ":").partition(":")
            scores[item.strip()] = _number(score)
        return scores
    return text.strip()


async def evidence_values(step: StepPlan, form: FormData, upload: Uploader) -> dict[str, Any]:
    """The evidence a posted form gives for ``step``; blank optional fields are left out."""
    values: dict[str, Any] = {}
    for spec in step.evidence:
        key = f"ev.{spec.name}"
        if spec.kind is FieldKind.BALLOTS:
            ballots = {k: _number(str(form.get(f"{key}.{k}", "") or "0")) for k in BALLOT_KEYS}
            values[spec.name] = ballots
            continue
        if spec.kind is FieldKind.DOCUMENT:
            file = form.get(key)
            if isinstance(file, UploadFile) and file.filename:
                values[spec.name] = {
                    k: v for k, v in (await upload(file)).items() if k in ("name", "sha256")
                }
            elif previous := str(form.get(f"{key}.previous", "") or ""):
                values[spec.name] = json.loads(previous)  # keep the file sent last time
            continue
        if spec.kind is FieldKind.CHOICE:
            chosen = [str(v) for v in form.getlist(key) if str(v)]
            if chosen:
                values[spec.name] = chosen if len(chosen) > 1 else chosen[0]
            continue
        text = str(form.get(key, "") or "")
        if text.strip():
            values[spec.name] = _parse(spec, text)
    return values
