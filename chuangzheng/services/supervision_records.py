"""座谈会 and 督查 visits (seed 002 §六(五) "采取召开座谈会、经常性督查…等方式，了解活动进展"):
a supervision record per round — the date, the supervisors, the organisations covered, what
was found and the follow-ups — shown on each covered organisation's timeline and in the
round's weekly circular.

Supervising roles (:data:`domain.inspection.RECORD_ROLES`) record for organisations in their
scope: an organisation outside it, or not in the round, is refused by field
(``org_ids.<i>``) with the same words as one that does not exist, so nothing leaks. Every
record is audited.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from activities.tables import (
    CampaignStatusRow,
    OrganisationRow,
    SupervisionRecordOrgRow,
    SupervisionRecordRow,
)
from chuangzheng.services.callers import Caller, audit_row, require_role, visible_organisation
from chuangzheng.services.errors import InvalidInput
from chuangzheng.services.field_errors import invalid_input
from domain.calendar import local_date
from domain.inspection import RECORD_ROLES, SupervisionKind
from domain.text import Visible, free_text_problem

FORBIDDEN = "只有督导人员可以记录座谈会和督查情况"
#: The supervisors are kept as one text joined by "、" in a column of this many characters
#: (``supervision_records.supervisors``): PostgreSQL refuses a longer one outright, so the
#: request is measured against it before anything is written.
SUPERVISORS_MAX_CHARS = 500
#: One person's name (or name and post, "镇党委赵书记").
SUPERVISOR_NAME_MAX_CHARS = 40
_SEPARATOR = "、"


class RecordRequest(BaseModel):
    """One 座谈会 or 督查 visit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: SupervisionKind = Field(description="类型：座谈会或督查")
    held_on: date = Field(description="日期")
    # Free text is counted as a reader sees it and refused with a direction override
    # (domain.text.Visible): zero-width characters made "findings" of nothing.
    title: Annotated[str, Visible()] = Field(max_length=200, description="标题")
    supervisors: list[str] = Field(min_length=1, max_length=50, description="督导人员")
    org_ids: list[str] = Field(min_length=1, max_length=500, description="涉及的基层党组织")
    findings: Annotated[str, Visible(4)] = Field(max_length=4000, description="发现的问题")
    follow_ups: Annotated[str, Visible(0)] = Field(
        default="", max_length=4000, description="后续跟进"
    )


def parse_request(fields: dict[str, object], *, today: date | None = None) -> RecordRequest:
    """The request from a form or a body; :class:`InvalidInput` naming each bad field. A
    record is of a visit that took place: not after ``today`` (Asia/Shanghai's, by default),
    or the timeline would show it as done before it happened."""
    try:
        request = RecordRequest.model_validate(fields)
    except ValidationError as exc:
        raise invalid_input(exc, RecordRequest) from None
    today = today if today is not None else local_date(datetime.now(UTC))
    if request.held_on > today:
        future = f"日期：不能晚于今天（{today.isoformat()}），只记录已经开展的座谈会或督查"
        raise InvalidInput("invalid", future, [{"field": "held_on", "reason": future}])
    problems = [
        {"field": f"supervisors.{i}", "reason": reason}
        for i, name in enumerate(request.supervisors)
        if (reason := _name_problem(name.strip()))
    ]
    if not problems and len(_joined(request.supervisors)) > SUPERVISORS_MAX_CHARS:
        problems.append(
            {
                "field": "supervisors",
                "reason": f"督导人员姓名合计不能超过{SUPERVISORS_MAX_CHARS}字",
            }
        )
    if problems:
        raise InvalidInput("invalid", "请求参数有误", problems)
    return request


def _name_problem(name: str) -> str | None:
    """Why one supervisor's name cannot be kept, or None."""
    if problem := free_text_problem(name, short="姓名不能为空"):
        return problem
    if len(name) > SUPERVISOR_NAME_MAX_CHARS:
        return f"姓名不能超过{SUPERVISOR_NAME_MAX_CHARS}字"
    if _SEPARATOR in name:
        # The names are kept joined by "、": one containing it would come back as two.
        return "每项只能填写一人，多人请分项填写"
    return None


def _joined(supervisors: list[str]) -> str:
    return _SEPARATOR.join(s.strip() for s in supervisors)


@dataclass(frozen=True)
class SupervisionRecord:
    """A record and the organisations it covers."""

    row: SupervisionRecordRow
    org_ids: tuple[str, ...]

    def document(self) -> dict[str, object]:
        """As the API shows it."""
        kind = SupervisionKind(self.row.kind)
        return {
            "record_id": self.row.record_id,
            "round_id": self.row.round_id,
            "kind": kind.value,
            "kind_label": kind.label,
            "held_on": self.row.held_on,
            "title": self.row.title,
            "supervisors": self.row.supervisors.split(_SEPARATOR),
            "org_ids": list(self.org_ids),
            "findings": self.row.findings,
            "follow_ups": self.row.follow_ups,
            "recorded_by": self.row.recorded_by,
            "recorded_by_role": self.row.recorded_by_role,
            "recorded_at": self.row.recorded_at,
        }


