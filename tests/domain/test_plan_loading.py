"""The shipped plans load, and broken plans are refused with the field and a Chinese reason."""

from __future__ import annotations

import copy
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from domain.calendar import SHANGHAI, UTC, CalendarGap, deadline_day
from domain.errors import FieldError, PlanError
from domain.organisation import OrgType
from domain.phases import WORKING_PHASES, Phase
from domain.plan import CalendarPlan, CampaignPlan, FieldKind, RungAction
from domain.plan_loader import load_calendar, load_plan, resolve_kickoff
from domain.schedule import resolve_schedule

ROOT = Path(__file__).resolve().parents[2]
PLANS = ROOT / "plans"
CALENDAR_2027 = PLANS / "calendars" / "2027-provisional.yaml"


def _load(name: str) -> CampaignPlan:
    return load_plan((PLANS / name).read_text(encoding="utf-8"))


def _deadline_days(plan: CampaignPlan, round_id: str, start: datetime | None = None) -> list[date]:
    round_plan = plan.round(round_id)
    starts_at = start or datetime.combine(round_plan.starts_on, time(0), SHANGHAI)
    schedule = resolve_schedule(plan, round_plan, starts_at, rebased=start is not None)
    return [deadline_day(w.deadline) for w in schedule.windows]


# ── the shipped plans ──────────────────────────────────────────────────────────────────


def test_seed_002_plan_loads_with_two_rounds_and_the_ladder() -> None:
    plan = _load("seed-002.yaml")
    assert plan.id == "seed-002"
    assert plan.name == "全县基层党组织和党员深入开展创先争优活动"
    assert [r.id for r in plan.rounds] == ["round-1", "round-2"]
    assert [r.name for r in plan.rounds] == ["第一轮：迎接建党90周年", "第二轮：迎接党的十八大"]
    assert plan.ladder.reminder_lead.working_days == 3
    assert plan.ladder.blue_within.working_days == 5
    assert plan.ladder.rectification_period.working_days == 10
    assert [(r.name, r.recipient.value, r.delay.working_days) for r in plan.ladder.rungs] == [
        ("指导员督促", "instructor", 0),
        ("指导小组督办", "guidance_group", 3),
        ("县委领导小组办公室通报", "county_office", 6),
    ]
    assert plan.ladder.rungs[-1].actions == (
        RungAction.NOTIFY,
        RungAction.CIRCULAR,
        RungAction.RECTIFICATION_ORDER,
    )


def test_seed_002_phases_are_durations_so_rounds_can_be_rebased() -> None:
    plan = _load("seed-002.yaml")
    for round_plan in plan.rounds:
        for phase_plan in round_plan.phases:
            assert phase_plan.deadline is None
            assert phase_plan.duration is not None
            assert phase_plan.duration.working_days is not None


def test_seed_002_deadlines_follow_the_historic_schedule() -> None:
    plan = _load("seed-002.yaml")
    # 动员部署 end of June 2010, 公开承诺 end of August, 点评 December, 评议 April,
    # 表彰 before 七一.
    assert _deadline_days(plan, "round-1") == [
        date(2010, 6, 30),
        date(2010, 8, 31),
        date(2010, 12, 31),
        date(2011, 4, 29),
        date(2011, 6, 30),
    ]
    # Round two: commendation before 七一 2012 (seed 002 §五(五)).
    assert _deadline_days(plan, "round-2") == [
        date(2011, 7, 29),
        date(2011, 9, 30),
        date(2011, 12, 30),
        date(2012, 4, 27),
        date(2012, 6, 29),
    ]


def test_seed_002_steps_have_chinese_names_and_evidence() -> None:
    plan = _load("seed-002.yaml")
    for round_plan in plan.rounds:
        for phase_plan in round_plan.phases:
            required = [s for s in phase_plan.steps if s.required]
            assert required, f"{phase_plan.phase.label} has no 规定动作"
            for org_type in OrgType:
                for step in phase_plan.steps_for(org_type):
                    assert any("\u4e00" <= ch <= "\u9fff" for ch in step.name)
                    assert step.evidence, step.id


