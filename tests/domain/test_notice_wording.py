"""Escalation notices are worded for whoever receives them: the secretary's own copy asks
them to act; a supervisor's copy asks them to urge the organisation. Ids never change."""

from __future__ import annotations

from datetime import datetime, timedelta

from domain.calendar import SHANGHAI
from domain.machine import PhaseStatus
from domain.notices import NoticeKind, build_notice, notice_id
from domain.organisation import Organisation, OrgType, Role, System, supervisors_of
from domain.phases import Phase
from domain.state import PhaseState, StepState

NOW = datetime(2024, 3, 8, 9, 30, tzinfo=SHANGHAI)
ORG = Organisation(
    id="org-001",
    name="城关镇东关村党支部",
    type=OrgType.RURAL,
    township="城关镇",
    system=System.RURAL,
    instructor="张指导",
    secretary="李书记",
    member_count=42,
)
LATE = PhaseState(
    phase=Phase.MOBILISATION,
    status=PhaseStatus.OPEN,
    opens_at=NOW - timedelta(days=10),
    deadline=NOW - timedelta(days=2),
    planned_deadline=NOW - timedelta(days=2),
    steps=[StepState(step_id="meeting", name="召开动员大会", required=True)],
    opened_at=NOW - timedelta(days=10),
)


def escalation_to(role: Role) -> tuple[str, str]:
    notice = build_notice(
        kind=NoticeKind.ESCALATION,
        round_id="r1",
        org=ORG,
        phase=LATE,
        who=supervisors_of(ORG)[role],
        now=NOW,
        rung=0,
        rung_name="书记督办",
        working_days_overdue=2,
    )
    assert notice.notice_id == notice_id(
        "r1", ORG.id, Phase.MOBILISATION, NoticeKind.ESCALATION, 0, supervisors_of(ORG)[role]
    )
    return notice.notice_id, notice.body


def test_the_secretarys_copy_asks_the_secretary_to_act() -> None:
    notice_id_, body = escalation_to(Role.SECRETARY)
    assert notice_id_ == "r1/org-001/mobilisation/escalation/0/secretary:李书记"
    assert body.startswith("城关镇东关村党支部书记李书记：你单位动员部署阶段已于")
    assert "逾期2个工作日" in body and "“召开动员大会”" in body
    assert "请尽快完成并签收本通知" in body
    assert "督促" not in body


def test_a_supervisors_copy_still_asks_them_to_urge() -> None:
    _, body = escalation_to(Role.INSTRUCTOR)
    assert body.startswith("指导员张指导：城关镇东关村党支部（城关镇，书记李书记）")
    assert "请督促其尽快完成并签收本通知" in body
    assert "你单位" not in body
