"""Playing one organisation: its planned actions sent as workflow updates, in order."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError

from chuangzheng.sample_evidence import sample_actors, sample_evidence
from domain.actions import (
    AcknowledgeEscalation,
    DecideExtension,
    DecideSubmission,
    RecheckRectification,
    ReportRectification,
    RequestExtension,
    SubmitEvidence,
)
from domain.organisation import Organisation, Role
from domain.phases import Phase
from domain.schedule import OrgPlan
from domain.state import Actor
from workflows.contracts import ActionResult, CampaignResult
from workflows.ids import organisation_workflow_id
from workflows.organisation import OrganisationCampaignWorkflow

from .model import ActionKind, OrgScript, PlannedAction
from .timers import TimerGuard

COUNTY = Actor(user="county", name="县委创先争优活动领导小组办公室", role=Role.COUNTY_OFFICE)


def _secretary(org: Organisation) -> Actor:
    return Actor(user=org.secretary, name=org.secretary, role=Role.SECRETARY)


def _instructor(org: Organisation) -> Actor:
    return Actor(user=org.instructor, name=org.instructor, role=Role.INSTRUCTOR)


class Player:
    """Sends one organisation's planned actions as updates, in order."""

    def __init__(
        self,
        client: Client,
        plan: OrgPlan,
        script: OrgScript,
        guard: TimerGuard,
    ) -> None:
        self.plan = plan
        self.script = script
        self.guard = guard
        self.org = plan.organisation
        self.handle: WorkflowHandle[OrganisationCampaignWorkflow, CampaignResult] = (
            client.get_workflow_handle_for(
                OrganisationCampaignWorkflow.run,
                organisation_workflow_id(plan.round_id, plan.organisation.id),
            )
        )
        self.deadlines = {p.phase: p.deadline for p in plan.phases}
        # What this player has done, so an action only sends what is still missing.
        self.accepted: set[tuple[Phase, str]] = set()
        self.submitted: set[tuple[Phase, str]] = set()
        self.submissions: Counter[tuple[Phase, str]] = Counter()
        self.updates = 0
        self.drift = timedelta(0)
        self.failed: str | None = None

    def _key(self, *parts: object) -> str:
        return "/".join(["sim", self.org.id, *(str(p) for p in parts)])

    async def _update(self, name: str, update: object) -> ActionResult:
        await self.guard.admit()
        self.updates += 1
        result: ActionResult = await self.handle.execute_update(
            name, update, result_type=ActionResult
        )
        return result

    async def act(self, action: PlannedAction) -> None:
        """Carry out one planned action; a refusal stops this organisation's script."""
        if self.failed is not None:
            return
        now = self.guard.now()
        self.drift = max(self.drift, now - action.at)
        try:
            if action.kind is ActionKind.REQUEST_EXTENSION:
                await self._extend(action)
            elif action.kind is ActionKind.SUBMIT_RETURNED:
                await self._submit_all(action.phase, now, return_first=True)
            elif action.kind is ActionKind.FINISH:
                await self._submit_all(action.phase, now)
            else:
                await self._rectify(action.phase, now)
        except WorkflowUpdateFailedError as exc:
            reason = str(exc.cause) if exc.cause is not None else str(exc)
            self.failed = f"{self.org.id} {action.phase.label} {action.kind.value}：{reason}"

    async def _submit_all(self, phase: Phase, now: datetime, *, return_first: bool = False) -> None:
        phase_plan = self.plan.phase(phase)
        required = [s for s in phase_plan.steps if s.required]
        # The step returned once: the first one a supervisor decides (never a ballot step,
        # nor 领导点评, which the secretary signs for).
        returnable = next(
            (s.id for s in required if sample_actors(s, self.org)[1] == _instructor(self.org)),
            None,
        )
        for step in required:
            key = (phase, step.id)
            if key in self.accepted:
                continue
            # Whom the plan names (领导点评 by the instructor, signed for by the secretary); a
            # ballot step is settled by its submission (the ballot's published result).
            submitter, decider = sample_actors(step, self.org)
            if key not in self.submitted:
                values = sample_evidence(
                    step,
                    self.org,
                    opens_at=phase_plan.opens_at,
                    deadline=self.deadlines[phase],
                    now=now,
                )
                self.submissions[key] += 1
                await self._update(
                    "submit_evidence",
                    SubmitEvidence(
                        actor=submitter,
                        step_id=step.id,
                        values=values,
                        idempotency_key=self._key(phase, step.id, "submit", self.submissions[key]),
                    ),
                )
                self.submitted.add(key)
            if decider is None:
                self.accepted.add(key)
                continue
            if return_first and step.id == returnable:
                await self._update(
                    "decide_submission",
                    DecideSubmission(
                        actor=decider,
                        step_id=step.id,
                        accept=False,
                        reason="佐证材料不全，请补充会议签到表和照片后重新提交",
                        idempotency_key=self._key(phase, step.id, "return"),
                    ),
                )
                self.submitted.discard(key)  # returned: resubmitted at the next action
                continue
            await self._update(
                "decide_submission",
                DecideSubmission(
                    actor=decider,
                    step_id=step.id,
                    accept=True,
                    idempotency_key=self._key(phase, step.id, "accept"),
                ),
            )
            self.accepted.add(key)

    async def _extend(self, action: PlannedAction) -> None:
        assert action.new_deadline is not None
        filed = await self._update(
            "request_extension",
            RequestExtension(
                actor=_secretary(self.org),
                new_deadline=action.new_deadline,
                reason="村两委换届选举与本阶段时间冲突，申请顺延",
                idempotency_key=self._key(action.phase, "extension"),
            ),
        )
        await self._update(
            "decide_extension",
            DecideExtension(
                actor=_instructor(self.org),
                extension_id=filed.extension_id or "",
                approve=True,
                reason="情况属实，同意顺延",
                idempotency_key=self._key(action.phase, "extension", "approve"),
            ),
        )
        self.deadlines[action.phase] = action.new_deadline

    async def _rectify(self, phase: Phase, now: datetime) -> None:
        top = len(self.plan.ladder.rungs) - 1
        # The county office signs for its own rung (签收) before the organisation catches up.
        await self._update(
            "acknowledge_escalation",
            AcknowledgeEscalation(
                actor=COUNTY, phase=phase, rung=top, idempotency_key=self._key(phase, "ack")
            ),
        )
        await self._submit_all(phase, now)
        await self._update(
            "report_rectification",
            ReportRectification(
                actor=_secretary(self.org),
                phase=phase,
                report=f"{self.org.name}已补齐{phase.label}阶段全部规定动作，并召开支委会查摆整改。",
                idempotency_key=self._key(phase, "rectification"),
            ),
        )
        await self._update(
            "recheck_rectification",
            RecheckRectification(
                actor=_instructor(self.org),
                phase=phase,
                passed=True,
                idempotency_key=self._key(phase, "recheck"),
            ),
        )
