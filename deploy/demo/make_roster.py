"""Generate the demo county roster: made-up townships, organisations and people.

Deterministic (a seeded ``random.Random``), so the committed ``roster.csv`` can be rebuilt
byte for byte and tests and benchmarks get the same county every time. Every name is
assembled from syllable lists; no real person is meant.

    python deploy/demo/make_roster.py                 # rewrite deploy/demo/roster.csv (300)
    python deploy/demo/make_roster.py --count 2000    # a bigger county, CSV on stdout
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

try:
    from domain.organisation import Organisation, OrgType, System
    from domain.roster_import import ROSTER_HEADERS, organisation_row
except ModuleNotFoundError:  # run from a checkout where the project is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from domain.organisation import Organisation, OrgType, System
    from domain.roster_import import ROSTER_HEADERS, organisation_row

DEFAULT_COUNT = 300
DEFAULT_SEED = 2010  # the year the campaign began
ROSTER_FILE = Path(__file__).with_name("roster.csv")

# Share of each type in a county (农村 most numerous); universities are added on top.
_TYPE_WEIGHTS: dict[OrgType, int] = {
    OrgType.RURAL: 150,
    OrgType.COMMUNITY: 40,
    OrgType.GOVERNMENT_ORGAN: 35,
    OrgType.PUBLIC_INSTITUTION: 35,
    OrgType.PRIVATE_ENTERPRISE: 20,
    OrgType.SOCIAL_ORGANISATION: 10,
    OrgType.STATE_ENTERPRISE: 8,
}

_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝"
)
_GIVEN = (
    "建国华军平明红丽静敏强伟芳娟勇杰涛斌超辉鹏宇浩磊俊峰刚波琳霞玉兰英桂秀凤梅春秋冬雪云海"
    "山林松柏志文武德仁义礼信忠和安宁康乐欣悦晨阳光亮晓东南西北新振兴旺富贵荣昌盛成凯瑞祥"
)
# People named in the seed documents: never reuse them, even by chance.
_SEED_NAMES = frozenset(
    {"单国成", "贾存廷", "邢宗锋", "宋守军", "许峻", "张国奇", "周蓉", "詹双全", "庄锡进", "王和涛"}
)


def _words(text: str) -> tuple[str, ...]:
    """Space-separated word lists read better than long tuples of quoted words."""
    return tuple(text.split())


_TOWNSHIP_HEADS = "青白石柳桃杏松梅竹兰金银红黄清安平双新龙凤鹤云溪枫茶"
_TOWNSHIP_TAILS = "石河岭山湾溪坪桥川原塘泉岗峰口"
# Beyond the 390 two-character names (about 7,800 organisations), a third character in front,
# as in 大石桥镇 or 上柳河乡: 16 × 390 more, enough for about 130,000 organisations.
_TOWNSHIP_PREFIXES = "大小上下东西南北中前后高古长老永"
_VILLAGE_HEADS = "柳杨石桃杏松枣梨榆槐樟桑芦荷竹栗杉茶枫柏"
_VILLAGE_TAILS = "树林园坡河岗桥泉峪塘湾岭坪沟"
_HAMLET_TAILS = "庄湾沟坪店岭寨营洼屯"
_COMMUNITY_NAMES = _words(
    "幸福 和平 建设 文化 光明 新华 胜利 团结 花园 滨河 振兴 育才 朝阳 春晖 康乐 锦绣 金桥 "
    "翠苑 阳光 民主 东风 友谊 长青 丰收 绿洲 望江 清风 玉泉 杏林 书香"
)
_BRANDS = _words(
    "宏达 鑫源 恒泰 华盛 瑞丰 金穗 绿源 永兴 顺发 兴隆 嘉禾 天成 益民 丰泽 佳美 远航 "
    "诚信 利民 通达 长兴 富源 广盛 合力 润丰"
)
_INDUSTRIES = _words(
    "建材 食品 农业科技 纺织 机械 物流 服饰 茶业 果业 农机 石材 包装 药业 电子 家具"
)
_BUREAUS = _words(
    "财政局 发展和改革局 教育局 民政局 人力资源和社会保障局 自然资源局 住房和城乡建设局 "
    "交通运输局 水利局 农业农村局 商务局 文化和旅游局 卫生健康局 审计局 统计局 "
    "市场监督管理局 林业局 医疗保障局 应急管理局 司法局 信访局 档案馆 科学技术局 "
    "工业和信息化局 退役军人事务局 乡村振兴局 供销合作社联合社"
)
_STATE_FIRMS = _words(
    "供电公司 自来水公司 城市建设投资集团有限公司 交通投资有限公司 国有林场 粮食储备库 "
    "公共交通有限公司 燃气有限公司 文化旅游投资有限公司 农业发展投资有限公司"
)
_ASSOCIATIONS = _words(
    "个体劳动者协会 私营企业协会 律师协会 物流行业协会 餐饮行业协会 建筑业协会 慈善总会 "
    "老年体育协会 书法家协会 志愿者协会 养殖业协会 茶叶行业协会 家政服务协会 社会工作者协会"
)
_UNIVERSITIES = ("云溪职业技术学院", "青峰师范高等专科学校", "枫林医学高等专科学校")
# (name, system) of county-level public institutions, then township ones in rotation.
_COUNTY_INSTITUTIONS = (
    ("县第一中学", System.EDUCATION),
    ("县人民医院", System.HEALTH),
    ("县实验小学", System.EDUCATION),
    ("县中医医院", System.HEALTH),
    ("县第二中学", System.EDUCATION),
    ("县职业中等专业学校", System.EDUCATION),
    ("县妇幼保健院", System.HEALTH),
    ("县疾病预防控制中心", System.HEALTH),
)
_TOWNSHIP_INSTITUTIONS = (
    ("中心小学", System.EDUCATION),
    ("卫生院", System.HEALTH),
    ("初级中学", System.EDUCATION),
    ("中心幼儿园", System.EDUCATION),
)
_ORDINALS = "二三四五六七八九十"


@dataclass(frozen=True)
class Township:
    """A made-up 镇, 乡 or 街道."""

    name: str
    kind: str  # "镇", "乡" or "街道"


@dataclass
class _Draft:
    """An organisation before ids and instructors are assigned."""

    name: str
    type: OrgType
    system: System
    township: Township
    member_count: int


class _Names:
    """Unique names: units (村, 社区, 公司…) per county, and people across the county."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.units: dict[str, int] = {}
        self.people: set[str] = set()

    def fresh_unit(self, make: Callable[[Township], str], township: Township) -> str:
        """A unit name ``make`` draws for ``township`` not yet used (a few tries, then a
        repeat, which :meth:`org` numbers)."""
        for _ in range(50):
            base = make(township)
            if base not in self.units:
                return base
        return base

    def org(self, base: str, suffix: str) -> str:
        """The organisation of a unit; a unit's second organisation is "…第二党支部"."""
        count = self.units[base] = self.units.get(base, 0) + 1
        if count == 1:
            return f"{base}{suffix}"
        ordinal = _ORDINALS[count - 2] if count - 2 < len(_ORDINALS) else str(count)
        return f"{base}第{ordinal}{suffix}"

    def person(self) -> str:
        """A made-up two- or three-character name no one else in the county has."""
        while True:
            given_length = 1 if self.rng.random() < 0.3 else 2
            name = self.rng.choice(_SURNAMES) + "".join(
                self.rng.choice(_GIVEN) for _ in range(given_length)
            )
            if name not in self.people and name not in _SEED_NAMES:
                self.people.add(name)
                return name


