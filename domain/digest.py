"""Daily digests for supervisors and the round's circular (通报), computed from status lines.

Pure: the caller passes the status of every organisation in a round (from the read model)
and the instant ``now``; nothing here reads a clock or a database. Every message gets a
stable id built from round, local date (or an on-demand key) and recipient, so delivering
it twice is harmless and running the digest twice on one day sends nothing new.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime

from pydantic import BaseModel, ConfigDict

from domain.calendar import deadline_day, local_date
from domain.lights import Light
from domain.organisation import Role, Supervisor, system_label
from domain.phases import WORKING_PHASES, Phase

#: Lights that make a supervisor's day worth a message (green alone is nothing to report).
REPORTABLE: frozenset[Light] = frozenset({Light.RED, Light.YELLOW, Light.BLUE})
COUNTY_OFFICE = Supervisor(
    role=Role.COUNTY_OFFICE, key="county", label="县委创先争优活动领导小组办公室"
)
_ATTENTION = (Light.YELLOW, Light.BLUE)
_FROZEN = ConfigDict(frozen=True)


class StatusLine(BaseModel):
    """Where one organisation stands in a round, as the digest and the circular need it."""

    model_config = _FROZEN

    org_id: str
    org_name: str
    township: str
    system: str  # the guidance group's key
    instructor: str | None = None  # None: not in the stored roster, no instructor digest
    light: Light
    overdue: bool
    phase: Phase
    deadline: datetime | None = None
    working_days_overdue: int = 0
    top_rung: int | None = None
    closed: bool = False
    # The guidance group's label from the county's data (issue 15); empty: the seed's label
    # for a seed key (``domain.organisation.system_label``).
    system_label: str = ""

    @property
    def is_laggard(self) -> bool:
        """Red: overdue or rectifying (the lists both documents print)."""
        return self.light is Light.RED


class CircularNotice(BaseModel):
    """The notice of a circular to one supervisor (the county office or a township)."""

    model_config = _FROZEN

    notice_id: str
    recipient: Supervisor
    title: str
    body: str
    laggard_ids: tuple[str, ...]


class Digest(BaseModel):
    """One supervisor's daily digest: counts by light, laggards (most overdue first), and
    organisations needing attention (blue: due soon; yellow: behind)."""

    model_config = _FROZEN

    digest_id: str
    round_id: str
    local_date: date
    recipient: Supervisor
    counts: dict[Light, int]
    laggards: tuple[StatusLine, ...]
    attention: tuple[StatusLine, ...]
    created_at: datetime


class TownshipProgress(BaseModel):
    """One township's row of the circular."""

    model_config = _FROZEN

    township: str
    total: int
    by_phase: dict[Phase, int]
    completed: int
    overdue: int
    laggards: tuple[StatusLine, ...]


class SupervisionEntry(BaseModel):
    """One line of the circular's 督促检查 section: a spot check's inspection, a 座谈会 or a
    督查 visit (seed 002 §六(五) "通报活动情况")."""

    model_config = _FROZEN

    kind: str  # Chinese: 随机抽查, 座谈会, 督查
    held_on: str  # ISO local date
    title: str
    org_names: tuple[str, ...]
    findings: str
    outcome: str  # a spot check's verdict, or a record's follow-ups ("" when none)


class Circular(BaseModel):
    """The round's 通报: progress and laggards by township, and the supervision done since
    the previous circular (spot checks, 座谈会, 督查)."""

    model_config = _FROZEN

    circular_id: str
    round_id: str
    key: str
    local_date: date
    townships: tuple[TownshipProgress, ...]
    created_at: datetime
    supervision: tuple[SupervisionEntry, ...] = ()

    def totals(self) -> tuple[int, int, int]:
        """(organisations, completed, overdue) over all townships."""
        ts = self.townships
        return sum(t.total for t in ts), sum(t.completed for t in ts), sum(t.overdue for t in ts)


def supervisors_for(line: StatusLine) -> tuple[Supervisor, ...]:
    """The digest's recipients for an organisation: the same keys and labels as
    :func:`domain.organisation.supervisors_of`, from the fields a status line carries."""
    found = (
        Supervisor(role=Role.TOWNSHIP, key=line.township, label=f"{line.township}党委"),
        Supervisor(
            role=Role.GUIDANCE_GROUP,
            key=line.system,
            label=line.system_label or system_label(line.system),
        ),
        COUNTY_OFFICE,
    )
    if line.instructor is None:
        return found
    key = line.instructor
    return (Supervisor(role=Role.INSTRUCTOR, key=key, label=f"指导员{key}"), *found)


