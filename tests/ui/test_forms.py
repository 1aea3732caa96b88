"""Evidence forms: what a secretary types is parsed into the values the workflow validates,
and a stored value is shown back in the same form (for correcting a returned submission)."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

import pytest
from starlette.datastructures import FormData, Headers, UploadFile

from api.errors import ApiError
from api.ui.forms import evidence_values, local_deadline, prefill
from domain.calendar import SHANGHAI
from domain.evidence import validate_evidence
from domain.plan import EvidenceField, FieldKind, StepPlan

STEP = StepPlan(
    id="all_kinds",
    name="全部字段",
    evidence=(
        EvidenceField(name="day", label="日期", kind=FieldKind.DATE),
        EvidenceField(name="count", label="人数", kind=FieldKind.INTEGER, min=1),
        EvidenceField(name="note", label="说明", kind=FieldKind.TEXT),
        EvidenceField(name="people", label="成员", kind=FieldKind.PEOPLE, min_items=2),
        EvidenceField(name="pledges", label="承诺", kind=FieldKind.MEMBER_COMMITMENTS),
        EvidenceField(name="votes", label="测评", kind=FieldKind.BALLOTS),
        EvidenceField(name="marks", label="评分", kind=FieldKind.SCORES, min=0, max=100),
        EvidenceField(name="how", label="方式", kind=FieldKind.CHOICE, choices=("网站", "会议")),
        EvidenceField(name="file", label="附件", kind=FieldKind.DOCUMENT),
        EvidenceField(name="extra", label="补充", kind=FieldKind.TEXT, required=False),
    ),
)
SHA = "a" * 64


async def fake_upload(file: UploadFile) -> dict[str, Any]:
    return {"name": file.filename, "sha256": SHA, "size": 3}


def form(**fields: Any) -> FormData:
    return FormData([(k.replace("__", "."), v) for k, v in fields.items()])


@pytest.mark.asyncio
async def test_every_kind_is_parsed_into_values_the_rules_accept() -> None:
    upload = UploadFile(io.BytesIO(b"abc"), filename="纪要.pdf", headers=Headers({}))
    posted = FormData(
        [
            ("ev.day", "2026-03-02"),
            ("ev.count", "12"),
            ("ev.note", "按要求召开"),
            ("ev.people", "张三\n李四、王五"),
            ("ev.pledges", "张三|带头学习|2026-06-30\n李四｜结对帮扶｜2026-07-01"),
            ("ev.votes.satisfied", "30"),
            ("ev.votes.fairly_satisfied", "5"),
            ("ev.votes.basically_satisfied", ""),
            ("ev.votes.unsatisfied", "1"),
            ("ev.marks", "组织建设: 92\n作用发挥：88.5"),
            ("ev.how", "网站"),
            ("ev.file", upload),
            ("ev.extra", "  "),
        ]
    )
    values = await evidence_values(STEP, posted, fake_upload)
    assert values == {
        "day": "2026-03-02",
        "count": 12,
        "note": "按要求召开",
        "people": ["张三", "李四", "王五"],
        "pledges": [
            {"member": "张三", "content": "带头学习", "due": "2026-06-30"},
            {"member": "李四", "content": "结对帮扶", "due": "2026-07-01"},
        ],
        "votes": {"satisfied": 30, "fairly_satisfied": 5, "basically_satisfied": 0,
                  "unsatisfied": 1},
        "marks": {"组织建设": 92, "作用发挥": 88.5},
        "how": "网站",
        "file": {"name": "纪要.pdf", "sha256": SHA},
    }  # fmt: skip
    opens = datetime(2026, 3, 1, tzinfo=SHANGHAI)
    deadline = datetime(2026, 3, 31, 23, 59, tzinfo=SHANGHAI)
    assert validate_evidence(STEP, values, member_count=20, opens_at=opens, deadline=deadline) == []


@pytest.mark.asyncio
async def test_a_correction_keeps_the_earlier_file_and_shows_values_back() -> None:
    spec = {f.name: f for f in STEP.evidence}
    previous = prefill(spec["file"], {"name": "纪要.pdf", "sha256": SHA})
    values = await evidence_values(STEP, form(ev__file__previous=previous), fake_upload)
    assert values["file"] == {"name": "纪要.pdf", "sha256": SHA}
    assert "count" not in values  # left blank: the workflow names the missing field
    shown = prefill(spec["pledges"], [{"member": "张三", "content": "学习", "due": "2026-06-30"}])
    assert shown == "张三|学习|2026-06-30"
    assert prefill(spec["people"], ["张三", "李四"]) == "张三\n李四"


def test_deadlines_are_typed_in_shanghai_time() -> None:
    assert local_deadline("2026-01-06T18:00").utcoffset() == SHANGHAI.utcoffset(
        datetime(2026, 1, 6)
    )
    with pytest.raises(ApiError) as refused:
        local_deadline("明天")
    assert refused.value.errors[0]["field"] == "new_deadline"
