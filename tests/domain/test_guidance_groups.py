"""A county's guidance groups as data (issue 15, seed 002 §六(二)): the groups a roster may
name, the organisation's validated key, and payloads that read back as before."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from domain.errors import ValidationFailed
from domain.organisation import (
    SEED_002_SYSTEMS,
    GuidanceGroup,
    Organisation,
    OrgType,
    Role,
    Roster,
    System,
    supervisors_of,
    system_label,
)
from domain.roster_import import ROSTER_HEADERS, organisation_row, parse_roster, roster_headers

COMMUNITY = GuidanceGroup(key="community", name="街道社区指导小组", department="县委组织部")
GROUPS = (*SEED_002_SYSTEMS, COMMUNITY)
HEAD = ("组织编号", "组织名称", "组织类型", "所属乡镇", "所属系统", "党员人数", "书记", "指导员")


def _row(org_id: str, system: str, org_type: str = "社区") -> dict[str, object]:
    values = (org_id, f"东街社区党支部{org_id}", org_type, "城关镇", system, 20, "赵书记", "钱指导")
    return dict(zip(HEAD, values, strict=True))


def test_the_seed_gives_six_groups_with_their_departments() -> None:
    assert [g.key for g in SEED_002_SYSTEMS] == [s.value for s in System]
    rural = SEED_002_SYSTEMS[0]
    assert (rural.name, rural.department) == ("农村基层组织指导小组", "县农委")
    assert rural.label == System.RURAL.label == "农村基层组织指导小组（县农委）"
    assert COMMUNITY.label == "街道社区指导小组（县委组织部）"
    assert GuidanceGroup(key="x1", name="某指导小组").label == "某指导小组"


def test_a_roster_names_a_county_group_by_name_department_or_key() -> None:
    rows = [
        _row("c-1", "街道社区指导小组"),
        _row("c-2", "县委组织部"),
        _row("c-3", "community"),
        _row("c-4", "街道社区"),
        _row("r-1", "县农委", "农村"),
    ]
    roster = parse_roster(rows, groups=GROUPS)
    assert [o.system for o in roster.organisations] == ["community"] * 4 + ["rural"]
    # An organisation of a type seed 002 gives no group (街道社区) is in the county's own.
    assert roster.organisations[0].type is OrgType.COMMUNITY


def test_a_group_the_county_has_not_defined_is_refused_naming_row_and_column() -> None:
    rows = [_row("c-1", "县农委"), _row("c-2", "街道社区指导小组")]
    with pytest.raises(ValidationFailed) as caught:
        parse_roster(rows, groups=SEED_002_SYSTEMS)
    errors = {e.field: e.reason for e in caught.value.errors}
    assert list(errors) == ["第3行·所属系统"]
    reason = errors["第3行·所属系统"]
    assert reason.startswith("“街道社区指导小组”不是本县已设立的指导小组")
    assert "农村基层组织指导小组（县农委）（rural）" in reason and "指导小组" in reason


def test_a_file_written_without_the_countys_data_reads_back_to_the_same_key() -> None:
    org = parse_roster([_row("c-1", "community")], groups=GROUPS).organisations[0]
    seed = parse_roster([_row("r-1", "rural", "农村")]).organisations[0]
    by_key = {g.key: g for g in GROUPS}
    # The round's snapshot: the county's name, and the key beside it for its own groups.
    assert organisation_row(org, by_key)["所属系统"] == COMMUNITY.label
    assert organisation_row(org, by_key)["所属系统编号"] == "community"
    assert organisation_row(seed)["所属系统"] == "农村基层组织指导小组（县农委）"
    assert "所属系统编号" not in organisation_row(seed)
    roster = parse_roster([organisation_row(org, by_key), organisation_row(seed)], groups=GROUPS)
    assert roster_headers(roster)[-1] == "所属系统编号"
    assert roster_headers(Roster(organisations=(seed,))) == ROSTER_HEADERS
    # Read back by an activity that has no county data: the key column decides.
    again = parse_roster([organisation_row(org, by_key), organisation_row(seed)])
    assert [o.system for o in again.organisations] == ["community", "rural"]
    # Without the county's data a file of a person names seed 002's six only.
    for name in ("街道社区指导小组", "community", "a"):
        with pytest.raises(ValidationFailed):
            parse_roster([_row("c-2", name)])
    # With it, a key column naming a group the county has not defined is refused there.
    with pytest.raises(ValidationFailed) as caught:
        parse_roster([dict(_row("c-3", "县农委"), 所属系统编号="nosuch")], groups=GROUPS)
    assert [e.field for e in caught.value.errors] == ["第2行·所属系统编号"]


def test_the_key_is_validated_and_serialised_as_the_enum_was() -> None:
    base = _row("r-1", "rural", "农村")
    org = parse_roster([base]).organisations[0]
    as_enum = org.model_copy(update={"system": System.RURAL})
    # Recorded payloads carried the enum's value: the same JSON both ways, and back.
    assert json.loads(org.model_dump_json())["system"] == "rural"
    assert (
        org.model_dump_json()
        == Organisation.model_validate(json.loads(as_enum.model_dump_json())).model_dump_json()
    )
    fields = org.model_dump() | {"system": System.HEALTH}
    assert Organisation.model_validate(fields).system == "health"
    for bad in ("Community", "社区", "", "a" * 33, "1abc", "com-munity"):
        with pytest.raises(ValidationError):
            Organisation.model_validate(org.model_dump() | {"system": bad})


def test_the_ladder_addresses_the_organisations_own_group() -> None:
    org = parse_roster([_row("c-1", "community")], groups=GROUPS).organisations[0]
    rung = supervisors_of(org)[Role.GUIDANCE_GROUP]
    assert rung.key == "community"
    # Inside a workflow (no county data) the label is a generic Chinese one, never the key;
    # with the county's data it is the county's name.
    assert "community" not in rung.label
    assert system_label("community", {"community": COMMUNITY}) == COMMUNITY.label