def _organ_suffix(members: int) -> str:
    """The party organ a membership warrants: 100+ a committee, 50+ a general branch."""
    if members >= 100:
        return "党委"
    return "党总支" if members >= 50 else "党支部"


def _type_counts(count: int) -> dict[OrgType, int]:
    """How many organisations of each type a county of ``count`` has (every type at least 1)."""
    if count < len(OrgType):
        raise ValueError(f"count must be at least {len(OrgType)} to cover every type")
    universities = 1 if count < DEFAULT_COUNT else 2
    rest = count - universities
    total = sum(_TYPE_WEIGHTS.values())
    exact = {t: rest * w / total for t, w in _TYPE_WEIGHTS.items()}
    counts = {t: max(1, int(v)) for t, v in exact.items()}
    # Largest remainder, so the total is exact and the proportions hold.
    by_remainder = sorted(exact, key=lambda t: exact[t] - int(exact[t]), reverse=True)
    index = 0
    while sum(counts.values()) < rest:
        counts[by_remainder[index % len(by_remainder)]] += 1
        index += 1
    while sum(counts.values()) > rest:
        counts[OrgType.RURAL] -= 1
    counts[OrgType.UNIVERSITY] = universities
    return counts


def _townships(rng: random.Random, count: int) -> list[Township]:
    """About one township per 20 organisations: a few 街道, some 乡, mostly 镇."""
    number = max(3, round(count / 20))
    streets = max(1, round(number * 2 / 15))
    xiang = max(1, round(number * 4 / 15))
    combos = [h + t for h in _TOWNSHIP_HEADS for t in _TOWNSHIP_TAILS]
    rng.shuffle(combos)
    if number > len(combos):  # a province-sized "county" (benchmarks): three-character names
        # Their own generator, so the main one (and every smaller roster) is unchanged.
        more = [p + c for p in _TOWNSHIP_PREFIXES for c in combos]
        random.Random(rng.random()).shuffle(more)
        combos += more
    if number > len(combos):
        raise ValueError(f"at most {len(combos) * 20} organisations: not enough township names")
    kinds = ["街道"] * streets + ["乡"] * xiang + ["镇"] * (number - streets - xiang)
    return [Township(name=f"{combos[i]}{kind}", kind=kind) for i, kind in enumerate(kinds)]


