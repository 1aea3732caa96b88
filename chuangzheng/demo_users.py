"""Demo accounts for the demo county, generated from the roster.

One county office account, three assessment group accounts (评选表彰 needs several
independent assessors), one per guidance group (system),
one per township, one per instructor and one per secretary (by organisation). They all share
the password "demo", which is why they exist only in development.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from chuangzheng.services.accounts import upsert_user
from chuangzheng.services.sign_in import hash_password
from chuangzheng.settings import Settings
from domain.accounts import AccountSource
from domain.organisation import Role, Roster, System

DEMO_PASSWORD = "demo"


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
    users += [
        DemoUser(f"guidance-{s.value}", s.label, Role.GUIDANCE_GROUP, s.value) for s in System
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
    return users


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
    return users
