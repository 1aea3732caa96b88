"""The campaign record's points (domain.campaign_record): Σ weight × count, satisfaction as a
share, spot-check verdicts each weighed; bad weights are refused at plan load, naming the
field."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from domain.campaign_record import CampaignRecord, RecordWeights, explain, record_score
from domain.errors import PlanError
from domain.inspection import InspectionVerdict
from domain.plan_loader import load_plan
from domain.rubric import SEED_002_RULES

ROOT = Path(__file__).resolve().parents[2]


def test_points_are_weight_times_count_and_satisfaction_a_share() -> None:
    weights = SEED_002_RULES.record
    assert weights is not None
    record = CampaignRecord(
        phases_on_time=3,
        phases_late=2,
        escalations=1,
        rectifications_ordered=1,
        rectifications_passed=1,
        satisfaction=Decimal("0.865"),
        spot_checks={InspectionVerdict.GOOD: 1, InspectionVerdict.RECTIFY: 1},
    )
    score = record_score(weights, record)
    by_key = {line.key: line for line in score.lines}
    assert by_key["satisfaction"].shown == "86.5%"
    assert by_key["satisfaction"].points == Decimal("8.65")
    expected = 3 * 1 + 2 * -2 + 1 * -1 + 1 * -3 + 1 * 1 + Decimal("8.65") + 2 - 3
    assert score.points == expected
    # Nothing recorded counts nothing, and unset weights weigh nothing.
    assert record_score(weights, CampaignRecord()).points == 0
    assert record_score(RecordWeights(), record).points == 0
    assert "每个逾期的阶段减2分" in explain(weights)


def test_a_bad_weight_names_its_field() -> None:
    text = (ROOT / "plans" / "seed-002.yaml").read_text("utf-8")
    broken = text.replace("    phase_late: -2\n", "    phase_late: -500\n", 1)
    assert broken != text
    with pytest.raises(PlanError) as refused:
        load_plan(broken)
    assert [e.field for e in refused.value.errors] == ["commendation.record.phase_late"]
    unknown = text.replace("    phase_late: -2\n", "    phase_lat: -2\n", 1)
    with pytest.raises(PlanError) as typo:
        load_plan(unknown)
    assert "commendation.record.phase_lat" in [e.field for e in typo.value.errors]
