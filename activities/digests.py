"""Activities of the daily digest and the circular (通报): read a round's status, send
digests to supervisors' inboxes once per day (idempotent by message id, ``digests`` rows),
and publish a circular's files once per circular id."""

from __future__ import annotations

import asyncio
import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from openpyxl import Workbook  # type: ignore[import-untyped]
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from activities.db import upsert_insert
from activities.tables import (
    CampaignStatusRow,
    CircularRow,
    OrganisationRow,
    RoundDefinitionRow,
    digests,
)
from chuangzheng.settings import get_settings, repo_root
from domain.calendar import CalendarGap, deadline_day, local_date
from domain.digest import (
    Circular,
    CircularNotice,
    Digest,
    StatusLine,
    build_circular,
    build_digests,
    circular_notices,
    circular_title,
    render_circular,
    render_digest,
)
from domain.lights import Light
from domain.organisation import Supervisor, System
from domain.phases import WORKING_PHASES, Phase
from domain.plan import CalendarPlan
from domain.plan_loader import load_calendar, load_plan
from workflows.digest import CircularReport, CircularRun, DigestReport, DigestRun

log = structlog.get_logger(__name__)

_UNSAFE = re.compile(r"[^0-9A-Za-z._-]+")


def _safe(name: str) -> str:
    """A path component from an id: round ids and keys must not escape ``circulars/``."""
    return _UNSAFE.sub("_", name).strip("._") or "_"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def shipped_calendar() -> CalendarPlan:
    """The supplementary calendars under ``plans/calendars/`` merged (what plans are loaded
    with), so working days overdue are counted as the ladder counts them."""
    merged = CalendarPlan()
    for path in sorted((repo_root() / "plans" / "calendars").glob("*.yaml")):
        merged = merged.merged(load_calendar(path.read_text("utf-8")))
    return merged


def working_days_overdue(calendar: CalendarPlan, deadline: datetime, now: datetime) -> int:
    """Working days overdue on ``calendar``; a year without holiday data counts weekends only
    (a digest must go out even when the county has not yet supplied next year's calendar)."""
    try:
        return calendar.build().working_days_overdue(deadline, now)
    except CalendarGap:
        years = tuple(range(deadline_day(deadline).year, local_date(now).year + 1))
        fallback = calendar.merged(CalendarPlan(supplied_years=years))
        return fallback.build().working_days_overdue(deadline, now)


def _recipient(who: Supervisor) -> dict[str, str]:
    return {
        "recipient_role": who.role.value,
        "recipient_key": who.key,
        "recipient_label": who.label,
    }


def _digest_row(digest: Digest, delivered_at: datetime) -> dict[str, Any]:
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


def _notice_row(notice: CircularNotice, circular: Circular, at: datetime) -> dict[str, Any]:
    """The ``digests`` row (kind ``circular``) of a circular's notice to one supervisor."""
    return {
        "message_id": notice.notice_id,
        "kind": "circular",
        "round_id": circular.round_id,
        "local_date": circular.local_date.isoformat(),
        **_recipient(notice.recipient),
        "title": notice.title,
        "body": notice.body,
        "link_path": f"/rounds/{circular.round_id}/circulars/{_safe(circular.key)}",
        "detail": {"circular_id": circular.circular_id, "laggards": list(notice.laggard_ids)},
        "created_at": circular.created_at,
        "delivered_at": at,
        "read_at": None,
    }


def _insert_once(session: Session, row: dict[str, Any]) -> bool:
    """Insert a ``digests`` row unless its id exists; True if inserted now."""
    stmt = (
        upsert_insert(session, digests)
        .values(row)
        .on_conflict_do_nothing(index_elements=["message_id"])
        # RETURNING yields a row only when the insert happened, on both dialects.
        .returning(digests.c.message_id)
    )
    return session.execute(stmt).first() is not None


def _report(row: CircularRow, *, notices_sent: int, again: bool) -> CircularReport:
    return CircularReport(
        circular_id=row.circular_id,
        xlsx_path=row.xlsx_path,
        xlsx_sha256=row.xlsx_sha256,
        text_path=row.text_path,
        notices_sent=notices_sent,
        already_published=again,
    )


def write_circular_xlsx(circular: Circular, path: Path) -> None:
    """The circular as a workbook: progress by township, then the laggards by township."""
    book = Workbook()
    progress = book.active
    assert progress is not None  # a new workbook always has one sheet
    progress.title = "进展情况"
    progress.append([circular_title(circular)])
    progress.append([])
    progress.append(
        ["乡镇（街道）", "单位数", *(p.label for p in WORKING_PHASES), "已完成", "逾期"]
    )
    for t in circular.townships:
        phases = [t.by_phase.get(p, 0) for p in WORKING_PHASES]
        progress.append([t.township, t.total, *phases, t.completed, t.overdue])
    total, completed, overdue = circular.totals()
    progress.append(["合计", total, *([None] * len(WORKING_PHASES)), completed, overdue])
    laggards = book.create_sheet("逾期单位")
    laggards.append(["乡镇（街道）", "单位", "阶段", "截止日期", "逾期工作日", "督办级别"])
    for t in circular.townships:
        for s in t.laggards:
            due = deadline_day(s.deadline).isoformat() if s.deadline else ""
            rung = s.top_rung + 1 if s.top_rung is not None else None
            laggards.append(
                [t.township, s.org_name, s.phase.label, due, s.working_days_overdue, rung]
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)