def digest_id(round_id: str, day: date, who: Supervisor) -> str:
    """``digest/<round>/<local date>/<role>:<key>``: one digest per person and day."""
    return f"digest/{round_id}/{day.isoformat()}/{who.role.value}:{who.key}"


def circular_id(round_id: str, key: str) -> str:
    """``circular/<round>/<key>``: the key is the local date (weekly) or an on-demand key."""
    return f"circular/{round_id}/{key}"


def _most_overdue(lines: Iterable[StatusLine]) -> tuple[StatusLine, ...]:
    return tuple(sorted(lines, key=lambda s: (-s.working_days_overdue, s.township, s.org_name)))


def build_digests(
    round_id: str,
    lines: Sequence[StatusLine],
    *,
    now: datetime,
    contacts: Mapping[str, Sequence[Supervisor]] | None = None,
) -> list[Digest]:
    """One digest per supervisor with something to report, ordered by role then key;
    ``contacts`` adds, per organisation id, the leading cadres of its contact points (联系点)."""
    watched: dict[Supervisor, list[StatusLine]] = defaultdict(list)
    contacts = contacts or {}
    for line in lines:
        for who in (*supervisors_for(line), *contacts.get(line.org_id, ())):
            watched[who].append(line)
    day = local_date(now)
    digests = []
    for who, mine in watched.items():
        open_lines = [s for s in mine if not s.closed]
        if not any(s.light in REPORTABLE for s in open_lines):
            continue  # nothing to report: no message at all, by design
        counts = Counter(s.light for s in open_lines)
        digests.append(
            Digest(
                digest_id=digest_id(round_id, day, who),
                round_id=round_id,
                local_date=day,
                recipient=who,
                counts={light: counts.get(light, 0) for light in Light},
                laggards=_most_overdue(s for s in open_lines if s.is_laggard),
                attention=_most_overdue(s for s in open_lines if s.light in _ATTENTION),
                created_at=now,
            )
        )
    # County office first, as ``Role`` lists the rungs.
    return sorted(digests, key=lambda d: (list(Role).index(d.recipient.role), d.recipient.key))


def _fmt_day(deadline: datetime | None) -> str:
    """A deadline's last day (a deadline at the end of D is stored as D+1 00:00)."""
    return "—" if deadline is None else f"{deadline_day(deadline):%Y年%m月%d日}"


def _laggard_text(line: StatusLine, *, with_township: bool = True) -> str:
    where = f"（{line.township}）" if with_township else ""
    late = f"逾期{line.working_days_overdue}个工作日" if line.working_days_overdue else "已逾期"
    return (
        f"{line.org_name}{where}：{line.phase.label}阶段{late}，"
        f"截止{_fmt_day(line.deadline)}"
        + (f"，已督办至第{line.top_rung + 1}级" if line.top_rung is not None else "")
    )


def render_digest(digest: Digest) -> tuple[str, str]:
    """The digest's Chinese title and body."""
    day = digest.local_date
    counts = "，".join(f"{light.label}{digest.counts.get(light, 0)}个" for light in Light)
    title = f"【每日督办摘要】{day.year}年{day.month}月{day.day}日：逾期{len(digest.laggards)}个"
    lines = [f"{digest.recipient.label}：", f"您联系的基层党组织今日亮灯情况：{counts}。"]
    if digest.laggards:
        lines.append("逾期单位（按逾期工作日从多到少）：")
        lines += [f"{i}. {_laggard_text(s)}" for i, s in enumerate(digest.laggards, start=1)]
    if digest.attention:
        lines.append("需关注单位：")
        lines += [
            f"- {s.org_name}（{s.township}）：{s.phase.label}阶段{s.light.label}，"
            f"截止{_fmt_day(s.deadline)}"
            for s in digest.attention
        ]
    lines.append("请及时督促落实。")
    return title, "\n".join(lines)


