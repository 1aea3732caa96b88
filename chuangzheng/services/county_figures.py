"""The county at a glance for the people who operate the service: organisations of running
rounds by light, notices recorded and sent on external channels, delivery errors. ``make
run``'s status line and the API's ``/metrics`` read the same figures from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from activities.tables import CampaignStatusRow, NoticeRow, RoundRow, notice_deliveries
from domain.lights import Light


@dataclass(frozen=True)
class CountyFigures:
    """What the read model says now. ``lights`` by light value (every light present)."""

    lights: dict[str, int] = field(default_factory=dict)
    notices: int = 0
    sent: int = 0
    delivery_errors: int = 0

    @property
    def organisations(self) -> int:
        return sum(self.lights.values())


def county_figures(session: Session) -> CountyFigures:
    """Three small aggregate queries over the running rounds and the deliveries."""
    running = select(RoundRow.round_id).where(RoundRow.status == "running")
    counted: dict[str, int] = {
        light: count
        for light, count in session.execute(
            select(CampaignStatusRow.light, func.count())
            .where(CampaignStatusRow.round_id.in_(running))
            .group_by(CampaignStatusRow.light)
        )
    }
    notices = session.scalar(
        select(func.count()).select_from(NoticeRow).where(NoticeRow.round_id.in_(running))
    )
    deliveries: dict[str, int] = {
        status: count
        for status, count in session.execute(
            select(notice_deliveries.c.status, func.count()).group_by(notice_deliveries.c.status)
        )
    }
    return CountyFigures(
        lights={light.value: int(counted.get(light.value, 0)) for light in Light},
        notices=int(notices or 0),
        sent=int(deliveries.get("sent", 0)),
        delivery_errors=int(deliveries.get("failed", 0)) + int(deliveries.get("uncertain", 0)),
    )
