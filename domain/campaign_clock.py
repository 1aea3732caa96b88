"""The passage of time in one organisation's campaign: phases opening and completing, the
reminder, the ladder climbing rung by rung, rectification orders and the traffic light."""

from __future__ import annotations

from datetime import datetime

from domain.actions import CalendarUpdate
from domain.campaign_rules import CampaignRules
from domain.errors import DomainError
from domain.events import EventKind
from domain.ladder import DueKind, next_wakeup, pending_items
from domain.lights import Light, light_for
from domain.machine import CAMPAIGN_MACHINE, PHASE_MACHINE, PhaseStatus, fire
from domain.notices import NoticeKind, build_notice
from domain.organisation import Role, supervisors_of
from domain.phases import Phase
from domain.plan import RungAction
from domain.schedule import check_deadline_in_calendar
from domain.state import Escalation, Outcome, PhaseState, RectificationOrder

# Calendar updates a campaign remembers (to apply each once); a round sees a handful.
_UPDATES_KEPT = 50


class CampaignClock(CampaignRules):
    """Settling, timers and escalation; the actions live in :class:`domain.campaign.Campaign`."""

    # ----- the round's calendar ----------------------------------------------------------
    def apply_calendar(self, cmd: CalendarUpdate, now: datetime) -> bool:
        """Swap in the round's updated calendar and move every phase still to come or in
        progress to its re-resolved deadline; applied once per ``update_id``.

        Completed phases, and phases under a rectification order (their ladder has
        climbed; the order keeps its own deadline), are left alone. A deadline an extension
        already moved beyond the new one is kept, and an open phase never becomes overdue
        retroactively: its deadline does not move into the past. Each moved deadline is
        audited with the old and the new one (``calendar_updated`` events); the calendar
        itself becomes part of the state, so continue-as-new carries it.
        """
        if cmd.update_id in self.state.applied_calendar_updates:
            return False
        kept = self.state.applied_calendar_updates[-(_UPDATES_KEPT - 1) :]
        self.state.applied_calendar_updates = [*kept, cmd.update_id]
        self.state.calendar = cmd.calendar
        self.calendar = cmd.calendar
        windows = {w.phase: w for w in cmd.windows}
        audit = {
            "update_id": cmd.update_id,
            "reason": cmd.reason,
            "calendar": {
                "first_day": cmd.calendar.first_day.isoformat(),
                "last_day": cmd.calendar.last_day.isoformat(),
                "source": cmd.calendar.source,
            },
        }
        moved = False
        for phase in self.state.phases:
            window = windows.get(phase.phase)
            if window is None or phase.status in (PhaseStatus.DONE, PhaseStatus.RECTIFYING):
                continue
            old = phase.deadline
            extended = old > phase.planned_deadline
            new = max(window.deadline, old) if extended else window.deadline
            if phase.status is PhaseStatus.OPEN and new <= now < old:
                new = old
            phase.planned_deadline = window.deadline
            if phase.status is PhaseStatus.PENDING:
                phase.opens_at = window.opens_at
            if new == old:
                continue
            self._move_deadline(phase, new, now)
            moved = True
            self.emit(
                EventKind.CALENDAR_UPDATED,
                now,
                phase=phase.phase,
                actor=cmd.actor,
                detail={**audit, "old_deadline": old.isoformat(), "new_deadline": new.isoformat()},
            )
        if not moved:  # the swap itself is still on record
            self.emit(EventKind.CALENDAR_UPDATED, now, actor=cmd.actor, detail=audit)
        self._refresh_light(now)
        return True

    def deadline_fits_calendar(self, deadline: datetime) -> bool:
        """Whether ``deadline`` and the ladder after it stay inside the round's calendar
        (always true for a campaign without a pinned calendar)."""
        try:
            check_deadline_in_calendar(self.calendar, self.ladder, deadline, field="new_deadline")
        except DomainError:
            return False
        return True

    def _move_deadline(self, phase: PhaseState, deadline: datetime, now: datetime) -> None:
        phase.deadline = deadline
        if phase.status is PhaseStatus.OVERDUE and deadline > now:
            fire(PHASE_MACHINE, phase, "extend", "该阶段当前不能延期")
        # A later deadline deserves its own reminder, unless that moment has already passed.
        phase.reminder_sent = self.calendar.before(deadline, self.ladder.reminder_lead) <= now

    # ----- progress ----------------------------------------------------------------------
    def settle(self, now: datetime) -> None:
        """Open the current phase, complete it when its guard allows, and advance."""
        while self.state.phase is not Phase.COMPLETED and not self.state.closed:
            phase = self.state.current()
            if phase.status is PhaseStatus.PENDING:
                fire(PHASE_MACHINE, phase, "open", "该阶段不能开始")
                phase.opened_at = now
                phase.reminder_sent = phase.deadline <= now
                self.emit(
                    EventKind.PHASE_OPENED,
                    now,
                    phase=phase.phase,
                    detail={"deadline": phase.deadline.isoformat()},
                )
            if phase.status is not PhaseStatus.DONE:
                if not phase.is_settled():
                    break
                self._complete(phase, now)
            fire(CAMPAIGN_MACHINE, self.state, "advance", "当前阶段未完成，不能进入下一阶段")
            if self.state.finished():
                self.emit(EventKind.CAMPAIGN_COMPLETED, now)
        self._refresh_light(now)

    def _complete(self, phase: PhaseState, now: datetime) -> None:
        fire(PHASE_MACHINE, phase, "complete", "规定动作未全部完成，不能结束本阶段")
        phase.completed_at = now
        if phase.rectification is not None:
            phase.outcome = Outcome.AFTER_RECTIFICATION
        elif now <= phase.deadline:
            phase.outcome = Outcome.ON_TIME
        else:
            phase.outcome = Outcome.LATE
        self.emit(
            EventKind.PHASE_COMPLETED,
            now,
            phase=phase.phase,
            detail={"outcome": phase.outcome.value},
        )

    def tick(self, now: datetime) -> datetime | None:
        """Fire every timed item due by ``now``; return when the next one falls due."""
        if self.state.closed or self.state.phase is Phase.COMPLETED:
            self._refresh_light(now)
            return None
        phase = self.state.current()
        for item in pending_items(phase, self.ladder, self.calendar):
            if item.at > now:
                break
            if item.kind is DueKind.REMINDER:
                phase.reminder_sent = True
                if now <= phase.deadline:
                    self._notify(NoticeKind.REMINDER, phase, Role.SECRETARY, now)
            elif item.kind is DueKind.DEADLINE:
                fire(PHASE_MACHINE, phase, "deadline_passed", "该阶段未到截止时间")
                self.emit(EventKind.DEADLINE_PASSED, now, phase=phase.phase)
            elif item.kind is DueKind.RUNG and item.rung is not None:
                self._climb(phase, item.rung, now, due=item.at)
            elif item.kind is DueKind.RECTIFICATION_OVERDUE and phase.rectification is not None:
                phase.rectification.overdue_notified = True
                self._notify(NoticeKind.RECTIFICATION_OVERDUE, phase, Role.COUNTY_OFFICE, now)
                self.emit(EventKind.RECTIFICATION_OVERDUE, now, phase=phase.phase)
        self._refresh_light(now)
        return next_wakeup(pending_items(phase, self.ladder, self.calendar), now)

    def _climb(self, phase: PhaseState, index: int, now: datetime, due: datetime) -> None:
        rung = self.ladder.rungs[index]
        overdue = self.calendar.working_days_overdue(phase.deadline, now)
        who = supervisors_of(self.org)[rung.recipient]
        phase.escalations.append(
            Escalation(
                rung=index,
                name=rung.name,
                recipient=rung.recipient,
                recipient_key=who.key,
                fired_at=now,
                working_days_overdue=overdue,
            )
        )
        self.emit(
            EventKind.ESCALATED,
            now,
            phase=phase.phase,
            detail={
                "rung": index,
                "name": rung.name,
                "recipient": rung.recipient.value,
                "working_days_overdue": overdue,
                # When the rung fell due: after an outage (the server or every worker down)
                # it fires late, at ``now``; the record keeps both.
                "due_at": due.isoformat(),
            },
        )
        if RungAction.NOTIFY in rung.actions:
            self._notify(
                NoticeKind.ESCALATION, phase, rung.recipient, now, index, rung.name, overdue
            )
            # The first responsible person always hears of an escalation about them.
            if rung.recipient is not Role.SECRETARY:
                self._notify(
                    NoticeKind.ESCALATION, phase, Role.SECRETARY, now, index, rung.name, overdue
                )
        if RungAction.CIRCULAR in rung.actions:
            self._notify(NoticeKind.CIRCULAR, phase, Role.TOWNSHIP, now, index, rung.name, overdue)
        if RungAction.RECTIFICATION_ORDER in rung.actions and phase.rectification is None:
            phase.rectification = RectificationOrder(
                issued_at=now,
                deadline=self.calendar.deadline_after(now, self.ladder.rectification_period),
            )
            fire(PHASE_MACHINE, phase, "order_rectification", "该阶段未逾期，不能下达整改通知")
            self._notify(
                NoticeKind.RECTIFICATION_ORDER,
                phase,
                Role.SECRETARY,
                now,
                index,
                rung.name,
                overdue,
            )
            self.emit(
                EventKind.RECTIFICATION_ORDERED,
                now,
                phase=phase.phase,
                detail={"deadline": phase.rectification.deadline.isoformat()},
            )

    def _notify(
        self,
        kind: NoticeKind,
        phase: PhaseState,
        role: Role,
        now: datetime,
        rung: int | None = None,
        rung_name: str = "",
        overdue: int = 0,
    ) -> None:
        self.pending_notices.append(
            build_notice(
                kind=kind,
                round_id=self.state.round_id,
                org=self.org,
                phase=phase,
                who=supervisors_of(self.org)[role],
                now=now,
                rung=rung,
                rung_name=rung_name,
                working_days_overdue=overdue,
            )
        )

    def _refresh_light(self, now: datetime) -> None:
        """Red > yellow > blue > green (``domain.lights.light_for``); a rectification order
        keeps the light red even after an extension."""
        if self.state.phase is Phase.COMPLETED or self.state.closed:
            self.state.light = Light.GREEN
            return
        phase = self.state.current()
        self.state.light = light_for(
            deadline=phase.deadline,
            now=now,
            done=phase.status is PhaseStatus.DONE,
            blue_within=self.ladder.blue_within,
            calendar=self.calendar,
            behind=self.state.behind_schedule,
        )
        if phase.status is PhaseStatus.RECTIFYING:
            self.state.light = Light.RED
