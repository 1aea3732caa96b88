"""A county with a seventh guidance group defined as data (issue 15, seed 002 §六(二)): its
organisations escalate to it and it sees only them, over the project's real worker in the
time-skipping test server and the real read model.

County ``qixian`` defines 街道社区指导小组 (key ``community``, led by 县委组织部), which seed
002 does not name; its roster puts one 社区 branch in it and one village in 农村基层组织. The
branch does nothing in its first phase: the ladder's guidance-group rung addresses
``community``, the notice lands in the ``guidance-community`` account's inbox (the API's
own inbox query), not in the rural group's, and that account's scope (the API's rule and
its SQL condition) covers the branch only.
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import Response
from sqlalchemy import select, true
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment

from activities.guidance_groups import county_groups
from activities.roster_files import read_roster_text
from activities.roster_store import load_roster, store_roster
from activities.tables import CampaignStatusRow, NoticeRow, OrganisationRow
from api.auth import User
from api.routers.notices import inbox
from api.scope import covers, scope_condition
from chuangzheng.services import guidance_groups
from chuangzheng.services.callers import Caller
from chuangzheng.services.roster import roster_accounts
from domain.organisation import GuidanceGroup, Role
from domain.phases import Phase
from domain.state import Actor
from tests.workflows.support import org_plan, start_campaign, status

COUNTY = "qixian"
ROSTER = """组织编号,组织名称,组织类型,所属乡镇,所属系统,党员人数,书记,指导员
g7-comm,城关镇东街社区党支部,社区,城关镇,街道社区指导小组,26,赵书记,钱指导
g7-rural,城关镇西村党支部,农村,城关镇,县农委,31,孙书记,钱指导
"""
OFFICE = Caller(
    actor=Actor(user=f"{COUNTY}.county", name="七县县委活动办", role=Role.COUNTY_OFFICE),
    covers=lambda org: True,
    condition=true(),
    county=COUNTY,
    counties=frozenset({COUNTY}),
)


def _group_user(key: str) -> User:
    """The roster's ``guidance-<key>`` account of the county, as the API sees it."""
    return User(
        username=f"{COUNTY}.guidance-{key}",
        display_name=key,
        role=Role.GUIDANCE_GROUP,
        scope_key=key,
        county=COUNTY,
    )


async def test_a_seventh_guidance_group_gets_its_rung_and_sees_only_its_organisations(
    time_skipping_env: WorkflowEnvironment, task_queue: str, sessions: sessionmaker[Session]
) -> None:
    env = time_skipping_env
    community = GuidanceGroup(key="community", name="街道社区指导小组", department="县委组织部")
    with sessions.begin() as session:
        guidance_groups.save_group(session, OFFICE, community)
        groups = county_groups(session, COUNTY)
        assert [g.key for g in groups][-1] == "community" and len(groups) == 7
        store_roster(session, read_roster_text(ROSTER, groups=groups), county=COUNTY)
        roster = load_roster(session, county=COUNTY)
    org = roster.by_id()["g7-comm"]
    assert (org.system, org.county) == ("community", COUNTY)
    # The roster calls for the group's account, named by the county's label.
    wanted = {a.username: a for a in roster_accounts(roster, COUNTY, groups)}
    account = wanted[f"{COUNTY}.guidance-community"]
    assert (account.role, account.scope_key) == (Role.GUIDANCE_GROUP, "community")
    assert account.display_name == "街道社区指导小组（县委组织部）"

    plan = org_plan(org, await env.get_current_time(), round_id="r-g7")
    handle = await start_campaign(env.client, task_queue, plan)
    current = await status(handle)
    assert current.state.phase is Phase.MOBILISATION
    deadline = current.state.current().deadline
    # Nothing done: past the guidance-group rung (3 working days after the deadline).
    rung = plan.ladder.rungs[1]
    assert rung.recipient is Role.GUIDANCE_GROUP
    due = plan.calendar.build().after(deadline, rung.delay)
    await env.sleep(due - await env.get_current_time() + timedelta(hours=1))

    phase = (await status(handle)).state.current()
    assert [e.recipient for e in phase.escalations][:2] == [Role.INSTRUCTOR, Role.GUIDANCE_GROUP]
    with sessions() as session:
        notices = session.scalars(
            select(NoticeRow).where(
                NoticeRow.round_id == "r-g7", NoticeRow.recipient_role == "guidance_group"
            )
        ).all()
        assert [(n.org_id, n.recipient_key, n.kind) for n in notices] == [
            ("g7-comm", "community", "escalation")
        ]
        # Written inside the workflow without the county's data, filed under its name.
        assert notices[0].recipient_label == "街道社区指导小组（县委组织部）"
        assert notices[0].body.startswith("街道社区指导小组（县委组织部）：城关镇东街社区党支部")
        # The group's inbox (the API's query) holds it; the rural group's does not.
        mine = inbox(Response(), session, _group_user("community"), round_id="r-g7")
        assert [n["notice_id"] for n in mine] == [notices[0].notice_id]
        assert inbox(Response(), session, _group_user("rural"), round_id="r-g7") == []
        # Its scope: the branch only, by the rule and by its SQL condition.
        scoped = session.scalars(
            select(OrganisationRow.org_id).where(scope_condition(_group_user("community")))
        ).all()
        assert scoped == ["g7-comm"]
        assert not covers(_group_user("community"), roster.by_id()["g7-rural"])
        assert covers(_group_user("rural"), roster.by_id()["g7-rural"])
        row = session.get(CampaignStatusRow, ("r-g7", "g7-comm"))
        assert row is not None and row.system == "community"
