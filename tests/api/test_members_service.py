"""The party-member use cases called directly (``chuangzheng.services.members``) on a real
SQLite read model: a secretary's file naming another organisation is refused whole, the
county office's import replaces lists and is audited, and reading is scoped."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from activities.member_store import MEMBER_LIMITS, active_members
from activities.tables import AuditRow
from chuangzheng.services import members
from chuangzheng.services.errors import InvalidInput, NotFound, Refused, TooLarge
from tests.api.service_county import caller, county

__all__ = ["county"]

pytestmark = pytest.mark.asyncio

HEADER = "组织编号,党员姓名,党员编号\n"


async def test_a_secretary_cannot_import_another_organisations_members(
    county: sessionmaker[Session],
) -> None:
    own_and_other = HEADER + "org-a,李明,A001\norg-b,王芳,B001\n"
    with pytest.raises(InvalidInput) as refused:
        await members.import_members(county, caller("sec-a"), own_and_other.encode(), ".csv")
    # The row naming org-b is refused as an unknown organisation, and nothing is written.
    assert any("第3行" in e["field"] for e in refused.value.errors), refused.value.errors
    with county() as session:
        assert active_members(session, "org-a") == []
        assert session.scalars(select(AuditRow)).all() == []
    with pytest.raises(Refused) as forbidden:
        await members.import_members(county, caller("ins-zhang"), own_and_other.encode(), ".csv")
    assert forbidden.value.code == "forbidden"


async def test_the_county_office_imports_for_several_organisations(
    county: sessionmaker[Session],
) -> None:
    first = HEADER + "org-a,李明,A001\norg-a,王芳,A002\norg-b,赵强,B001\n"
    report = await members.import_members(county, caller("county"), first.encode(), ".csv")
    assert [(r.org_id, r.imported, r.deactivated) for r in report.organisations] == [
        ("org-a", 2, 0),
        ("org-b", 1, 0),
    ]
    assert report.total == 3 and not members.matches_roster(report.organisations[0])
    # A second file for org-a alone: 王芳 leaves the list, org-b keeps its member.
    again = await members.import_members(
        county, caller("sec-a"), (HEADER + "org-a,李明,A001\n").encode(), ".csv"
    )
    assert [(r.org_id, r.imported, r.deactivated) for r in again.organisations] == [("org-a", 1, 1)]
    with county() as session:
        assert [m.name for m in members.members_of(session, caller("sec-a"), "org-a")] == ["李明"]
        assert [m.name for m in members.members_of(session, caller("county"), "org-b")] == ["赵强"]
        with pytest.raises(NotFound):
            members.members_of(session, caller("sec-a"), "org-b")
        audited = session.scalars(
            select(AuditRow).where(AuditRow.action == "members_imported").order_by(AuditRow.at)
        ).all()
    assert [(a.user, a.detail["organisations"]) for a in audited] == [
        ("county", ["org-a", "org-b"]),
        ("sec-a", ["org-a"]),
    ]


async def test_a_file_over_a_size_limit_is_too_large(county: sessionmaker[Session]) -> None:
    huge = HEADER.encode() + b"x" * (MEMBER_LIMITS.max_bytes + 1)
    with pytest.raises(TooLarge):
        await members.import_members(county, caller("county"), huge, ".csv")
