"""The audit log as the county office reads it: who did what, when, from where, filtered by
person, organisation, round, action and time, newest first, paged with a cursor, and
exported to Excel (every cell of people's text written as text, never a formula).

Only the county office reads the whole log (:func:`authorise`). The order is
``(at, audit_id)`` descending and the cursor names the last row returned, so rows written
while someone pages (newer ones, at the top) never shift the pages still to come.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_, select
from sqlalchemy.orm import Session

from activities.spreadsheets import holdable, workbook_bytes
from activities.tables import AuditRow, UserRow
from chuangzheng.services.callers import account_county
from chuangzheng.services.errors import InvalidInput, Refused
from domain.calendar import SHANGHAI
from domain.events import EventKind
from domain.organisation import DEFAULT_COUNTY, Role
from domain.state import Actor

#: The most rows one export writes (a county's year of actions fits many times over).
MAX_EXPORT_ROWS = 50_000
#: The most rows one page returns.
MAX_PAGE = 500

#: Chinese names of the actions the product records (others are shown as recorded).
ACTION_LABELS: dict[str, str] = {
    "login": "登录",
    "login_failed": "登录失败",
    "logout": "退出登录",
    "round_created": "创建轮次",
    "round_kicked_off": "启动轮次",
    "round_closed": "关闭轮次",
    "round_withdrawn": "关闭未启动的轮次",
    "round_extended": "全县延期",
    "round_calendar_updated": "更新轮次日历",
    "round_plan_version_applied": "调整本轮计划",
    "roster.import": "导入名册",
    "account.roster_sync": "名册同步账号",
    "roster.departure": "退出名册组织去留",
    "guidance_group.saved": "设置分系统指导小组",
    "account.create": "创建账号",
    "account.update": "修改账号",
    "account.deactivate": "停用账号",
    "account.reactivate": "恢复账号",
    "account.reset": "重置账号",
    "account.issue_code": "签发激活码",
    "account.code_mail": "邮件发送激活码",
    "account.activate": "激活账号",
    "account.change_password": "修改本人密码",
    "members_imported": "导入党员名单",
    "evaluation_opened": "发起评议",
    "evaluation_closed": "结束评议",
    "commitment_recorded": "登记承诺",
    "commitment_submitted": "提交承诺",
    "commitment_signed_off": "承诺审核",
    "commitment_published": "公示承诺",
    "commitment_absence_recorded": "登记党员缺席",
    "commitment_reviewed": "审诺",
    "commitment_fulfilment_recorded": "登记践诺",
    "commendation_declared": "申报表彰",
    "commendation_sheet_saved": "保存评分表",
    "commendation_sheet_submitted": "提交评分表",
    "commendation_approved": "审定表彰",
    "commendation_published": "公布表彰",
    "contact_point_saved": "保存联系点",
    "spot_check_drawn": "随机抽查抽取",
    "spot_check_recorded": "登记抽查结果",
    "supervision_recorded": "登记座谈会或督查",
    "briefing_submitted": "报送经验简报",
    "briefing_circulated": "选编交流经验简报",
    "forecast_threshold_changed": "修改预警线",
    "what_if_started": "发起推演",
}

# Every role's own label (a role added later is named too: 党员领导干部 once showed as
# "leading_cadre" in the audit log).
ROLE_LABELS: dict[str, str] = {role.value: role.label for role in Role}

EXPORT_HEAD = ("时间（北京时间）", "账号", "角色", "操作", "轮次", "组织", "来源地址", "详情")


def action_choices() -> list[tuple[str, str]]:
    """Every action the log can hold with its Chinese name, in name order (the filter's
    options): the service's own and the workflow events people cause."""
    choices = {kind.value: kind.label for kind in EventKind} | ACTION_LABELS
    return sorted(choices.items(), key=lambda item: item[1])


def action_label(action: str) -> str:
    """The action's Chinese name: the service's own actions, then the organisation
    workflow's events (a secretary's submission is audited as its event), else as recorded."""
    label = ACTION_LABELS.get(action)
    if label is not None:
        return label
    try:
        return EventKind(action).label
    except ValueError:
        return action


@dataclass(frozen=True)
class AuditFilter:
    """What to show: each field narrows the log when given; ``since`` inclusive, ``until``
    exclusive, both aware."""

    person: str | None = None
    org_id: str | None = None
    round_id: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class AuditEntry:
    """One row of the log."""

    audit_id: str
    at: datetime
    user: str
    role: str | None
    action: str
    round_id: str | None
    org_id: str | None
    ip: str | None
    detail: dict[str, Any]

    @property
    def action_label(self) -> str:
        """The action's Chinese name."""
        return action_label(self.action)

    @property
    def role_label(self) -> str:
        """The role's Chinese name ("" when none was recorded)."""
        return ROLE_LABELS.get(self.role or "", self.role or "")

    @property
    def local_at(self) -> str:
        """When, in Asia/Shanghai, to the second."""
        return self.at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")

    @property
    def detail_text(self) -> str:
        """The detail as compact JSON (Chinese kept readable)."""
        return json.dumps(self.detail, ensure_ascii=False, sort_keys=True, default=str)


