"""OrganisationCampaignWorkflow over the seed-002 plan in the time-skipping test server."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.tables import CampaignEventRow, NoticeRow
from chuangzheng.sample_evidence import sample_evidence
from domain.actions import (
    AcknowledgeEscalation,
    DecideExtension,
    DecideSubmission,
    RecheckRectification,
    ReportRectification,
    RequestExtension,
    SubmitEvidence,
)
from domain.calendar import local_date
from domain.lights import Light
from domain.machine import PhaseStatus, StepStatus
from domain.organisation import Role
from domain.phases import WORKING_PHASES, Phase
from domain.state import Outcome, RectificationStatus
from tests.workflows.support import (
    COUNTY,
    do_current_phase,
    instructor,
    org_plan,
    organisation,
    record_history,
    secretary,
    start_campaign,
    status,
)
from workflows import search_attributes as sa
from workflows.organisation import OrganisationCampaignWorkflow

pytestmark = pytest.mark.usefixtures("worker")


async def test_on_time_organisation_completes_every_phase(
    time_skipping_env: WorkflowEnvironment, task_queue: str, sessions: sessionmaker[Session]
) -> None:
    env = time_skipping_env
    org = organisation("org-ontime-01")
    plan = org_plan(org, await env.get_current_time(), round_id="r-ontime")
    handle = await start_campaign(env.client, task_queue, plan)
    for phase in WORKING_PHASES:
        current = await status(handle)
        assert current.state.phase is phase
        await do_current_phase(handle, plan, await env.get_current_time())
    result = await handle.result()
    assert result.phase is Phase.COMPLETED
    assert result.outcomes == {phase: Outcome.ON_TIME for phase in WORKING_PHASES}
    with sessions() as session:
        kinds = session.scalars(
            select(CampaignEventRow.kind).where(CampaignEventRow.round_id == "r-ontime")
        ).all()
        notices = session.scalars(select(NoticeRow).where(NoticeRow.round_id == "r-ontime")).all()
    assert kinds.count("phase_completed") == 5
    assert "campaign_completed" in kinds
    assert "escalated" not in kinds
    assert notices == []


async def test_laggard_climbs_every_rung_then_rectifies(
    time_skipping_env: WorkflowEnvironment, task_queue: str, sessions: sessionmaker[Session]
) -> None:
    env = time_skipping_env
    org = organisation("org-lag-01")
    plan = org_plan(org, await env.get_current_time(), round_id="r-lag")
    calendar = plan.calendar.build()
    handle = await start_campaign(env.client, task_queue, plan)
    await do_current_phase(handle, plan, await env.get_current_time())
    current = await status(handle)
    assert current.state.phase is Phase.PUBLIC_COMMITMENT
    deadline = current.state.current().deadline

    # Nothing is done in 公开承诺: wait past the top rung (6 working days after the deadline).
    top_rung = calendar.after(deadline, plan.ladder.rungs[-1].delay)
    await env.sleep(top_rung - await env.get_current_time() + timedelta(hours=1))

    current = await status(handle)
    phase = current.state.current()
    assert [e.rung for e in phase.escalations] == [0, 1, 2]
    assert [e.recipient for e in phase.escalations] == [
        Role.INSTRUCTOR,
        Role.GUIDANCE_GROUP,
        Role.COUNTY_OFFICE,
    ]
    assert phase.status is PhaseStatus.RECTIFYING
    assert phase.rectification is not None
    assert phase.rectification.deadline > top_rung
    assert current.state.light is Light.RED
    described = await handle.describe()
    assert described.typed_search_attributes.get(sa.PHASE) == Phase.PUBLIC_COMMITMENT.value
    assert described.typed_search_attributes.get(sa.LIGHT) == Light.RED.value
    assert described.typed_search_attributes.get(sa.OVERDUE) is True

    with sessions() as session:
        notices = session.scalars(
            select(NoticeRow)
            .where(NoticeRow.round_id == "r-lag", NoticeRow.phase == "public_commitment")
            .order_by(NoticeRow.created_at)
        ).all()
    sent = [(n.kind, n.recipient_role) for n in notices]
    assert ("reminder", "secretary") in sent
    assert ("escalation", "instructor") in sent
    assert ("escalation", "guidance_group") in sent
    assert ("escalation", "county_office") in sent
    assert ("circular", "township") in sent
    assert ("rectification_order", "secretary") in sent
    assert len(sent) == len(set(sent)) + 2  # the secretary hears of each of the three rungs
    order_notice = next(n for n in notices if n.kind == "rectification_order")
    assert org.name in order_notice.body and "整改" in order_notice.body

    # The county office signs for its rung; the organisation catches up and rectifies.
    await handle.execute_update(
        OrganisationCampaignWorkflow.acknowledge_escalation,
        AcknowledgeEscalation(actor=COUNTY, phase=Phase.PUBLIC_COMMITMENT, rung=2),
    )
    await do_current_phase(handle, plan, await env.get_current_time())
    current = await status(handle)
    assert current.state.phase is Phase.PUBLIC_COMMITMENT  # the order still waits for its re-check
    await handle.execute_update(
        OrganisationCampaignWorkflow.report_rectification,
        ReportRectification(
            actor=secretary(org),
            phase=Phase.PUBLIC_COMMITMENT,
            report="已补齐全部党员承诺并张榜公示。",
        ),
    )
    result = await handle.execute_update(
        OrganisationCampaignWorkflow.recheck_rectification,
        RecheckRectification(actor=instructor(org), phase=Phase.PUBLIC_COMMITMENT, passed=True),
    )
    assert result.phase is Phase.LEADERSHIP_REVIEW  # the small result says where it stands
    current = await status(handle)
    done = current.state.phase_state(Phase.PUBLIC_COMMITMENT)
    assert done.rectification is not None
    assert done.rectification.status is RectificationStatus.PASSED
    assert done.outcome is Outcome.AFTER_RECTIFICATION
    assert current.state.phase is Phase.LEADERSHIP_REVIEW
    assert done.escalations[2].acknowledged_by == COUNTY
    await record_history(handle, "organisation_laggard")


async def test_approved_extension_moves_the_deadline_and_nothing_escalates(
    time_skipping_env: WorkflowEnvironment, task_queue: str, sessions: sessionmaker[Session]
) -> None:
    env = time_skipping_env
    org = organisation("org-ext-01")
    plan = org_plan(org, await env.get_current_time(), round_id="r-ext")
    calendar = plan.calendar.build()
    handle = await start_campaign(env.client, task_queue, plan)
    original = (await status(handle)).state.current().deadline
    new_deadline = calendar.after(
        original, plan.ladder.rungs[-1].delay.model_copy(update={"working_days": 10})
    )
    filed = await handle.execute_update(
        OrganisationCampaignWorkflow.request_extension,
        RequestExtension(
            actor=secretary(org), new_deadline=new_deadline, reason="村两委换届，动员会顺延"
        ),
    )
    extension_id = filed.extension_id
    assert extension_id == (await status(handle)).state.extensions[-1].id
    await handle.execute_update(
        OrganisationCampaignWorkflow.decide_extension,
        DecideExtension(actor=instructor(org), extension_id=extension_id, approve=True),
    )
    # Past the original deadline and past where the top rung would have fired.
    await env.sleep(
        calendar.after(original, plan.ladder.rungs[-1].delay)
        - await env.get_current_time()
        + timedelta(days=1)
    )
    current = await status(handle)
    phase = current.state.current()
    assert phase.deadline == new_deadline
    assert phase.escalations == []
    assert phase.status is PhaseStatus.OPEN
    assert current.state.light is not Light.RED
    await do_current_phase(handle, plan, await env.get_current_time())
    current = await status(handle)
    assert current.state.phase_state(Phase.MOBILISATION).outcome is Outcome.ON_TIME
    with sessions() as session:
        escalations = session.scalars(
            select(NoticeRow).where(NoticeRow.round_id == "r-ext", NoticeRow.kind == "escalation")
        ).all()
    assert escalations == []
    await record_history(handle, "organisation_extension")


async def test_returned_submission_is_resubmitted(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    env = time_skipping_env
    org = organisation("org-ret-01")
    plan = org_plan(org, await env.get_current_time(), round_id="r-ret")
    handle = await start_campaign(env.client, task_queue, plan)
    await do_current_phase(handle, plan, await env.get_current_time(), accept=False)
    returned = await handle.execute_update(
        OrganisationCampaignWorkflow.decide_submission,
        DecideSubmission(
            actor=instructor(org),
            step_id="hold_mobilisation_meeting",
            accept=False,
            reason="缺少会议签到表",
        ),
    )
    assert returned.step_status is StepStatus.RETURNED
    step = (await status(handle)).state.current().step("hold_mobilisation_meeting")
    assert step is not None and step.status is StepStatus.RETURNED
    assert step.submissions[-1].reason == "缺少会议签到表"
    # Returning needs a reason: refused by the validator.
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update(
            OrganisationCampaignWorkflow.decide_submission,
            DecideSubmission(actor=instructor(org), step_id="set_up_leading_group", accept=False),
        )
    values = dict(step.submissions[-1].values)
    resubmitted = await handle.execute_update(
        OrganisationCampaignWorkflow.submit_evidence,
        SubmitEvidence(actor=secretary(org), step_id="hold_mobilisation_meeting", values=values),
    )
    assert resubmitted.step_id == "hold_mobilisation_meeting"
    assert resubmitted.step_status is StepStatus.SUBMITTED
    step = (await status(handle)).state.current().step("hold_mobilisation_meeting")
    assert step is not None and step.status is StepStatus.SUBMITTED and len(step.submissions) == 2
    await do_current_phase(handle, plan, await env.get_current_time())
    assert (await status(handle)).state.phase is Phase.PUBLIC_COMMITMENT


async def test_invalid_evidence_is_rejected_with_reason_and_no_history(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    env = time_skipping_env
    org = organisation("org-bad-01", members=18)
    plan = org_plan(org, await env.get_current_time(), round_id="r-bad")
    handle = await start_campaign(env.client, task_queue, plan)
    await status(handle)
    with pytest.raises(WorkflowUpdateFailedError) as failure:
        await handle.execute_update(
            OrganisationCampaignWorkflow.submit_evidence,
            SubmitEvidence(
                actor=secretary(org),
                step_id="hold_mobilisation_meeting",
                values={"meeting_date": "2010-01-01", "attendance": 25, "speaker": "李书记"},
            ),
        )
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "invalid_evidence"
    errors = {e["field"]: e["reason"] for e in cause.details[0]["errors"]}
    assert set(errors) == {"evidence.meeting_date", "evidence.attendance"}
    assert "超过本组织党员人数 18" in errors["evidence.attendance"]
    assert "本阶段期间" in errors["evidence.meeting_date"]
    # A secretary may not accept their own submission either.
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update(
            OrganisationCampaignWorkflow.decide_submission,
            DecideSubmission(
                actor=secretary(org), step_id="hold_mobilisation_meeting", accept=True
            ),
        )
    # A rejected update leaves no trace: no update event of any kind in the history.
    history = await handle.fetch_history()
    kinds = {EventType.Name(event.event_type) for event in history.events}
    assert not any("UPDATE" in kind for kind in kinds), kinds
    step = (await status(handle)).state.current().step("hold_mobilisation_meeting")
    assert step is not None and step.submissions == []
    # ...whereas an accepted one is recorded.
    step_plan = plan.phase(Phase.MOBILISATION).steps[0]
    now = await env.get_current_time()
    phase_state = (await status(handle)).state.current()
    await handle.execute_update(
        OrganisationCampaignWorkflow.submit_evidence,
        SubmitEvidence(
            actor=secretary(org),
            step_id=step_plan.id,
            values=sample_evidence(
                step_plan,
                org,
                opens_at=phase_state.opens_at,
                deadline=phase_state.deadline,
                now=now,
            ),
        ),
    )
    history = await handle.fetch_history()
    kinds = {EventType.Name(event.event_type) for event in history.events}
    assert "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED" in kinds


async def test_an_organisation_ahead_of_plan_dates_evidence_from_its_actual_opening_not_ahead(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    """Found by outside testers: an organisation that finished 动员部署 early is in 公开承诺
    weeks before its planned opening. It can date evidence on the day it entered the phase
    (the window once started at the planned opening), and a date later than today (the
    planned opening, say) is refused naming the field (it was once accepted)."""
    env = time_skipping_env
    org = organisation("org-early-01")
    plan = org_plan(org, await env.get_current_time(), round_id="r-early")
    handle = await start_campaign(env.client, task_queue, plan)
    await do_current_phase(handle, plan, await env.get_current_time())
    phase = (await status(handle)).state.current()
    assert phase.phase is Phase.PUBLIC_COMMITMENT and phase.opened_at is not None
    entered, planned = local_date(phase.opened_at), local_date(phase.opens_at)
    assert entered < planned

    def publicise(day: date) -> SubmitEvidence:
        values = {"published_on": day.isoformat(), "channels": ["公示栏"]}
        return SubmitEvidence(actor=secretary(org), step_id="publicise", values=values)

    with pytest.raises(WorkflowUpdateFailedError) as failure:
        await handle.execute_update(
            OrganisationCampaignWorkflow.submit_evidence, publicise(planned)
        )
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "invalid_evidence"
    [error] = cause.details[0]["errors"]
    assert error["field"] == "evidence.published_on"
    today = local_date(await env.get_current_time())
    assert error["reason"] in {
        f"公示日期不能晚于今天（{day.isoformat()}）" for day in (today, today - timedelta(days=1))
    }
    accepted = await handle.execute_update(
        OrganisationCampaignWorkflow.submit_evidence, publicise(entered)
    )
    assert accepted.step_status is StepStatus.SUBMITTED


async def test_admission_rules_refuse_self_decisions_and_runaway_extensions(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    """The validators' admission rules (``CampaignRules.check_independent_decision`` and
    ``check_extension_reach``): refused before anything is recorded, and the workflow keeps
    answering and acting (a 9999 deadline once left it failing every workflow task)."""
    env = time_skipping_env
    org = organisation("org-admit-01")
    plan = org_plan(org, await env.get_current_time(), round_id="r-admit")
    handle = await start_campaign(env.client, task_queue, plan)
    phase = (await status(handle)).state.current()
    step = plan.phase(phase.phase).steps[0]
    values = sample_evidence(
        step, org, opens_at=phase.opens_at, deadline=phase.deadline, now=phase.opens_at
    )
    await handle.execute_update(
        OrganisationCampaignWorkflow.submit_evidence,
        SubmitEvidence(actor=COUNTY, step_id=step.id, values=values),
    )
    with pytest.raises(WorkflowUpdateFailedError) as failure:
        await handle.execute_update(
            OrganisationCampaignWorkflow.decide_submission,
            DecideSubmission(actor=COUNTY, step_id=step.id, accept=True),
        )
    assert isinstance(failure.value.cause, ApplicationError)
    assert failure.value.cause.type == "forbidden"
    assert "代为提交" in str(failure.value.cause)
    accepted = await handle.execute_update(
        OrganisationCampaignWorkflow.decide_submission,
        DecideSubmission(actor=instructor(org), step_id=step.id, accept=True),
    )
    assert accepted.step_status is StepStatus.ACCEPTED

    with pytest.raises(WorkflowUpdateFailedError) as failure:
        await handle.execute_update(
            OrganisationCampaignWorkflow.request_extension,
            RequestExtension(
                actor=secretary(org),
                new_deadline=phase.deadline.replace(year=9999),
                reason="需要更多时间",
            ),
        )
    assert isinstance(failure.value.cause, ApplicationError)
    assert failure.value.cause.type == "invalid_deadline"
    later = phase.deadline + timedelta(days=7)
    asked = await handle.execute_update(
        OrganisationCampaignWorkflow.request_extension,
        RequestExtension(actor=secretary(org), new_deadline=later, reason="换届选举"),
    )
    assert asked.extension_id is not None
    assert (await status(handle)).state.current().deadline == phase.deadline
