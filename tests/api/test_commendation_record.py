"""Commendation on the whole record (issue 15, seed 002 §五(五) "结合年度考核、日常检查"): the
assessment group's score adds the organisation's campaign record, read from the real read
model (SQLite), with the weights of the shipped seed-002 plan; assessors see the record
beside their sheets and the ranking explains it in Chinese. And seed 002's "七一前" is
checked when a plan is loaded."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from activities.tables import CampaignEventRow, EscalationRow, PhaseStatusRow
from api.auth import User
from api.callers import service_caller
from chuangzheng.plans import shipped_plan_text
from chuangzheng.services import commendation, rounds
from chuangzheng.services.callers import Caller
from domain.calendar import SHANGHAI
from domain.errors import PlanError
from domain.events import EventKind
from domain.organisation import Role
from domain.phases import Phase
from domain.plan_loader import load_plan
from domain.rubric import SEED_002_RULES, HonourCategory
from tests.api.service_county import caller, county

__all__ = ["county"]

pytestmark = pytest.mark.asyncio

DEEDS = "带领党员群众发展特色产业，为民办实事二十余件。"
ITEMS = ("leadership", "membership", "mechanism", "performance", "public_opinion")
DONE = (Phase.MOBILISATION, Phase.PUBLIC_COMMITMENT, Phase.LEADERSHIP_REVIEW)


def assessor(name: str) -> Caller:
    """One member of the county's assessment group (each scores on their own sheet)."""
    return service_caller(
        User(username=name, display_name=name, role=Role.ASSESSMENT_GROUP, scope_key="")
    )


def _event(round_id: str, org_id: str, kind: EventKind, phase: Phase, **detail: Any) -> Any:
    now = datetime.now(UTC)
    return CampaignEventRow(
        event_id=f"{round_id}/{org_id}/{kind.value}/{phase.value}/{uuid.uuid4().hex[:6]}",
        round_id=round_id,
        org_id=org_id,
        kind=kind.value,
        phase=phase.value,
        at=now,
        detail=detail,
        recorded_at=now,
    )


def _campaign(sessions: sessionmaker[Session], round_id: str, org_id: str, *, late: bool) -> None:
    """The read model of a campaign that finished three phases; ``late``: two of them passed
    their deadlines first and one was ordered to rectify (the ladder's top rung, after the
    instructor and the guidance group were escalated to)."""
    now = datetime.now(UTC)
    with sessions.begin() as session:
        for phase in DONE:
            session.add(
                PhaseStatusRow(
                    round_id=round_id,
                    org_id=org_id,
                    phase=phase.value,
                    status="done",
                    deadline=now,
                    opened_at=now,
                    completed_at=now,
                    outcome="completed",
                    event_seq=1,
                )
            )
        if not late:
            return
        for phase in DONE[:2]:
            session.add(_event(round_id, org_id, EventKind.DEADLINE_PASSED, phase))
        session.add(_event(round_id, org_id, EventKind.RECTIFICATION_ORDERED, Phase.MOBILISATION))


async def _scored_round(sessions: sessionmaker[Session]) -> tuple[str, dict[str, str]]:
    """A seed-002 round where org-a and org-c declared and three assessors gave both the
    same sheets; the declaration ids by organisation."""
    round_id = f"rec-{uuid.uuid4().hex[:8]}"
    await rounds.create_round(
        sessions,
        caller("county").actor,
        round_id=round_id,
        plan_id="seed-002",
        round_plan_id="round-1",
        # The historic start: the seed's calendar years have holiday data. A start in the
        # past is the operator's explicit escape (a historic round recorded for its
        # commendation); this round is never kicked off.
        starts_at=datetime.combine(date(2010, 5, 4), time(9), SHANGHAI),
        allow_past_start=True,
    )
    declared = {}
    for secretary, org_id in (("sec-a", "org-a"), ("sec-c", "org-c")):
        made = commendation.declare(
            sessions,
            caller(secretary),
            round_id,
            commendation.Declaration(
                category=HonourCategory.ADVANCED_ORGANISATION, org_id=org_id, deeds=DEEDS
            ),
        )
        declared[org_id] = made["declaration_id"]
    for index, name in enumerate(("kh-1", "kh-2", "kh-3")):
        for declaration_id in declared.values():
            scores = dict.fromkeys(ITEMS, 16 + index)
            commendation.score(
                sessions, assessor(name), round_id, declaration_id, scores, submit=True
            )
    return round_id, declared