@dataclass(frozen=True)
class AuditPage:
    """One page, and the cursor of the next (None on the last)."""

    entries: list[AuditEntry]
    next_cursor: str | None


def authorise(actor: Actor) -> None:
    """Only the county office reads the audit log."""
    if actor.role is not Role.COUNTY_OFFICE:
        raise Refused("forbidden", "当前角色无权执行此操作")


def _invalid(field: str, reason: str) -> InvalidInput:
    return InvalidInput("invalid", "请求参数有误", [{"field": field, "reason": reason}])


def check_filter(filters: AuditFilter) -> None:
    """Refuse naive times and an empty range."""
    for name, moment in (("from", filters.since), ("to", filters.until)):
        if moment is not None and moment.tzinfo is None:
            raise _invalid(name, "时间须带时区（如 +08:00）")
    if filters.since and filters.until and filters.since >= filters.until:
        raise _invalid("to", "结束时间应晚于开始时间")


def _in_county(county: str) -> ColumnElement[bool]:
    """The rows of ``county``'s log: what its accounts did (only a county's own accounts act
    in it; the offices above the county act nowhere). The default county also keeps what
    was done under names that are no account of another county (failed sign-ins as typed,
    ``cli:`` operators), as a single-county deployment always had them."""
    if county == DEFAULT_COUNTY:
        elsewhere = select(UserRow.username).where(UserRow.county != DEFAULT_COUNTY)
        return AuditRow.user.not_in(elsewhere)
    return AuditRow.user.in_(select(UserRow.username).where(UserRow.county == county))


def _filtered(filters: AuditFilter, county: str = DEFAULT_COUNTY) -> Select[AuditRow]:
    stmt = select(AuditRow).where(_in_county(county))
    if filters.person:
        stmt = stmt.where(AuditRow.user == filters.person)
    if filters.org_id:
        stmt = stmt.where(AuditRow.org_id == filters.org_id)
    if filters.round_id:
        stmt = stmt.where(AuditRow.round_id == filters.round_id)
    if filters.action:
        stmt = stmt.where(AuditRow.action == filters.action)
    if filters.since is not None:
        stmt = stmt.where(AuditRow.at >= filters.since)
    if filters.until is not None:
        stmt = stmt.where(AuditRow.at < filters.until)
    return stmt.order_by(AuditRow.at.desc(), AuditRow.audit_id.desc())


def _entry(row: AuditRow) -> AuditEntry:
    return AuditEntry(
        audit_id=row.audit_id,
        at=row.at,
        user=row.user,
        role=row.role,
        action=row.action,
        round_id=row.round_id,
        org_id=row.org_id,
        ip=row.ip,
        detail=dict(row.detail or {}),
    )


def _encode(row: AuditRow) -> str:
    raw = json.dumps([row.at.astimezone(UTC).isoformat(), row.audit_id], ensure_ascii=False)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, audit_id = json.loads(raw)
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None or not isinstance(audit_id, str):
            raise ValueError(raw)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
        raise _invalid("cursor", "分页游标无效") from None
    return moment, audit_id


def search(
    session: Session,
    actor: Actor,
    filters: AuditFilter,
    *,
    limit: int = 100,
    cursor: str | None = None,
) -> AuditPage:
    """One page of the filtered log, newest first."""
    authorise(actor)
    check_filter(filters)
    if not 1 <= limit <= MAX_PAGE:
        raise _invalid("limit", f"每页 1–{MAX_PAGE} 条")
    stmt = _filtered(filters, account_county(session, actor.user))
    if cursor:
        at, last_id = _decode(cursor)
        stmt = stmt.where(
            or_(AuditRow.at < at, and_(AuditRow.at == at, AuditRow.audit_id < last_id))
        )
    rows = session.scalars(stmt.limit(limit)).all()
    next_cursor = _encode(rows[-1]) if len(rows) == limit else None
    return AuditPage([_entry(r) for r in rows], next_cursor)


def _export_rows(session: Session, filters: AuditFilter, county: str) -> Iterator[list[Any]]:
    for row in session.scalars(_filtered(filters, county).limit(MAX_EXPORT_ROWS)):
        entry = _entry(row)
        # Failed sign-ins record the username as typed, by anyone: a control character in
        # it must not make every later export fail.
        yield [
            entry.local_at,
            holdable(entry.user),
            entry.role_label,
            entry.action_label,
            entry.round_id or "",
            entry.org_id or "",
            entry.ip or "",
            holdable(entry.detail_text),
        ]


def export_xlsx(session: Session, actor: Actor, filters: AuditFilter) -> bytes:
    """The filtered log (newest first, at most :data:`MAX_EXPORT_ROWS` rows) as .xlsx,
    through ``activities.spreadsheets`` (people's text never becomes a formula)."""
    authorise(actor)
    check_filter(filters)
    county = account_county(session, actor.user)
    return workbook_bytes("审计日志", EXPORT_HEAD, _export_rows(session, filters, county))


__all__ = [
    "ACTION_LABELS",
    "AuditEntry",
    "AuditFilter",
    "AuditPage",
    "action_label",
    "export_xlsx",
    "search",
]
