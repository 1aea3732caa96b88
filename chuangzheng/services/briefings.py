"""总结交流经验 (seed 002 §六(五)): good-practice briefings (简报).

An organisation's secretary (for it) or a township (for itself) submits a briefing — title,
text, an optional file — to the round; the county office selects one and circulates it:
one inbox message (``digests`` row, kind ``briefing``) to the county office, every township
and every guidance group the round's organisations belong to, then sent on their channels
like a circular's notice (:func:`send`, after the write has committed). Circulated
briefings are listed on the round's briefing page for everyone in the round; one not yet
circulated is seen by the county office, whoever covers the submitting organisation, and
the submitting account.

Rules are :mod:`domain.briefing`'s; each write is one transaction with its audit row.
Functions taking a session or a session factory do database (and file) work: call them from
a worker thread, never on an event loop.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from activities.channels.message import Outgoing, from_digest_row
from activities.db import write_lock
from activities.digest_messages import insert_once
from activities.guidance_groups import group_map
from activities.roster_store import load_organisation
from activities.tables import BriefingRow, CampaignStatusRow, OrganisationRow, RoundRow
from chuangzheng.services.callers import (
    Caller,
    audit_row,
    require_role,
    visible_organisation,
    visible_round,
)
from chuangzheng.services.errors import Conflict, InvalidInput, NotFound
from domain.briefing import (
    CIRCULATOR_ROLES,
    SUBMITTER_ROLES,
    BriefingStatus,
    check_briefing,
    check_note,
    circulated_message,
)
from domain.calendar import local_date
from domain.errors import FieldError
from domain.organisation import DEFAULT_COUNTY, Role, system_label
from domain.text import own_file_name, refusal

log = structlog.get_logger(__name__)

#: The attachment types and size a briefing may carry (the evidence uploads' own).
ALLOWED_FILES: dict[str, str] = {
    ".pdf": "application/pdf",
    ".doc": "application/msword",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".txt": "text/plain",
}
MAX_FILE_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class Attachment:
    """An uploaded file: its name as the submitter's computer had it, and its bytes."""

    filename: str
    data: bytes


@dataclass(frozen=True)
class BriefingFile:
    """A stored attachment and the name it is downloaded as."""

    filename: str
    content_type: str
    path: Path


def _invalid(errors: Sequence[FieldError]) -> InvalidInput:
    return InvalidInput(
        "invalid", "请求参数有误", [{"field": e.field, "reason": e.reason} for e in errors]
    )


def document(row: BriefingRow) -> dict[str, Any]:
    """A briefing as the API and the pages show it."""
    status = BriefingStatus(row.status)
    return {
        "briefing_id": row.briefing_id,
        "round_id": row.round_id,
        "org_id": row.org_id,
        "township": row.township,
        "source": row.source,
        "title": row.title,
        "text": row.text,
        "file": None
        if row.file_name is None
        else {
            "name": row.file_name,
            "size": row.file_size,
            "download": f"/api/v1/rounds/{row.round_id}/briefings/{row.briefing_id}/file",
        },
        "status": status.value,
        "status_label": status.label,
        "submitted_by": row.submitted_by,
        "submitted_at": row.submitted_at,
        "note": row.note,
        "circulated_by": row.circulated_by,
        "circulated_at": row.circulated_at,
        "recipients": row.recipients,
    }


def _store_file(upload_dir: Path, attachment: Attachment) -> tuple[str, str, str, int]:
    """Check and store the attachment by its sha256: (name, sha256, type, size)."""
    name = own_file_name(attachment.filename)[:200]
    hidden = refusal(name)
    if hidden is not None:  # "x\u202egnp.pdf" is shown as "xfdp.png"
        raise _invalid([FieldError("file", f"文件名{hidden}")])
    suffix = Path(name).suffix.lower()
    if suffix not in ALLOWED_FILES:
        allowed = "、".join(sorted(ALLOWED_FILES))
        raise _invalid([FieldError("file", f"不支持的文件类型，允许：{allowed}")])
    if not attachment.data:
        raise _invalid([FieldError("file", "文件为空")])
    if len(attachment.data) > MAX_FILE_BYTES:
        raise _invalid([FieldError("file", "文件不能超过 20MB")])
    sha256 = hashlib.sha256(attachment.data).hexdigest()
    target = upload_dir / sha256[:2] / sha256
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        # A name of its own per writer: two submissions of the same file at once (two API
        # processes on one volume) must not write into one temporary file.
        temporary = target.with_name(f"{target.name}.{uuid.uuid4().hex[:12]}.part")
        temporary.write_bytes(attachment.data)
        temporary.replace(target)  # never a half-written file under the final name
    return name, sha256, ALLOWED_FILES[suffix], len(attachment.data)


