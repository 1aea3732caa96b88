"""A county's guidance groups (分系统指导小组, seed 002 §六(二)) as data, the county office's
use case (issue 15).

Seed 002 names six groups, each led by a county department, but 街道社区, 国有企业 and 事业单位
outside education and health have none, and a county may set up more. So the groups are the
county's ``systems`` rows: every county starts with the seed's six (migration 0011, a new
county, or its first roster import), and its office renames them and adds its own here
(API ``/api/v1/guidance-groups``, page ``/ui/systems``); each change is audited
(``guidance_group.saved``).

An organisation names its group by key in the roster's 所属系统 column (key, name or
leading department). A roster never creates a group: a name the county has not defined is
refused with the row and column (a clerk's typo must not become a new group with its own
account); the office defines the group first, then imports. The import then creates the
``guidance-<key>`` account for every group in use, the ladder's guidance-group rung
addresses that key, and the account's scope covers only that group's organisations
(``api.scope``).

Groups are not deleted (rounds, notices and accounts keep naming their key); a group no
organisation names any more simply covers nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from activities import guidance_groups as store
from activities.tables import OrganisationRow, UserRow
from chuangzheng.services.callers import Caller, audit_row, require_role
from chuangzheng.services.errors import InvalidInput
from domain.accounts import AccountSource
from domain.organisation import GuidanceGroup, Role, Roster, is_system_key

#: Only the county office defines its county's guidance groups.
MANAGERS = frozenset({Role.COUNTY_OFFICE})
FORBIDDEN = "只有县委活动办可以设立或修改指导小组"
SAVE_ACTION = "guidance_group.saved"
_NAME_MAX = 60


@dataclass(frozen=True)
class GroupView:
    """A guidance group as lists show it: the group and its active organisations."""

    group: GuidanceGroup
    organisations: int

    def document(self) -> dict[str, object]:
        """As the API shows it."""
        return {
            "key": self.group.key,
            "name": self.group.name,
            "department": self.group.department,
            "label": self.group.label,
            "organisations": self.organisations,
        }


def check_group(key: str, name: str, department: str) -> GuidanceGroup:
    """The group from a form or body, or :class:`InvalidInput` naming each bad field."""
    problems: list[dict[str, str]] = []
    if not is_system_key(key):
        problems.append(
            {"field": "key", "reason": "指导小组编号应为 1–32 个小写字母、数字或 _，以字母开头"}
        )
    name, department = name.strip(), department.strip()
    if not name:
        problems.append({"field": "name", "reason": "请填写指导小组名称"})
    elif len(name) > _NAME_MAX:
        problems.append({"field": "name", "reason": f"指导小组名称不能超过{_NAME_MAX}个字"})
    if len(department) > _NAME_MAX:
        problems.append({"field": "department", "reason": f"牵头部门不能超过{_NAME_MAX}个字"})
    for field, text in (("name", name), ("department", department)):
        if any(ch in text for ch in "（）()") or any(not ch.isprintable() for ch in text):
            problems.append({"field": field, "reason": "不能含括号或控制字符"})
    if problems:
        raise InvalidInput("invalid", "指导小组信息有误", problems)
    return GuidanceGroup(key=key, name=name, department=department)


def list_groups(session: Session, county: str) -> list[GroupView]:
    """``county``'s guidance groups in order, each with its active organisations."""
    counts = dict(
        session.execute(
            select(OrganisationRow.system, func.count())
            .where(OrganisationRow.county == county, OrganisationRow.active.is_(True))
            .group_by(OrganisationRow.system)
        ).all()
    )
    return [GroupView(g, counts.get(g.key, 0)) for g in store.county_groups(session, county)]


def save_group(
    session: Session, caller: Caller, group: GuidanceGroup, *, now: datetime | None = None
) -> GroupView:
    """Define ``group`` in the caller's county, or rename it (same key); audited in the
    same transaction. The group's roster-kept ``guidance-<key>`` account takes the new
    label as its display name."""
    require_role(caller, MANAGERS, FORBIDDEN)
    now = now or datetime.now(UTC)
    before = store.save_group(session, caller.county, group, now)
    account = session.scalar(
        select(UserRow).where(
            UserRow.county == caller.county,
            UserRow.role == Role.GUIDANCE_GROUP.value,
            UserRow.scope_key == group.key,
            UserRow.source == AccountSource.ROSTER.value,
        )
    )
    if account is not None:
        account.display_name = group.label
    session.add(
        audit_row(
            caller,
            SAVE_ACTION,
            round_id=None,
            org_id=None,
            detail={
                "county": caller.county,
                "key": group.key,
                "name": group.name,
                "department": group.department,
                "created": before is None,
                **({"before": before.label} if before is not None else {}),
            },
            now=now,
        )
    )
    session.flush()
    return next(v for v in list_groups(session, caller.county) if v.group.key == group.key)


def check_roster_groups(session: Session, roster: Roster, county: str) -> None:
    """:class:`InvalidInput` naming each organisation whose 所属系统 is not one of
    ``county``'s groups (for rosters read without the county's groups, e.g. by a script;
    the upload checks them row by row while parsing)."""
    known = {g.key for g in store.county_groups(session, county)}
    problems = [
        {
            "field": f"{org.id}·所属系统",
            "reason": f"“{org.system}”不是本县已设立的指导小组（{org.name}）",
        }
        for org in roster.organisations
        if org.system not in known
    ]
    if problems:
        raise InvalidInput("invalid_roster", "名册中有本县未设立的指导小组", problems)


__all__ = [
    "MANAGERS",
    "SAVE_ACTION",
    "GroupView",
    "check_group",
    "check_roster_groups",
    "list_groups",
    "save_group",
]
