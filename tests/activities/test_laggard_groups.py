"""The default laggard list read group by group (issue 14), on SQLite and PostgreSQL: the
rows per number of working days overdue are conditions on the deadline — ranges while a
later deadline is never more overdue (the calendar's way), lists of deadlines otherwise —
and either way the pages hold exactly the rows, in exactly the order, of sorting every row
in Python. Also the windowed pager of the list's page."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy.orm import Session, sessionmaker

from api.ui.context import Overdue
from api.ui.queries import (
    ANY_LIGHT,
    SORT_KEYS,
    DayGroups,
    DaysOverdue,
    Filters,
    laggard_page,
    laggards,
)
from api.ui.render import pager
from chuangzheng.services.sign_in import User
from tests.activities.test_dashboard_paging import CALENDAR, COUNTY, NOW, ROUND, TOWNSHIP_USER
from tests.activities.test_dashboard_paging import county as county


class Scrambled:
    """Working days overdue that do not follow the deadline's order (no real calendar does
    this): the groups must fall back to lists of deadlines."""

    def __init__(self) -> None:
        self._calendar = Overdue(CALENDAR, NOW)

    def __call__(self, deadline: datetime | None, overdue: bool) -> int:
        n = self._calendar(deadline, overdue)
        return 0 if n == 0 or deadline is None else 1 + (n * 7 + deadline.hour) % 5


def _python(
    session: Session, user: User, filters: Filters, days: DaysOverdue, desc: bool
) -> list[str]:
    rows = laggards(session, user, ROUND, filters)
    key = SORT_KEYS["overdue"]
    rows.sort(key=lambda r: (key(r, days(r.deadline, r.overdue)), r.org_id), reverse=desc)
    return [r.org_id for r in rows]


@pytest.mark.parametrize("calendar", ["calendar", "scrambled"])
def test_pages_by_days_equal_the_python_sort(
    county: sessionmaker[Session],
    calendar: str,
) -> None:
    days: DaysOverdue = Overdue(CALENDAR, NOW) if calendar == "calendar" else Scrambled()
    with county() as session:
        late = {
            r.deadline: days(r.deadline, True)
            for r in laggards(session, COUNTY, ROUND, Filters(light=ANY_LIGHT))
            if r.overdue and r.deadline is not None
        }
        assert DayGroups.of(late).monotonic is (calendar == "calendar")
        assert len({n for n in late.values() if n}) >= 3  # several groups to page across
        for user in (COUNTY, TOWNSHIP_USER):
            for filters in (Filters(), Filters(light=ANY_LIGHT), Filters(light="red")):
                for desc in (True, False):
                    expected = _python(session, user, filters, days, desc)
                    for size in (7, 37, 1000):
                        paged: list[str] = []
                        for page_no in range(1, -(-len(expected) // size) + 1):
                            total, _, rows = laggard_page(
                                session, user, ROUND, filters, "overdue", desc, days,
                                page_no=page_no, page_size=size,
                            )  # fmt: skip
                            assert total == len(expected)
                            assert len(rows) == min(size, len(expected) - len(paged))
                            paged += [r.org_id for r in rows]
                        assert paged == expected, (calendar, user.role, filters, desc, size)


def test_the_pager_links_a_window_and_both_ends() -> None:
    assert pager(1, 1) == [1]
    assert pager(1, 3) == [1, 2, 3]
    assert pager(1, 374) == [1, 2, 3, 4, 5, None, 374]
    assert pager(200, 374) == [1, None, *range(196, 205), None, 374]
    assert pager(374, 374) == [1, None, *range(370, 375)]
    assert pager(6, 12) == list(range(1, 13))  # a gap of one page is linked, not "…"
    assert pager(7, 20) == [1, 2, *range(3, 12), None, 20]