def _county_unit(unit: str, index: int, count: int, township: Township) -> str:
    """A county-level unit ("县财政局"); once the list has been used up (a county far bigger
    than a real one, as the benchmarks build), the branch in its township ("青石街道财政局")."""
    return f"县{unit}" if index < count else f"{township.name}{unit}"


def _cycle(items: list[Township]) -> Iterator[Township]:
    while True:
        yield from items


def _drafts(rng: random.Random, names: _Names, count: int) -> list[_Draft]:
    townships = _townships(rng, count)
    streets = [t for t in townships if t.kind == "街道"]
    rural_towns = [t for t in townships if t.kind != "街道"]
    towns = [t for t in townships if t.kind == "镇"]
    counts = _type_counts(count)
    drafts: list[_Draft] = []

    def add(
        base: str, org_type: OrgType, system: System, township: Township, low: int, high: int
    ) -> None:
        members = rng.randint(low, high)
        name = names.org(base, _organ_suffix(members))
        drafts.append(_Draft(name, org_type, system, township, members))

    def village(township: Township) -> str:
        if rng.random() < 0.5:
            stem = rng.choice(_SURNAMES) + "家" + rng.choice(_HAMLET_TAILS)
        else:
            stem = rng.choice(_VILLAGE_HEADS) + rng.choice(_VILLAGE_TAILS)
        return f"{township.name}{stem}村"

    places = _cycle(rural_towns)
    for _ in range(counts[OrgType.RURAL]):
        township = next(places)
        add(
            names.fresh_unit(village, township),
            OrgType.RURAL,
            System.RURAL,
            township,
            20,
            80,
        )

    # Communities lie mostly in the 街道, a few in the 镇 seats.
    community_places = streets * 5 + towns
    for _ in range(counts[OrgType.COMMUNITY]):
        township = rng.choice(community_places)
        base = names.fresh_unit(lambda t: f"{t.name}{rng.choice(_COMMUNITY_NAMES)}社区", township)
        add(base, OrgType.COMMUNITY, System.RURAL, township, 15, 60)

    # Every township's own organ first, then county bureaus (seated in the 街道).
    for index in range(counts[OrgType.GOVERNMENT_ORGAN]):
        if index < len(townships):
            township = townships[index]
            add(
                f"{township.name}机关",
                OrgType.GOVERNMENT_ORGAN,
                System.ORGANS,
                township,
                20,
                60,
            )
        else:
            bureau = _BUREAUS[(index - len(townships)) % len(_BUREAUS)]
            township = rng.choice(streets)
            add(
                _county_unit(bureau, index - len(townships), len(_BUREAUS), township) + "机关",
                OrgType.GOVERNMENT_ORGAN,
                System.ORGANS,
                township,
                8,
                40,
            )

    rotation = [(name, system, t) for name, system in _TOWNSHIP_INSTITUTIONS for t in rural_towns]
    for index in range(counts[OrgType.PUBLIC_INSTITUTION]):
        if index < len(_COUNTY_INSTITUTIONS):
            base, system = _COUNTY_INSTITUTIONS[index]
            township = rng.choice(streets)
            big = system is System.HEALTH and "医院" in base
            add(
                base,
                OrgType.PUBLIC_INSTITUTION,
                system,
                township,
                60 if big else 15,
                150 if big else 50,
            )
        else:
            kind, system, township = rotation[(index - len(_COUNTY_INSTITUTIONS)) % len(rotation)]
            add(
                f"{township.name}{kind}",
                OrgType.PUBLIC_INSTITUTION,
                system,
                township,
                10,
                40,
            )

    firm_places = towns * 3 + streets * 2 + [t for t in townships if t.kind == "乡"]
    for _ in range(counts[OrgType.PRIVATE_ENTERPRISE]):
        township = rng.choice(firm_places)
        base = names.fresh_unit(
            lambda t: f"{t.name}{rng.choice(_BRANDS)}{rng.choice(_INDUSTRIES)}有限公司", township
        )
        add(base, OrgType.PRIVATE_ENTERPRISE, System.NON_PUBLIC, township, 3, 30)

    for index in range(counts[OrgType.SOCIAL_ORGANISATION]):
        association = _ASSOCIATIONS[index % len(_ASSOCIATIONS)]
        township = rng.choice(streets)
        add(
            _county_unit(association, index, len(_ASSOCIATIONS), township),
            OrgType.SOCIAL_ORGANISATION,
            System.SOCIAL,
            township,
            3,
            15,
        )

    for index in range(counts[OrgType.STATE_ENTERPRISE]):
        firm = _STATE_FIRMS[index % len(_STATE_FIRMS)]
        township = rng.choice(rural_towns if firm == "国有林场" else streets)
        name = _county_unit(firm, index, len(_STATE_FIRMS), township)
        add(name, OrgType.STATE_ENTERPRISE, System.ORGANS, township, 10, 80)

    for index in range(counts[OrgType.UNIVERSITY]):
        base = _UNIVERSITIES[index % len(_UNIVERSITIES)]
        add(
            base,
            OrgType.UNIVERSITY,
            System.EDUCATION,
            rng.choice(streets),
            150,
            600,
        )

    # Roster order: township by township, as a county office would list them.
    order = {t.name: i for i, t in enumerate(townships)}
    drafts.sort(key=lambda d: order[d.township.name])  # stable: keeps type order within
    return drafts


