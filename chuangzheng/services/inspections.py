"""随机抽查 (seed 002 §六(五)): the county office or a guidance group draws a random sample of a
round's organisations within its scope, stratified by township, system or type, with the
seed recorded; each drawn organisation gets an inspection record (who, when, findings,
verdict), and a verdict of 差 orders rectification through
:mod:`chuangzheng.services.rectification_orders` (source ``inspection``, reference derived
from the inspection, so recording the verdict twice orders once).

The draw is :func:`domain.sampling.draw_sample` over the population as it was (recorded with
the draw): :func:`redraw` runs it again from the record and says whether it gives the same
organisations, so anyone who sees the draw can check it. A draw is visible to a caller who
covers its whole population (the county office every draw; a guidance group its own).
"""

from __future__ import annotations

import functools
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated

import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from activities.db import write_lock
from activities.tables import (
    CampaignStatusRow,
    InspectionDrawRow,
    InspectionRow,
    OrganisationRow,
)
from chuangzheng.services.callers import Caller, audit_row, require_role, visible_organisation
from chuangzheng.services.errors import InvalidInput, NotFound, Refused, domain_refusals
from chuangzheng.services.field_errors import invalid_input
from chuangzheng.services.rectification_orders import OrderRequest, order_rectification
from domain.inspection import (
    INSPECTION_SOURCE,
    PERIOD_MAX_WORKING_DAYS,
    REASON_MAX,
    SPOT_CHECK_ROLES,
    InspectionVerdict,
    RectificationGround,
)
from domain.sampling import SampleSize, SampleUnit, Stratum, draw_sample
from domain.text import Visible

FORBIDDEN = "只有县委活动办和指导小组可以组织随机抽查"
_ONE_SIZE = "必须且只能给出抽查数量 count 或抽查比例 share 之一"


class DrawRequest(BaseModel):
    """A draw: a count or a share, the stratification, and optionally the seed (a fresh
    random one is chosen and recorded when none is given)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    count: int | None = Field(default=None, ge=1, le=100_000, description="抽查数量")
    share: float | None = Field(default=None, gt=0, le=1, description="抽查比例（0–1）")
    stratify_by: Stratum = Field(default=Stratum.NONE, description="分层方式")
    seed: str | None = Field(default=None, min_length=1, max_length=100, description="随机种子")

    def size(self) -> SampleSize:
        """The domain's sample size (a share to four decimals)."""
        try:
            share = None if self.share is None else f"{self.share:.4f}"
            return SampleSize.model_validate({"count": self.count, "share": share})
        except ValidationError:
            raise InvalidInput(
                "invalid",
                "请求参数有误",
                [
                    {
                        "field": "count",
                        "reason": "必须且只能给出抽查数量 count 或抽查比例 share 之一",
                    }
                ],
            ) from None


