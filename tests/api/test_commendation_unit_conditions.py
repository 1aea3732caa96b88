"""Units' own conditions (具体条件, issue 15, seed 002 §三 "各部门、各单位要结合自身实际，进一步
明确…具体条件"): plan data a township adds to an honour's standard, reviewed by the county
office; assessors score a declaration from that township against the combined rubric, and
one from elsewhere against the county's standard alone. Over the real read model (SQLite)."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time

import pytest
from sqlalchemy.orm import Session, sessionmaker

from api.auth import User
from api.callers import service_caller
from chuangzheng.plans import shipped_plan_text
from chuangzheng.services import commendation, rounds
from chuangzheng.services.callers import Caller
from chuangzheng.services.errors import InvalidInput
from domain.calendar import SHANGHAI
from domain.errors import PlanError
from domain.organisation import Role
from domain.plan_loader import load_plan
from domain.rubric import HonourCategory
from tests.api.service_county import caller, county

__all__ = ["county"]

pytestmark = pytest.mark.asyncio

DEEDS = "带领党员群众发展特色产业，为民办实事二十余件。"
ITEMS = ("leadership", "membership", "mechanism", "performance", "public_opinion")
EXTRA = "leads_to_prosperity"
CONDITIONS = f"""  unit_conditions:
    - category: advanced_organisation
      township: 城关镇
      reviewed_by: 县委活动办王某
      reviewed_on: 2010-06-20
      items:
        - {{id: {EXTRA}, name: 带领群众致富能力强, weight: 1, max_points: 20}}
"""


def _plan(conditions: str = CONDITIONS) -> str:
    text = shipped_plan_text("seed-002")
    anchor = "  unit_conditions: []\n"
    assert anchor in text
    return text.replace(anchor, conditions, 1)


def assessor() -> Caller:
    return service_caller(
        User(username="kh-1", display_name="kh-1", role=Role.ASSESSMENT_GROUP, scope_key="")
    )


async def test_a_townships_own_conditions_join_the_rubric_of_its_declarations_only(
    county: sessionmaker[Session],
) -> None:
    rid = f"uc-{uuid.uuid4().hex[:8]}"
    await rounds.create_round(
        county,
        caller("county").actor,
        round_id=rid,
        plan_yaml=_plan(),
        round_plan_id="round-1",
        # The historic start (its years have holiday data): the operator's explicit escape
        # for a round that ran before; this round is never kicked off.
        starts_at=datetime.combine(date(2010, 5, 4), time(9), SHANGHAI),
        allow_past_start=True,
    )
    ids = {}
    for secretary, org_id in (("sec-a", "org-a"), ("sec-c", "org-c")):
        made = commendation.declare(
            county,
            caller(secretary),
            rid,
            commendation.Declaration(
                category=HonourCategory.ADVANCED_ORGANISATION, org_id=org_id, deeds=DEEDS
            ),
        )
        ids[org_id] = made["declaration_id"]
    standard = dict.fromkeys(ITEMS, 18)
    # 城关镇's declaration needs its own condition scored too, named by field.
    with pytest.raises(InvalidInput) as missing:
        commendation.score(county, assessor(), rid, ids["org-a"], standard, submit=True)
    assert [e["field"] for e in missing.value.errors] == [f"scores.{EXTRA}"]
    combined = commendation.score(
        county, assessor(), rid, ids["org-a"], standard | {EXTRA: 15}, submit=True
    )
    assert (combined["total"], combined["max_total"]) == ("105", "120")
    # 青石镇's is scored on the county's standard alone: the condition is not its item.
    with pytest.raises(InvalidInput) as foreign:
        commendation.score(county, assessor(), rid, ids["org-c"], standard | {EXTRA: 15})
    assert [e["field"] for e in foreign.value.errors] == [f"scores.{EXTRA}"]
    alone = commendation.score(county, assessor(), rid, ids["org-c"], standard, submit=True)
    assert (alone["total"], alone["max_total"]) == ("90", "100")
    # Assessors see which unit's reviewed conditions a declaration carries.
    with county() as session:
        listed = {d["org_id"]: d for d in commendation.declarations(session, assessor(), rid)}
    [own] = listed["org-a"]["conditions"]
    assert own["unit"] == "城关镇" and own["reviewed_by"] == "县委活动办王某"
    assert [i["id"] for i in own["items"]] == [EXTRA]
    assert listed["org-c"]["conditions"] == []


async def test_conditions_without_the_county_offices_review_or_clashing_are_refused() -> None:
    assert load_plan(_plan()).commendation is not None
    unreviewed = CONDITIONS.replace("      reviewed_by: 县委活动办王某\n", "")
    with pytest.raises(PlanError) as refused:
        load_plan(_plan(unreviewed))
    fields = [e.field for e in refused.value.errors]
    assert any(f.startswith("commendation.unit_conditions") and "reviewed_by" in f for f in fields)
    clashing = CONDITIONS.replace(f"id: {EXTRA}", "id: leadership")
    with pytest.raises(PlanError) as clash:
        load_plan(_plan(clashing))
    assert any("评分项编号与县委评分标准重复" in e.reason for e in clash.value.errors)
    both = CONDITIONS.replace(
        "      township: 城关镇\n", "      township: 城关镇\n      system: rural\n"
    )
    with pytest.raises(PlanError) as two_units:
        load_plan(_plan(both))
    assert any("只能属于一个单位" in e.reason for e in two_units.value.errors)
