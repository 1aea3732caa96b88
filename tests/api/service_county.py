"""A county for calling services directly: a fresh SQLite read model with the API tests'
roster (org-a, org-b, org-c), callers for its accounts, and rounds of the demo plan created
through the round service (no Temporal needed until a round is kicked off)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from activities.db import create_schema, make_engine, session_factory
from activities.roster_files import read_roster_text
from activities.roster_store import store_roster
from api.auth import User
from api.callers import service_caller
from chuangzheng.services import rounds
from chuangzheng.services.callers import Caller
from tests.api.conftest import ROSTER_CSV, USERS


@pytest.fixture
def county(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """The session factory of a fresh read model holding the test county's roster."""
    engine = make_engine(f"sqlite:///{tmp_path / 'county.db'}")
    create_schema(engine)
    sessions = session_factory(engine)
    with sessions.begin() as session:
        store_roster(session, read_roster_text(ROSTER_CSV))
    yield sessions
    engine.dispose()


def caller(username: str) -> Caller:
    """The account ``username`` of the test county (``tests.api.conftest.USERS``), as the
    API builds its caller."""
    role, scope_key = USERS[username]
    return service_caller(
        User(username=username, display_name=username, role=role, scope_key=scope_key)
    )


async def demo_round(sessions: sessionmaker[Session], round_id: str) -> str:
    """Round ``round_id`` of the demo plan, created (not kicked off) by the county office."""
    await rounds.create_round(
        sessions, caller("county").actor, round_id=round_id, plan_id="demo", round_plan_id="demo"
    )
    return round_id
