"""The 预警 (early warning): the round's daily check scores the open phases with the kept
forecast model and warns the recipient of the plan's 预警 rung (the instructor) of every
organisation at or above the round's threshold, before the deadline, exactly once per
organisation and phase.

**The rung is plan data** (``ladder.early_warning``, :class:`domain.plan.EarlyWarningRung`):
its threshold, from which share of the window it may fire (``not_before``), to whom, and the
notice's request. A plan without the rung sends no 预警. **The threshold of a running round**
is the plan's, until the county office changes it (:func:`set_round_threshold`): that change
is an audited action (``forecast_threshold_changed``, 修改预警线), and the audit log is its
ledger — the latest such row of the round is the threshold in force, read by the daily check
and the pages alike (:func:`round_threshold`), so no table or file holds a second copy.

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
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import structlog
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from activities.contracts import DeliveryReport, NoticeBatch
from activities.tables import AuditRow, OrganisationRow, RoundDefinitionRow, notices
from chuangzheng.plans import parse_plan
from chuangzheng.services.callers import Caller, audit_row, require_role, visible_round
from chuangzheng.services.errors import InvalidInput, NotFound, Refused
from chuangzheng.services.forecast import load_model, model_path, read_round
from domain.errors import DomainError
from domain.forecast import EarlyWarning, ForecastModel, features_at, warnings_due
from domain.notices import Notice, NoticeKind, build_early_warning
from domain.organisation import Organisation, OrgType, Role, supervisors_of
from domain.phases import Phase
from domain.plan import EarlyWarningRung

log = structlog.get_logger(__name__)

#: No 预警 before this share of a phase's window has passed, unless the rung says otherwise:
#: in its first days nobody has shown a pace yet, so a warning would only repeat the
#: organisation's record.
NOT_BEFORE = 0.25
#: The audited action of the county office's threshold change (its row is the ledger).
THRESHOLD_ACTION = "forecast_threshold_changed"

Deliver = Callable[[NoticeBatch], Awaitable[DeliveryReport]]


class EarlyWarningReport(BaseModel):
    """What one check did: warnings sent now, and whether a model was there to score."""

    model_config = ConfigDict(frozen=True)

    fitted: bool
    scored: int = 0
    sent: int = 0
    already_warned: int = 0


# ----- the rung and the round's threshold ----------------------------------------------------


@lru_cache(maxsize=32)
def _rung_of(plan_yaml: str, round_plan_id: str) -> EarlyWarningRung | None:
    try:
        plan = parse_plan(plan_yaml)
        return plan.ladder_for(plan.round(round_plan_id)).early_warning
    except (DomainError, KeyError, ValueError):
        return None


def round_rung(session: Session, round_id: str) -> EarlyWarningRung | None:
    """The 预警 rung of the round's plan (as created), or None: no 预警 in this round."""
    definition = session.get(RoundDefinitionRow, round_id)
    if definition is None:
        return None
    return _rung_of(definition.plan_yaml, definition.round_plan_id)


def county_threshold(session: Session, round_id: str) -> float | None:
    """The threshold the county office last set for the round (from the audit log), or
    None if it never changed the plan's."""
    detail = session.scalar(
        select(AuditRow.detail)
        .where(AuditRow.action == THRESHOLD_ACTION, AuditRow.round_id == round_id)
        .order_by(AuditRow.at.desc(), AuditRow.audit_id.desc())
        .limit(1)
    )
    if not isinstance(detail, dict):
        return None
    value = detail.get("threshold")
    return float(value) if isinstance(value, int | float) else None


def round_threshold(session: Session, round_id: str) -> float | None:
    """The threshold in force for the round: the county office's, else the rung's; None
    when the round's plan has no 预警 rung."""
    rung = round_rung(session, round_id)
    if rung is None:
        return None
    chosen = county_threshold(session, round_id)
    return rung.threshold if chosen is None else chosen


class ThresholdChange(BaseModel):
    """The county office's change of a running round's 预警 threshold."""

    model_config = ConfigDict(frozen=True)

    round_id: str
    threshold: float
    previous: float
    plan_threshold: float


def set_round_threshold(
    session: Session, caller: Caller, round_id: str, threshold: float, *, reason: str = ""
) -> ThresholdChange:
    """Change the round's 预警 threshold (county office only), audited in the same
    transaction (the caller commits). Refused for a round whose plan has no 预警 rung;
    :class:`NotFound` for a round of a county ``caller`` does not see."""
    require_role(caller, {Role.COUNTY_OFFICE}, "只有县委活动办可以修改预警线")
    if not 0.0 < threshold < 1.0:
        raise InvalidInput(
            "invalid",
            "预警线有误",
            [{"field": "threshold", "reason": "预警线须为 0 与 1 之间的概率（不含 0 和 1）"}],
        )
    if len(reason) > 2000:
        raise InvalidInput(
            "invalid", "理由过长", [{"field": "reason", "reason": "理由不能超过 2000 字"}]
        )
    visible_round(session, caller, round_id)
    if session.get(RoundDefinitionRow, round_id) is None:
        raise NotFound("轮次不存在")
    rung = round_rung(session, round_id)
    if rung is None:
        raise Refused(
            "no_early_warning", "本轮计划没有预警层级（ladder.early_warning），无预警线可改"
        )
    previous = county_threshold(session, round_id)
    before = rung.threshold if previous is None else previous
    session.add(
        audit_row(
            caller,
            THRESHOLD_ACTION,
            round_id=round_id,
            org_id=None,
            detail={
                "threshold": threshold,
                "previous": before,
                "plan_threshold": rung.threshold,
                "reason": reason,
            },
            now=datetime.now(UTC),
        )
    )
    return ThresholdChange(
        round_id=round_id, threshold=threshold, previous=before, plan_threshold=rung.threshold
    )


# ----- the daily check ----------------------------------------------------------------------


def due_warnings(
    session: Session,
    round_id: str,
    model: ForecastModel,
    *,
    now: datetime,
    rung: EarlyWarningRung | None = None,
    threshold: float | None = None,
) -> tuple[list[EarlyWarning], dict[tuple[str, Phase], datetime], int, int]:
    """The warnings due at ``now`` (never for a pair already in the inbox, nor for a
    finished phase, nor before the rung's ``not_before`` of the window), each pair's
    deadline, how many open phases were scored, and how many pairs had been warned before.
    ``threshold`` None: the model's own (for callers without a round rung)."""
    view = read_round(session, round_id)
    if view is None:
        return [], {}, 0, 0
    not_before = rung.not_before if rung is not None else NOT_BEFORE
    cut = model.threshold if threshold is None else threshold
    features = features_at(view.snapshots, now, view.windows, view.calendar)
    forecasts = [model.forecast(f, threshold=cut) for f in features if f.elapsed >= not_before]
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
    due = warnings_due(forecasts, threshold=cut, warned=warned, finished=finished, as_of=now)
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
            system=row.system,
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
            rung = round_rung(session, round_id)
            if rung is None:  # the plan has no 预警 rung: nothing to send
                return [], 0, 0
            threshold = round_threshold(session, round_id)
            due, deadlines, scored, warned = due_warnings(
                session, round_id, model, now=now, rung=rung, threshold=threshold
            )
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
                    who=supervisors_of(org)[rung.recipient],
                    now=now,
                    request=rung.text,
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
