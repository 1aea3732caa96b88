"""The 评选表彰 use cases called directly (``chuangzheng.services.commendation``) on a real
SQLite read model: declaring refused by scope, role and duplicate; a declaration scored and
submitted, the sheet closed afterwards; 审定 and publication by the county office only; each
change audited; a blank 审定 meeting refused; settling the 审定 steps of an unknown round not
found."""

from __future__ import annotations

import uuid
from typing import cast

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from activities.tables import AuditRow, CommendationApprovalRow, CommendationDeclarationRow
from chuangzheng.services import commendation, commendation_steps
from chuangzheng.services.errors import Conflict, InvalidInput, NotFound, Refused
from domain.rubric import HonourCategory
from tests.api.service_county import caller, county, demo_round

__all__ = ["county"]

pytestmark = pytest.mark.asyncio

DEEDS = "带领党员群众发展特色产业，为民办实事二十余件。"
ITEMS = ("leadership", "membership", "mechanism", "performance", "public_opinion")  # 五个好


def _declaration(org_id: str, deeds: str = DEEDS) -> commendation.Declaration:
    return commendation.Declaration(
        category=HonourCategory.ADVANCED_ORGANISATION, org_id=org_id, deeds=deeds
    )


async def test_declaring_is_refused_outside_scope_role_and_rules(
    county: sessionmaker[Session],
) -> None:
    rid = await demo_round(county, f"cm-{uuid.uuid4().hex[:8]}")
    with pytest.raises(NotFound):
        commendation.declare(county, caller("sec-a"), rid, _declaration("org-b"))
    with pytest.raises(Refused) as forbidden:
        commendation.declare(county, caller("ins-zhang"), rid, _declaration("org-a"))
    assert forbidden.value.code == "forbidden"
    with pytest.raises(InvalidInput) as no_deeds:
        commendation.declare(county, caller("sec-a"), rid, _declaration("org-a", deeds=" "))
    assert [e["field"] for e in no_deeds.value.errors] == ["deeds"]
    with pytest.raises(NotFound):
        commendation.declare(county, caller("sec-a"), "no-such-round", _declaration("org-a"))
    with county() as session:
        assert session.scalars(select(CommendationDeclarationRow)).all() == []
        assert session.scalars(select(AuditRow).where(AuditRow.round_id == rid)).all() != []
        assert (
            session.scalars(select(AuditRow).where(AuditRow.action.like("commendation_%"))).all()
            == []
        )


async def test_declared_scored_approved_published(county: sessionmaker[Session]) -> None:
    rid = await demo_round(county, f"cm-{uuid.uuid4().hex[:8]}")
    declared = commendation.declare(county, caller("sec-a"), rid, _declaration("org-a"))
    assert (declared["org_id"], declared["nominee"]) == ("org-a", "城关镇东关村党支部")
    with pytest.raises(Conflict) as twice:
        commendation.declare(county, caller("tw-chengguan"), rid, _declaration("org-a"))
    assert twice.value.code == "duplicate"
    did = declared["declaration_id"]
    scores = dict.fromkeys(ITEMS, 18)
    sheet = commendation.score(county, caller("assess"), rid, did, scores, submit=True)
    assert (sheet["total"], sheet["submitted"]) == ("90", True)
    with pytest.raises(Conflict) as closed:
        commendation.score(county, caller("assess"), rid, did, scores)
    assert closed.value.code == "sheet_submitted"
    # Only the county office decides; the assessor's list shows their sheet submitted.
    with pytest.raises(Refused):
        commendation.publish(county, caller("assess"), rid)
    with county() as session:
        [listed] = commendation.declarations(session, caller("assess"), rid)
        assert listed["my_sheet"] == "submitted"
        assert commendation.declarations(session, caller("sec-c"), rid) == []
    with pytest.raises(Conflict) as early:
        commendation.publish(county, caller("county"), rid)
    assert early.value.code == "commendation_open"
    approval = commendation.record_approval(
        county, caller("county"), rid, meeting="常委会第1次会议"
    )
    published = commendation.publish(county, caller("county"), rid)
    assert [h["declaration_id"] for h in published["honours"]] == [
        h["declaration_id"] for h in approval["honours"]
    ]
    with pytest.raises(Conflict) as again:
        commendation.publish(county, caller("county"), rid)
    assert again.value.code == "commendation_published"
    with county() as session:
        audited = session.scalars(
            select(AuditRow.action)
            .where(AuditRow.round_id == rid, AuditRow.action.like("commendation_%"))
            .order_by(AuditRow.at)
        ).all()
    assert audited == [
        "commendation_declared",
        "commendation_sheet_submitted",
        "commendation_approved",
        "commendation_published",
    ]


async def test_a_blank_meeting_and_settling_an_unknown_round_are_refused(
    county: sessionmaker[Session],
) -> None:
    rid = await demo_round(county, f"cm-{uuid.uuid4().hex[:8]}")
    # The 审定 is recorded once and its steps carry the meeting: a blank one is refused and
    # nothing is recorded.
    with pytest.raises(InvalidInput) as blank:
        commendation.record_approval(county, caller("county"), rid, meeting="   ")
    assert [e["field"] for e in blank.value.errors] == ["meeting"]
    with county() as session:
        assert session.get(CommendationApprovalRow, rid) is None
    # Settling the 审定 steps again: an unknown round is not found, a round not yet
    # approved is a conflict; neither reaches Temporal (a client that is never called).
    unused = cast(Client, object())
    with pytest.raises(NotFound):
        await commendation_steps.resettle_approval(unused, county, caller("county"), "no-such")
    with pytest.raises(Conflict) as open_round:
        await commendation_steps.resettle_approval(unused, county, caller("county"), rid)
    assert open_round.value.code == "commendation_open"
    approval = commendation.record_approval(county, caller("county"), rid, meeting=" 常委会 ")
    assert approval["meeting"] == "常委会"
