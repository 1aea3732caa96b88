"""The messages of digests and circulars: their ``digests`` rows, inserting each once,
sending them on the worker's channels, and the circular's workbook."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from openpyxl import Workbook  # type: ignore[import-untyped]
from sqlalchemy.orm import Session
from temporalio import activity

from activities.channels.base import DeliveryFailed
from activities.channels.message import Outgoing, from_digest_row
from activities.db import upsert_insert
from activities.spreadsheets import append_row, holdable
from activities.tables import CircularRow, digests
from domain.calendar import deadline_day
from domain.digest import (
    Circular,
    CircularNotice,
    Digest,
    circular_title,
    render_digest,
)
from domain.organisation import Supervisor
from domain.phases import WORKING_PHASES
from workflows.digest import CircularReport

_UNSAFE = re.compile(r"[^0-9A-Za-z._-]+")


def safe_name(name: str) -> str:
    """A path component from an id: round ids and keys must not escape ``circulars/``."""
    return _UNSAFE.sub("_", name).strip("._") or "_"


def _recipient(who: Supervisor) -> dict[str, str]:
    return {
        "recipient_role": who.role.value,
        "recipient_key": who.key,
        "recipient_label": who.label,
    }


def digest_row(digest: Digest, delivered_at: datetime) -> dict[str, Any]:
    """The ``digests`` row of a digest (the counts and laggard ids go to ``detail``)."""
    title, body = render_digest(digest)
    return {
        "message_id": digest.digest_id,
        "kind": "digest",
        "round_id": digest.round_id,
        "local_date": digest.local_date.isoformat(),
        **_recipient(digest.recipient),
        "title": title,
        "body": body,
        "link_path": f"/rounds/{digest.round_id}?light=red",
        "detail": {
            "counts": {light.value: n for light, n in digest.counts.items()},
            "laggards": [s.org_id for s in digest.laggards],
        },
        "created_at": digest.created_at,
        "delivered_at": delivered_at,
        "read_at": None,
    }


def circular_notice_row(notice: CircularNotice, circular: Circular, at: datetime) -> dict[str, Any]:
    """The ``digests`` row (kind ``circular``) of a circular's notice to one supervisor."""
    return {
        "message_id": notice.notice_id,
        "kind": "circular",
        "round_id": circular.round_id,
        "local_date": circular.local_date.isoformat(),
        **_recipient(notice.recipient),
        "title": notice.title,
        "body": notice.body,
        "link_path": f"/rounds/{circular.round_id}/circulars/{safe_name(circular.key)}",
        "detail": {"circular_id": circular.circular_id, "laggards": list(notice.laggard_ids)},
        "created_at": circular.created_at,
        "delivered_at": at,
        "read_at": None,
    }


class MessageSender(Protocol):
    """Sends a message already in the inbox on its recipient's channels (``ChannelRouter``)."""

    async def send_message(self, message: Outgoing) -> bool:
        """True if some channel sent it now; raise if a channel failed."""
        ...


async def send_all(sender: MessageSender | None, rows: list[dict[str, Any]]) -> int:
    """Send every row's message; raise :class:`DeliveryFailed` after trying them all if any
    failed (Temporal retries; the ledger skips what went out). Returns how many were sent."""
    if sender is None:
        return 0
    sent, errors = 0, []
    for row in rows:
        try:
            sent += await sender.send_message(from_digest_row(row))
        except Exception as exc:  # collected: one bad address must not stop the others
            errors.append(str(exc))
        activity.heartbeat(row["message_id"])
    if errors:
        raise DeliveryFailed(
            "；".join(errors[:5]) + (f" 等 {len(errors)} 条" if len(errors) > 5 else "")
        )
    return sent


def insert_once(session: Session, row: dict[str, Any]) -> bool:
    """Insert a ``digests`` row unless its id exists; True if inserted now."""
    stmt = (
        upsert_insert(session, digests)
        .values(row)
        .on_conflict_do_nothing(index_elements=["message_id"])
        # RETURNING yields a row only when the insert happened, on both dialects.
        .returning(digests.c.message_id)
    )
    return session.execute(stmt).first() is not None


def circular_report(row: CircularRow, *, notices_sent: int, again: bool) -> CircularReport:
    return CircularReport(
        circular_id=row.circular_id,
        xlsx_path=row.xlsx_path,
        xlsx_sha256=row.xlsx_sha256,
        text_path=row.text_path,
        notices_sent=notices_sent,
        already_published=again,
    )


def write_circular_xlsx(circular: Circular, path: Path) -> None:
    """The circular as a workbook: progress by township, then the laggards by township.
    Organisation and township names are stored as text, never as formulas."""
    book = Workbook()
    progress = book.active
    assert progress is not None  # a new workbook always has one sheet
    progress.title = "进展情况"
    append_row(progress, [circular_title(circular)])
    append_row(progress, [])
    append_row(
        progress, ["乡镇（街道）", "单位数", *(p.label for p in WORKING_PHASES), "已完成", "逾期"]
    )
    for t in circular.townships:
        phases = [t.by_phase.get(p, 0) for p in WORKING_PHASES]
        append_row(progress, [t.township, t.total, *phases, t.completed, t.overdue])
    total, completed, overdue = circular.totals()
    append_row(progress, ["合计", total, *([None] * len(WORKING_PHASES)), completed, overdue])
    laggards = book.create_sheet("逾期单位")
    append_row(laggards, ["乡镇（街道）", "单位", "阶段", "截止日期", "逾期工作日", "督办级别"])
    for t in circular.townships:
        for s in t.laggards:
            due = deadline_day(s.deadline).isoformat() if s.deadline else ""
            rung = s.top_rung + 1 if s.top_rung is not None else None
            append_row(
                laggards, [t.township, s.org_name, s.phase.label, due, s.working_days_overdue, rung]
            )
    if circular.supervision:
        checks = book.create_sheet("督促检查")
        append_row(checks, ["日期", "方式", "事项", "涉及单位", "发现的问题", "结论或跟进"])
        for e in circular.supervision:
            # Supervisors' own words: a stray control character must not stop a circular.
            cells = [e.held_on, e.kind, e.title, "、".join(e.org_names), e.findings, e.outcome]
            append_row(checks, [holdable(c) for c in cells])
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)
