"""The 预警 (early warning): the round's daily check scores the open phases with the kept
forecast model and warns the instructor of every organisation at or above the county
office's threshold, before the deadline, exactly once per organisation and phase.

The ledger is the notice inbox (``notices``): a 预警's id is built from (round,
organisation, phase, kind, recipient) and filed insert-once, so the pairs already warned are
read back from it and a retried activity or a second check sends nothing more. Delivery
goes through the same ``deliver_notices`` as escalation notices (inbox, then the external
channels). No kept model (``forecast-model.json`` under the data directory): nothing is
sent, and that is logged once per process. Wired by ``worker.py`` into the ``check_round``
activity (``activities.round_fanout``), which passes the check's own ``as_of``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

import structlog
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from activities.contracts import DeliveryReport, NoticeBatch
from activities.tables import OrganisationRow, notices
from chuangzheng.services.forecast import load_model, model_path, read_round
from domain.forecast import EarlyWarning, ForecastModel, features_at, warnings_due
from domain.notices import Notice, NoticeKind, build_early_warning
from domain.organisation import Organisation, OrgType, Role, System, supervisors_of
from domain.phases import Phase

log = structlog.get_logger(__name__)

#: No 预警 before this share of a phase's window has passed: in its first days nobody has
#: shown a pace yet, so a warning would only repeat the organisation's record.
NOT_BEFORE = 0.25

Deliver = Callable[[NoticeBatch], Awaitable[DeliveryReport]]


class EarlyWarningReport(BaseModel):
    """What one check did: warnings sent now, and whether a model was there to score."""

    model_config = ConfigDict(frozen=True)

    fitted: bool
    scored: int = 0
    sent: int = 0
    already_warned: int = 0


def due_warnings(
    session: Session, round_id: str, model: ForecastModel, *, now: datetime
) -> tuple[list[EarlyWarning], dict[tuple[str, Phase], datetime], int, int]:
    """The warnings due at ``now`` (never for a pair already in the inbox, nor for a
    finished phase, nor before :data:`NOT_BEFORE` of the window), each pair's deadline, how
    many open phases were scored, and how many pairs had been warned before."""
    view = read_round(session, round_id)
    if view is None:
        return [], {}, 0, 0
    features = features_at(view.snapshots, now, view.windows, view.calendar)
    forecasts = [model.forecast(f) for f in features if f.elapsed >= NOT_BEFORE]
    warned = {
        (org_id, Phase(phase))
        for org_id, phase in session.execute(
            select(notices.c.org_id, notices.c.phase).where(
                notices.c.round_id == round_id,
                notices.c.kind == NoticeKind.EARLY_WARNING.value,
            )
        )
    }
    finished = {
        (snap.org_id, record.phase)
        for snap in view.snapshots
        for record in snap.phases
        if record.completed_at is not None
    }
    deadlines = {
        (snap.org_id, record.phase): record.deadline
        for snap in view.snapshots
        for record in snap.phases
    }
    due = warnings_due(
        forecasts, threshold=model.threshold, warned=warned, finished=finished, as_of=now
    )
    return due, deadlines, len(features), len(warned)


def _organisations(session: Session, org_ids: set[str]) -> dict[str, Organisation]:
    """The roster's organisations of ``org_ids`` (their instructor is the addressee)."""
    if not org_ids:
        return {}
    r = OrganisationRow
    rows = session.execute(
        select(
            r.org_id, r.name, r.org_type, r.township, r.system, r.member_count, r.secretary,
            r.instructor,
        ).where(r.org_id.in_(org_ids))
    )  # fmt: skip
    return {
        row.org_id: Organisation(
            id=row.org_id,
            name=row.name,
            type=OrgType(row.org_type),
            township=row.township,
            system=System(row.system),
            member_count=row.member_count,
            secretary=row.secretary,
            instructor=row.instructor,
        )
        for row in rows
    }


class EarlyWarningSender:
    """Sends the round's due 预警 (one call per daily check)."""

    def __init__(self, sessions: sessionmaker[Session], deliver: Deliver, data_dir: Path) -> None:
        self._sessions = sessions
        self._deliver = deliver
        self._model_path = model_path(data_dir)
        self._missing_logged = False

    def _notices(self, round_id: str, now: datetime) -> tuple[list[Notice], int, int] | None:
        model = load_model(self._model_path)
        if model is None:
            return None
        with self._sessions() as session:
            due, deadlines, scored, warned = due_warnings(session, round_id, model, now=now)
            orgs = _organisations(session, {w.org_id for w in due})
        out = []
        for warning in due:
            org = orgs.get(warning.org_id)
            if org is None:  # not in the roster table: nobody to address
                log.warning("early warning without roster row", org_id=warning.org_id)
                continue
            out.append(
                build_early_warning(
                    round_id=round_id,
                    org=org,
                    phase=warning.phase,
                    deadline=deadlines[(warning.org_id, warning.phase)],
                    probability=warning.probability,
                    reasons=warning.reasons,
                    who=supervisors_of(org)[Role.INSTRUCTOR],
                    now=now,
                )
            )
        return out, scored, warned

    async def __call__(self, round_id: str, now: datetime) -> EarlyWarningReport:
        """Score the round at ``now`` and send the due 预警 (inbox first, then channels)."""
        found = await asyncio.to_thread(self._notices, round_id, now)
        if found is None:
            if not self._missing_logged:
                self._missing_logged = True
                log.info("no forecast model kept: no early warnings", path=str(self._model_path))
            return EarlyWarningReport(fitted=False)
        due, scored, warned = found
        sent = 0
        if due:
            report = await self._deliver(NoticeBatch(notices=due))
            sent = report.delivered
        result = EarlyWarningReport(fitted=True, scored=scored, sent=sent, already_warned=warned)
        log.info("early warnings", round_id=round_id, **result.model_dump())
        return result
