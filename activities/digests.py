"""Activities of the daily digest and the circular (通报): read a round's status, send
digests to supervisors' inboxes once per day (idempotent by message id, ``digests`` rows),
and publish a circular's files once per circular id.

Input errors fail at once, never retried: an unknown round (``UnknownRound``) or text a
spreadsheet cannot hold (``InvalidInput``) is a non-retryable ``ApplicationError``; retrying
would fail the same way for ever, one stuck workflow per request.

The inbox row is written first (the dedup record); then, when the worker has channels, each
message goes out by mail or robot through the same delivery ledger as escalation notices,
so a retried activity re-sends nothing that went out.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from openpyxl.utils.exceptions import IllegalCharacterError  # type: ignore[import-untyped]
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.digest_messages import (
    MessageSender,
    circular_notice_row,
    circular_report,
    digest_row,
    insert_once,
    safe_name,
    send_all,
    write_circular_xlsx,
)
from activities.guidance_groups import group_map
from activities.tables import (
    CampaignStatusRow,
    CircularRow,
    ContactPointOrgRow,
    ContactPointRow,
    InspectionDrawRow,
    InspectionRow,
    OrganisationRow,
    RoundDefinitionRow,
    RoundRow,
    SupervisionRecordOrgRow,
    SupervisionRecordRow,
    digests,
)
from chuangzheng.plans import calendar_library
from chuangzheng.settings import get_settings
from domain.calendar import CalendarGap, deadline_day, local_date
from domain.digest import (
    StatusLine,
    SupervisionEntry,
    build_circular,
    build_digests,
    circular_notices,
    circular_title,
    render_circular,
)
from domain.inspection import InspectionVerdict, SupervisionKind
from domain.lights import Light
from domain.organisation import DEFAULT_COUNTY, Role, Supervisor, system_label
from domain.phases import Phase
from domain.plan import CalendarPlan
from domain.plan_loader import load_plan
from workflows.activity_refs import PUBLISH_CIRCULAR, SEND_DIGESTS
from workflows.digest_contracts import CircularReport, CircularRun, DigestReport, DigestRun

log = structlog.get_logger(__name__)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def working_days_overdue(calendar: CalendarPlan, deadline: datetime, now: datetime) -> int:
    """Working days overdue on ``calendar``; a year without holiday data counts weekends only
    (a digest must go out even when the county has not yet supplied next year's calendar)."""
    try:
        return calendar.build().working_days_overdue(deadline, now)
    except CalendarGap:
        years = tuple(range(deadline_day(deadline).year, local_date(now).year + 1))
        fallback = calendar.merged(CalendarPlan(supplied_years=years))
        return fallback.build().working_days_overdue(deadline, now)


def refuse_unknown_round(session: Session, round_id: str) -> None:
    """A non-retryable ``UnknownRound`` unless the read model knows ``round_id`` (a stored
    round, or organisations' status in it)."""
    if session.get(RoundRow, round_id) is not None:
        return
    status = select(CampaignStatusRow.org_id).where(CampaignStatusRow.round_id == round_id)
    if session.scalar(status.limit(1)) is None:
        raise ApplicationError(f"轮次不存在：{round_id!r}", type="UnknownRound", non_retryable=True)


def contact_recipients(session: Session, round_id: str) -> dict[str, tuple[Supervisor, ...]]:
    """For each organisation of the round with a contact point (联系点), the leading cadres
    who get its daily digest (inbox key: the cadre's account scope key)."""
    in_round = select(CampaignStatusRow.org_id).where(CampaignStatusRow.round_id == round_id)
    found: dict[str, list[Supervisor]] = {}
    rows = session.execute(
        select(ContactPointOrgRow.org_id, ContactPointRow.cadre_key, ContactPointRow.cadre_name)
        .join(ContactPointRow, ContactPointRow.point_id == ContactPointOrgRow.point_id)
        .where(ContactPointOrgRow.org_id.in_(in_round))
        .order_by(ContactPointOrgRow.org_id, ContactPointRow.cadre_key)
    )
    for org_id, key, name in rows:
        who = Supervisor(role=Role.LEADING_CADRE, key=key, label=f"联系点领导{name}")
        mine = found.setdefault(org_id, [])
        if who not in mine:
            mine.append(who)
    return {org_id: tuple(who) for org_id, who in found.items()}


def supervision_since(
    session: Session, round_id: str, since: datetime | None
) -> list[SupervisionEntry]:
    """The round's spot-check verdicts and supervision records recorded after ``since``
    (the previous circular; all of them when None), for the circular's 督促检查 section."""
    names = {
        org_id: name
        for org_id, name in session.execute(
            select(CampaignStatusRow.org_id, CampaignStatusRow.org_name).where(
                CampaignStatusRow.round_id == round_id
            )
        )
    }
    entries = []
    checks = (
        select(InspectionRow, InspectionDrawRow.seed)
        .join(InspectionDrawRow, InspectionDrawRow.draw_id == InspectionRow.draw_id)
        .where(
            InspectionRow.round_id == round_id,
            InspectionRow.verdict != InspectionVerdict.PENDING.value,
        )
    )
    if since is not None:
        checks = checks.where(InspectionRow.recorded_at > since)
    for check, seed in session.execute(checks):
        verdict = InspectionVerdict(check.verdict)
        entries.append(
            SupervisionEntry(
                kind="随机抽查",
                held_on=check.inspected_on or "",
                title=f"抽查种子{seed}，检查人员{check.inspectors}",
                org_names=(names.get(check.org_id, check.org_id),),
                findings=check.findings,
                outcome=f"结论：{verdict.label}",
            )
        )
    records = select(SupervisionRecordRow).where(SupervisionRecordRow.round_id == round_id)
    if since is not None:
        records = records.where(SupervisionRecordRow.recorded_at > since)
    rows = list(session.scalars(records))
    covered: dict[str, list[str]] = {}
    for record_id, org_id in session.execute(
        select(SupervisionRecordOrgRow.record_id, SupervisionRecordOrgRow.org_id)
        .where(SupervisionRecordOrgRow.record_id.in_([r.record_id for r in rows]))
        .order_by(SupervisionRecordOrgRow.org_id)
    ):
        covered.setdefault(record_id, []).append(names.get(org_id, org_id))
    for row in rows:
        entries.append(
            SupervisionEntry(
                kind=SupervisionKind(row.kind).label,
                held_on=row.held_on,
                title=f"{row.title}，督导人员{row.supervisors}",
                org_names=tuple(covered.get(row.record_id, ())),
                findings=row.findings,
                outcome=f"后续跟进：{row.follow_ups}" if row.follow_ups else "",
            )
        )
    return [e for e in entries if e.held_on]


def previous_circular_at(session: Session, round_id: str, before: datetime) -> datetime | None:
    """When the round's latest circular before ``before`` was made (None: the first)."""
    return session.scalar(
        select(CircularRow.created_at)
        .where(CircularRow.round_id == round_id, CircularRow.created_at < before)
        .order_by(CircularRow.created_at.desc())
        .limit(1)
    )


class DigestActivities:
    """Digest and circular activities, holding the read model and where circulars go.

    Register ``[d.send_digests, d.publish_circular]``.
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        data_dir: Path | None = None,
        sender: MessageSender | None = None,
    ):
        """Keep the dependencies; ``data_dir`` defaults to the settings' at first use;
        without ``sender`` messages stay in the in-app inbox."""
        self._session_factory = session_factory
        self._data_dir = data_dir
        self._sender = sender

    def _calendar(self, session: Session, round_id: str) -> CalendarPlan:
        """The round's plan calendar: what the plan supplies and the supplementary files it
        names (``calendar.include``), nothing merged silently; the package's alone for a
        round without a stored plan."""
        definition = session.get(RoundDefinitionRow, round_id)
        if definition is None:
            return CalendarPlan()
        return load_plan(definition.plan_yaml, calendars=calendar_library()).calendar

    def _load(self, round_id: str, now: datetime) -> list[StatusLine]:
        """Every organisation's status in the round, with days overdue as of ``now``; an
        unknown round is refused (non-retryable ``UnknownRound``)."""
        with self._session_factory() as session:
            refuse_unknown_round(session, round_id)
            calendar = self._calendar(session, round_id)
            rows = session.execute(
                select(CampaignStatusRow, OrganisationRow.instructor)
                .outerjoin(OrganisationRow, OrganisationRow.org_id == CampaignStatusRow.org_id)
                .where(CampaignStatusRow.round_id == round_id)
                .order_by(CampaignStatusRow.org_id)
            ).all()
            # The guidance groups' labels are the round's county's data (issue 15).
            county = session.scalar(select(RoundRow.county).where(RoundRow.round_id == round_id))
            groups = group_map(session, {county or DEFAULT_COUNTY})
        lines = []
        for status, instructor in rows:
            due = status.deadline if status.overdue else None
            late = working_days_overdue(calendar, due, now) if due is not None else 0
            lines.append(
                StatusLine(
                    org_id=status.org_id,
                    org_name=status.org_name,
                    township=status.township,
                    system=status.system,
                    system_label=system_label(status.system, groups),
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

    @activity.defn(name=SEND_DIGESTS.name)
    async def send_digests(self, run: DigestRun) -> DigestReport:
        """Build today's digests and store each in its recipient's inbox once."""
        with structlog.contextvars.bound_contextvars(round_id=run.round_id):
            report, rows = await asyncio.to_thread(self._send_digests, run)
            # Every digest of the day, not only the new ones: a retry finishes the channels.
            await send_all(self._sender, rows)
            return report

    def _send_digests(self, run: DigestRun) -> tuple[DigestReport, list[dict[str, Any]]]:
        lines = self._load(run.round_id, run.now)
        with self._session_factory() as session:
            contacts = contact_recipients(session, run.round_id)
        built = build_digests(run.round_id, lines, now=run.now, contacts=contacts)
        delivered_at = datetime.now(UTC)
        sent: list[str] = []
        rows = [digest_row(digest, delivered_at) for digest in built]
        with self._session_factory.begin() as session:
            for row in rows:
                if insert_once(session, row):
                    sent.append(row["message_id"])
        log.info("digests sent", sent=len(sent), already_sent=len(built) - len(sent))
        report = DigestReport(
            sent=len(sent), already_sent=len(built) - len(sent), recipients=tuple(sent)
        )
        return report, rows

    @activity.defn(name=PUBLISH_CIRCULAR.name)
    async def publish_circular(self, run: CircularRun) -> CircularReport:
        """Write the circular (.xlsx and .md), record it, and notify county and townships."""
        with structlog.contextvars.bound_contextvars(round_id=run.round_id):
            report = await asyncio.to_thread(self._publish, run)
            rows = await asyncio.to_thread(self._circular_messages, report.circular_id)
            await send_all(self._sender, rows)
            return report

    def _circular_messages(self, circular_id: str) -> list[dict[str, Any]]:
        """The inbox rows of a circular's notices (as stored, so a retry sends the same)."""
        with self._session_factory() as session:
            row = session.get(CircularRow, circular_id)
            if row is None:
                return []
            link = f"/rounds/{row.round_id}/circulars/{safe_name(row.key)}"
            result = session.execute(
                select(digests)
                .where(digests.c.round_id == row.round_id, digests.c.kind == "circular")
                .where(digests.c.link_path == link)
                .order_by(digests.c.message_id)
            )
            return [dict(r._mapping) for r in result]

    def _publish(self, run: CircularRun) -> CircularReport:
        with self._session_factory() as session:
            since = previous_circular_at(session, run.round_id, run.now)
            supervision = supervision_since(session, run.round_id, since)
        circular = build_circular(
            run.round_id,
            self._load(run.round_id, run.now),
            now=run.now,
            key=run.key,
            supervision=supervision,
        )
        with self._session_factory() as session:
            existing = session.get(CircularRow, circular.circular_id)
        if existing is not None:
            # Published before (a retry or a second run the same day): the document stands.
            return circular_report(existing, notices_sent=0, again=True)
        data_dir = self._data_dir or get_settings().data_dir
        folder = data_dir / "circulars" / safe_name(run.round_id)
        xlsx, text = (
            folder / f"{safe_name(circular.key)}.xlsx",
            folder / f"{safe_name(circular.key)}.md",
        )
        try:
            write_circular_xlsx(circular, xlsx)
        except IllegalCharacterError as exc:
            # A name with a control character: the same on every retry.
            raise ApplicationError(
                f"通报中含有表格无法保存的字符：{exc}", type="InvalidInput", non_retryable=True
            ) from exc
        text.write_text(render_circular(circular), encoding="utf-8")
        now = datetime.now(UTC)
        total, completed, overdue = circular.totals()
        notices_sent = 0
        with self._session_factory.begin() as session:
            for notice in circular_notices(circular):
                notices_sent += insert_once(session, circular_notice_row(notice, circular, now))
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
        return circular_report(row, notices_sent=notices_sent, again=False)
