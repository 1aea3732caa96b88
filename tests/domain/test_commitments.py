"""公开承诺 rules: the commitment lifecycle, the member roster import, and the coverage guard
of the ``member_commitments`` evidence (with absences and their reasons)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from domain.calendar import SHANGHAI, WorkingCalendar
from domain.commitments import (
    CommitmentStatus,
    ItemDraft,
    RosteredCommitment,
    Verdict,
    check_commitment,
    check_fulfilment,
    check_review,
    coverage,
    is_public,
    move,
    notice_ends,
    step_evidence,
)
from domain.errors import DomainError, ValidationFailed
from domain.evidence import validate_evidence
from domain.members import parse_members
from domain.plan import EvidenceField, FieldKind, StepPlan

S = CommitmentStatus
OPENS = datetime(2010, 7, 1, tzinfo=SHANGHAI)
DEADLINE = datetime(2010, 9, 1, tzinfo=SHANGHAI)
STEP = StepPlan(
    id="member_commitments",
    name="党员承诺",
    evidence=(
        EvidenceField(
            name="commitments",
            label="党员承诺事项",
            kind=FieldKind.MEMBER_COMMITMENTS,
            coverage_of_members=1.0,
        ),
    ),
)


def check(value: object, member_count: int = 3) -> list[str]:
    errors = validate_evidence(
        STEP, {"commitments": value}, member_count=member_count, opens_at=OPENS, deadline=DEADLINE
    )
    return [f"{e.field}: {e.reason}" for e in errors]


def promise(member: str) -> dict[str, str]:
    return {"member": member, "content": "带头服务群众", "due": "2010-08-20"}


# ----- lifecycle ---------------------------------------------------------------------------


def test_commitment_goes_through_signoff_publication_and_review() -> None:
    status = S.DRAFTED
    for trigger, expected in (
        ("submit", S.SUBMITTED),
        ("return_commitment", S.RETURNED),
        ("revise", S.DRAFTED),
        ("submit", S.SUBMITTED),
        ("approve", S.APPROVED),
        ("publish", S.PUBLISHED),
        ("review", S.REVIEWED),
        ("review", S.REVIEWED),  # reviewed again at the evaluation
    ):
        status = move(status, trigger)
        assert status is expected


@pytest.mark.parametrize(
    ("status", "trigger", "words"),
    [
        (S.DRAFTED, "publish", "审诺通过后才能公示"),
        (S.SUBMITTED, "publish", "审诺通过后才能公示"),
        (S.DRAFTED, "approve", "没有待审诺的内容"),
        (S.APPROVED, "revise", "不能再修改"),
        (S.PUBLISHED, "submit", "不能提交审诺"),
        (S.APPROVED, "review", "公示后才能评诺"),
    ],
)
def test_moves_out_of_order_are_refused_in_chinese(
    status: CommitmentStatus, trigger: str, words: str
) -> None:
    with pytest.raises(DomainError) as refused:
        move(status, trigger)
    assert refused.value.code == "invalid_transition"
    assert words in refused.value.reason and status.label in refused.value.reason


def test_only_submitted_and_later_commitments_count_for_coverage() -> None:
    assert not S.DRAFTED.counts_for_coverage and not S.RETURNED.counts_for_coverage
    assert all(s.counts_for_coverage for s in (S.SUBMITTED, S.APPROVED, S.PUBLISHED, S.REVIEWED))


def test_a_commitment_needs_content_items_and_future_due_dates() -> None:
    today = date(2010, 7, 5)
    check_commitment("带头学习", [ItemDraft("每月走访困难户", date(2010, 8, 1))], today=today)
    with pytest.raises(ValidationFailed) as refused:
        check_commitment(" ", [ItemDraft("", date(2010, 7, 1))], today=today)
    fields = {e.field: e.reason for e in refused.value.errors}
    assert fields == {
        "content": "承诺内容不能为空",
        "items[0].content": "承诺事项不能为空",
        "items[0].due": "兑现日期不能早于今天（2010-07-05）",
    }
    with pytest.raises(ValidationFailed) as no_items:
        check_commitment("带头学习", [], today=today)
    assert no_items.value.errors[0].reason == "至少应有一项具体承诺事项及兑现日期"


def test_notice_period_counts_prc_working_days() -> None:
    # Published Friday 30 Sep 2011: the National Day week is off, so 3 working days end on
    # Tue 11 Oct (Sat 8 and Sun 9 Oct were make-up working days: 8 Oct is the 1st).
    published = datetime(2011, 9, 30, 10, tzinfo=SHANGHAI)
    ends = notice_ends(published, 3, WorkingCalendar())
    assert ends.astimezone(SHANGHAI) == datetime(2011, 10, 11, tzinfo=SHANGHAI)
    with pytest.raises(DomainError) as refused:
        notice_ends(published, 0, WorkingCalendar())
    assert refused.value.field == "notice_working_days" and "工作日" in refused.value.reason


def test_public_only_from_publication_on() -> None:
    now = datetime(2010, 7, 10, tzinfo=UTC)
    assert not is_public(None, now)
    assert not is_public(datetime(2010, 7, 11, tzinfo=UTC), now)
    assert is_public(datetime(2010, 7, 9, tzinfo=UTC), now)


def test_fulfilment_needs_publication_a_past_day_words_and_a_file() -> None:
    today = date(2010, 9, 1)
    good = {"name": "走访记录.pdf", "sha256": "a" * 64}
    check_fulfilment(
        S.PUBLISHED, fulfilled_on=today, description="走访5户", evidence=good, today=today
    )
    with pytest.raises(DomainError) as early:
        check_fulfilment(
            S.APPROVED, fulfilled_on=today, description="走访", evidence=good, today=today
        )
    assert "公示后才能登记践诺" in early.value.reason
    with pytest.raises(ValidationFailed) as bad:
        check_fulfilment(
            S.PUBLISHED, fulfilled_on=date(2010, 9, 2), description="", evidence={}, today=today
        )
    assert {e.field for e in bad.value.errors} == {"fulfilled_on", "description", "evidence"}


def test_a_verdict_short_of_fulfilled_needs_a_comment() -> None:
    check_review(Verdict.FULFILLED, "")
    with pytest.raises(DomainError) as refused:
        check_review(Verdict.PARTLY, " ")
    assert refused.value.code == "reason_required" and "部分兑现" in refused.value.reason


# ----- member roster ------------------------------------------------------------------------


def test_member_roster_import_is_all_or_nothing_with_row_errors() -> None:
    rows = [
        {"组织编号": "org-a", "党员姓名": "张三", "党员编号": "001"},
        {"组织编号": "org-x", "党员姓名": "李四", "党员编号": "002"},
        {"组织编号": "org-a", "党员姓名": "", "党员编号": "001"},
        {"组织编号": "org-a", "党员姓名": "王五", "党员编号": "0 3"},
    ]
    with pytest.raises(ValidationFailed) as refused:
        parse_members(rows, known_orgs={"org-a"})
    assert refused.value.code == "invalid_roster"
    assert [str(e) for e in refused.value.errors] == [
        "第3行·组织编号: “org-x”不在组织名册中或无权导入",
        "第4行·党员姓名: 不能为空",
        "第4行·党员编号: “001”与第2行重复",
        "第5行·党员编号: 不能包含空格",
    ]
    with pytest.raises(ValidationFailed) as headers:
        parse_members([{"组织编号": "org-a", "姓名": "张三"}], known_orgs={"org-a"})
    assert [e.field for e in headers.value.errors] == ["表头·党员姓名", "表头·党员编号"]


def test_member_roster_groups_by_organisation() -> None:
    roster = parse_members(
        [
            {"组织编号": "org-a", "党员姓名": "张三", "党员编号": 1.0},
            {"组织编号": "org-b", "党员姓名": "张三", "党员编号": "1"},
            {"组织编号": "", "党员姓名": "", "党员编号": ""},
        ],
        known_orgs={"org-a", "org-b"},
    )
    grouped = roster.by_organisation()
    assert [m.member_id for m in grouped["org-a"]] == ["1"] and list(grouped) == ["org-a", "org-b"]


# ----- coverage guard -----------------------------------------------------------------------


def test_coverage_counts_commitments_and_excused_members() -> None:
    result = coverage(["m1", "m2", "m3"], ["m1"], ["m3"])
    assert result.uncovered == ("m2",) and result.covered == 2


def test_the_original_list_form_still_checks_coverage_by_member_count() -> None:
    assert check([promise("甲"), promise("乙"), promise("丙")]) == []
    assert check([promise("甲"), promise("乙")]) == [
        "evidence.commitments: 党员承诺事项仅 2 名党员作出承诺，应至少 3 名"
    ]


def test_an_uncovered_rostered_member_is_refused_by_name() -> None:
    value = {"members": ["甲", "乙", "丙"], "commitments": [promise("甲"), promise("乙")]}
    assert check(value) == [
        "evidence.commitments: 党员承诺事项中党员“丙”既未作出承诺也未登记缺席理由"
    ]


def test_an_absence_needs_a_reason_and_then_covers_the_member() -> None:
    base = {"members": ["甲", "乙", "丙"], "commitments": [promise("甲"), promise("乙")]}
    blank = base | {"absences": [{"member": "丙", "reason": "  "}]}
    assert check(blank) == ["evidence.commitments: 党员承诺事项中缺席党员“丙”未说明理由"]
    excused = base | {"absences": [{"member": "丙", "reason": "长期病休"}]}
    assert check(excused) == []


def test_the_roster_must_reach_the_organisations_member_count() -> None:
    # Everyone on a 2-name roster is covered, but the organisation has 3 members.
    value = {"members": ["甲", "乙"], "commitments": [promise("甲"), promise("乙")]}
    assert check(value) == [
        "evidence.commitments: 党员承诺事项仅 2 名党员作出承诺或登记缺席理由，应至少 3 名"
    ]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({"members": ["甲"], "commitments": [promise("丁")]}, "中“丁”不在党员名册中"),
        (
            {
                "members": ["甲"],
                "commitments": [promise("甲")],
                "absences": [{"member": "甲", "reason": "外出"}],
            },
            "中“甲”既有承诺又登记了缺席",
        ),
        ({"members": ["甲", "甲"], "commitments": []}, "的党员名册（members）中“甲”重复"),
        ({"members": "甲乙", "commitments": []}, "的党员名册（members）应为党员姓名或编号列表"),
        ("甲乙", "应为党员承诺列表，或含 members、commitments、absences 的对象"),
    ],
)
def test_malformed_roster_evidence_is_refused(value: object, reason: str) -> None:
    assert check(value, member_count=1) == [f"evidence.commitments: 党员承诺事项{reason}"]


def test_step_evidence_from_the_ledger_passes_the_guard() -> None:
    evidence = step_evidence(
        [("001", "甲"), ("002", "乙"), ("003", "丙")],
        [
            RosteredCommitment("001", "甲", "带头致富", date(2010, 8, 1)),
            RosteredCommitment("002", "乙", "带头服务", date(2010, 8, 2)),
        ],
        [("003", "外出务工")],
    )
    assert evidence["members"] == ["001", "002", "003"]
    assert evidence["absences"] == [{"member": "003", "name": "丙", "reason": "外出务工"}]
    assert check(evidence) == []
    assert check(evidence | {"absences": []}) != []
