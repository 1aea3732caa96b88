"""Rectification orders from outside the escalation ladder (a 群众评议 below the plan's
threshold), kept apart from the human actions in :mod:`domain.campaign`."""

from __future__ import annotations

from datetime import datetime

from domain.calendar import CalendarGap, deadline_wording
from domain.campaign_clock import CampaignClock
from domain.campaign_rules import OrderRectification
from domain.errors import DomainError
from domain.events import EventKind
from domain.machine import PHASE_MACHINE, PhaseStatus, fire
from domain.notices import Notice, NoticeKind
from domain.organisation import Role, supervisors_of
from domain.phases import Phase
from domain.state import RectificationOrder, RectificationStatus


class CampaignOrders(CampaignClock):
    """:meth:`order_rectification` and its notice; the ladder's own order is in the clock."""

    def order_rectification(self, cmd: OrderRectification, now: datetime) -> None:
        """Issue a 整改通知 on the current phase for a reason outside the ladder (a 群众评议
        below the threshold). It blocks the phase like the ladder's order does (the phase
        completes only after the re-check passes), with the same report and re-check. An
        order still pending is joined: it is issued again (a report must cover both) and its
        deadline moves to the later of the two. An overdue phase becomes 整改中 as on the
        top rung; an open phase stays open (the machine orders rectification only from
        overdue) but cannot complete before the re-check."""
        if self.seen(cmd.key):
            return
        self.check_order_rectification(cmd)
        phase = self._open_phase()
        deadline = self._order_deadline(cmd, now)
        order = phase.rectification
        joined = order is not None and order.status is not RectificationStatus.PASSED
        if order is None or not joined:
            phase.rectification = RectificationOrder(issued_at=now, deadline=deadline)
        else:
            assert order is not None
            order.status = RectificationStatus.ISSUED
            if deadline > order.deadline:
                order.deadline, order.overdue_notified = deadline, False
        if phase.status is PhaseStatus.OVERDUE:
            fire(PHASE_MACHINE, phase, "order_rectification", "该阶段当前不能下达整改通知")
        self._remember(cmd.key)
        issued = phase.rectification
        assert issued is not None
        self._notify_order(cmd, phase.phase, issued.deadline, now)
        self.emit(
            # The read model turns "rectification_ordered" into 整改中; an open phase is not.
            EventKind.RECTIFICATION_ORDERED
            if phase.status is PhaseStatus.RECTIFYING
            else EventKind.RECTIFICATION_REQUIRED,
            now,
            phase=phase.phase,
            actor=cmd.actor,
            detail={
                "deadline": issued.deadline.isoformat(),
                "source": cmd.source,
                "reference": cmd.reference,
                "reason": cmd.reason,
                "joined": joined,
            },
        )
        self._refresh_light(now)

    def _order_deadline(self, cmd: OrderRectification, now: datetime) -> datetime:
        """The order's deadline; a period reaching past the calendar's data (a year the State
        Council has not published, or past the round's pinned calendar) is refused, naming
        the period, before anything changes: the workflow must never fail on it."""
        try:
            return self.calendar.deadline_after(now, cmd.period or self.ladder.rectification_period)
        except CalendarGap as gap:
            raise DomainError(
                f"整改期限超出日历数据范围，请缩短整改期限：{gap}",
                code="invalid_deadline",
                field="period",
            ) from None

    def _notify_order(
        self, cmd: OrderRectification, phase: Phase, deadline: datetime, now: datetime
    ) -> None:
        """The 整改通知 to the secretary, one per source and reference."""
        who = supervisors_of(self.org)[Role.SECRETARY]
        due = deadline_wording(deadline)
        self.pending_notices.append(
            Notice(
                notice_id=(
                    f"{self.state.round_id}/{self.org.id}/{phase.value}/"
                    f"{NoticeKind.RECTIFICATION_ORDER.value}/{cmd.key}/{who.role.value}:{who.key}"
                ),
                round_id=self.state.round_id,
                org_id=self.org.id,
                org_name=self.org.name,
                phase=phase,
                kind=NoticeKind.RECTIFICATION_ORDER,
                rung=None,
                recipient_role=who.role,
                recipient_key=who.key,
                recipient_label=who.label,
                title=f"【整改通知】{self.org.name}{phase.label}阶段限期整改",
                body=(
                    f"{self.org.name}：{cmd.reason}请于{due}前完成整改，"
                    f"提交整改报告及佐证材料，等待复查。"
                ),
                link_path=f"/orgs/{self.org.id}?round={self.state.round_id}",
                created_at=now,
            )
        )
