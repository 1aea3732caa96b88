"""The organisation workflow's input stays small and reads back intact.

Every organisation's start stores its input in history, and every continue-as-new stores it
again: the plan is sent without its None fields (all of them defaults).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from chuangzheng.temporal_server import data_converter
from tests.workflows.support import org_plan, organisation
from workflows.contracts import OrganisationCampaignInput


def test_compact_input_reads_back_as_the_same_plan() -> None:
    plan = org_plan(organisation("org-input-01"), datetime(2026, 12, 1, 1, tzinfo=UTC))
    sent = OrganisationCampaignInput(plan=plan, history_limit=500)
    converter = data_converter().payload_converter
    (payload,) = converter.to_payloads([sent])
    (received,) = converter.from_payloads([payload], [OrganisationCampaignInput])
    # The same plan, but for the steps' descriptions (page text no workflow reads).
    described = [s.description for p in sent.plan.phases for s in p.steps]
    assert any(described)
    assert all(not s.description for p in received.plan.phases for s in p.steps)
    undescribed = sent.plan.model_copy(
        update={
            "phases": tuple(
                p.model_copy(
                    update={
                        "steps": tuple(s.model_copy(update={"description": ""}) for s in p.steps)
                    }
                )
                for p in sent.plan.phases
            )
        }
    )
    assert received == sent.model_copy(update={"plan": undescribed})
    assert ":null" not in json.dumps(json.loads(payload.data)["plan"], separators=(",", ":"))
    # The None fields and the descriptions were about half of the plan.
    full = len(sent.plan.model_dump_json().encode())
    assert payload.ByteSize() < 0.7 * full