def _check_orgs(session: Session, caller: Caller, round_id: str, org_ids: list[str]) -> None:
    in_round = set(
        session.scalars(
            select(CampaignStatusRow.org_id)
            .join(OrganisationRow, OrganisationRow.org_id == CampaignStatusRow.org_id)
            .where(
                CampaignStatusRow.round_id == round_id,
                CampaignStatusRow.org_id.in_(set(org_ids)),
                caller.condition,
            )
        )
    )
    problems = [
        {"field": f"org_ids.{i}", "reason": "本轮活动中没有这个组织，或它不在您的督导范围内"}
        for i, org_id in enumerate(org_ids)
        if org_id not in in_round
    ]
    if len(set(org_ids)) != len(org_ids):
        problems.append({"field": "org_ids", "reason": "组织重复"})
    if problems:
        raise InvalidInput("invalid", "请求参数有误", problems)


def record(
    session: Session,
    caller: Caller,
    round_id: str,
    request: RecordRequest,
    *,
    now: datetime | None = None,
) -> SupervisionRecord:
    """Keep a supervision record for ``round_id``; audited. The caller's session commits."""
    require_role(caller, RECORD_ROLES, FORBIDDEN)
    _check_orgs(session, caller, round_id, request.org_ids)
    now = now or datetime.now(UTC)
    row = SupervisionRecordRow(
        record_id=f"sr-{uuid.uuid4().hex[:16]}",
        round_id=round_id,
        kind=request.kind.value,
        held_on=request.held_on.isoformat(),
        title=request.title.strip(),
        supervisors=_joined(request.supervisors),
        findings=request.findings.strip(),
        follow_ups=request.follow_ups.strip(),
        recorded_by=caller.username,
        recorded_by_role=caller.role.value,
        recorded_at=now,
    )
    session.add(row)
    session.flush()
    session.add_all(
        SupervisionRecordOrgRow(record_id=row.record_id, org_id=o) for o in request.org_ids
    )
    session.add(
        audit_row(
            caller,
            "supervision_recorded",
            round_id=round_id,
            org_id=request.org_ids[0] if len(request.org_ids) == 1 else None,
            detail={
                "record_id": row.record_id,
                "kind": row.kind,
                "held_on": row.held_on,
                "org_ids": list(request.org_ids),
            },
            now=now,
        )
    )
    return SupervisionRecord(row=row, org_ids=tuple(request.org_ids))


def list_records(
    session: Session, caller: Caller, round_id: str, *, org_id: str | None = None
) -> list[SupervisionRecord]:
    """The round's records covering an organisation in ``caller``'s scope (or ``org_id``,
    the timeline's view; outside the scope :class:`NotFound`), newest first. Each lists only
    the organisations the caller may see."""
    visible = (
        select(SupervisionRecordOrgRow.record_id, SupervisionRecordOrgRow.org_id)
        .join(OrganisationRow, OrganisationRow.org_id == SupervisionRecordOrgRow.org_id)
        .where(caller.condition)
    )
    if org_id is not None:
        visible_organisation(session, caller, org_id)
        visible = visible.where(SupervisionRecordOrgRow.org_id == org_id)
    covered: dict[str, list[str]] = defaultdict(list)
    for record_id, covered_org in session.execute(visible):
        covered[record_id].append(covered_org)
    if not covered:
        return []
    rows = session.scalars(
        select(SupervisionRecordRow)
        .where(
            SupervisionRecordRow.round_id == round_id,
            SupervisionRecordRow.record_id.in_(list(covered)),
        )
        .order_by(SupervisionRecordRow.held_on.desc(), SupervisionRecordRow.recorded_at.desc())
    )
    if org_id is not None:
        # The timeline's view: the record as it concerns this organisation.
        return [SupervisionRecord(row=r, org_ids=(org_id,)) for r in rows]
    return [SupervisionRecord(row=r, org_ids=tuple(sorted(covered[r.record_id]))) for r in rows]


def round_organisations(session: Session, caller: Caller, round_id: str) -> list[tuple[str, str]]:
    """The round's organisations in ``caller``'s scope as (id, name), for a record's form."""
    rows = session.execute(
        select(CampaignStatusRow.org_id, CampaignStatusRow.org_name)
        .join(OrganisationRow, OrganisationRow.org_id == CampaignStatusRow.org_id)
        .where(CampaignStatusRow.round_id == round_id, caller.condition)
        .order_by(CampaignStatusRow.township, CampaignStatusRow.org_id)
    )
    return [(org_id, name) for org_id, name in rows]
