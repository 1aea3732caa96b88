"""Deadlines as notices and digests word them: a period's end (stored as the next local
midnight) is "D 24:00" of its last day D. An outside tester found a reminder saying "将于
2026年12月05日 00:00截止（2026-12-04）" and a digest line a day late."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from domain.calendar import SHANGHAI, deadline_wording, end_of_day
from domain.digest import StatusLine, _laggard_text
from domain.lights import Light
from domain.notices import NoticeKind, build_notice
from domain.organisation import Role, supervisors_of
from domain.phases import Phase
from tests.domain.test_campaign import ORG, fresh

LAST_DAY = date(2026, 12, 4)


def test_a_periods_end_reads_as_24_00_of_its_last_day() -> None:
    assert deadline_wording(end_of_day(LAST_DAY)) == "2026年12月04日 24:00"
    assert deadline_wording(end_of_day(LAST_DAY), "%Y-%m-%d") == "2026-12-04 24:00"
    minute = datetime(2026, 12, 3, 15, 58, tzinfo=SHANGHAI)
    assert deadline_wording(minute) == "2026年12月03日 15:58"


def test_a_reminder_names_the_last_day_not_the_next_midnight() -> None:
    phase = fresh().state.current().model_copy(update={"deadline": end_of_day(LAST_DAY)})
    secretary = supervisors_of(ORG)[Role.SECRETARY]
    notice = build_notice(
        kind=NoticeKind.REMINDER,
        round_id="r1",
        org=ORG,
        phase=phase,
        who=secretary,
        now=end_of_day(LAST_DAY) - timedelta(days=2),
    )
    assert "2026年12月04日 24:00截止" in notice.body
    assert "12月05日" not in notice.body


def test_a_digest_line_names_the_deadlines_last_day() -> None:
    line = StatusLine(
        org_id="org-1",
        org_name=ORG.name,
        township=ORG.township,
        system=str(ORG.system),
        light=Light.RED,
        overdue=True,
        phase=Phase.MOBILISATION,
        deadline=end_of_day(LAST_DAY),
        working_days_overdue=2,
    )
    text = _laggard_text(line)
    assert "截止2026年12月04日" in text and "12月05日" not in text
