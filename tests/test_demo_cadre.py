"""The demo county has a leading cadre (党员领导干部) with a contact point (联系点, seed 002
§六(一)): loaded by the same code ``make run`` calls, once however often it runs, and their
scope is exactly the contact point's organisations."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from activities.db import create_schema, make_engine, session_factory
from activities.tables import ContactPointRow, OrganisationRow, UserRow
from chuangzheng.demo_users import DEMO_CADRE, DEMO_CONTACT_ORGS
from chuangzheng.run import load_demo_county
from chuangzheng.services.contact_points import contact_organisations
from chuangzheng.settings import Settings
from domain.organisation import Role


def test_the_demo_cadre_sees_the_organisations_of_their_contact_point(tmp_path: Path) -> None:
    settings = Settings(environment="development", data_dir=tmp_path)
    engine = make_engine(f"sqlite:///{tmp_path / 'demo.db'}")
    create_schema(engine)
    sessions = session_factory(engine)
    load_demo_county(sessions, settings)
    load_demo_county(sessions, settings)  # a second start adds nothing
    with sessions() as session:
        cadre = session.scalar(select(UserRow).where(UserRow.username == DEMO_CADRE))
        points = session.scalars(
            select(ContactPointRow).where(ContactPointRow.cadre_key == DEMO_CADRE)
        ).all()
        linked = contact_organisations(session, DEMO_CADRE)
        townships = {
            session.scalar(select(OrganisationRow.township).where(OrganisationRow.org_id == o))
            for o in linked
        }
    engine.dispose()
    assert cadre is not None and cadre.role == Role.LEADING_CADRE.value
    assert cadre.scope_key == DEMO_CADRE
    assert len(points) == 1 and len(linked) == DEMO_CONTACT_ORGS
    assert len(townships) == 1  # one township's organisations: 抓点带面
