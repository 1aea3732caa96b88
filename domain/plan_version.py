"""Plan versions: changing the plan of a running round, safely.

A round's plan is versioned. Version 1 is the plan it was kicked off with (stored once,
content-addressed, ``plan_ref``); the county office applies a new version as an explicit,
audited round action (:class:`PlanVersionChange`) with a reason and an idempotency key. What
a version may change is what a running organisation can follow without losing its history:

- a phase's deadline (an absolute date, or a duration counted from the previous deadline);
- the escalation ladder: the reminder lead, the blue-light window, rungs added, removed or
  moved (another delay, another recipient or measure), the rectification period;
- the plan's calendar supplements (they move deadlines like any other change).

The phases (the same five, in the same order), every phase's steps, the round's scope and
start, the commendation and evaluation rules are fixed for a running round: a draft that
changes them is refused naming the field (:func:`check_plan_version`), before anything is
sent. Steps belong to organisations' evidence already submitted; a new step list is a new
round.

Each organisation applies a version once (:func:`apply_plan_version`): every phase not yet
completed and not under a rectification order takes its new deadline (an individual or
round-wide extension already beyond it is kept, and an open phase never becomes overdue
retroactively), and the timers follow (reminder, blue light, rungs are computed from the
deadline and the ladder on every turn). A phase whose ladder had already started climbing
when the version came finishes on the ladder it started, so its fired rungs keep their
numbers (the read model and 签收 name rungs by number); the new ladder applies to every
phase from the next one, and at once in a phase not yet escalated. Completed phases are
untouched. Every organisation records the change in its timeline (``plan_version_applied``).

:func:`describe_plan_changes` says what a version changed, in Chinese, for the audit and
the timeline: which phase's deadline moved from when to when, which rung was added, moved
or removed, the rectification period.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from domain.calendar import SHANGHAI, PinnedCalendar, deadline_day, is_end_of_day
from domain.campaign_clock import CampaignClock
from domain.errors import FieldError, PlanError
from domain.events import EventKind
from domain.machine import PhaseStatus
from domain.plan import CampaignPlan, LadderPlan, RoundPlan, Rung
from domain.schedule import PhaseWindow
from domain.state import Actor

_FROZEN = ConfigDict(frozen=True, extra="forbid")
# Plan versions an organisation remembers (to apply each once); a round sees a handful.
_VERSIONS_KEPT = 50


class PlanVersionChange(BaseModel):
    """A new version of a running round's plan, as the round fans it out to organisations.

    ``version_id`` is the county office's idempotency key: the round and every organisation
    apply it once. ``version`` is numbered by the round (0 in the request; 2 for the first
    change after kick-off). ``windows`` are the phases' windows resolved from the round's
    kick-off date with the new plan, ``ladder`` the new plan's ladder for the round,
    ``calendar`` the calendar they were resolved with (None: the round's stays). ``changes``
    are the Chinese lines of :func:`describe_plan_changes`, shown in every timeline.
    ``base_version``: the version the draft was made from; the round refuses the change if it
    has moved on since (None: no check).
    """

    model_config = _FROZEN

    version_id: str = Field(min_length=1, max_length=120)
    version: int = Field(default=0, ge=0)
    base_version: int | None = Field(default=None, ge=1)
    plan_ref: str = Field(min_length=1, max_length=200)
    windows: tuple[PhaseWindow, ...]
    ladder: LadderPlan
    calendar: PinnedCalendar | None = None
    changes: tuple[str, ...] = ()
    actor: Actor
    reason: str


# ----- what a version may change ---------------------------------------------------------------
def _round_index(plan: CampaignPlan, round_plan_id: str) -> int:
    for index, round_plan in enumerate(plan.rounds):
        if round_plan.id == round_plan_id:
            return index
    raise PlanError([FieldError("rounds", f"新计划中没有本轮（{round_plan_id}）")])


def check_plan_version(current: CampaignPlan, draft: CampaignPlan, round_plan_id: str) -> None:
    """Refuse a draft that changes more than a running round can follow (see the module
    docstring), naming every field at fault in Chinese (:class:`PlanError`)."""
    errors: list[FieldError] = []
    old_round = current.round(round_plan_id)
    index = _round_index(draft, round_plan_id)
    new_round = draft.rounds[index]
    at = f"rounds[{index}]"
    if draft.id != current.id:
        errors.append(FieldError("id", "计划编号不能修改（新版计划必须是本轮计划的修改稿）"))
    if [p.phase for p in new_round.phases] != [p.phase for p in old_round.phases]:
        errors.append(FieldError(f"{at}.phases", "新版计划的阶段必须与本轮相同、顺序一致"))
    else:
        for i, (old, new) in enumerate(zip(old_round.phases, new_round.phases, strict=True)):
            if old.steps != new.steps or old.extra_steps != new.extra_steps:
                errors.append(
                    FieldError(
                        f"{at}.phases[{i}].steps",
                        f"{old.phase.label}阶段的步骤不能在运行中修改（可修改截止时间、督办层级和整改期限）",
                    )
                )
    if new_round.starts_on != old_round.starts_on:
        errors.append(FieldError(f"{at}.starts_on", "本轮的开始日期不能修改"))
    if new_round.scope != old_round.scope:
        errors.append(FieldError(f"{at}.scope", "本轮的参加范围不能在运行中修改"))
    if draft.commendation != current.commendation:
        errors.append(FieldError("commendation", "评选表彰规则不能通过调整计划修改"))
    if draft.evaluation != current.evaluation:
        errors.append(FieldError("evaluation", "群众评议规则不能通过调整计划修改"))
    if _unit(current.ladder_for(old_round)) != _unit(draft.ladder_for(new_round)):
        errors.append(
            FieldError(
                f"{at}.ladder" if new_round.ladder is not None else "ladder",
                "督办层级的计时单位（工作日或分钟）不能修改",
            )
        )
    if errors:
        raise PlanError(errors)


def _unit(ladder: LadderPlan) -> str:
    return "minutes" if ladder.rungs[0].delay.minutes is not None else "working_days"


def check_deadlines_not_past(
    old: tuple[PhaseWindow, ...],
    new: tuple[PhaseWindow, ...],
    now: datetime,
    *,
    round_index: int = 0,
) -> None:
    """Refuse a version that moves a phase's deadline to a moment already past: an open
    phase would become overdue retroactively, and no timer can fire in the past."""
    errors = [
        FieldError(
            f"rounds[{round_index}].phases[{i}].deadline",
            f"{n.phase.label}阶段新的截止时间（{show_deadline(n.deadline)}）已经过去",
        )
        for i, (o, n) in enumerate(zip(old, new, strict=True))
        if n.deadline != o.deadline and n.deadline <= now
    ]
    if errors:
        raise PlanError(errors)


# ----- what a version changed ------------------------------------------------------------------
def show_deadline(deadline: datetime) -> str:
    """A deadline in Chinese pages' terms: its last day ("2026-12-08") for a deadline at the
    end of a day (every plan in working days), else the local minute."""
    if is_end_of_day(deadline):
        return deadline_day(deadline).isoformat()
    return deadline.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def _rung_text(rung: Rung) -> str:
    actions = "、".join(_ACTION_LABELS.get(a.value, a.value) for a in rung.actions)
    return f"对象{rung.recipient.label}，截止后{rung.delay.describe()}，{actions}"


_ACTION_LABELS = {"notify": "通知", "circular": "通报", "rectification_order": "整改通知"}


def describe_ladder_changes(old: LadderPlan, new: LadderPlan) -> list[str]:
    """The ladder's changes in Chinese: reminder, blue light, rungs (matched by name and
    recipient) added, removed or moved, and the rectification period."""
    lines: list[str] = []
    for label, before, after in (
        ("截止前提醒", old.reminder_lead, new.reminder_lead),
        ("临期（蓝灯）提示", old.blue_within, new.blue_within),
        ("整改期限", old.rectification_period, new.rectification_period),
    ):
        if before != after:
            lines.append(f"{label}由{before.describe()}调整为{after.describe()}")
    remaining = list(old.rungs)
    for index, rung in enumerate(new.rungs):
        match = next((r for r in remaining if r.name == rung.name), None)
        if match is None:
            lines.append(f"新增第{index + 1}级督办“{rung.name}”（{_rung_text(rung)}）")
            continue
        remaining.remove(match)
        if match != rung:
            lines.append(
                f"第{index + 1}级督办“{rung.name}”由（{_rung_text(match)}）"
                f"调整为（{_rung_text(rung)}）"
            )
    lines.extend(f"取消督办“{rung.name}”" for rung in remaining)
    # The 预警 rung before the deadline (read by name: plans may not have it).
    warn_old: Any = getattr(old, "early_warning", None)
    warn_new: Any = getattr(new, "early_warning", None)
    if warn_old != warn_new:
        if warn_new is None:
            lines.append("取消预警")
        elif warn_old is None:
            lines.append(f"新增预警（阈值{warn_new.threshold:.0%}）")
        elif warn_old.threshold != warn_new.threshold:
            lines.append(f"预警阈值由{warn_old.threshold:.0%}调整为{warn_new.threshold:.0%}")
        else:
            lines.append("预警的对象或内容有调整")
    if not lines and [r.name for r in old.rungs] != [r.name for r in new.rungs]:
        lines.append("督办层级顺序调整为：" + " → ".join(r.name for r in new.rungs))
    return lines


def describe_plan_changes(
    old_windows: tuple[PhaseWindow, ...],
    new_windows: tuple[PhaseWindow, ...],
    old_ladder: LadderPlan,
    new_ladder: LadderPlan,
) -> list[str]:
    """What a version changed, one Chinese line per change: deadlines that moved (from
    when to when), then the ladder's changes. Empty: the version changes nothing a running
    organisation follows."""
    old = {w.phase: w for w in old_windows}
    lines = [
        f"{w.phase.label}阶段截止时间由{show_deadline(old[w.phase].deadline)}"
        f"调整为{show_deadline(w.deadline)}"
        for w in new_windows
        if w.phase in old and old[w.phase].deadline != w.deadline
    ]
    return [*lines, *describe_ladder_changes(old_ladder, new_ladder)]


def round_ladder(plan: CampaignPlan, round_plan: RoundPlan) -> LadderPlan:
    """The ladder a round of ``plan`` runs on (its own, else the campaign's)."""
    return plan.ladder_for(round_plan)


# ----- one organisation applies a version ------------------------------------------------------
def apply_plan_version(campaign: CampaignClock, cmd: PlanVersionChange, now: datetime) -> bool:
    """Move one organisation's campaign to a new plan version; once per ``version_id``
    (False: applied before, nothing changed). See the module docstring for the rules."""
    state = campaign.state
    if cmd.version_id in state.applied_plan_versions:
        return False
    kept = state.applied_plan_versions[-(_VERSIONS_KEPT - 1) :]
    state.applied_plan_versions = [*kept, cmd.version_id]
    # The current phase keeps the ladder it started climbing (fired rungs keep their numbers).
    if not state.finished() and not state.closed:
        current = state.current()
        if current.escalations and state.climbing_phase is not current.phase:
            state.climbing_phase, state.climbing_ladder = current.phase, campaign.ladder
    state.ladder = cmd.ladder
    state.plan_version = max(state.plan_version, cmd.version)
    if cmd.calendar is not None:
        state.calendar = cmd.calendar
        campaign.calendar = cmd.calendar
    audit: dict[str, Any] = {
        "version_id": cmd.version_id,
        "version": cmd.version,
        "plan_ref": cmd.plan_ref,
        "reason": cmd.reason,
        "changes": list(cmd.changes),
    }
    windows = {w.phase: w for w in cmd.windows}
    moved: list[str] = []
    for phase in state.phases:
        window = windows.get(phase.phase)
        if window is None or phase.status in (PhaseStatus.DONE, PhaseStatus.RECTIFYING):
            continue
        old = phase.deadline
        # An extension (the organisation's own, or round-wide) beyond the new deadline stays.
        extended = old > phase.planned_deadline
        new = max(window.deadline, old) if extended else window.deadline
        if phase.status is not PhaseStatus.PENDING and new <= now < old:
            new = old  # never overdue retroactively
        phase.planned_deadline = window.deadline
        if phase.status is PhaseStatus.PENDING:
            phase.opens_at = window.opens_at
        if new == old:
            continue
        campaign._move_deadline(phase, new, now)
        line = f"{phase.phase.label}阶段截止时间由{show_deadline(old)}调整为{show_deadline(new)}"
        moved.append(line)
        detail = {
            **audit,
            "old_deadline": old.isoformat(),
            "new_deadline": new.isoformat(),
            "summary": f"计划第{cmd.version}版：{line}",
        }
        if phase.status is PhaseStatus.PENDING:
            # Not opened yet: no phase row in the read model to move (it opens with this
            # deadline); the timeline still says so.
            campaign.emit(
                EventKind.PLAN_VERSION_APPLIED,
                now,
                actor=cmd.actor,
                detail={**detail, "phase": phase.phase.value},
            )
        else:
            campaign.emit(
                EventKind.PLAN_VERSION_APPLIED,
                now,
                phase=phase.phase,
                actor=cmd.actor,
                detail={**detail, "status": phase.status.value},
            )
    if not moved:  # the version itself (e.g. a new ladder) is still on record
        summary = "；".join(cmd.changes) or "本组织的截止时间不变"
        campaign.emit(
            EventKind.PLAN_VERSION_APPLIED,
            now,
            actor=cmd.actor,
            detail={**audit, "summary": f"计划第{cmd.version}版：{summary}"},
        )
    campaign._refresh_light(now)
    return True


__all__ = [
    "PlanVersionChange",
    "apply_plan_version",
    "check_deadlines_not_past",
    "check_plan_version",
    "describe_ladder_changes",
    "describe_plan_changes",
    "round_ladder",
    "show_deadline",
]
