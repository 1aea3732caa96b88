"""Demo accounts for the demo county, generated from the roster.

One county office account, three assessment group accounts (评选表彰 needs several
independent assessors), one per guidance group (system),
one per township, one per instructor and one per secretary (by organisation), and one
leading cadre (党员领导干部) with a contact point (联系点, seed 002 §六(一)) on the first
township's first organisations. They all share the password "demo", which is why they exist
only in development.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from activities.tables import ContactPointOrgRow, ContactPointRow
from chuangzheng.services.accounts import upsert_user
from chuangzheng.services.sign_in import hash_password
from chuangzheng.settings import Settings
from domain.accounts import AccountSource
from domain.organisation import SEED_002_SYSTEMS, Role, Roster

DEMO_PASSWORD = "demo"
#: The demo leading cadre's account (and scope key) and how many organisations their
#: contact point links.
DEMO_CADRE = "cadre-demo"
DEMO_CONTACT_ORGS = 2


@dataclass(frozen=True)
class DemoUser:
    """One demo account: username, display name, role and the key of what it covers."""

    username: str
    display_name: str
    role: Role
    scope_key: str


def demo_users(roster: Roster) -> list[DemoUser]:
    """Every demo account for ``roster``; usernames are stable for the same roster."""
    users = [
        DemoUser("county", "县委创先争优活动领导小组办公室", Role.COUNTY_OFFICE, ""),
        DemoUser("assessment", "县委考核组", Role.ASSESSMENT_GROUP, ""),
        DemoUser("assessment-2", "县委考核组成员二", Role.ASSESSMENT_GROUP, ""),
        DemoUser("assessment-3", "县委考核组成员三", Role.ASSESSMENT_GROUP, ""),
    ]
    # The demo county has seed 002's six guidance groups (issue 15: a county's own data).
    users += [
        DemoUser(f"guidance-{g.key}", g.label, Role.GUIDANCE_GROUP, g.key) for g in SEED_002_SYSTEMS
    ]
    users += [
        DemoUser(f"township-{name}", f"{name}党委", Role.TOWNSHIP, name)
        for name in roster.townships()
    ]
    instructors = dict.fromkeys(o.instructor for o in roster.organisations)
    users += [
        DemoUser(f"instructor-{name}", f"指导员{name}", Role.INSTRUCTOR, name)
        for name in instructors
    ]
    users += [
        DemoUser(f"secretary-{o.id}", f"{o.name}书记{o.secretary}", Role.SECRETARY, o.id)
        for o in roster.organisations
    ]
    users.append(
        DemoUser(DEMO_CADRE, "县委常委、组织部长（联系点）", Role.LEADING_CADRE, DEMO_CADRE)
    )
    return users


def demo_contact_orgs(roster: Roster) -> list[str]:
    """The demo cadre's contact point: the first township's first organisations."""
    townships = roster.townships()
    if not townships:
        return []
    first = [o.id for o in roster.organisations if o.township == townships[0]]
    return first[:DEMO_CONTACT_ORGS]


def seed_demo_contact_point(session: Session, roster: Roster) -> str | None:
    """The demo cadre's contact point, made once (kept as it is when it exists, so a county
    office that changed it keeps the change); its id, or None for an empty roster."""
    existing = session.scalar(
        select(ContactPointRow.point_id).where(ContactPointRow.cadre_key == DEMO_CADRE)
    )
    if existing is not None:
        return existing
    org_ids = demo_contact_orgs(roster)
    if not org_ids:
        return None
    point = ContactPointRow(
        point_id=f"cp-{DEMO_CADRE}",
        cadre_key=DEMO_CADRE,
        cadre_name="演示领导干部",
        title="县委常委、组织部长，分管基层党建",
        created_by="demo",
        created_at=datetime.now(UTC),
    )
    session.add(point)
    session.flush()
    session.add_all(ContactPointOrgRow(point_id=point.point_id, org_id=o) for o in org_ids)
    return point.point_id


def seed_demo_users(session: Session, roster: Roster, settings: Settings) -> list[DemoUser]:
    """Create or refresh the demo accounts (password "demo"); development only."""
    if settings.environment != "development":
        raise RuntimeError("演示账号（密码 demo）只能在开发环境中创建")
    users = demo_users(roster)
    # One salted hash shared by every demo account: they share one public password anyway,
    # and hashing it 300+ times would make the first `make run` wait a minute for nothing.
    shared_hash = hash_password(DEMO_PASSWORD)
    for user in users:
        upsert_user(
            session,
            username=user.username,
            display_name=user.display_name,
            password_hash=shared_hash,
            role=user.role,
            scope_key=user.scope_key,
            source=AccountSource.DEMO,
        )
    seed_demo_contact_point(session, roster)
    return users