def test_seed_002_mobilisation_meeting_checks_attendance_against_members() -> None:
    plan = _load("seed-002.yaml")
    steps = {s.id: s for s in plan.round("round-1").phase(Phase.MOBILISATION).steps}
    fields = {f.name: f for f in steps["hold_mobilisation_meeting"].evidence}
    assert fields["meeting_date"].kind is FieldKind.DATE and fields["meeting_date"].within_phase
    assert fields["attendance"].min_share_of_members == 0.6
    assert fields["attendance"].max_share_of_members == 1.0
    assert fields["minutes"].required is False
    group = {f.name: f for f in steps["set_up_leading_group"].evidence}
    assert group["members"].kind is FieldKind.PEOPLE and group["members"].min_items == 3
    assert steps["publicity"].required is False  # 自选动作


def test_steps_differ_by_organisation_type() -> None:
    """分类指导 (seed 002 §四): each type has its own carrier steps."""
    plan = _load("seed-002.yaml")
    commitment = plan.round("round-1").phase(Phase.PUBLIC_COMMITMENT)
    evaluation = plan.round("round-1").phase(Phase.PUBLIC_EVALUATION)

    def ids(phase_steps: tuple[Any, ...]) -> set[str]:
        return {s.id for s in phase_steps}

    rural = ids(commitment.steps_for(OrgType.RURAL))
    community = ids(commitment.steps_for(OrgType.COMMUNITY))
    assert "posts_and_duties" in rural and "posts_and_duties" not in community
    assert "contact_cards" in community and "contact_cards" not in rural
    assert "party_member_project" in ids(commitment.steps_for(OrgType.STATE_ENTERPRISE))
    assert "thousand_raters" in ids(evaluation.steps_for(OrgType.GOVERNMENT_ORGAN))
    assert "thousand_raters" not in ids(evaluation.steps_for(OrgType.UNIVERSITY))
    assert "report_and_appraise" in ids(evaluation.steps_for(OrgType.RURAL))
    # Every type shares the common steps (规定动作) and has at least one carrier of its own.
    common = ids(commitment.steps)
    for org_type in OrgType:
        assert common <= ids(commitment.steps_for(org_type))
        own = [
            s
            for round_plan in plan.rounds
            for phase_plan in round_plan.phases
            for s in phase_plan.extra_steps.get(org_type, ())
        ]
        assert own, org_type


def test_demo_plan_runs_in_minutes_on_any_day() -> None:
    plan = _load("demo.yaml")
    assert plan.id == "demo"
    round_plan = plan.round("demo")
    assert round_plan.name == "演示轮次（分钟级）"
    assert tuple(p.phase for p in round_plan.phases) == WORKING_PHASES
    assert all(1 <= len(p.steps) <= 2 for p in round_plan.phases)
    ladder = plan.ladder_for(round_plan)
    assert [r.delay.minutes for r in ladder.rungs] == [0, 1, 2]
    assert ladder.reminder_lead.minutes == 1
    assert ladder.rectification_period.minutes == 3
    assert ladder.blue_within.minutes == 2
    # Minutes never consult the holiday calendar, so even a year without data is fine.
    now = datetime(2031, 2, 3, 10, 0, tzinfo=UTC)
    schedule = resolve_schedule(plan, round_plan, now, rebased=True)
    offsets = [w.deadline - now for w in schedule.windows]
    assert offsets == [timedelta(minutes=m) for m in (4, 8, 11, 14, 17)]


def test_seed_002_rebased_into_2027_needs_the_provisional_calendar() -> None:
    plan = _load("seed-002.yaml")
    start = datetime(2026, 3, 2, 9, 30, tzinfo=SHANGHAI)
    with pytest.raises(CalendarGap) as gap:
        _deadline_days(plan, "round-1", start)
    assert gap.value.year == 2027
    supplement = load_calendar(CALENDAR_2027.read_text(encoding="utf-8"))
    supplied = load_plan(
        (PLANS / "seed-002.yaml").read_text(encoding="utf-8"), supplement=supplement
    )
    days = _deadline_days(supplied, "round-1", start)
    assert days == sorted(days) and days[-1].year == 2027
    assert all(day not in supplement.holidays for day in days)


# ── broken plans ───────────────────────────────────────────────────────────────────────


