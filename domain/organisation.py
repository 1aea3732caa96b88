"""Organisations, the people around them, and who supervises whom (seed 002 §四, §六)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class OrgType(StrEnum):
    """The eight kinds of grassroots organisation with their own carriers (分类指导)."""

    RURAL = "rural"
    COMMUNITY = "community"
    STATE_ENTERPRISE = "state_enterprise"
    GOVERNMENT_ORGAN = "government_organ"
    UNIVERSITY = "university"
    PUBLIC_INSTITUTION = "public_institution"
    PRIVATE_ENTERPRISE = "private_enterprise"
    SOCIAL_ORGANISATION = "social_organisation"

    @property
    def label(self) -> str:
        """The Chinese name shown to users."""
        return ORG_TYPE_LABELS[self]


ORG_TYPE_LABELS: dict[OrgType, str] = {
    OrgType.RURAL: "农村",
    OrgType.COMMUNITY: "街道社区",
    OrgType.STATE_ENTERPRISE: "国有企业",
    OrgType.GOVERNMENT_ORGAN: "机关",
    OrgType.UNIVERSITY: "高等学校",
    OrgType.PUBLIC_INSTITUTION: "事业单位",
    OrgType.PRIVATE_ENTERPRISE: "非公有制经济组织",
    OrgType.SOCIAL_ORGANISATION: "社会组织",
}


class System(StrEnum):
    """The six 分系统 guidance groups seed 002 §六(二) names, each led by a county department.

    Since issue 15 these are only the *seed's* keys: a county defines its own guidance groups
    as data (:class:`GuidanceGroup`, the ``systems`` rows of its county), and
    :attr:`Organisation.system` is any such group's key. These six are what the default and
    demo counties, and every new county, start with (:data:`SEED_002_SYSTEMS`)."""

    RURAL = "rural"
    ORGANS = "organs"
    EDUCATION = "education"
    NON_PUBLIC = "non_public"
    SOCIAL = "social"
    HEALTH = "health"

    @property
    def label(self) -> str:
        """The guidance group's Chinese name."""
        return SYSTEM_LABELS[self]


SYSTEM_LABELS: dict[System, str] = {
    System.RURAL: "农村基层组织指导小组（县农委）",
    System.ORGANS: "县直机关指导小组（县直机关工委）",
    System.EDUCATION: "教育系统指导小组（县教育局）",
    System.NON_PUBLIC: "非公有制经济组织指导小组（县委统战部）",
    System.SOCIAL: "社会组织指导小组（县民政局）",
    System.HEALTH: "医疗卫生指导小组（县卫生局）",
}

#: What a guidance group's key may be: it is stored in 32-character columns, names the
#: ``guidance-<key>`` account and appears in URLs and filters, so lower-case ASCII only.
SYSTEM_KEY_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
_SYSTEM_KEY = re.compile(SYSTEM_KEY_PATTERN)

#: A guidance group's key as a validated string (an organisation's ``system``).
SystemKey = Annotated[str, Field(pattern=SYSTEM_KEY_PATTERN, min_length=1, max_length=32)]


def is_system_key(text: str) -> bool:
    """Whether ``text`` has the shape of a guidance group's key (not whether one exists)."""
    return _SYSTEM_KEY.fullmatch(text) is not None