class InspectionResult(BaseModel):
    """What the inspectors found in one drawn organisation. A verdict of ``rectify`` orders
    rectification within ``period_working_days`` (the findings are the reason)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Counted as a reader sees them, direction overrides refused (domain.text.Visible).
    inspectors: Annotated[str, Visible()] = Field(max_length=500, description="检查人员")
    inspected_on: date = Field(description="检查日期")
    findings: Annotated[str, Visible(4)] = Field(max_length=REASON_MAX, description="检查发现")
    verdict: InspectionVerdict = Field(description="检查结论")
    period_working_days: int | None = Field(
        default=None, ge=1, le=PERIOD_MAX_WORKING_DAYS, description="整改期限（工作日）"
    )


def parse_draw(fields: dict[str, object]) -> DrawRequest:
    """A draw request; :class:`InvalidInput` naming each bad field."""
    try:
        return DrawRequest.model_validate(fields)
    except ValidationError as exc:
        raise invalid_input(exc, DrawRequest) from None


def parse_result(fields: dict[str, object]) -> InspectionResult:
    """An inspection result; :class:`InvalidInput` naming each bad field."""
    try:
        result = InspectionResult.model_validate(fields)
    except ValidationError as exc:
        raise invalid_input(exc, InspectionResult) from None
    if result.verdict is InspectionVerdict.PENDING:
        raise InvalidInput(
            "invalid", "请求参数有误", [{"field": "verdict", "reason": "请给出检查结论"}]
        )
    if result.verdict is InspectionVerdict.RECTIFY and result.period_working_days is None:
        raise InvalidInput(
            "invalid",
            "请求参数有误",
            [{"field": "period_working_days", "reason": "结论为限期整改时须给出整改期限"}],
        )
    return result


@dataclass(frozen=True)
class Draw:
    """A draw with its inspections (in the sample's order)."""

    row: InspectionDrawRow
    inspections: tuple[InspectionRow, ...]

    def document(self) -> dict[str, object]:
        """As the API shows it (the population as ids; the record keeps the strata keys)."""
        return {
            "draw_id": self.row.draw_id,
            "round_id": self.row.round_id,
            "seed": self.row.seed,
            "stratify_by": self.row.stratify_by,
            "size": self.row.size,
            "population": [u["org_id"] for u in self.row.population["units"]],
            "sample": list(self.row.sample["org_ids"]),
            "drawn_by": self.row.drawn_by,
            "drawn_by_role": self.row.drawn_by_role,
            "drawn_at": self.row.drawn_at,
            "inspections": [inspection_document(i) for i in self.inspections],
        }


def inspection_document(row: InspectionRow) -> dict[str, object]:
    """One inspection as the API shows it."""
    verdict = InspectionVerdict(row.verdict)
    return {
        "inspection_id": row.inspection_id,
        "draw_id": row.draw_id,
        "round_id": row.round_id,
        "org_id": row.org_id,
        "verdict": verdict.value,
        "verdict_label": verdict.label,
        "findings": row.findings,
        "inspectors": row.inspectors,
        "inspected_on": row.inspected_on,
        "recorded_by": row.recorded_by,
        "recorded_at": row.recorded_at,
        "order_id": row.order_id,
    }


def inspection_id_for(draw_id: str, org_id: str) -> str:
    """One inspection per drawn organisation (an id without slashes, for paths)."""
    return f"insp-{uuid.uuid5(uuid.NAMESPACE_URL, f'{draw_id}/{org_id}').hex[:24]}"


def _population(session: Session, caller: Caller, round_id: str) -> list[SampleUnit]:
    rows = session.execute(
        select(
            CampaignStatusRow.org_id,
            OrganisationRow.township,
            OrganisationRow.system,
            OrganisationRow.org_type,
        )
        .join(OrganisationRow, OrganisationRow.org_id == CampaignStatusRow.org_id)
        .where(CampaignStatusRow.round_id == round_id, caller.condition)
        .order_by(CampaignStatusRow.org_id)
    ).all()
    return [SampleUnit(org_id=o, township=t, system=s, type=k) for o, t, s, k in rows]


def _store_draw(
    sessions: sessionmaker[Session], caller: Caller, round_id: str, request: DrawRequest
) -> Draw:
    size = request.size()
    seed = request.seed if request.seed is not None else secrets.token_hex(8)
    now = datetime.now(UTC)
    with sessions.begin() as session:
        population = _population(session, caller, round_id)
        if not population:
            raise NotFound("本轮活动不存在，或您的范围内没有参加本轮活动的组织")
        with domain_refusals():
            sample = draw_sample(population, size, request.stratify_by, seed)
        draw_id = f"draw-{uuid.uuid4().hex[:16]}"
        row = InspectionDrawRow(
            draw_id=draw_id,
            round_id=round_id,
            seed=seed,
            stratify_by=request.stratify_by.value,
            size=size.model_dump(mode="json", exclude_none=True),
            population={"units": [u.model_dump(mode="json") for u in population]},
            sample={"org_ids": list(sample)},
            drawn_by=caller.username,
            drawn_by_role=caller.role.value,
            scope_key="",
            drawn_at=now,
        )
        session.add(row)
        inspections = [
            InspectionRow(
                inspection_id=inspection_id_for(draw_id, org_id),
                draw_id=draw_id,
                round_id=round_id,
                org_id=org_id,
                verdict=InspectionVerdict.PENDING.value,
                findings="",
                inspectors="",
                inspected_on=None,
                recorded_by=None,
                recorded_at=None,
                order_id=None,
            )
            for org_id in sample
        ]
        session.add_all(inspections)
        session.add(
            audit_row(
                caller,
                "spot_check_drawn",
                round_id=round_id,
                org_id=None,
                detail={
                    "draw_id": draw_id,
                    "seed": seed,
                    "stratify_by": request.stratify_by.value,
                    "size": row.size,
                    "population": len(population),
                    "sample": list(sample),
                },
                now=now,
            )
        )
        session.flush()
        session.expunge_all()
    return Draw(row=row, inspections=tuple(inspections))


async def draw(
    sessions: sessionmaker[Session], caller: Caller, round_id: str, request: DrawRequest
) -> Draw:
    """Draw a sample of ``round_id``'s organisations in ``caller``'s scope and open an
    inspection for each; audited."""
    require_role(caller, SPOT_CHECK_ROLES, FORBIDDEN)
    return await anyio.to_thread.run_sync(_store_draw, sessions, caller, round_id, request)


def _visible_draw(session: Session, caller: Caller, round_id: str, draw_id: str) -> Draw:
    row = session.get(InspectionDrawRow, draw_id)
    if row is None or row.round_id != round_id:
        raise NotFound()
    ids = [u["org_id"] for u in row.population["units"]]
    covered = session.scalar(
        select(func.count())
        .select_from(OrganisationRow)
        .where(OrganisationRow.org_id.in_(ids), caller.condition)
    )
    if covered != len(set(ids)):
        raise NotFound()
    inspections = session.scalars(
        select(InspectionRow).where(InspectionRow.draw_id == draw_id).order_by(InspectionRow.org_id)
    )
    return Draw(row=row, inspections=tuple(inspections))


def get_draw(session: Session, caller: Caller, round_id: str, draw_id: str) -> Draw:
    """A draw and its inspections (:class:`NotFound` unless ``caller`` covers its whole
    population)."""
    return _visible_draw(session, caller, round_id, draw_id)


@dataclass(frozen=True)
class Redraw:
    """A draw done again from its record."""

    recorded: tuple[str, ...]
    redrawn: tuple[str, ...]

    @property
    def same(self) -> bool:
        """Whether the re-draw gives the recorded sample."""
        return self.recorded == self.redrawn


def redraw(session: Session, caller: Caller, round_id: str, draw_id: str) -> Redraw:
    """Run the recorded draw again (population, size, stratification and seed as recorded)."""
    found = _visible_draw(session, caller, round_id, draw_id).row
    population = [SampleUnit.model_validate(u) for u in found.population["units"]]
    size = SampleSize.model_validate(found.size)
    with domain_refusals():
        again = draw_sample(population, size, Stratum(found.stratify_by), found.seed)
    return Redraw(recorded=tuple(found.sample["org_ids"]), redrawn=again)


def list_draws(session: Session, caller: Caller, round_id: str) -> list[Draw]:
    """The round's draws ``caller`` may see, newest first."""
    rows = session.scalars(
        select(InspectionDrawRow)
        .where(InspectionDrawRow.round_id == round_id)
        .order_by(InspectionDrawRow.drawn_at.desc())
    )
    found = []
    for row in rows:
        try:
            found.append(_visible_draw(session, caller, round_id, row.draw_id))
        except NotFound:
            continue
    return found


def _load_inspection(
    sessions: sessionmaker[Session], caller: Caller, round_id: str, inspection_id: str
) -> InspectionRow:
    with sessions() as session:
        row = session.get(InspectionRow, inspection_id)
        if row is None or row.round_id != round_id:
            raise NotFound()
        visible_organisation(session, caller, row.org_id)
        session.expunge(row)
        return row


def _save_result(
    sessions: sessionmaker[Session],
    caller: Caller,
    inspection_id: str,
    result: InspectionResult,
    order_id: str | None,
) -> InspectionRow:
    now = datetime.now(UTC)
    with sessions.begin() as session:
        write_lock(session, InspectionRow)  # the order check below holds until commit
        row = session.get(InspectionRow, inspection_id, with_for_update=True)
        assert row is not None
        if row.order_id is not None and order_id is None:
            raise Refused("invalid_transition", "该抽查已下达整改通知，结论不能再修改")
        row.verdict = result.verdict.value
        row.findings = result.findings.strip()
        row.inspectors = result.inspectors.strip()
        row.inspected_on = result.inspected_on.isoformat()
        row.recorded_by, row.recorded_at = caller.username, now
        row.order_id = order_id or row.order_id
        session.add(
            audit_row(
                caller,
                "spot_check_recorded",
                round_id=row.round_id,
                org_id=row.org_id,
                detail={
                    "inspection_id": inspection_id,
                    "verdict": result.verdict.value,
                    "order_id": row.order_id,
                },
                now=now,
            )
        )
        session.flush()
        session.expunge(row)
        return row


async def record_result(
    sessions: sessionmaker[Session],
    temporal: Client,
    caller: Caller,
    *,
    round_id: str,
    inspection_id: str,
    result: InspectionResult,
) -> InspectionRow:
    """Record an inspection's findings and verdict; a verdict of 差 orders rectification
    (once: the order's id is derived from the inspection). Refused after an order was given
    unless the same verdict is recorded again."""
    require_role(caller, SPOT_CHECK_ROLES, FORBIDDEN)
    row = await anyio.to_thread.run_sync(
        _load_inspection, sessions, caller, round_id, inspection_id
    )
    order_id = None
    if result.verdict is InspectionVerdict.RECTIFY:
        assert result.period_working_days is not None
        order_id = f"ro-insp-{uuid.uuid5(uuid.NAMESPACE_URL, inspection_id).hex[:20]}"
        await order_rectification(
            sessions,
            temporal,
            caller,
            round_id=round_id,
            org_id=row.org_id,
            request=OrderRequest(
                ground=RectificationGround.SPOT_CHECK,
                reason=result.findings,
                period_working_days=result.period_working_days,
            ),
            source=INSPECTION_SOURCE,
            order_id=order_id,
            inspection_id=inspection_id,
        )
    return await anyio.to_thread.run_sync(
        functools.partial(_save_result, sessions, caller, inspection_id, result, order_id)
    )


def list_inspections(
    session: Session, caller: Caller, round_id: str, *, org_id: str | None = None
) -> list[InspectionRow]:
    """The round's inspections of organisations in ``caller``'s scope."""
    query = (
        select(InspectionRow)
        .join(OrganisationRow, OrganisationRow.org_id == InspectionRow.org_id)
        .where(InspectionRow.round_id == round_id, caller.condition)
        .order_by(InspectionRow.draw_id, InspectionRow.org_id)
    )
    if org_id is not None:
        visible_organisation(session, caller, org_id)
        query = query.where(InspectionRow.org_id == org_id)
    return list(session.scalars(query))
