"""The kinds of event an organisation's campaign records: one enum shared by the domain that
emits them, the projection that applies them to the read model and the pages that label
them. The values are what the read model and recorded histories already hold: never
rename one (add a new kind instead)."""

from __future__ import annotations

from enum import StrEnum


class EventKind(StrEnum):
    """What happened to an organisation's campaign (``CampaignEvent.kind``)."""

    # The passage of time and the phase machine.
    PHASE_OPENED = "phase_opened"
    PHASE_COMPLETED = "phase_completed"
    DEADLINE_PASSED = "deadline_passed"
    CAMPAIGN_COMPLETED = "campaign_completed"
    # The ladder (督办) and rectification (整改).
    ESCALATED = "escalated"
    ACKNOWLEDGED = "acknowledged"
    RECTIFICATION_ORDERED = "rectification_ordered"
    # An order from outside the ladder on a phase still open: it blocks completion but the
    # phase is not 整改中 (the read model keeps the phase's status).
    RECTIFICATION_REQUIRED = "rectification_required"
    RECTIFICATION_REPORTED = "rectification_reported"
    RECHECKED = "rechecked"
    RECTIFICATION_OVERDUE = "rectification_overdue"
    # Steps.
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    RETURNED = "returned"
    WAIVED = "waived"
    # Deadlines moved.
    EXTENSION_REQUESTED = "extension_requested"
    EXTENSION_APPROVED = "extension_approved"
    EXTENSION_REJECTED = "extension_rejected"
    ROUND_EXTENSION_APPLIED = "round_extension_applied"
    # The county office applied new calendar data to the round (old and new deadlines).
    CALENDAR_UPDATED = "calendar_updated"
    # The county office applied a new version of the round's plan (domain.plan_version):
    # old and new deadlines, the version and what it changed.
    PLAN_VERSION_APPLIED = "plan_version_applied"
    # The round's cohort check (yellow light) and its close.
    BEHIND_SCHEDULE = "behind_schedule"
    BACK_ON_SCHEDULE = "back_on_schedule"
    ROUND_CLOSED = "round_closed"

    @property
    def label(self) -> str:
        """Chinese label for timelines and exports."""
        return _LABELS[self]


_LABELS: dict[EventKind, str] = {
    EventKind.PHASE_OPENED: "阶段开始",
    EventKind.PHASE_COMPLETED: "阶段完成",
    EventKind.DEADLINE_PASSED: "超过截止时间",
    EventKind.CAMPAIGN_COMPLETED: "全部阶段完成",
    EventKind.ESCALATED: "督办",
    EventKind.ACKNOWLEDGED: "签收督办",
    EventKind.RECTIFICATION_ORDERED: "下达整改通知",
    EventKind.RECTIFICATION_REQUIRED: "要求整改",
    EventKind.RECTIFICATION_REPORTED: "提交整改报告",
    EventKind.RECHECKED: "整改复查",
    EventKind.RECTIFICATION_OVERDUE: "整改逾期",
    EventKind.SUBMITTED: "提交材料",
    EventKind.ACCEPTED: "审核通过",
    EventKind.RETURNED: "退回",
    EventKind.WAIVED: "免除步骤",
    EventKind.EXTENSION_REQUESTED: "申请延期",
    EventKind.EXTENSION_APPROVED: "批准延期",
    EventKind.EXTENSION_REJECTED: "驳回延期",
    EventKind.ROUND_EXTENSION_APPLIED: "统一延期",
    EventKind.CALENDAR_UPDATED: "更新节假日日历",
    EventKind.PLAN_VERSION_APPLIED: "调整活动计划",
    EventKind.BEHIND_SCHEDULE: "滞后于序时进度",
    EventKind.BACK_ON_SCHEDULE: "恢复序时进度",
    EventKind.ROUND_CLOSED: "轮次结束",
}