def _entries(ranking: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["org_id"]: e for g in ranking["groups"] for e in g["entries"]}


async def test_two_late_phases_and_a_rectification_cost_exactly_the_plans_weights(
    county: sessionmaker[Session],
) -> None:
    round_id, declared = await _scored_round(county)
    _campaign(county, round_id, "org-a", late=True)
    _campaign(county, round_id, "org-c", late=False)

    with county() as session:
        ranking = commendation.ranking(session, caller("county"), round_id)
    entries = _entries(ranking)
    late, on_time = entries["org-a"], entries["org-c"]
    # The sheets are the same (mean of 80, 85 and 90); only the record differs.
    assert late["sheet_score"] == on_time["sheet_score"] == "85.00"
    weights = load_plan(shipped_plan_text("seed-002")).commendation
    assert weights is not None and weights.record is not None
    w = weights.record
    # Two of org-a's three done phases were late (so one on time), one order to rectify.
    expected_gap = 2 * (w.phase_on_time - w.phase_late) - w.rectification_ordered
    assert expected_gap > 0
    assert Decimal(on_time["score"]) - Decimal(late["score"]) == expected_gap
    assert Decimal(on_time["score"]) == Decimal("85.00") + 3 * w.phase_on_time
    # Each input is a line with its count, weight and points.
    lines = {line["key"]: line for line in late["record"]["lines"]}
    assert (lines["phase_late"]["shown"], lines["phase_late"]["points"]) == (
        "2个",
        f"{2 * w.phase_late:.2f}",
    )
    assert lines["rectification_ordered"]["weight"] == str(w.rectification_ordered)
    assert lines["satisfaction"]["shown"].startswith("无")
    # The ranking puts the on-time organisation first and says how the score is made.
    [group] = ranking["groups"]
    assert [e["org_id"] for e in group["entries"]] == ["org-c", "org-a"]
    assert any("每个逾期的阶段减2分" in rule for rule in ranking["score_rule"])
    assert any("综合得分 = 评分表得分 + 活动记录分" in rule for rule in ranking["score_rule"])

    # Assessors see the record beside their own sheet; a secretary does not.
    with county() as session:
        listed = {
            d["org_id"]: d for d in commendation.declarations(session, assessor("kh-1"), round_id)
        }
        assert listed["org-a"]["my_sheet"] == "submitted"
        assert listed["org-a"]["record"]["points"] == late["record"]["points"]
        [own] = commendation.declarations(session, caller("sec-a"), round_id)
        assert "record" not in own
    assert declared["org-a"] == late["declaration_id"]


async def test_escalations_count_per_rung_reached(county: sessionmaker[Session]) -> None:
    round_id, _ = await _scored_round(county)
    now = datetime.now(UTC)
    with county.begin() as session:
        for rung in (0, 1):
            session.add(
                EscalationRow(
                    round_id=round_id,
                    org_id="org-a",
                    phase=Phase.MOBILISATION.value,
                    rung=rung,
                    name=f"第{rung + 1}级",
                    recipient_role="instructor",
                    recipient_key="张指导",
                    fired_at=now,
                    working_days_overdue=rung,
                )
            )
    with county() as session:
        entries = _entries(commendation.ranking(session, caller("county"), round_id))
    gap = Decimal(entries["org-c"]["score"]) - Decimal(entries["org-a"]["score"])
    assert SEED_002_RULES.record is not None
    assert gap == -2 * SEED_002_RULES.record.escalation


async def test_a_commendation_after_qiyi_is_refused_at_plan_load_naming_the_phase() -> None:
    text = shipped_plan_text("seed-002")
    # Round 2's commendation: 43 working days land on 2012-06-29; 45 on 2012-07-03.
    late = text.replace("duration: {working_days: 43}", "duration: {working_days: 45}", 1)
    assert late != text
    with pytest.raises(PlanError) as refused:
        load_plan(late)
    [error] = refused.value.errors
    assert error.field == "rounds[1].phases[4]"
    assert "2012-07-01前" in error.reason and "2012-07-03" in error.reason
    # Without the rule the same schedule loads.
    unruled = late.replace('deadline_before: "07-01"', "", 1)
    assert load_plan(unruled).rounds[1].id == "round-2"
    bad_day = text.replace('deadline_before: "07-01"', 'deadline_before: "02-30"', 1)
    with pytest.raises(PlanError) as invalid:
        load_plan(bad_day)
    assert [e.field for e in invalid.value.errors] == ["commendation.deadline_before"]
