"""Supervisor actions that are more than one Update: extend (request and approve, or approve
what the secretary asked) and remind (a ``SupervisorReminderWorkflow`` per day)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.contracts import DeliveryReport
from activities.tables import CampaignStatusRow
from api.auth import User
from api.blocking import run_sync
from api.errors import ApiError, not_found
from api.ui.actions import run_action
from api.ui.org_view import load_state
from domain.calendar import local_date
from domain.campaign_rules import SUBMITTER_ROLES
from domain.organisation import SUPERVISOR_ROLES, Organisation
from domain.phases import Phase
from domain.state import Actor, ExtensionStatus
from workflows.reminders import SupervisorReminder, SupervisorReminderWorkflow, reminder_workflow_id


def require_supervisor(user: User) -> None:
    """403 unless the caller supervises (the workflow's validators check the rest)."""
    if user.role not in SUPERVISOR_ROLES:
        raise ApiError(403, "forbidden", "当前角色无权执行此操作")


async def extend(
    client: Client,
    user: User,
    ip: str | None,
    *,
    round_id: str,
    org_id: str,
    new_deadline: datetime,
    reason: str,
    form_key: str,
) -> str:
    """Move the current phase's deadline. The county office may ask and approve in one go;
    other supervisors approve the secretary's pending request (the workflow's rule)."""
    common = {"round_id": round_id, "org_id": org_id}
    if user.role in SUBMITTER_ROLES:
        filed = await run_action(
            client, user, ip, **common, name="request_extension",
            fields={"new_deadline": new_deadline, "reason": reason},
            form_key=f"{form_key}:request",
        )  # fmt: skip
    else:
        state = await load_state(client, round_id, org_id)
        if state is None:
            raise not_found("该组织不在本轮活动中或本轮尚未启动")
        pending = [e for e in state.extensions if e.status is ExtensionStatus.REQUESTED]
        if not pending:
            raise ApiError(409, "no_request", "没有待审批的延期申请（上级只能审批书记提出的申请）")
        await run_action(
            client, user, ip, **common, name="decide_extension",
            fields={"extension_id": pending[-1].id, "approve": True, "reason": reason},
            form_key=f"{form_key}:decide",
        )  # fmt: skip
        return "已批准延期申请"
    if filed.extension_id is not None:  # the request just filed (or filed before, retried)
        await run_action(
            client, user, ip, **common, name="decide_extension",
            fields={"extension_id": filed.extension_id, "approve": True, "reason": reason},
            form_key=f"{form_key}:decide",
        )  # fmt: skip
    return "已延期"


async def remind(
    client: Client,
    sessions: sessionmaker[Session],
    user: User,
    ip: str | None,
    *,
    round_id: str,
    org: Organisation,
    task_queue: str,
    now: datetime,
) -> bool:
    """Remind the secretary once per day; True if sent now, False if already sent today."""
    require_supervisor(user)

    def status_row() -> CampaignStatusRow | None:
        with sessions() as session:
            return session.get(CampaignStatusRow, (round_id, org.id))

    row = await run_sync(status_row)
    if row is None:
        raise not_found("该组织不在本轮活动中或本轮尚未启动")
    if row.phase == Phase.COMPLETED.value:
        raise ApiError(409, "completed", "该组织已完成全部阶段，无需催办")
    day = local_date(now)
    reminder = SupervisorReminder(
        round_id=round_id,
        org_id=org.id,
        org_name=org.name,
        secretary=org.secretary,
        phase=Phase(row.phase),
        deadline=row.deadline,
        day=day,
        actor=Actor(user=user.username, name=user.display_name, role=user.role, ip=ip),
    )
    try:
        report: DeliveryReport = await client.execute_workflow(
            SupervisorReminderWorkflow.run,
            reminder,
            id=reminder_workflow_id(round_id, org.id, day),
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
    except WorkflowAlreadyStartedError:
        return False  # today's reminder exists (or ran): one effect per day
    return report.delivered > 0
