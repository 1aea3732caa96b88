"""``SupervisorReminderWorkflow``: a supervisor's "催办" click from the dashboard.

One short run per (round, organisation, local day): it is started with the id
:func:`reminder_workflow_id` and a duplicate-rejecting id policy, and the notice it builds has
an id of the same key, so a second click (or a retried request) the same day has one effect.
The notice goes to the secretary's in-app inbox (and any configured channel) through the
existing ``deliver_notices`` activity.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from pydantic import BaseModel, ConfigDict
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.contracts import DeliveryReport, NoticeBatch
    from domain.calendar import SHANGHAI
    from domain.notices import Notice, NoticeKind
    from domain.organisation import Role
    from domain.phases import Phase
    from domain.state import Actor
    from workflows.activity_refs import DELIVER_NOTICES, execute
    from workflows.common import ACTIVITY_RETRY, ACTIVITY_TIMEOUT


def reminder_workflow_id(round_id: str, org_id: str, day: date) -> str:
    """``remind/<round>/<org>/<local day>``: at most one reminder per organisation a day."""
    return f"remind/{round_id}/{org_id}/{day.isoformat()}"


class SupervisorReminder(BaseModel):
    """Who reminds which organisation's secretary, about which phase, on which local day."""

    model_config = ConfigDict(frozen=True)

    round_id: str
    org_id: str
    org_name: str
    secretary: str
    phase: Phase
    deadline: datetime | None
    day: date
    actor: Actor


def reminder_notice(reminder: SupervisorReminder, now: datetime) -> Notice:
    """The secretary's notice: who urges what, by when (Chinese, like the ladder's notices)."""
    stage = reminder.phase.label
    due = (
        reminder.deadline.astimezone(SHANGHAI).strftime("%Y年%m月%d日 %H:%M")
        if reminder.deadline is not None
        else "本阶段截止时间"
    )
    who = reminder.actor.name or reminder.actor.user
    return Notice(
        notice_id=(
            f"{reminder.round_id}/{reminder.org_id}/{reminder.phase.value}/supervisor_reminder/"
            f"{reminder.day.isoformat()}/{Role.SECRETARY.value}:{reminder.secretary}"
        ),
        round_id=reminder.round_id,
        org_id=reminder.org_id,
        org_name=reminder.org_name,
        phase=reminder.phase,
        kind=NoticeKind.REMINDER,
        rung=None,
        recipient_role=Role.SECRETARY,
        recipient_key=reminder.secretary,
        recipient_label=f"{reminder.org_name}书记{reminder.secretary}",
        title=f"【催办】{reminder.org_name}{stage}阶段",
        body=(
            f"{reminder.org_name}：{who}提醒你单位抓紧完成{stage}阶段的规定动作"
            f"（截止：{due}），请尽快提交材料。"
        ),
        link_path=f"/ui/my?round={reminder.round_id}",
        created_at=now,
    )


@workflow.defn
class SupervisorReminderWorkflow:
    """Deliver one supervisor reminder to an organisation's secretary."""

    @workflow.run
    async def run(self, reminder: SupervisorReminder) -> DeliveryReport:
        """Deliver the notice (idempotent by its id) and report whether it was new."""
        notice = reminder_notice(reminder, workflow.now())
        return await execute(
            DELIVER_NOTICES,
            NoticeBatch(notices=[notice]),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            heartbeat_timeout=timedelta(seconds=10),
            retry_policy=ACTIVITY_RETRY,
        )