class GuidanceGroup(BaseModel):
    """A county's 分系统指导小组 as data: its key, Chinese name and leading department
    (牵头部门). The county office defines and renames them; organisations name one by key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: SystemKey
    name: str = Field(min_length=1, max_length=60, description="指导小组名称")
    department: str = Field(default="", max_length=60, description="牵头部门")

    @property
    def label(self) -> str:
        """The full Chinese name, with the leading department when there is one."""
        return f"{self.name}（{self.department}）" if self.department else self.name


def _seed_group(system: System) -> GuidanceGroup:
    name, _, department = SYSTEM_LABELS[system].partition("（")
    return GuidanceGroup(key=system.value, name=name, department=department.rstrip("）"))


#: The six guidance groups of seed 002 §六(二), in the seed's order: the default/demo
#: county's groups and what a new county starts with.
SEED_002_SYSTEMS: tuple[GuidanceGroup, ...] = tuple(_seed_group(s) for s in System)
SEED_002_KEYS: frozenset[str] = frozenset(s.value for s in System)


#: The label of a county-defined group where the county's data is not at hand (a notice
#: written inside a workflow); the read model names it when it files the notice
#: (``activities.guidance_groups.name_groups_in_notices``).
UNNAMED_GROUP_LABEL = "所属系统指导小组"


def system_label(key: str, groups: Mapping[str, GuidanceGroup] | None = None) -> str:
    """The Chinese label of guidance group ``key``: from ``groups`` (the county's data) when
    it has it, else the seed's label for a seed key, else a generic Chinese label (a group
    the caller has no data for: inside a workflow, which reads no database; the notice
    still reaches the group's inbox by its key)."""
    if groups is not None and key in groups:
        return groups[key].label
    if key in _SEED_LABELS:
        return _SEED_LABELS[key]
    return UNNAMED_GROUP_LABEL


def system_short(key: str, groups: Mapping[str, GuidanceGroup] | None = None) -> str:
    """The guidance group's short name (without the department), for tables and filters."""
    if groups is not None and key in groups:
        return groups[key].name
    return system_label(key).split("（")[0] if key in _SEED_LABELS else key


_SEED_LABELS: dict[str, str] = {s.value: label for s, label in SYSTEM_LABELS.items()}


class Role(StrEnum):
    """What a person does in the campaign; decides what they may see and do."""

    COUNTY_OFFICE = "county_office"
    GUIDANCE_GROUP = "guidance_group"
    TOWNSHIP = "township"
    INSTRUCTOR = "instructor"
    SECRETARY = "secretary"
    ASSESSMENT_GROUP = "assessment_group"
    # 党员领导干部 with a 联系点 (seed 002 §六(一)): reads the organisations linked to them.
    LEADING_CADRE = "leading_cadre"
    # Above the county (many counties on one deployment): the organisation departments of a
    # city or province read the counties their account names and act in none of them.
    CITY_OFFICE = "city_office"
    PROVINCE_OFFICE = "province_office"

    @property
    def label(self) -> str:
        """Chinese label, as pages, lists and printed documents name the role."""
        return _ROLE_LABELS[self]


_ROLE_LABELS: dict[Role, str] = {
    Role.COUNTY_OFFICE: "县委活动办",
    Role.GUIDANCE_GROUP: "指导小组",
    Role.TOWNSHIP: "乡镇党委",
    Role.INSTRUCTOR: "指导员",
    Role.SECRETARY: "书记",
    Role.ASSESSMENT_GROUP: "考核组",
    Role.LEADING_CADRE: "党员领导干部",
    Role.CITY_OFFICE: "市委组织部",
    Role.PROVINCE_OFFICE: "省委组织部",
}

#: Roles above the county: they supervise several counties read-only.
ABOVE_COUNTY_ROLES: frozenset[Role] = frozenset({Role.CITY_OFFICE, Role.PROVINCE_OFFICE})

#: The county a single-county deployment runs as (``make run``, every row written before
#: counties existed): the code migration 0009 gives existing rows.
DEFAULT_COUNTY = "default"
DEFAULT_COUNTY_NAME = "本县"


SUPERVISOR_ROLES: frozenset[Role] = frozenset(
    {Role.COUNTY_OFFICE, Role.GUIDANCE_GROUP, Role.TOWNSHIP, Role.INSTRUCTOR}
)


class Organisation(BaseModel):
    """A grassroots party organisation (基层党组织); its secretary is the 第一责任人."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    type: OrgType
    township: str = Field(min_length=1)
    # The key of one of the county's guidance groups (``GuidanceGroup``); serialised as
    # the same string the six-value enum was, so recorded payloads read back unchanged.
    system: SystemKey
    instructor: str = Field(min_length=1, description="指导员姓名或账号")
    secretary: str = Field(min_length=1, description="书记姓名或账号")
    member_count: int = Field(ge=1, le=100_000)
    # The county (tenant) the organisation belongs to; never part of a roster file: the
    # import writes into the importing county office's county.
    county: str = Field(default=DEFAULT_COUNTY, min_length=1, max_length=64)
    # 少数民族聚居地区 (seed 002 §四's last paragraph): the plan may require extra steps of
    # such organisations (``PhasePlan.ethnic_area_steps``). Optional in the roster.
    ethnic_area: bool = Field(default=False, description="是否少数民族聚居地区")


class Supervisor(BaseModel):
    """One rung's addressee: who it is and in which capacity."""

    model_config = ConfigDict(frozen=True)

    role: Role
    key: str
    label: str


def supervisors_of(org: Organisation) -> dict[Role, Supervisor]:
    """The escalation ladder's addressees for ``org``, derived from the roster, not hard-coded."""
    return {
        Role.SECRETARY: Supervisor(
            role=Role.SECRETARY, key=org.secretary, label=f"{org.name}书记{org.secretary}"
        ),
        Role.INSTRUCTOR: Supervisor(
            role=Role.INSTRUCTOR, key=org.instructor, label=f"指导员{org.instructor}"
        ),
        Role.TOWNSHIP: Supervisor(
            role=Role.TOWNSHIP, key=org.township, label=f"{org.township}党委"
        ),
        Role.GUIDANCE_GROUP: Supervisor(
            role=Role.GUIDANCE_GROUP, key=org.system, label=system_label(org.system)
        ),
        Role.COUNTY_OFFICE: Supervisor(
            role=Role.COUNTY_OFFICE, key="county", label="县委创先争优活动领导小组办公室"
        ),
    }


class Roster(BaseModel):
    """The county's organisations; lookups by id, township, system and instructor."""

    model_config = ConfigDict(frozen=True)

    organisations: tuple[Organisation, ...]

    def by_id(self) -> dict[str, Organisation]:
        """Organisations keyed by id."""
        return {o.id: o for o in self.organisations}

    def townships(self) -> list[str]:
        """Township names in first-seen order."""
        return list(dict.fromkeys(o.township for o in self.organisations))

    def supervised_by(self, role: Role, key: str) -> list[Organisation]:
        """The organisations a supervisor of ``role`` identified by ``key`` watches."""
        return (
            [o for o in self.organisations if supervisors_of(o)[role].key == key]
            if (role in (Role.INSTRUCTOR, Role.TOWNSHIP, Role.GUIDANCE_GROUP, Role.SECRETARY))
            else list(self.organisations)
        )

    def in_scope(
        self, *, types: Iterable[OrgType] | None, townships: Iterable[str] | None
    ) -> list[Organisation]:
        """Organisations a round's scope covers (None means no restriction)."""
        type_set = set(types) if types is not None else None
        township_set = set(townships) if townships is not None else None
        return [
            o
            for o in self.organisations
            if (type_set is None or o.type in type_set)
            and (township_set is None or o.township in township_set)
        ]