def build_circular(
    round_id: str,
    lines: Sequence[StatusLine],
    *,
    now: datetime,
    key: str | None = None,
    supervision: Sequence[SupervisionEntry] = (),
) -> Circular:
    """The round's circular; ``key`` defaults to the local date (one per day); ``supervision``
    is what supervisors did since the previous circular (oldest first)."""
    by_township: dict[str, list[StatusLine]] = defaultdict(list)
    for line in lines:
        by_township[line.township].append(line)
    day = local_date(now)
    key = key or day.isoformat()
    townships = []
    for name in sorted(by_township):
        mine = by_township[name]
        phases = Counter(s.phase for s in mine)
        townships.append(
            TownshipProgress(
                township=name,
                total=len(mine),
                by_phase={p: phases.get(p, 0) for p in WORKING_PHASES},
                completed=phases.get(Phase.COMPLETED, 0),
                overdue=sum(1 for s in mine if s.is_laggard),
                laggards=_most_overdue(s for s in mine if s.is_laggard),
            )
        )
    return Circular(
        circular_id=circular_id(round_id, key),
        round_id=round_id,
        key=key,
        local_date=day,
        townships=tuple(townships),
        created_at=now,
        supervision=tuple(sorted(supervision, key=lambda e: (e.held_on, e.kind, e.title))),
    )


def supervision_text(entry: SupervisionEntry) -> str:
    """One supervision line as the circular prints it."""
    day = date.fromisoformat(entry.held_on)
    names = "、".join(entry.org_names)
    text = f"{day.year}年{day.month}月{day.day}日{entry.kind}（{entry.title}）：{names}。"
    text += f"发现：{entry.findings.rstrip('。')}。"
    if entry.outcome:
        text += f"{entry.outcome.rstrip('。')}。"
    return text


def circular_title(circular: Circular) -> str:
    """The circular's Chinese title."""
    day = circular.local_date
    when = f"{day.year}年{day.month}月{day.day}日"
    return f"关于{circular.round_id}轮创先争优活动进展情况的通报（{when}）"


def render_circular(circular: Circular) -> str:
    """The circular as a Chinese Markdown document (the .md beside the .xlsx)."""
    total, completed, overdue = circular.totals()
    phases = " | ".join(p.label for p in WORKING_PHASES)
    out = [
        f"# {circular_title(circular)}\n",
        f"县委创先争优活动领导小组办公室：全县参加本轮活动的基层党组织共{total}个，已完成全部"
        f"阶段{completed}个，逾期{overdue}个。现将各乡镇（街道）进展情况通报如下。\n",
        "## 一、各乡镇（街道）进展\n",
        f"| 乡镇（街道） | 单位数 | {phases} | 已完成 | 逾期 |",
        "|---" * (len(WORKING_PHASES) + 4) + "|",
    ]
    for t in circular.townships:
        counts = " | ".join(str(t.by_phase.get(p, 0)) for p in WORKING_PHASES)
        out.append(f"| {t.township} | {t.total} | {counts} | {t.completed} | {t.overdue} |")
    out.append("\n## 二、逾期单位\n" + ("" if overdue else "无。"))
    for t in (t for t in circular.townships if t.laggards):
        out.append(f"### {t.township}（{len(t.laggards)}个）\n")
        out += [f"- {_laggard_text(s, with_township=False)}" for s in t.laggards] + [""]
    if circular.supervision:
        out.append("\n## 三、督促检查情况\n")
        out += [f"- {supervision_text(e)}" for e in circular.supervision] + [""]
    out.append(
        "对思想上不重视、工作上不得力的单位，予以批评并责令限期整改；"
        "各乡镇（街道）党委要督促逾期单位尽快补齐规定动作。"
    )
    return "\n".join(out)


def circular_notices(circular: Circular) -> list[CircularNotice]:
    """The circular's notices: one to the county office and one to each township."""
    title = f"【通报】{circular_title(circular)}"
    total, completed, overdue = circular.totals()
    summary = f"全县{total}个单位，已完成{completed}个，逾期{overdue}个。"
    county = COUNTY_OFFICE
    recipients: list[tuple[Supervisor, tuple[StatusLine, ...]]] = [
        (county, tuple(s for t in circular.townships for s in t.laggards))
    ]
    recipients += [
        (Supervisor(role=Role.TOWNSHIP, key=t.township, label=f"{t.township}党委"), t.laggards)
        for t in circular.townships
    ]
    messages = []
    for who, laggards in recipients:
        listed = "；".join(_laggard_text(s) for s in laggards) or "无逾期单位"
        mine = "" if who.role is Role.COUNTY_OFFICE else f"\n本辖区逾期情况：{listed}。"
        body = f"{who.label}：{summary}{mine}\n通报全文见附件。"
        messages.append(
            CircularNotice(
                notice_id=f"{circular.circular_id}/{who.role.value}:{who.key}",
                recipient=who,
                title=title,
                body=body,
                laggard_ids=tuple(s.org_id for s in laggards),
            )
        )
    return messages
