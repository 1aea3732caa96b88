"""The demo county ``make run`` loads: roster, party members and accounts, into a real
SQLite read model through the same code ``make run`` calls."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from sqlalchemy import func, select

from activities.db import create_schema, make_engine, session_factory
from activities.tables import OrganisationRow, PartyMemberRow, UserRow
from chuangzheng.run import load_demo_county
from chuangzheng.settings import Settings
from domain.organisation import Role


def test_demo_county_has_every_member_the_roster_counts(tmp_path: Path) -> None:
    settings = Settings(environment="development", data_dir=tmp_path)
    engine = make_engine(f"sqlite:///{tmp_path / 'demo.db'}")
    create_schema(engine)
    sessions = session_factory(engine)
    load_demo_county(sessions, settings)
    load_demo_county(sessions, settings)  # a second start adds nothing
    with sessions() as session:
        counts = {o.org_id: o.member_count for o in session.scalars(select(OrganisationRow))}
        members = Counter(session.scalars(select(PartyMemberRow.org_id)))
        assessors = session.scalar(
            select(func.count()).where(UserRow.role == Role.ASSESSMENT_GROUP.value)
        )
        names = set(session.scalars(select(PartyMemberRow.name)))
    engine.dispose()
    assert len(counts) == 300 and members == Counter(counts)
    assert assessors == 3  # 评选表彰 needs several independent assessors
    assert all(2 <= len(name) <= 3 for name in names)
