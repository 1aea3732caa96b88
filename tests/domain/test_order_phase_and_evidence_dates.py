"""Two admission rules of the organisation workflow's validators, without Temporal (found by
outside testers):

- a 整改通知 from a 群众评议 holds the phase the evaluation was opened in
  (``OrderRectification.phase``), and is refused once that phase has ended
  (``CampaignRules.check_order_phase``);
- a ``within_phase`` date falls between the day the organisation actually entered the phase
  and its deadline, and no date is later than today (``check_submit`` with ``now``).

Both are validator-only: the handlers (which also run on replay) accept what they accepted
before, which the tests below check too."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from domain.actions import SubmitEvidence
from domain.calendar import local_date
from domain.campaign import Campaign
from domain.campaign_rules import OrderRectification
from domain.errors import DomainError, ValidationFailed
from domain.evidence import phase_window, validate_evidence
from domain.organisation import Role
from domain.phases import Phase
from domain.plan import EvidenceField, FieldKind, StepPlan
from domain.state import Actor
from tests.domain.test_campaign import ORG, SECRETARY, START, finish_phase, fresh

TOWNSHIP = Actor(user="tw", role=Role.TOWNSHIP)
PUBLICISE = "publicise"  # 公示承诺: published_on, a within_phase date


def order(phase: Phase | None, reference: str = "ev-1") -> OrderRectification:
    return OrderRectification(
        actor=TOWNSHIP,
        source="evaluation",
        reference=reference,
        reason=f"{ORG.name}群众评议满意率为 50.0%，低于 70% 的标准。",
        phase=phase,
    )


def test_an_order_without_a_phase_parses_from_an_old_payload() -> None:
    old = {
        "actor": {"user": "tw", "role": "township"},
        "source": "evaluation",
        "reference": "ev-old",
        "reason": "满意率低于标准。",
    }
    assert OrderRectification.model_validate(old).phase is None


def test_an_order_for_the_open_phase_is_admitted_one_for_an_ended_phase_is_refused() -> None:
    campaign = fresh()
    campaign.check_order_phase(order(Phase.MOBILISATION))
    campaign.check_order_phase(order(None))  # an evaluation from before the field
    ended_at = START + timedelta(days=10)
    finish_phase(campaign, ended_at)
    assert campaign.state.phase is Phase.PUBLIC_COMMITMENT
    with pytest.raises(DomainError) as refused:
        campaign.check_order_phase(order(Phase.MOBILISATION))
    reason = str(refused.value)
    assert refused.value.code == "invalid_transition" and refused.value.field == "phase"
    assert f"“动员部署”阶段已于{local_date(ended_at).isoformat()}结束" in reason
    assert "本组织现处于“公开承诺”阶段" in reason
    assert "不能转到其他阶段" in reason
    # Not yet reached: refused too, without an end date.
    with pytest.raises(DomainError) as early:
        campaign.check_order_phase(order(Phase.PUBLIC_EVALUATION, "ev-2"))
    assert "“群众评议”阶段不是本组织当前阶段" in str(early.value)
    # The open phase, and an order without a phase: admitted.
    campaign.check_order_phase(order(Phase.PUBLIC_COMMITMENT, "ev-3"))
    campaign.check_order_phase(order(None, "ev-4"))


def test_the_handler_still_applies_an_order_the_rule_would_refuse() -> None:
    """Replay: an order accepted before the rule (its history has the update) applies to the
    open phase as it did; only the validator refuses it now."""
    campaign = fresh()
    now = START + timedelta(days=10)
    finish_phase(campaign, now)
    stale = order(Phase.MOBILISATION)
    with pytest.raises(DomainError):
        campaign.check_order_phase(stale)
    campaign.check_order_rectification(stale)  # the handler's own check passes
    campaign.order_rectification(stale, now + timedelta(hours=1))
    assert campaign.state.phase_state(Phase.PUBLIC_COMMITMENT).rectification is not None
    # Once applied (its key remembered), the rule lets the retry through: it is a no-op.
    campaign.check_order_phase(stale)


# ----- evidence dates ----------------------------------------------------------------------
def _publicise(day: date) -> SubmitEvidence:
    return SubmitEvidence(
        actor=SECRETARY,
        step_id=PUBLICISE,
        values={"published_on": day.isoformat(), "channels": ["公示栏"]},
    )


def _refusal(campaign: Campaign, cmd: SubmitEvidence, now: datetime) -> str:
    with pytest.raises(ValidationFailed) as refused:
        campaign.check_submit(cmd, now)
    [error] = refused.value.errors
    assert error.field == "evidence.published_on"
    return error.reason


def test_the_window_starts_on_the_actual_opening_and_falls_back_to_the_planned_one() -> None:
    planned = START + timedelta(days=30)
    deadline = START + timedelta(days=60)
    early = START + timedelta(days=10)
    assert phase_window(planned, deadline, early)[0] == local_date(early)
    assert phase_window(planned, deadline, None)[0] == local_date(planned)
    late = START + timedelta(days=40)
    assert phase_window(planned, deadline, late) == (
        local_date(late),
        phase_window(planned, deadline)[1],
    )
    # Entered only after the deadline's day: the actual window would be empty.
    after = deadline + timedelta(days=3)
    assert phase_window(planned, deadline, after)[0] == local_date(planned)


def test_an_organisation_that_entered_early_dates_evidence_on_its_actual_opening_day() -> None:
    campaign = fresh()
    entered = START + timedelta(days=10)  # mobilisation done in ten days
    finish_phase(campaign, entered)
    phase = campaign.state.current()
    assert phase.phase is Phase.PUBLIC_COMMITMENT and phase.opened_at == entered
    assert local_date(entered) < local_date(phase.opens_at)  # weeks before the plan
    now = entered + timedelta(hours=2)
    campaign.check_submit(_publicise(local_date(entered)), now)
    # The day before it entered the phase is outside the window.
    reason = _refusal(campaign, _publicise(local_date(entered) - timedelta(days=1)), now)
    assert reason.startswith("公示日期应在本阶段期间")
    assert local_date(entered).isoformat() in reason


def test_a_date_after_today_is_refused_naming_today() -> None:
    campaign = fresh()
    entered = START + timedelta(days=10)
    finish_phase(campaign, entered)
    now = entered + timedelta(hours=2)
    today = local_date(now)
    tomorrow = today + timedelta(days=1)
    reason = _refusal(campaign, _publicise(tomorrow), now)
    assert reason == f"公示日期不能晚于今天（{today.isoformat()}）"
    # The planned opening (within the phase, but weeks ahead): refused, not "in the phase".
    planned = local_date(campaign.state.current().opens_at)
    assert _refusal(campaign, _publicise(planned), now).startswith("公示日期不能晚于今天")
    campaign.check_submit(_publicise(today), now)


def test_a_date_field_outside_the_phase_rule_is_held_to_today_too() -> None:
    step = StepPlan(
        id="visit",
        name="走访",
        evidence=(EvidenceField(name="visited_on", label="走访日期", kind=FieldKind.DATE),),
    )
    deadline = START + timedelta(days=60)

    def check(day: str, today: date | None) -> list[tuple[str, str]]:
        errors = validate_evidence(
            step, {"visited_on": day}, member_count=12, opens_at=START, deadline=deadline,
            today=today,
        )  # fmt: skip
        return [(e.field, e.reason) for e in errors]

    today = date(2025, 3, 13)
    assert check("2024-01-05", today) == []  # before the phase: this field has no window
    assert check("2025-03-14", today) == [
        ("evidence.visited_on", "走访日期不能晚于今天（2025-03-13）")
    ]
    assert check("2025-03-14", None) == []  # without today (the handler): not checked


def test_the_handler_accepts_what_the_validators_accepted_before_the_rules() -> None:
    """Replay: a future date, or (an organisation that entered late) a date between the
    planned and the actual opening, once passed the validator; the handler still takes
    both, and takes the early entrant's actual opening day the validator now allows."""
    campaign = fresh()
    entered = START + timedelta(days=10)
    finish_phase(campaign, entered)
    planned = local_date(campaign.state.current().opens_at)
    campaign.check_submit(_publicise(planned))  # in the future of ``entered``
    campaign.check_submit(_publicise(local_date(entered)))
    # Late: mobilisation finished past the planned opening of 公开承诺.
    late = fresh()
    entered_late = datetime.combine(planned + timedelta(days=12), START.timetz())
    finish_phase(late, entered_late)
    phase = late.state.current()
    assert phase.phase is Phase.PUBLIC_COMMITMENT and phase.opened_at is not None
    assert local_date(phase.opened_at) > planned
    between = _publicise(planned + timedelta(days=2))
    late.check_submit(between)  # the handler: the planned window, as before
    reason = _refusal(late, between, entered_late + timedelta(hours=1))
    assert reason.startswith("公示日期应在本阶段期间（" + local_date(entered_late).isoformat())
    late.submit(between, entered_late + timedelta(hours=1))  # applies, as it did
    step = phase.step(PUBLICISE)
    assert step is not None and step.submissions
