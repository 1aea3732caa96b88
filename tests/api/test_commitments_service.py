"""The 公开承诺 use cases called directly (``chuangzheng.services.commitments``) on a real
SQLite read model: refusals by scope, role, roster and rule, and a commitment taken from
recording through 审诺 (returned with a reason, then approved), each change audited."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from activities.tables import AuditRow, CommitmentRow
from chuangzheng.services import commitments, members
from chuangzheng.services.errors import Conflict, InvalidInput, NotFound, Refused
from domain.commitments import ItemDraft
from tests.api.service_county import caller, county, demo_round

__all__ = ["county"]

pytestmark = pytest.mark.asyncio

MEMBERS = "组织编号,党员姓名,党员编号\norg-a,李明,A001\norg-a,王芳,A002\n"


def _draft(member_id: str | None = None, days: int = 30) -> commitments.CommitmentDraft:
    due = (datetime.now(UTC) + timedelta(days=days)).date()
    return commitments.CommitmentDraft(
        content="带头学习，每月为群众办一件实事", items=(ItemDraft("走访困难户", due),),
        member_id=member_id,
    )  # fmt: skip


async def test_refusals_write_nothing(county: sessionmaker[Session]) -> None:
    rid = await demo_round(county, f"cs-{uuid.uuid4().hex[:8]}")
    await members.import_members(county, caller("county"), MEMBERS.encode(), ".csv")
    # Outside the caller's scope, and an unknown round, look alike: not found.
    with pytest.raises(NotFound):
        commitments.record(county, caller("sec-a"), rid, "org-b", _draft())
    with pytest.raises(NotFound):
        commitments.record(county, caller("sec-a"), "no-such-round", "org-a", _draft())
    # The instructor sees org-a but does not record for it.
    with pytest.raises(Refused) as forbidden:
        commitments.record(county, caller("ins-zhang"), rid, "org-a", _draft())
    assert forbidden.value.code == "forbidden"
    # Someone not on the member list, and a due date already past, name their fields.
    with pytest.raises(InvalidInput) as stranger:
        commitments.record(county, caller("sec-a"), rid, "org-a", _draft("X999"))
    assert stranger.value.errors == [{"field": "member_id", "reason": "不在本组织党员名册中"}]
    with pytest.raises(InvalidInput) as late:
        commitments.record(county, caller("sec-a"), rid, "org-a", _draft(days=-3))
    assert [e["field"] for e in late.value.errors] == ["items[0].due"]
    # Nothing drafted: nothing to submit, and none named: nothing to sign off (no audit row).
    with pytest.raises(Conflict):
        commitments.submit(county, caller("sec-a"), rid, "org-a")
    with pytest.raises(Conflict) as none_named:
        commitments.sign_off(county, caller("ins-zhang"), rid, "org-a", [], approve=True)
    assert none_named.value.code == "invalid_transition"
    with county() as session:
        assert session.scalars(select(CommitmentRow)).all() == []
        assert (
            session.scalars(select(AuditRow).where(AuditRow.action.like("commitment_%"))).all()
            == []
        )


async def test_from_recording_through_signoff(county: sessionmaker[Session]) -> None:
    rid = await demo_round(county, f"cs-{uuid.uuid4().hex[:8]}")
    await members.import_members(county, caller("county"), MEMBERS.encode(), ".csv")
    recorded = commitments.record(county, caller("sec-a"), rid, "org-a", _draft("A001"))
    assert (recorded["member_name"], recorded["status"]) == ("李明", "drafted")
    ledger = commitments.ledger(county, caller("ins-zhang"), rid, "org-a")
    assert ledger["coverage"]["uncovered"] == [
        {"member_id": "A001", "name": "李明"},
        {"member_id": "A002", "name": "王芳"},
    ]  # a draft does not cover its member yet
    [submitted] = commitments.submit(county, caller("sec-a"), rid, "org-a")
    cid = submitted["commitment_id"]
    assert submitted["status"] == "submitted"
    # Returning needs a reason; the upper level gives one, the secretary revises.
    with pytest.raises(Refused) as no_reason:
        commitments.sign_off(county, caller("ins-zhang"), rid, "org-a", [cid], approve=False)
    assert no_reason.value.code == "reason_required"
    [returned] = commitments.sign_off(
        county, caller("ins-zhang"), rid, "org-a", [cid], approve=False, reason="事项不够具体"
    )
    assert (returned["status"], returned["return_reason"]) == ("returned", "事项不够具体")
    commitments.submit(county, caller("sec-a"), rid, "org-a", [cid])
    [approved] = commitments.sign_off(
        county, caller("ins-zhang"), rid, "org-a", [cid], approve=True
    )
    assert (approved["status"], approved["decided_by"]) == ("approved", "ins-zhang")
    with county() as session:
        audited = session.scalars(
            select(AuditRow.action)
            .where(AuditRow.round_id == rid, AuditRow.action.like("commitment_%"))
            .order_by(AuditRow.at)
        ).all()
    assert audited == [
        "commitment_recorded",
        "commitment_submitted",
        "commitment_signed_off",
        "commitment_submitted",
        "commitment_signed_off",
    ]