def _township_in_round(session: Session, caller: Caller, round_id: str, township: str) -> bool:
    """Whether the round has an organisation of ``township`` that ``caller`` covers."""
    found = session.scalar(
        select(CampaignStatusRow.org_id)
        .join(OrganisationRow, OrganisationRow.org_id == CampaignStatusRow.org_id)
        .where(
            CampaignStatusRow.round_id == round_id,
            CampaignStatusRow.township == township,
            caller.condition,
        )
        .limit(1)
    )
    return found is not None


def submit(
    sessions: sessionmaker[Session],
    caller: Caller,
    round_id: str,
    *,
    title: str,
    text: str,
    org_id: str | None = None,
    township: str | None = None,
    attachment: Attachment | None = None,
    upload_dir: Path,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Submit a briefing: a secretary for ``org_id`` (their organisation, in the round), a
    township for ``township`` (its own, with organisations in the round); audited."""
    require_role(caller, SUBMITTER_ROLES, "只有基层党组织书记或乡镇党委可以报送经验简报")
    errors = check_briefing(title, text)
    if errors:
        raise _invalid(errors)
    stored = _store_file(upload_dir, attachment) if attachment is not None else None
    now = now or datetime.now(UTC)
    with sessions.begin() as session:
        # A round of another county is as unknown as a missing one (many counties).
        visible_round(session, caller, round_id)
        if caller.role is Role.SECRETARY:
            if not org_id:
                raise _invalid([FieldError("org_id", "请指明报送简报的党组织")])
            org = visible_organisation(session, caller, org_id)
            if session.get(CampaignStatusRow, (round_id, org.id)) is None:
                raise _invalid([FieldError("org_id", "该组织不在本轮活动中")])
            source, where = org.name, org.township
        else:
            if not township or not _township_in_round(session, caller, round_id, township):
                raise _invalid([FieldError("township", "本轮活动中没有您所在乡镇的组织")])
            org_id, source, where = None, f"{township}党委", township
        row = BriefingRow(
            briefing_id=f"br-{uuid.uuid4().hex[:16]}",
            round_id=round_id,
            org_id=org_id,
            township=where,
            source=source,
            title=title.strip(),
            text=text.strip(),
            file_name=stored[0] if stored else None,
            file_sha256=stored[1] if stored else None,
            file_type=stored[2] if stored else None,
            file_size=stored[3] if stored else None,
            submitted_by=caller.username,
            submitted_by_role=caller.role.value,
            submitted_at=now,
            status=BriefingStatus.SUBMITTED.value,
            note="",
        )
        session.add(row)
        session.add(
            audit_row(
                caller,
                "briefing_submitted",
                round_id=round_id,
                org_id=org_id,
                detail={"briefing_id": row.briefing_id, "title": row.title},
                now=now,
            )
        )
        return document(row)


def _visible(session: Session, caller: Caller, row: BriefingRow) -> bool:
    if row.status == BriefingStatus.CIRCULATED.value or caller.role in CIRCULATOR_ROLES:
        return True
    if row.submitted_by == caller.username:
        return True
    org = load_organisation(session, row.org_id) if row.org_id else None
    return org is not None and caller.covers(org)


def list_briefings(session: Session, caller: Caller, round_id: str) -> list[dict[str, Any]]:
    """The round's briefings ``caller`` sees (circulated ones first, newest first);
    :class:`NotFound` for a round of a county ``caller`` does not see."""
    visible_round(session, caller, round_id)
    rows = session.scalars(
        select(BriefingRow)
        .where(BriefingRow.round_id == round_id)
        .order_by(BriefingRow.submitted_at.desc())
    ).all()
    visible = [r for r in rows if _visible(session, caller, r)]
    visible.sort(key=lambda r: r.status != BriefingStatus.CIRCULATED.value)  # stable
    return [document(r) for r in visible]


def briefing_file(
    session: Session, caller: Caller, round_id: str, briefing_id: str, upload_dir: Path
) -> BriefingFile:
    """A briefing's attachment for those who see the briefing; :class:`NotFound` else."""
    visible_round(session, caller, round_id, "对象不存在或无权查看")
    row = session.get(BriefingRow, briefing_id)
    if (
        row is None
        or row.round_id != round_id
        or row.file_sha256 is None
        or not _visible(session, caller, row)
    ):
        raise NotFound()
    path = upload_dir / row.file_sha256[:2] / row.file_sha256
    if not path.is_file():
        raise NotFound("附件文件已不存在")
    return BriefingFile(
        filename=row.file_name or "附件", content_type=row.file_type or "", path=path
    )


def _recipients(session: Session, round_id: str) -> list[tuple[Role, str, str]]:
    """(role, inbox key, label) of everyone a circulated briefing goes to: the county
    office, and each township and guidance group with organisations in the round."""
    townships = session.scalars(
        select(CampaignStatusRow.township)
        .where(CampaignStatusRow.round_id == round_id)
        .distinct()
        .order_by(CampaignStatusRow.township)
    ).all()
    systems = session.scalars(
        select(CampaignStatusRow.system)
        .where(CampaignStatusRow.round_id == round_id)
        .distinct()
        .order_by(CampaignStatusRow.system)
    ).all()
    # The guidance groups' names are the round's county's data (issue 15).
    county = session.scalar(select(RoundRow.county).where(RoundRow.round_id == round_id))
    groups = group_map(session, {county or DEFAULT_COUNTY})
    out = [(Role.COUNTY_OFFICE, "county", "县委创先争优活动领导小组办公室")]
    for key in systems:
        out.append((Role.GUIDANCE_GROUP, key, system_label(key, groups)))
    out.extend((Role.TOWNSHIP, t, f"{t}党委") for t in townships)
    return out


def circulate(
    sessions: sessionmaker[Session],
    caller: Caller,
    round_id: str,
    briefing_id: str,
    *,
    note: str = "",
    now: datetime | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Select a submitted briefing and file its message in every recipient's inbox (once
    per recipient); returns the briefing and the inbox rows to :func:`send` on the
    channels. :class:`Conflict` once circulated; :class:`NotFound` for a round of a county
    ``caller`` does not see (whichever form or path named it)."""
    require_role(caller, CIRCULATOR_ROLES, "只有县委活动办可以选编交流经验简报")
    errors = check_note(note)
    if errors:
        raise _invalid(errors)
    now = now or datetime.now(UTC)
    with sessions.begin() as session:
        write_lock(session, BriefingRow)  # circulated once, on SQLite too
        round_row = visible_round(session, caller, round_id)
        row = session.get(BriefingRow, briefing_id, with_for_update=True)
        if row is None or row.round_id != round_id:
            raise NotFound("简报不存在")
        if row.status == BriefingStatus.CIRCULATED.value:
            raise Conflict("circulated", "该简报已选编交流")
        title, body = circulated_message(
            round_name=round_row.name, source=row.source, title=row.title, text=row.text, note=note
        )
        messages = []
        for role, key, label in _recipients(session, round_id):
            message = {
                "message_id": f"briefing-{row.briefing_id}-{role.value}-{key}"[:255],
                "kind": "briefing",
                "round_id": round_id,
                "local_date": local_date(now).isoformat(),
                "recipient_role": role.value,
                "recipient_key": key,
                "recipient_label": label,
                "title": title,
                "body": body,
                "link_path": f"/ui/briefings?round={round_id}#{row.briefing_id}",
                "detail": {"briefing_id": row.briefing_id},
                "created_at": now,
                "delivered_at": now,
                "read_at": None,
            }
            if insert_once(session, message):
                messages.append(message)
        row.status = BriefingStatus.CIRCULATED.value
        row.note = note.strip()
        row.circulated_by = caller.username
        row.circulated_at = now
        row.recipients = len(messages)
        session.add(
            audit_row(
                caller,
                "briefing_circulated",
                round_id=round_id,
                org_id=row.org_id,
                detail={"briefing_id": row.briefing_id, "recipients": len(messages)},
                now=now,
            )
        )
        return document(row), messages


class MessageSender(Protocol):
    """Sends a message already in the inbox on its recipient's channels (``ChannelRouter``)."""

    async def send_message(self, message: Outgoing) -> bool:
        """True if some channel sent it now; raise if a channel failed."""
        ...


async def send(sender: MessageSender | None, messages: Sequence[dict[str, Any]]) -> int:
    """Send the circulated briefing's messages on the channels, past a failing one (the
    channel router records each failure for the county office's retry); how many went out.
    The inbox already holds every message, so a channel failure loses nothing."""
    if sender is None:
        return 0
    sent = 0
    for message in messages:
        try:
            sent += await sender.send_message(from_digest_row(message))
        except Exception as exc:  # one bad address must not stop the others
            log.warning("briefing not sent", message_id=message["message_id"], error=str(exc))
    return sent