def _plan(start: str = "2025-03-03", working_days: int = 10) -> dict[str, Any]:
    """A small valid plan as data; each test breaks one thing."""
    return {
        "id": "test",
        "name": "测试计划",
        "ladder": {
            "reminder_lead": {"working_days": 3},
            "blue_within": {"working_days": 5},
            "rungs": [
                {"name": "指导员督促", "recipient": "instructor", "delay": {"working_days": 0}},
                {
                    "name": "县委通报",
                    "recipient": "county_office",
                    "delay": {"working_days": 6},
                    "actions": ["notify", "circular", "rectification_order"],
                },
            ],
            "rectification_period": {"working_days": 10},
        },
        "rounds": [
            {
                "id": "r1",
                "name": "第一轮",
                "starts_on": start,
                "phases": [
                    {
                        "phase": phase.value,
                        "duration": {"working_days": working_days},
                        "steps": [
                            {
                                "id": "meeting",
                                "name": "召开会议",
                                "evidence": [{"name": "held_on", "label": "日期", "kind": "date"}],
                            }
                        ],
                    }
                    for phase in WORKING_PHASES
                ],
            }
        ],
    }


def _dump(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def _errors(data: dict[str, Any] | str) -> list[FieldError]:
    with pytest.raises(PlanError) as refused:
        load_plan(data if isinstance(data, str) else _dump(data))
    assert refused.value.code == "invalid_plan"
    return refused.value.errors


def test_the_test_plan_itself_is_valid() -> None:
    assert load_plan(_dump(_plan())).id == "test"


def test_missing_key_is_named() -> None:
    data = _plan()
    del data["name"]
    assert _errors(data) == [FieldError("name", "缺少必填项")]


def test_misspelt_key_is_refused_not_ignored() -> None:
    data = _plan()
    data["ladder"]["reminder_leed"] = data["ladder"].pop("reminder_lead")
    errors = _errors(data)
    assert FieldError("ladder.reminder_leed", "不认识的字段（请检查拼写）") in errors
    assert FieldError("ladder.reminder_lead", "缺少必填项") in errors


def test_wrong_enum_value_lists_the_choices() -> None:
    data = _plan()
    data["rounds"][0]["phases"][0]["steps"][0]["evidence"][0]["kind"] = "number"
    errors = _errors(data)
    kind = [e for e in errors if e.field == "rounds[0].phases[0].steps[0].evidence[0].kind"]
    assert len(kind) == 1
    assert kind[0].reason.startswith("取值必须是 'date', 'integer'")
    assert kind[0].reason.endswith("之一")


def test_unknown_recipient_role() -> None:
    data = _plan()
    data["ladder"]["rungs"][0]["recipient"] = "mayor"
    [error] = _errors(data)
    assert error.field == "ladder.rungs[0].recipient"
    assert "'instructor'" in error.reason and error.reason.startswith("取值必须是")


def test_unknown_org_type_in_extra_steps() -> None:
    data = _plan()
    data["rounds"][0]["phases"][1]["extra_steps"] = {"villages": [{"id": "x", "name": "某步骤"}]}
    errors = _errors(data)
    field = "rounds[0].phases[1].extra_steps.villages"
    assert [e.field for e in errors if e.field.startswith("rounds[0].")] == [field]
    assert "'rural'" in next(e.reason for e in errors if e.field == field)


def test_phases_out_of_order() -> None:
    data = _plan()
    phases = data["rounds"][0]["phases"]
    phases[1], phases[2] = phases[2], phases[1]
    assert FieldError(
        "rounds[0]", "阶段必须依次为：动员部署 → 公开承诺 → 领导点评 → 群众评议 → 评选表彰"
    ) in _errors(data)


def test_missing_phase() -> None:
    data = _plan()
    del data["rounds"][0]["phases"][3]
    assert FieldError(
        "rounds[0]", "阶段必须依次为：动员部署 → 公开承诺 → 领导点评 → 群众评议 → 评选表彰"
    ) in _errors(data)


def test_both_deadline_and_duration() -> None:
    data = _plan()
    data["rounds"][0]["phases"][1]["deadline"] = "2025-06-30"
    assert FieldError("rounds[0].phases[1]", "deadline 与 duration 必须且只能给出其一") in _errors(
        data
    )


def test_neither_deadline_nor_duration() -> None:
    data = _plan()
    del data["rounds"][0]["phases"][2]["duration"]
    assert FieldError("rounds[0].phases[2]", "deadline 与 duration 必须且只能给出其一") in _errors(
        data
    )


def test_span_with_both_units() -> None:
    data = _plan()
    data["rounds"][0]["phases"][0]["duration"] = {"working_days": 3, "minutes": 5}
    assert FieldError(
        "rounds[0].phases[0].duration", "必须且只能给出 working_days 或 minutes 之一"
    ) in _errors(data)


def test_duplicate_step_id() -> None:
    data = _plan()
    steps = data["rounds"][0]["phases"][0]["steps"]
    steps.append(copy.deepcopy(steps[0]))
    assert FieldError("rounds[0].phases[0]", "步骤编号重复（农村）") in _errors(data)


def test_extra_step_clashing_with_a_common_step() -> None:
    data = _plan()
    data["rounds"][0]["phases"][0]["extra_steps"] = {
        "community": [{"id": "meeting", "name": "社区会议"}]
    }
    assert FieldError("rounds[0].phases[0]", "步骤编号重复（街道社区）") in _errors(data)


def test_bad_step_id() -> None:
    data = _plan()
    data["rounds"][0]["phases"][0]["steps"][0]["id"] = "Hold Meeting"
    assert FieldError(
        "rounds[0].phases[0].steps[0].id", "只能使用小写字母、数字、下划线和连字符"
    ) in _errors(data)


def test_choice_field_without_choices() -> None:
    data = _plan()
    data["rounds"][0]["phases"][0]["steps"][0]["evidence"][0]["kind"] = "choice"
    assert FieldError(
        "rounds[0].phases[0].steps[0].evidence[0]", "choice 类型的字段必须给出 choices"
    ) in _errors(data)


def test_ladder_whose_last_rung_orders_no_rectification() -> None:
    data = _plan()
    data["ladder"]["rungs"][-1]["actions"] = ["notify", "circular"]
    assert _errors(data) == [
        FieldError("ladder", "最高一级督办必须下达整改通知（rectification_order）")
    ]


def test_ladder_rungs_must_not_go_back_in_time() -> None:
    data = _plan()
    data["ladder"]["rungs"][0]["delay"] = {"working_days": 9}
    assert _errors(data) == [FieldError("ladder", "各级督办的 delay 必须逐级不减")]


def test_invalid_date() -> None:
    data = _plan(start="2025-02-30")
    assert FieldError("rounds[0].starts_on", "日期格式应为 YYYY-MM-DD") in _errors(data)


def test_duplicate_round_ids() -> None:
    data = _plan()
    data["rounds"].append(copy.deepcopy(data["rounds"][0]))
    assert _errors(data) == [FieldError("(plan)", "轮次编号重复")]


def test_bad_yaml_syntax_gives_the_position() -> None:
    assert _errors("id: test\nname: [未闭合\nrounds: []\n") == [
        FieldError("(yaml)", "YAML 格式错误（第3行第7列）")
    ]


def test_a_plan_must_be_a_mapping() -> None:
    assert _errors("- 动员部署\n- 公开承诺\n") == [
        FieldError("(plan)", "计划文件应为一个映射（键: 值）")
    ]


def test_round_reaching_2027_is_refused_naming_the_round_and_the_year() -> None:
    # Five phases of 15 working days from October 2026 end in January 2027.
    data = _plan(start="2026-10-08", working_days=15)
    assert _errors(data) == [
        FieldError(
            "rounds[0]",
            "2027年没有法定节假日与调休数据，请在计划的 calendar 中补充该年安排"
            "（或以 calendar.include 选用补充日历）",
        )
    ]


def test_absolute_deadline_in_2027_is_refused() -> None:
    data = _plan(start="2026-10-08")
    phase = data["rounds"][0]["phases"][4]
    del phase["duration"]
    phase["deadline"] = "2027-03-01"
    assert FieldError(
        "rounds[0]",
        "2027年没有法定节假日与调休数据，请在计划的 calendar 中补充该年安排"
        "（或以 calendar.include 选用补充日历）",
    ) in (_errors(data))


def test_round_reaching_2027_is_accepted_with_the_provisional_calendar() -> None:
    supplement = load_calendar(CALENDAR_2027.read_text(encoding="utf-8"))
    plan = load_plan(_dump(_plan(start="2026-10-08", working_days=15)), supplement=supplement)
    assert 2027 in plan.calendar.supplied_years
    days = _deadline_days(plan, "r1")
    assert days[-1].year == 2027
    # 元旦 2027 is a holiday in the provisional file, so no deadline falls on it.
    assert date(2027, 1, 1) not in days


def test_provisional_calendar_file_lists_holidays_only() -> None:
    calendar = load_calendar(CALENDAR_2027.read_text(encoding="utf-8"))
    assert calendar.supplied_years == (2027,)
    assert calendar.workdays == ()  # no 调休 make-up days until the State Council publishes
    assert all(day.year == 2027 for day in calendar.holidays)
    for day in (date(2027, 1, 1), date(2027, 2, 8), date(2027, 4, 5), date(2027, 10, 7)):
        assert day in calendar.holidays


def test_bad_calendar_file_names_the_field() -> None:
    with pytest.raises(PlanError) as refused:
        load_calendar("holidays: [元旦]\nsupplied_years: [2027]\n")
    assert refused.value.errors == [FieldError("calendar.holidays[0]", "日期格式应为 YYYY-MM-DD")]


def test_an_error_inside_a_round_is_reported_once() -> None:
    data = _plan()
    data["rounds"][0]["phases"][0]["duration"] = {"working_days": -1}
    assert _errors(data) == [FieldError("rounds[0].phases[0].duration", "时长不能为负数")]


def test_unquoted_impossible_date_is_a_plan_error() -> None:
    text = _dump(_plan()).replace("'2025-03-03'", "2025-02-30")
    assert "starts_on: 2025-02-30" in text
    errors = _errors(text)
    assert errors and all(e.reason for e in errors)


# ── supplementary calendars are chosen, never merged silently ─────────────────────────


def _library() -> dict[str, CalendarPlan]:
    return {"2027-provisional": load_calendar(CALENDAR_2027.read_text(encoding="utf-8"))}


def test_a_calendar_file_counts_only_when_the_plan_includes_it() -> None:
    data = _plan(start="2026-10-08", working_days=15)
    # Available but not chosen: the year is still a gap.
    with pytest.raises(PlanError) as refused:
        load_plan(_dump(data), calendars=_library())
    assert refused.value.errors[0].field == "rounds[0]"
    assert "2027年" in refused.value.errors[0].reason
    data["calendar"] = {"include": ["2027-provisional"]}
    plan = load_plan(_dump(data), calendars=_library())
    assert 2027 in plan.calendar.supplied_years
    assert plan.calendar.include == ("2027-provisional",)
    assert date(2027, 1, 1) in plan.calendar.holidays


def test_an_unknown_calendar_include_is_refused_with_the_choices() -> None:
    data = _plan()
    data["calendar"] = {"include": ["2028-guess"]}
    with pytest.raises(PlanError) as refused:
        load_plan(_dump(data), calendars=_library())
    assert refused.value.errors == [
        FieldError("calendar.include[0]", "没有补充日历 2028-guess（可选：2027-provisional）")
    ]


def test_a_rebased_kickoff_into_a_year_without_data_names_the_year() -> None:
    plan = _load("seed-002.yaml")
    start = datetime(2026, 11, 30, 9, 0, tzinfo=SHANGHAI)
    with pytest.raises(PlanError) as refused:
        resolve_kickoff(plan, "round-1", start)
    [error] = refused.value.errors
    assert error.field == "starts_at"
    assert error.reason.startswith("2027年没有法定节假日与调休数据")
    with pytest.raises(PlanError) as unknown:
        resolve_kickoff(plan, "round-9", start)
    assert unknown.value.errors[0].field == "round_plan_id"
    # At its own date the round resolves, with its calendar pinned.
    schedule = resolve_kickoff(plan, "round-1", datetime(2010, 5, 4, 9, tzinfo=SHANGHAI))
    assert schedule.calendar is not None
