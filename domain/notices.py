"""Notices in Chinese: reminders, escalations, circulars and rectification orders.

A notice's id is built from (round, organisation, phase, kind, rung, recipient), so the
same notice can never be produced twice for the same person, however often a workflow
task or a delivery activity is retried.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from domain.calendar import deadline_wording
from domain.organisation import Organisation, Role, Supervisor
from domain.phases import Phase
from domain.state import PhaseState


class NoticeKind(StrEnum):
    """What a notice is."""

    REMINDER = "reminder"
    ESCALATION = "escalation"
    CIRCULAR = "circular"
    RECTIFICATION_ORDER = "rectification_order"
    RECTIFICATION_OVERDUE = "rectification_overdue"
    EARLY_WARNING = "early_warning"

    @property
    def label(self) -> str:
        """Chinese label."""
        return {
            "reminder": "到期提醒",
            "escalation": "督办通知",
            "circular": "通报",
            "rectification_order": "整改通知",
            "rectification_overdue": "整改逾期",
            "early_warning": "预警",
        }[self.value]


class Notice(BaseModel):
    """One message to one recipient."""

    model_config = ConfigDict(frozen=True)

    notice_id: str
    round_id: str
    org_id: str
    org_name: str
    phase: Phase
    kind: NoticeKind
    rung: int | None
    recipient_role: Role
    recipient_key: str
    recipient_label: str
    title: str
    body: str
    link_path: str
    created_at: datetime


def _fmt(deadline: datetime) -> str:
    return deadline_wording(deadline)


def _missing_steps(phase: PhaseState) -> str:
    missing = [
        f"“{s.name}”（{s.status.label}）" for s in phase.steps if s.required and not s.settled
    ]
    return "、".join(missing) or "（规定动作均已完成，待整改复查）"


def notice_id(
    round_id: str, org_id: str, phase: Phase, kind: NoticeKind, rung: int | None, who: Supervisor
) -> str:
    """The stable identity of a notice (one per round, organisation, phase, rung, recipient)."""
    rung_part = "-" if rung is None else str(rung)
    return f"{round_id}/{org_id}/{phase.value}/{kind.value}/{rung_part}/{who.role.value}:{who.key}"


def build_notice(
    *,
    kind: NoticeKind,
    round_id: str,
    org: Organisation,
    phase: PhaseState,
    who: Supervisor,
    now: datetime,
    rung: int | None = None,
    rung_name: str = "",
    working_days_overdue: int = 0,
) -> Notice:
    """Compose a notice: who is late, with which step, the deadline, how late, what to do."""
    link = f"/orgs/{org.id}?round={round_id}"
    stage = phase.phase.label
    deadline = _fmt(phase.deadline)
    missing = _missing_steps(phase)
    late = f"逾期{working_days_overdue}个工作日" if working_days_overdue else "已过截止时间"
    if kind is NoticeKind.REMINDER:
        title = f"【{stage}】即将到期提醒：{org.name}"
        body = (
            f"{org.name}：{stage}阶段将于{deadline}截止。"
            f"尚未完成的规定动作：{missing}。请按时提交材料。"
        )
    elif kind is NoticeKind.ESCALATION and who.role is Role.SECRETARY:
        # The secretary's own copy: they are the one late, so it asks them to act, not to
        # urge someone else.
        title = f"【{rung_name}】{org.name}{stage}阶段{late}"
        body = (
            f"{who.label}：你单位{stage}阶段已于{deadline}截止，现{late}。未完成：{missing}。"
            f"请尽快完成并签收本通知。"
        )
    elif kind is NoticeKind.ESCALATION:
        title = f"【{rung_name}】{org.name}{stage}阶段{late}"
        body = (
            f"{who.label}：{org.name}（{org.township}，书记{org.secretary}）{stage}阶段已于{deadline}"
            f"截止，现{late}。未完成：{missing}。"
            f"请督促其尽快完成并签收本通知。"
        )
    elif kind is NoticeKind.CIRCULAR:
        title = f"【通报】{org.name}{stage}阶段工作滞后"
        body = (
            f"县委创先争优活动领导小组办公室通报：{org.name}（{org.township}）{stage}阶段"
            f"{late}，未完成：{missing}。对思想上不重视、工作上不得力的，"
            f"予以批评并责令限期整改。"
        )
    elif kind is NoticeKind.RECTIFICATION_ORDER:
        order = phase.rectification
        due = _fmt(order.deadline) if order is not None else deadline
        title = f"【整改通知】{org.name}{stage}阶段限期整改"
        body = (
            f"{org.name}：你单位{stage}阶段{late}，未完成：{missing}。"
            f"请于{due}前完成整改，补齐规定动作，并提交整改报告及佐证材料，等待复查。"
        )
    else:
        title = f"【整改逾期】{org.name}{stage}阶段整改未按期完成"
        body = f"{who.label}：{org.name}未在整改期限内通过复查。未完成：{missing}。"
    return Notice(
        notice_id=notice_id(round_id, org.id, phase.phase, kind, rung, who),
        round_id=round_id,
        org_id=org.id,
        org_name=org.name,
        phase=phase.phase,
        kind=kind,
        rung=rung,
        recipient_role=who.role,
        recipient_key=who.key,
        recipient_label=who.label,
        title=title,
        body=body,
        link_path=link,
        created_at=now,
    )


def build_early_warning(
    *,
    round_id: str,
    org: Organisation,
    phase: Phase,
    deadline: datetime,
    probability: float,
    reasons: tuple[str, ...],
    who: Supervisor,
    now: datetime,
    request: str = "请在截止前督促其按序时进度完成规定动作。",
) -> Notice:
    """A 预警 to the organisation's instructor before the deadline: the forecast says the
    phase is likely to be missed. One per round, organisation, phase and recipient (its id).
    ``request`` is the plan's 预警 rung's text (what the recipient is asked to do)."""
    stage = phase.label
    percent = round(probability * 100)
    why = "；".join(reasons) or "综合进度判断"
    return Notice(
        notice_id=notice_id(round_id, org.id, phase, NoticeKind.EARLY_WARNING, None, who),
        round_id=round_id,
        org_id=org.id,
        org_name=org.name,
        phase=phase,
        kind=NoticeKind.EARLY_WARNING,
        rung=None,
        recipient_role=who.role,
        recipient_key=who.key,
        recipient_label=who.label,
        title=f"【预警】{org.name}{stage}阶段预计逾期（{percent}%）",
        body=(
            f"{who.label}：{org.name}（{org.township}，书记{org.secretary}）{stage}阶段将于"
            f"{_fmt(deadline)}截止，按目前进度预计逾期的可能性为{percent}%。主要原因：{why}。"
            f"{request}"
        ),
        link_path=f"/orgs/{org.id}?round={round_id}",
        created_at=now,
    )
