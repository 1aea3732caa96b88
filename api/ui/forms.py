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
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session, sessionmaker
from starlette.datastructures import FormData, UploadFile

from api.auth import User
from api.errors import ApiError
from api.idempotency import MAX_KEY_LENGTH, TWIN_RUNNING, Answer, issue_once, run_once
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


#: The hidden field a page's form carries its one-time key in (a fresh uuid per rendering).
FORM_KEY = "form_key"
#: What a page says when a form's first copy is still running past the wait.
STILL_RUNNING = "上一次提交仍在处理中，请稍后刷新页面查看结果"
#: Refusals after which a page's form is shown again as typed, with what to correct (the
#: form's content, or the caller's right to send it), instead of a redirect to the emptied
#: form; other answers (404, 503) keep their own. Passwords and files are never refilled.
SHOWN_AGAIN = frozenset({403, 409, 422})
#: Every submission of one rendered form is the same request, whatever its fields say.
_FORM_FINGERPRINT = "ui-form"


async def submitted_once(
    sessions: sessionmaker[Session],
    user: User,
    form_key: str | None,
    submit: Callable[[], Awaitable[tuple[Response, bool]]],
    *,
    busy: Callable[[], Response],
) -> Response:
    """A page's form that creates something, run once per rendering: a double click, or the
    same page posted again, gets the first submission's redirect instead of a second
    record (the key is claimed as an API ``Idempotency-Key`` is, per account). ``submit``
    returns its redirect and whether it succeeded; a refusal is not kept, so the corrected
    form runs. ``busy``: the answer while the first copy is still running past the wait."""
    if not form_key or len(form_key) > MAX_KEY_LENGTH:
        return (await submit())[0]

    async def produce() -> tuple[Answer, bool]:
        response, succeeded = await submit()
        return Answer(response.status_code, response.headers["location"].encode()), succeeded

    try:
        answer = await run_once(
            sessions, user.username, f"ui-form:{form_key}", _FORM_FINGERPRINT, produce
        )
    except ApiError as exc:
        if exc.code != TWIN_RUNNING:
            raise
        return busy()
    return RedirectResponse(answer.body.decode(), status_code=answer.status_code)


async def issued_once(
    sessions: sessionmaker[Session],
    user: User,
    form_key: str | None,
    issue: Callable[[], Awaitable[Response]],
    *,
    again: Callable[[], Response],
    busy: Callable[[], Response],
) -> Response:
    """A page's form whose answer shows activation codes once (create an account, reset it,
    print a township's list), run once per rendering. The answer cannot be kept (codes are
    stored only as hashes), so a copy of the form (a double click) gets ``again()``, which
    says the codes were issued and how to issue anew, instead of issuing and mailing a
    second set that would void the first. A refusal gives the key back."""
    if not form_key or len(form_key) > MAX_KEY_LENGTH:
        return await issue()
    try:
        ran, _ = await issue_once(
            sessions,
            user.username,
            f"ui-form:{form_key}",
            _FORM_FINGERPRINT,
            issue,
            lambda _response: Answer(200, b""),
        )
    except ApiError as exc:
        if exc.code != TWIN_RUNNING:
            raise
        return busy()
    return ran if ran is not None else again()


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


def _previous_file(spec: EvidenceField, text: str) -> Any:
    """The file reference a returned submission's form carries back (``{name, sha256}`` as
    JSON). The page wrote it, so anything else was typed by hand: refused as the field's
    error (the service checks that a well-formed one names a file uploaded here)."""
    try:
        return json.loads(text)
    except ValueError:
        raise ApiError(
            422, "invalid_evidence", f"{spec.label}：原文件信息无效，请重新选择文件上传",
            [{"field": f"evidence.{spec.name}",
              "reason": f"{spec.label}：原文件信息无效，请重新选择文件上传"}],
        ) from None  # fmt: skip


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
                values[spec.name] = _previous_file(spec, previous)  # the file sent last time
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


#: Chinese names of the fields the pages' forms post, for refusals that name a field without
#: saying which (a workflow's ``reason_required`` names ``reason``).
FIELD_LABELS: dict[str, str] = {
    "reason": "理由",
    "new_deadline": "延期后的截止时间",
    "step_id": "步骤",
    "accept": "审核结论",
    "approve": "审批结论",
    "phase": "阶段",
    "rung": "督办级别",
    "report": "整改报告",
    "passed": "复查结论",
    "notes": "复查意见",
    "values": "材料",
    "username": "账号",
    "display_name": "姓名",
    "role": "角色",
    "scope_key": "范围",
    "title": "标题",
    "text": "正文",
    "file": "附件",
    "note": "选编说明",
    "supervisors": "督导人员",
    "held_on": "日期",
    "org_ids": "涉及的基层党组织",
    "count": "抽查数量",
    "share": "抽查比例",
    "period_working_days": "整改期限（工作日）",
    "ground": "整改事由类别",
}

#: A refusal's message that only says the fields are wrong: the fields say how.
_GENERIC = frozenset({"请求参数有误", "请求有误"})


def _labelled(error: dict[str, Any], labels: dict[str, str]) -> str:
    reason = str(error.get("reason", "")).strip()
    field = str(error.get("field", ""))
    # "evidence.minutes", "supervisors.2", "body.reason": the label of the named field.
    parts = field.split(".")
    label = labels.get(field) or next(
        (labels[p] for p in (parts[-1], parts[1] if len(parts) > 1 else "", parts[0])
         if p in labels), None,
    )  # fmt: skip
    if label is None or label in reason:
        return reason  # the reason already names its field (or nothing better is known)
    return f"{label}：{reason}"


def error_text(exc: ApiError, labels: dict[str, str] | None = None) -> str:
    """A refusal as one line for a page: each field's reason once, its field by its Chinese
    label (``labels``, e.g. the round's evidence field labels, over :data:`FIELD_LABELS`),
    never an internal field name; the message only when it adds something (a workflow's
    refusal repeats its first field's reason as its message)."""
    known = FIELD_LABELS | (labels or {})
    items: list[str] = []
    for error in exc.errors:
        text = _labelled(error, known)
        if text and text not in items:
            items.append(text)
    reasons = [str(e.get("reason", "")).strip() for e in exc.errors]
    message = exc.message.strip()
    if not items:
        return message
    if message in _GENERIC or any(r and r in message for r in reasons):
        return "；".join(items)
    return f"{message}：{'；'.join(items)}"


def typed_prefill(step: StepPlan, form: FormData) -> Callable[[EvidenceField, Any], str]:
    """The evidence form's ``prefill`` after a refusal: what was typed into ``step``'s text,
    date, number and list fields shows again (a file input cannot be filled; a choice and the
    ballots show the stored values); other steps' forms show their stored values."""
    own = {id(spec) for spec in step.evidence}

    def shown(spec: EvidenceField, value: Any) -> str:
        if id(spec) in own and spec.kind not in (FieldKind.DOCUMENT, FieldKind.BALLOTS):
            typed = form.get(f"ev.{spec.name}")
            if isinstance(typed, str):
                return typed
        return prefill(spec, value)

    return shown
