"""Organisation inputs decoded by the worker share one copy of the round's plan parts.

A cached organisation workflow keeps its decoded input for as long as it waits; the ladder,
the calendars and the phase windows are the same for every organisation of a round (of a
type), so the worker holds each once (``domain.interning``), without changing any value.
"""

from __future__ import annotations

import gc
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict
from temporalio.api.common.v1 import Payload

from chuangzheng.temporal_server import data_converter
from domain import interning
from domain.organisation import OrgType
from tests.workflows.support import org_plan, organisation
from workflows.contracts import OrganisationCampaignInput

STARTS = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)


def _as_stored(value: OrganisationCampaignInput) -> Payload:
    """The input as a start event stores it (the project's data converter)."""
    [payload] = data_converter().payload_converter.to_payloads([value])
    return payload


def _decoded(payload: Payload) -> OrganisationCampaignInput:
    """The input as the worker decodes it for a new workflow run."""
    [value] = data_converter().payload_converter.from_payloads(
        [payload], [OrganisationCampaignInput]
    )
    assert isinstance(value, OrganisationCampaignInput)
    return value


def test_decoded_inputs_share_the_rounds_plan_parts_and_keep_their_values() -> None:
    first = OrganisationCampaignInput(plan=org_plan(organisation("org-share-1"), STARTS))
    second = OrganisationCampaignInput(plan=org_plan(organisation("org-share-2"), STARTS))
    stored = [_as_stored(first), _as_stored(second)]
    a, b = (_decoded(p) for p in stored)

    assert a.plan.organisation.id == "org-share-1"
    assert b.plan.organisation.id == "org-share-2"
    assert a.plan.ladder is b.plan.ladder
    assert a.plan.calendar is b.plan.calendar
    assert a.plan.pinned_calendar is not None
    assert a.plan.pinned_calendar is b.plan.pinned_calendar
    assert all(pa is pb for pa, pb in zip(a.plan.phases, b.plan.phases, strict=True))
    # Sharing changes no value: decoded again, the same input, byte for byte.
    assert _as_stored(a) == stored[0]
    assert _as_stored(b) == stored[1]
    # A workflow's own state never points into another's plan (only the plan is shared).
    assert a.state is None


def test_different_parts_are_not_shared() -> None:
    rural = _decoded(_as_stored(OrganisationCampaignInput(plan=org_plan(organisation(), STARTS))))
    later = _decoded(
        _as_stored(
            OrganisationCampaignInput(
                plan=org_plan(organisation(), STARTS.replace(day=2), round_id="r-later")
            )
        )
    )
    other_type = organisation("org-share-community").model_copy(update={"type": OrgType.COMMUNITY})
    community = _decoded(_as_stored(OrganisationCampaignInput(plan=org_plan(other_type, STARTS))))

    assert rural.plan.ladder is later.plan.ladder  # the same ladder in both rounds
    # Another start date: other deadlines, so other phase windows.
    assert rural.plan.phases[0] is not later.plan.phases[0]
    assert rural.plan.phases[0].deadline != later.plan.phases[0].deadline
    # Another organisation type may have other steps (分类指导): never someone else's.
    for mine, theirs in zip(rural.plan.phases, community.plan.phases, strict=True):
        assert (mine is theirs) == (mine.steps == theirs.steps)
    pairs = zip(rural.plan.phases, community.plan.phases, strict=True)
    assert any(m.steps != t.steps for m, t in pairs)


def test_a_part_nobody_holds_is_let_go() -> None:
    gc.collect()
    before = interning.shared_count()
    held = _decoded(
        _as_stored(
            OrganisationCampaignInput(
                plan=org_plan(organisation(), datetime(2027, 3, 1, 1, 0, tzinfo=UTC), "r-gone")
            )
        )
    )
    assert interning.shared_count() > before
    del held
    gc.collect()
    assert interning.shared_count() <= before


class _FrozenWithDict(BaseModel):
    model_config = ConfigDict(frozen=True)

    extra_steps: dict[str, int]


def test_an_unhashable_part_is_kept_as_it_is() -> None:
    value = _FrozenWithDict(extra_steps={"a": 1})
    assert interning.intern(value) is value
