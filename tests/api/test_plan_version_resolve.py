"""How a draft's schedule is resolved against a running round (no Temporal): with the
round's pinned calendar while it reaches (the round keeps its calendar), with the draft's
own past it, and a year without data refused naming the field and the year."""

from __future__ import annotations

import pytest

from chuangzheng.services.errors import InvalidInput
from chuangzheng.services.plan_versions import resolve_version
from tests.domain.test_plan_version import START, schedule, seed, with_phase_duration
from tests.workflows.support import seed_plan


def test_a_draft_inside_the_pinned_table_keeps_the_rounds_calendar() -> None:
    plan = seed()
    current = schedule(plan)
    assert current.calendar is not None
    resolved = resolve_version(with_phase_duration(plan, 0, 45), "round-1", current)
    assert resolved.calendar is None  # the round's own stays
    assert resolved.windows[0].deadline > current.windows[0].deadline
    assert resolved.starts_at == current.starts_at == START


def test_a_draft_past_the_pinned_table_brings_its_own_calendar() -> None:
    plan = seed_plan()  # with the provisional 2027 calendar (and later test years)
    current = schedule(plan)
    assert current.calendar is not None
    # The last phase a year longer: past the table's half-year margin.
    resolved = resolve_version(with_phase_duration(plan, 4, 300), "round-1", current)
    assert resolved.calendar is not None
    assert resolved.calendar.last_day > current.calendar.last_day


def test_a_draft_into_a_year_without_data_is_refused_naming_it() -> None:
    plan = seed()  # the shipped plan alone: no data for 2027 yet
    current = schedule(plan)
    with pytest.raises(InvalidInput) as refused:
        resolve_version(with_phase_duration(plan, 4, 300), "round-1", current)
    error = refused.value.errors[0]
    assert error["field"] == "rounds[0].phases"
    assert "2027" in error["reason"]