def generate_roster(count: int = DEFAULT_COUNT, *, seed: int = DEFAULT_SEED) -> list[Organisation]:
    """A made-up county of ``count`` organisations covering all eight types.

    Each township's organisations are split among instructors, 5 to 10 each (seed 002
    §六(三): townships send instructors to their villages, communities and firms).
    """
    rng = random.Random(seed)
    names = _Names(rng)
    drafts = _drafts(rng, names, count)
    width = max(4, len(str(count)))
    by_township: dict[str, list[int]] = {}
    for index, draft in enumerate(drafts):
        by_township.setdefault(draft.township.name, []).append(index)
    instructor_of: dict[int, str] = {}
    for members in by_township.values():
        # Contiguous, near-equal shares of about 7 or 8 organisations per instructor.
        shares = max(1, round(len(members) / 7.5))
        people = [names.person() for _ in range(shares)]
        for position, index in enumerate(members):
            instructor_of[index] = people[position * shares // len(members)]
    organisations: list[Organisation] = []
    for index, draft in enumerate(drafts):
        organisations.append(
            Organisation(
                id=f"org-{index + 1:0{width}d}",
                name=draft.name,
                type=draft.type,
                township=draft.township.name,
                system=draft.system,
                member_count=draft.member_count,
                secretary=names.person(),
                instructor=instructor_of[index],
            )
        )
    return organisations


def roster_csv(organisations: list[Organisation]) -> str:
    """The roster as CSV text with the Chinese headers (no BOM; add it when writing a file)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(ROSTER_HEADERS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(organisation_row(org) for org in organisations)
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    """Write ``roster.csv`` (no ``--count``) or print a county of ``--count`` organisations."""
    parser = argparse.ArgumentParser(description="Generate the made-up demo county roster.")
    parser.add_argument("--count", type=int, help="print a roster of N organisations to stdout")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--output", type=Path, help="write to this file (UTF-8 with BOM)")
    args = parser.parse_args(argv)
    text = roster_csv(generate_roster(args.count or DEFAULT_COUNT, seed=args.seed))
    target: Path | None = args.output or (None if args.count else ROSTER_FILE)
    if target is None:
        sys.stdout.write(text)
    else:
        # The BOM makes Excel on Chinese Windows read the file as UTF-8.
        target.write_text(text, encoding="utf-8-sig")
    return 0


if __name__ == "__main__":
    sys.exit(main())