class DigestActivities:
    """Digest and circular activities, holding the read model and where circulars go.

    Register ``[d.load_round_status, d.send_digests, d.publish_circular]``.
    """

    def __init__(self, session_factory: sessionmaker[Session], data_dir: Path | None = None):
        """Keep the dependencies; ``data_dir`` defaults to the settings' at first use."""
        self._session_factory = session_factory
        self._data_dir = data_dir

    @activity.defn(name="load_round_status")
    async def load_round_status(self, run: DigestRun) -> list[StatusLine]:
        """Every organisation's status in the round, with days overdue as of ``run.now``."""
        return await asyncio.to_thread(self._load, run.round_id, run.now)

    def _calendar(self, session: Session, round_id: str) -> CalendarPlan:
        """The round's plan calendar (if the round was kicked off from a stored plan)."""
        shipped = shipped_calendar()
        definition = session.get(RoundDefinitionRow, round_id)
        if definition is None:
            return shipped
        return load_plan(definition.plan_yaml, supplement=shipped).calendar

    def _load(self, round_id: str, now: datetime) -> list[StatusLine]:
        with self._session_factory() as session:
            calendar = self._calendar(session, round_id)
            rows = session.execute(
                select(CampaignStatusRow, OrganisationRow.instructor)
                .outerjoin(OrganisationRow, OrganisationRow.org_id == CampaignStatusRow.org_id)
                .where(CampaignStatusRow.round_id == round_id)
                .order_by(CampaignStatusRow.org_id)
            ).all()
        lines = []
        for status, instructor in rows:
            due = status.deadline if status.overdue else None
            late = working_days_overdue(calendar, due, now) if due is not None else 0
            lines.append(
                StatusLine(
                    org_id=status.org_id,
                    org_name=status.org_name,
                    township=status.township,
                    system=System(status.system),
                    instructor=instructor,  # None when not in the stored roster
                    light=Light(status.light),
                    overdue=status.overdue,
                    phase=Phase(status.phase),
                    deadline=status.deadline,
                    working_days_overdue=late,
                    top_rung=status.top_rung,
                    closed=status.closed,
                )
            )
        return lines

    @activity.defn(name="send_digests")
    async def send_digests(self, run: DigestRun) -> DigestReport:
        """Build today's digests and store each in its recipient's inbox once."""
        with structlog.contextvars.bound_contextvars(round_id=run.round_id):
            return await asyncio.to_thread(self._send_digests, run)

    def _send_digests(self, run: DigestRun) -> DigestReport:
        lines = self._load(run.round_id, run.now)
        built = build_digests(run.round_id, lines, now=run.now)
        delivered_at = datetime.now(UTC)
        sent: list[str] = []
        with self._session_factory.begin() as session:
            for digest in built:
                if _insert_once(session, _digest_row(digest, delivered_at)):
                    sent.append(digest.digest_id)
        log.info("digests sent", sent=len(sent), already_sent=len(built) - len(sent))
        return DigestReport(
            sent=len(sent), already_sent=len(built) - len(sent), recipients=tuple(sent)
        )

    @activity.defn(name="publish_circular")
    async def publish_circular(self, run: CircularRun) -> CircularReport:
        """Write the circular (.xlsx and .md), record it, and notify county and townships."""
        with structlog.contextvars.bound_contextvars(round_id=run.round_id):
            return await asyncio.to_thread(self._publish, run)

    def _publish(self, run: CircularRun) -> CircularReport:
        circular = build_circular(
            run.round_id, self._load(run.round_id, run.now), now=run.now, key=run.key
        )
        with self._session_factory() as session:
            existing = session.get(CircularRow, circular.circular_id)
        if existing is not None:
            # Published before (a retry or a second run the same day): the document stands.
            return _report(existing, notices_sent=0, again=True)
        data_dir = self._data_dir or get_settings().data_dir
        folder = data_dir / "circulars" / _safe(run.round_id)
        xlsx, text = folder / f"{_safe(circular.key)}.xlsx", folder / f"{_safe(circular.key)}.md"
        write_circular_xlsx(circular, xlsx)
        text.write_text(render_circular(circular), encoding="utf-8")
        now = datetime.now(UTC)
        total, completed, overdue = circular.totals()
        notices_sent = 0
        with self._session_factory.begin() as session:
            for notice in circular_notices(circular):
                notices_sent += _insert_once(session, _notice_row(notice, circular, now))
            row = session.merge(
                CircularRow(
                    circular_id=circular.circular_id,
                    round_id=circular.round_id,
                    key=circular.key,
                    title=circular_title(circular),
                    xlsx_path=str(xlsx),
                    xlsx_sha256=_sha256(xlsx),
                    text_path=str(text),
                    text_sha256=_sha256(text),
                    summary={"total": total, "completed": completed, "overdue": overdue},
                    created_at=circular.created_at,
                )
            )
        log.info("circular published", circular_id=circular.circular_id, notices=notices_sent)
        return _report(row, notices_sent=notices_sent, again=False)
