"""The pure digest and circular: who gets what, in which order, in Chinese."""

from __future__ import annotations

from datetime import UTC, date, datetime

from domain.digest import (
    StatusLine,
    build_circular,
    build_digests,
    circular_notices,
    render_circular,
    render_digest,
    supervisors_for,
)
from domain.lights import Light
from domain.organisation import Organisation, OrgType, Role, System, supervisors_of
from domain.phases import Phase

NOW = datetime(2026, 3, 10, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai, 10 March
DEADLINE = datetime(2026, 3, 2, 16, 0, tzinfo=UTC)


def line(
    org_id: str,
    township: str,
    instructor: str,
    light: Light,
    *,
    days: int = 0,
    phase: Phase = Phase.MOBILISATION,
    system: System = System.RURAL,
) -> StatusLine:
    return StatusLine(
        org_id=org_id,
        org_name=f"{org_id}党支部",
        township=township,
        system=system,
        instructor=instructor,
        light=light,
        overdue=light is Light.RED,
        phase=phase,
        deadline=DEADLINE,
        working_days_overdue=days,
        top_rung=0 if light is Light.RED else None,
    )


LINES = [
    line("a1", "青石镇", "王", Light.RED, days=2),
    line("a2", "青石镇", "王", Light.RED, days=5),
    line("a3", "青石镇", "王", Light.GREEN, phase=Phase.COMPLETED),
    line("b1", "白沙镇", "张", Light.BLUE),
    line("c1", "红旗街道", "刘", Light.RED, days=1, system=System.ORGANS),
    line("c2", "红旗街道", "陈", Light.GREEN, system=System.HEALTH),
]


def test_recipients_match_the_ladder_addressees() -> None:
    org = Organisation(
        id="x",
        name="x",
        type=OrgType.RURAL,
        township="青石镇",
        system=System.RURAL,
        instructor="王",
        secretary="李",
        member_count=3,
    )
    ladder = supervisors_of(org)
    assert list(supervisors_for(line("x", "青石镇", "王", Light.RED))) == [
        ladder[Role.INSTRUCTOR],
        ladder[Role.TOWNSHIP],
        ladder[Role.GUIDANCE_GROUP],
        ladder[Role.COUNTY_OFFICE],
    ]


def test_digests_only_for_supervisors_with_something_to_report() -> None:
    digests = build_digests("r1", LINES, now=NOW)
    who = {(d.recipient.role, d.recipient.key): d for d in digests}
    assert (Role.INSTRUCTOR, "陈") not in who  # only a green organisation
    assert (Role.GUIDANCE_GROUP, "health") not in who
    assert (Role.INSTRUCTOR, "张") in who  # blue: due soon is worth a message
    wang = who[(Role.INSTRUCTOR, "王")]
    assert [s.org_id for s in wang.laggards] == ["a2", "a1"]  # most overdue first
    assert wang.counts == {Light.GREEN: 1, Light.BLUE: 0, Light.YELLOW: 0, Light.RED: 2}
    assert wang.digest_id == "digest/r1/2026-03-10/instructor:王"
    assert digests[0].recipient.role is Role.COUNTY_OFFICE
    title, body = render_digest(wang)
    assert title == "【每日督办摘要】2026年3月10日：逾期2个"
    assert "1. a2党支部（青石镇）：动员部署阶段逾期5个工作日" in body
    assert "正常1个，临期0个，滞后0个，逾期2个" in body


def test_closed_organisations_are_not_reported() -> None:
    closed = line("z", "青石镇", "赵", Light.RED, days=9).model_copy(update={"closed": True})
    assert build_digests("r1", [closed], now=NOW) == []


def test_circular_by_township_with_laggards_and_notices() -> None:
    circular = build_circular("r1", LINES, now=NOW)
    assert circular.circular_id == "circular/r1/2026-03-10"
    rows = {t.township: t for t in circular.townships}
    assert [t.township for t in circular.townships] == sorted(rows)
    assert (rows["青石镇"].total, rows["青石镇"].completed, rows["青石镇"].overdue) == (3, 1, 2)
    assert rows["青石镇"].by_phase[Phase.MOBILISATION] == 2
    assert [s.org_id for s in rows["青石镇"].laggards] == ["a2", "a1"]
    assert rows["白沙镇"].laggards == ()
    assert circular.totals() == (6, 1, 3)
    text = render_circular(circular)
    assert "全县参加本轮活动的基层党组织共6个，已完成全部阶段1个，逾期3个" in text
    assert "### 青石镇（2个）" in text and "### 白沙镇" not in text
    assert "| 白沙镇 | 1 | 1 | 0 | 0 | 0 | 0 | 0 | 0 |" in text
    notices = circular_notices(circular)
    assert [(n.recipient.role, n.recipient.key) for n in notices] == [
        (Role.COUNTY_OFFICE, "county"),
        (Role.TOWNSHIP, "白沙镇"),
        (Role.TOWNSHIP, "红旗街道"),
        (Role.TOWNSHIP, "青石镇"),
    ]
    assert notices[3].laggard_ids == ("a2", "a1")
    assert "无逾期单位" in notices[1].body
    on_demand = build_circular("r1", LINES, now=NOW, key="manual-1")
    assert on_demand.circular_id == "circular/r1/manual-1"
    assert on_demand.local_date == date(2026, 3, 10)
