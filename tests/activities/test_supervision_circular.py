"""The supervisors' toolkit in the digest and the circular, over a real read model (SQLite,
and PostgreSQL when it answers) with the real digest activities: a leading cadre gets the
daily digest of their contact point's organisations only; spot-check verdicts and
supervision records recorded since the previous circular appear in the circular's text and
workbook, and the next circular does not repeat them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import openpyxl  # type: ignore[import-untyped]
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import ActivityEnvironment

from activities.digests import DigestActivities
from activities.tables import (
    CampaignStatusRow,
    CircularRow,
    ContactPointOrgRow,
    ContactPointRow,
    DigestRow,
    InspectionDrawRow,
    InspectionRow,
    OrganisationRow,
    SupervisionRecordOrgRow,
    SupervisionRecordRow,
)
from domain.calendar import SHANGHAI
from workflows.digest import CircularRun, DigestRun

ROUND = "sv-round"
NOW = datetime(2024, 3, 20, 8, 0, tzinfo=SHANGHAI)
# (org id, township, light, overdue)
ORGS = [
    ("o1", "城关镇", "red", True),
    ("o2", "城关镇", "blue", False),
    ("o3", "青石镇", "red", True),
]


def _store(sessions: sessionmaker[Session]) -> None:
    deadline = datetime(2024, 3, 11, 23, 59, tzinfo=SHANGHAI)
    with sessions.begin() as session:
        for number, (org_id, township, light, overdue) in enumerate(ORGS, 1):
            name = f"{township}{org_id}党支部"
            session.add(
                OrganisationRow(
                    org_id=org_id,
                    name=name,
                    org_type="rural",
                    township=township,
                    system="rural",
                    member_count=20,
                    secretary=f"书记{org_id}",
                    instructor="张指导",
                    active=True,
                    row_number=number,
                    updated_at=datetime.now(UTC),
                )
            )
            session.add(
                CampaignStatusRow(
                    round_id=ROUND,
                    org_id=org_id,
                    org_name=name,
                    township=township,
                    system="rural",
                    org_type="rural",
                    phase="mobilisation",
                    phase_status="open",
                    light=light,
                    overdue=overdue,
                    deadline=deadline if overdue else deadline + timedelta(days=30),
                    top_rung=0 if overdue else None,
                    closed=False,
                    event_seq=1,
                    updated_at=datetime.now(UTC),
                )
            )
        session.add(
            ContactPointRow(
                point_id="cp-1",
                cadre_key="王副县长",
                cadre_name="王某",
                title="副县长，分管农业农村",
                created_by="county",
                created_at=datetime.now(UTC),
            )
        )
        session.add_all(ContactPointOrgRow(point_id="cp-1", org_id=o) for o in ("o1", "o2"))


def _supervise(sessions: sessionmaker[Session], at: datetime, tag: str) -> None:
    with sessions.begin() as session:
        session.add(
            InspectionDrawRow(
                draw_id=f"draw-{tag}",
                round_id=ROUND,
                seed=f"seed-{tag}",
                stratify_by="township",
                size={"count": 1},
                population={"units": []},
                sample={"org_ids": ["o3"]},
                drawn_by="county",
                drawn_by_role="county_office",
                scope_key="",
                drawn_at=at,
            )
        )
        session.add(
            InspectionRow(
                inspection_id=f"insp-{tag}",
                draw_id=f"draw-{tag}",
                round_id=ROUND,
                org_id="o3",
                verdict="rectify",
                findings=f"承诺未公开{tag}",
                inspectors="李督查",
                inspected_on="2024-03-18",
                recorded_by="county",
                recorded_at=at,
                order_id=None,
            )
        )
        session.add(
            SupervisionRecordRow(
                record_id=f"sr-{tag}",
                round_id=ROUND,
                kind="symposium",
                held_on="2024-03-19",
                title=f"城关镇座谈会{tag}",
                supervisors="赵组长、钱干事",
                findings="个别支部学习流于形式",
                follow_ups="两周内回访",
                recorded_by="tw",
                recorded_by_role="township",
                recorded_at=at,
            )
        )
        session.add_all(
            SupervisionRecordOrgRow(record_id=f"sr-{tag}", org_id=o) for o in ("o1", "o2")
        )


@pytest.mark.asyncio
async def test_a_contact_point_cadre_gets_the_digest_of_their_organisations_only(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    _store(sessions)
    acts = DigestActivities(sessions, tmp_path)
    await ActivityEnvironment().run(acts.send_digests, DigestRun(round_id=ROUND, now=NOW))
    with sessions() as session:
        mine = session.scalars(
            select(DigestRow).where(
                DigestRow.recipient_role == "leading_cadre", DigestRow.recipient_key == "王副县长"
            )
        ).all()
    assert len(mine) == 1
    assert mine[0].detail["laggards"] == ["o1"]  # o3 is not theirs
    assert sum(mine[0].detail["counts"].values()) == 2  # o1 red, o2 blue
    assert "联系点领导王某" in mine[0].body and "城关镇o1党支部" in mine[0].body
    assert "青石镇o3党支部" not in mine[0].body
    # The same day again: nothing new.
    again = await ActivityEnvironment().run(acts.send_digests, DigestRun(round_id=ROUND, now=NOW))
    assert "digest/sv-round/2024-03-20/leading_cadre:王副县长" not in again.recipients


@pytest.mark.asyncio
async def test_the_circular_lists_supervision_since_the_previous_circular(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    _store(sessions)
    _supervise(sessions, NOW - timedelta(days=1), "a")
    acts = DigestActivities(sessions, tmp_path)
    env = ActivityEnvironment()
    first = await env.run(acts.publish_circular, CircularRun(round_id=ROUND, now=NOW, key="w1"))
    with sessions() as session:
        row = session.get(CircularRow, first.circular_id)
        assert row is not None
        text = Path(row.text_path).read_text(encoding="utf-8")
        xlsx = row.xlsx_path
    assert "## 三、督促检查情况" in text
    assert (
        "2024年3月18日随机抽查（抽查种子seed-a，检查人员李督查）：青石镇o3党支部。"
        "发现：承诺未公开a。结论：差，限期整改。"
    ) in text
    assert (
        "2024年3月19日座谈会（城关镇座谈会a，督导人员赵组长、钱干事）："
        "城关镇o1党支部、城关镇o2党支部。发现：个别支部学习流于形式。后续跟进：两周内回访。"
    ) in text
    sheet = openpyxl.load_workbook(xlsx)["督促检查"]
    rows = [tuple(c.value for c in r) for r in sheet.iter_rows(min_row=2)]
    assert [(r[0], r[1], r[3]) for r in rows] == [
        ("2024-03-18", "随机抽查", "青石镇o3党支部"),
        ("2024-03-19", "座谈会", "城关镇o1党支部、城关镇o2党支部"),
    ]

    # A week later: only what was recorded after the first circular.
    later = NOW + timedelta(days=7)
    _supervise(sessions, NOW + timedelta(days=2), "b")
    second = await env.run(acts.publish_circular, CircularRun(round_id=ROUND, now=later, key="w2"))
    with sessions() as session:
        row = session.get(CircularRow, second.circular_id)
        assert row is not None
        text = Path(row.text_path).read_text(encoding="utf-8")
    assert "承诺未公开b" in text and "城关镇座谈会b" in text
    assert "承诺未公开a" not in text and "城关镇座谈会a" not in text
