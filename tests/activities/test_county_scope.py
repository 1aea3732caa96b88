"""The scope rule with counties (``api.scope``): every role inside a county covers only its
county's organisations, by the test on one organisation and by the SQL condition alike,
whatever its scope key (township names, instructors and systems repeat across counties);
an office above the county covers the counties it supervises. A real read model (SQLite
and PostgreSQL) holds two organisations of the same township, instructor and system in two
counties."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from activities.roster_store import load_organisation, store_roster
from activities.tables import OrganisationRow, TownshipRow
from api.auth import User
from api.scope import covers, scope_condition
from domain.organisation import DEFAULT_COUNTY, Organisation, OrgType, Role, Roster, System

OTHER = "yixian"


def _org(org_id: str) -> Organisation:
    return Organisation(
        id=org_id, name=f"{org_id}党支部", type=OrgType.RURAL, township="城关镇",
        system=System.RURAL, instructor="张指导", secretary="李明", member_count=20,
    )  # fmt: skip


def _users(county: str, org_id: str) -> list[User]:
    return [
        User("county", "县委活动办", Role.COUNTY_OFFICE, "", county=county),
        User("assess", "考核组", Role.ASSESSMENT_GROUP, "", county=county),
        User("gg", "农村组", Role.GUIDANCE_GROUP, System.RURAL.value, county=county),
        User("tw", "城关镇党委", Role.TOWNSHIP, "城关镇", county=county),
        User("ins", "张指导", Role.INSTRUCTOR, "张指导", county=county),
        User("sec", "李明", Role.SECRETARY, org_id, county=county),
        User("cadre", "领导", Role.LEADING_CADRE, "k", frozenset({"a-1", "b-1"}), county=county),
    ]


@pytest.fixture
def two_counties(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    now = datetime.now(UTC)
    with sessions.begin() as session:
        store_roster(session, Roster(organisations=(_org("a-1"),)), now=now)
        store_roster(session, Roster(organisations=(_org("b-1"),)), now=now, county=OTHER)
    return sessions


def test_each_role_covers_its_own_county_only(two_counties: sessionmaker[Session]) -> None:
    with two_counties() as session:
        a, b = load_organisation(session, "a-1"), load_organisation(session, "b-1")
        assert a is not None and b is not None
        assert (a.county, b.county) == (DEFAULT_COUNTY, OTHER)
        # Importing one county's roster leaves the other's organisations as they were.
        active = dict(session.execute(select(OrganisationRow.org_id, OrganisationRow.active)).all())
        assert active == {"a-1": True, "b-1": True}
        townships = set(session.execute(select(TownshipRow.county, TownshipRow.name)).all())
        assert townships == {(DEFAULT_COUNTY, "城关镇"), (OTHER, "城关镇")}
        for county, own, other in ((DEFAULT_COUNTY, a, b), (OTHER, b, a)):
            for user in _users(county, own.id):
                assert covers(user, own), user
                assert not covers(user, other), user
                listed = set(
                    session.scalars(select(OrganisationRow.org_id).where(scope_condition(user)))
                )
                assert listed == {own.id}, user
        for role in (Role.CITY_OFFICE, Role.PROVINCE_OFFICE):
            both = User("p", "省委组织部", role, "", county="", supervised=frozenset({OTHER,
                        DEFAULT_COUNTY}))  # fmt: skip
            one = User("c", "市委组织部", role, "", county="", supervised=frozenset({OTHER}))
            none = User("n", "市委组织部", role, "", county="")
            assert covers(both, a) and covers(both, b)
            assert covers(one, b) and not covers(one, a)
            assert not covers(none, a) and not covers(none, b)
            for user, expected in ((both, {"a-1", "b-1"}), (one, {"b-1"}), (none, set())):
                listed = set(
                    session.scalars(select(OrganisationRow.org_id).where(scope_condition(user)))
                )
                assert listed == expected, user
