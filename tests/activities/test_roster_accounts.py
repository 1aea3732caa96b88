"""The roster import as a use case (``chuangzheng.services.roster``) on a real read model
(SQLite always, PostgreSQL when it answers): accounts follow the roster without passwords,
a replaced secretary loses the organisation, re-imports count only changes, the county's
own and the demo's accounts are never touched, organisations leaving a running round are
recorded once, and everything is audited in the import's one transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from activities.db import create_schema, make_engine, session_factory
from activities.roster_files import read_roster_text
from activities.tables import (
    AuditRow,
    CampaignStatusRow,
    OrganisationRow,
    RosterDepartureRow,
    RoundRow,
    UserRow,
)
from chuangzheng.demo_users import DEMO_PASSWORD
from chuangzheng.run import load_demo_county
from chuangzheng.services.errors import Refused
from chuangzheng.services.roster import (
    ACCOUNT_ACTION,
    IMPORT_ACTION,
    import_roster,
    secretary_username,
)
from chuangzheng.settings import Settings
from domain.organisation import Role
from domain.state import Actor

COUNTY = Actor(user="county", name="县委活动办", role=Role.COUNTY_OFFICE, ip="10.0.0.9")
HEADER = "组织编号,组织名称,组织类型,所属乡镇,所属系统,党员人数,书记,指导员\n"
ROWS = [
    "n-01,东关村党支部,农村,东关镇,县农委,30,甲一,指导甲",
    "n-02,西关村党支部,农村,东关镇,县农委,22,甲二,指导甲",
    "n-03,东关卫生院党支部,事业单位,东关镇,县卫生局,15,甲三,指导乙",
    "n-04,南岭村党支部,农村,南岭乡,县农委,41,乙一,指导丙",
    "n-05,北岭社区党支部,社区,南岭乡,县农委,19,乙二,指导丙",
    "n-06,南岭中学党支部,事业单位,南岭乡,县教育局,12,乙三,指导丁",
]
NOW = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)


def roster(rows: list[str]) -> str:
    return HEADER + "\n".join(rows) + "\n"


def run(sessions: sessionmaker[Session], rows: list[str]) -> dict[str, int]:
    return import_roster(sessions, COUNTY, read_roster_text(roster(rows)), now=NOW).counts


def accounts(sessions: sessionmaker[Session]) -> dict[str, UserRow]:
    with sessions() as session:
        rows = session.scalars(select(UserRow)).all()
        session.expunge_all()
    return {r.username: r for r in rows}


def test_a_new_county_gets_one_account_per_person_and_body_without_passwords(
    sessions: sessionmaker[Session],
) -> None:
    counts = run(sessions, ROWS)

    assert (counts["added"], counts["updated"], counts["deactivated"], counts["total"]) == (
        6,
        0,
        0,
        6,
    )
    users = accounts(sessions)
    expected = {
        secretary_username("n-01", "甲一"): ("secretary", "n-01"),
        secretary_username("n-06", "乙三"): ("secretary", "n-06"),
        "instructor-指导甲": ("instructor", "指导甲"),
        "instructor-指导丁": ("instructor", "指导丁"),
        "township-东关镇": ("township", "东关镇"),
        "township-南岭乡": ("township", "南岭乡"),
        "guidance-rural": ("guidance_group", "rural"),
        "guidance-health": ("guidance_group", "health"),
        "guidance-education": ("guidance_group", "education"),
    }
    for username, (role, scope) in expected.items():
        row = users[username]
        assert (row.role, row.scope_key, row.source) == (role, scope, "roster"), username
        assert row.password_hash is None and row.active, username
    # 6 secretaries, 4 instructors, 2 townships, 3 systems named by the roster.
    assert len(users) == counts["accounts_created"] == 15
    assert "guidance-organs" not in users  # a system the roster does not name
    assert users["secretary-n-01-甲一"].display_name == "东关村党支部书记甲一"
    with sessions() as session:
        audit = session.scalars(select(AuditRow).order_by(AuditRow.audit_id)).all()
    synced = [a for a in audit if a.action == ACCOUNT_ACTION]
    assert len(synced) == 15
    assert all((a.user, a.role, a.ip) == ("county", "county_office", "10.0.0.9") for a in audit)
    [secretary] = [a for a in synced if a.detail["username"] == "secretary-n-03-甲三"]
    assert secretary.org_id == "n-03" and secretary.detail["change"] == "created"
    [imported] = [a for a in audit if a.action == IMPORT_ACTION]
    assert imported.detail["added"] == 6 and imported.detail["accounts_created"] == 15


def test_the_same_file_again_changes_nothing_and_reports_zero(
    sessions: sessionmaker[Session],
) -> None:
    run(sessions, ROWS)
    before = accounts(sessions)
    with sessions() as session:
        stamped = {r.org_id: r.updated_at for r in session.scalars(select(OrganisationRow))}

    again = run(sessions, ROWS)

    changes = {k: v for k, v in again.items() if k not in ("total", "unchanged")}
    assert set(changes.values()) == {0}, again
    assert (again["unchanged"], again["total"]) == (6, 6)
    after = accounts(sessions)
    assert {u: (r.scope_key, r.session_version) for u, r in after.items()} == {
        u: (r.scope_key, r.session_version) for u, r in before.items()
    }
    with sessions() as session:
        restamped = {r.org_id: r.updated_at for r in session.scalars(select(OrganisationRow))}
        syncs = session.scalar(select(func.count()).where(AuditRow.action == ACCOUNT_ACTION))
    assert restamped == stamped  # nothing rewritten
    assert syncs == 15  # the first import's only


def test_a_replaced_secretary_loses_the_organisation_and_the_new_one_gets_it(
    sessions: sessionmaker[Session],
) -> None:
    run(sessions, ROWS)
    # n-01: new secretary 甲新; n-04..n-05's instructor 指导丙 is replaced by 指导戊 (named
    # nowhere else); n-06 leaves the roster; n-02's member count changes.
    changed = [
        ROWS[0].replace("甲一", "甲新"),
        ROWS[1].replace(",22,", ",23,"),
        ROWS[2],
        ROWS[3].replace("指导丙", "指导戊"),
        ROWS[4].replace("指导丙", "指导戊"),
    ]
    counts = run(sessions, changed)

    assert (counts["added"], counts["updated"], counts["deactivated"]) == (0, 4, 1)
    assert counts["unchanged"] == 1
    users = accounts(sessions)
    old, new = users["secretary-n-01-甲一"], users["secretary-n-01-甲新"]
    assert (old.scope_key, old.session_version, old.role) == ("", 1, "secretary")
    assert (new.scope_key, new.password_hash, new.source) == ("n-01", None, "roster")
    assert users["instructor-指导丙"].scope_key == ""  # named nowhere any more
    assert users["instructor-指导戊"].scope_key == "指导戊"
    assert users["secretary-n-06-乙三"].scope_key == ""  # its organisation left
    assert users["guidance-education"].scope_key == ""  # no organisation of that system left
    assert users["instructor-指导丁"].scope_key == ""  # only n-06 named them
    assert (counts["accounts_created"], counts["accounts_unscoped"]) == (2, 5)
    with sessions() as session:
        synced = session.scalars(
            select(AuditRow).where(AuditRow.action == ACCOUNT_ACTION, AuditRow.org_id == "n-01")
        ).all()
    assert sorted((a.detail["username"], a.detail["change"]) for a in synced) == [
        ("secretary-n-01-甲一", "created"),
        ("secretary-n-01-甲一", "unscoped"),
        ("secretary-n-01-甲新", "created"),
    ]
    [unscoped] = [a for a in synced if a.detail["change"] == "unscoped"]
    assert unscoped.detail["previous_scope_key"] == "n-01"

    # The organisation and the instructor come back: their accounts get their scope back.
    back = run(sessions, ROWS)
    users = accounts(sessions)
    assert back["reactivated"] == 1 and back["accounts_rescoped"] >= 3
    assert users["secretary-n-06-乙三"].scope_key == "n-06"
    assert users["secretary-n-06-乙三"].session_version == 2
    assert users["instructor-指导丙"].scope_key == "指导丙"
    assert users["secretary-n-01-甲新"].scope_key == ""


def test_the_county_offices_and_the_demos_accounts_are_never_touched(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        for username, source, scope in (
            ("township-东关镇", "demo", "东关镇"),
            ("instructor-指导丁", "admin", "别处"),
        ):
            session.add(
                UserRow(
                    username=username,
                    display_name=username,
                    password_hash="argon2-hash",
                    role="township" if username.startswith("township") else "instructor",
                    scope_key=scope,
                    active=True,
                    created_at=NOW,
                    source=source,
                    session_version=0,
                    updated_at=None,
                )
            )
    counts = run(sessions, ROWS)
    run(sessions, ROWS[:2])  # both named nowhere now: still untouched

    users = accounts(sessions)
    assert counts["accounts_created"] == 13
    assert (users["township-东关镇"].source, users["township-东关镇"].scope_key) == (
        "demo",
        "东关镇",
    )
    assert users["instructor-指导丁"].scope_key == "别处"
    assert users["instructor-指导丁"].password_hash == "argon2-hash"


def running_round(session: Session, round_id: str, org_ids: list[str], status: str) -> None:
    session.add(
        RoundRow(
            round_id=round_id,
            name=round_id,
            campaign_id="c",
            round_plan_id="demo",
            starts_at=NOW,
            status=status,
            kicked_off_by="county",
            updated_at=NOW,
        )
    )
    for org_id in org_ids:
        session.add(
            CampaignStatusRow(
                round_id=round_id,
                org_id=org_id,
                org_name=org_id,
                township="南岭乡",
                system="rural",
                org_type="rural",
                phase="mobilisation",
                phase_status="open",
                light="blue",
                overdue=False,
                deadline=None,
                top_rung=None,
                closed=org_id == "n-05",  # already closed: nothing to decide
                event_seq=1,
                updated_at=NOW,
            )
        )


def test_leaving_a_running_round_asks_once_and_a_return_withdraws_the_question(
    sessions: sessionmaker[Session],
) -> None:
    run(sessions, ROWS)
    with sessions.begin() as session:
        running_round(session, "r-running", ["n-04", "n-05", "n-06"], "running")
        running_round(session, "r-closed", ["n-04"], "closed")

    first = run(sessions, ROWS[:3])
    second = run(sessions, ROWS[:3])

    with sessions() as session:
        pending = session.execute(
            select(
                RosterDepartureRow.round_id, RosterDepartureRow.org_id, RosterDepartureRow.decision
            )
        ).all()
    assert sorted(pending) == [("r-running", "n-04", "pending"), ("r-running", "n-06", "pending")]
    assert (first["departures_pending"], second["departures_pending"]) == (2, 0)
    assert second["deactivated"] == 0

    back = run(sessions, ROWS[:4])  # n-04 is listed again before anyone decided
    with sessions() as session:
        left = session.scalars(select(RosterDepartureRow.org_id)).all()
    assert back["departures_withdrawn"] == 1 and left == ["n-06"]


def test_only_the_county_office_imports_and_a_refusal_writes_nothing(
    sessions: sessionmaker[Session],
) -> None:
    township = Actor(user="township-东关镇", role=Role.TOWNSHIP)
    with pytest.raises(Refused):
        import_roster(sessions, township, read_roster_text(roster(ROWS)))
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(OrganisationRow)) == 0
        assert session.scalar(select(func.count()).select_from(UserRow)) == 0


def test_a_failure_half_way_leaves_the_previous_roster_and_accounts(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    run(sessions, ROWS)
    from chuangzheng.services import roster as service

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("disk full")

    # The departures step fails after organisations and accounts were written in the
    # same transaction: all of it must roll back.
    monkeypatch.setattr(service, "_record_departures", broken)
    with pytest.raises(RuntimeError):
        run(sessions, [ROWS[0].replace("甲一", "甲新")])
    users = accounts(sessions)
    with sessions() as session:
        active = session.scalar(select(func.count()).where(OrganisationRow.active.is_(True)))
    assert active == 6
    assert "secretary-n-01-甲新" not in users
    assert users["secretary-n-01-甲一"].scope_key == "n-01"


def test_the_demo_countys_accounts_keep_their_password_after_make_runs_import(
    tmp_path: Path,
) -> None:
    settings = Settings(environment="development", data_dir=tmp_path)
    engine = make_engine(f"sqlite:///{tmp_path / 'demo.db'}")
    create_schema(engine)
    demo = session_factory(engine)
    load_demo_county(demo, settings)
    load_demo_county(demo, settings)  # a second start changes nothing
    users = accounts(demo)
    with demo() as session:
        first = session.scalars(select(OrganisationRow).order_by(OrganisationRow.row_number))
        org = next(iter(first))
        imports = session.scalar(select(func.count()).where(AuditRow.action == IMPORT_ACTION))
    engine.dispose()
    township = users[f"township-{org.township}"]
    assert township.source != "roster" and township.scope_key == org.township
    assert PasswordHasher().verify(township.password_hash or "", DEMO_PASSWORD)
    assert users[f"secretary-{org.org_id}"].password_hash is not None  # the demo's own
    assert users[secretary_username(org.org_id, org.secretary)].password_hash is None
    assert imports == 1
