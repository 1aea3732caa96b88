"""The party-member roster (党员名册): who belongs to which organisation.

The county roster (:mod:`domain.roster_import`) only counts members; commitments need names,
so each organisation's members are imported from a table with the columns 组织编号, 党员姓名,
党员编号. Import is all or nothing, like the county roster: every bad cell of every row is
reported as "第n行·表头", and a file with any error imports nothing, because a half-imported
list would make the coverage guard count against the wrong roster.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field

from domain.errors import FieldError, ValidationFailed
from domain.text import TextRefused, clean_id, clean_name, visible_text

HEADER_ORG = "组织编号"
HEADER_NAME = "党员姓名"
HEADER_MEMBER_ID = "党员编号"
MEMBER_HEADERS: tuple[str, ...] = (HEADER_ORG, HEADER_NAME, HEADER_MEMBER_ID)

_MAX_ID_LENGTH = 64
_MAX_NAME_LENGTH = 50


class PartyMember(BaseModel):
    """One party member (党员) of one organisation; ``member_id`` is their 党员编号."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    org_id: str = Field(min_length=1, max_length=_MAX_ID_LENGTH)
    member_id: str = Field(min_length=1, max_length=_MAX_ID_LENGTH)
    name: str = Field(min_length=1, max_length=_MAX_NAME_LENGTH)


class MemberRoster(BaseModel):
    """The members of the organisations a file names, in file order."""

    model_config = ConfigDict(frozen=True)

    members: tuple[PartyMember, ...]

    def by_organisation(self) -> dict[str, list[PartyMember]]:
        """Members grouped by organisation, organisations in first-seen order."""
        grouped: dict[str, list[PartyMember]] = {}
        for member in self.members:
            grouped.setdefault(member.org_id, []).append(member)
        return grouped


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # spreadsheets turn 党员编号 0012 into 12.0; keep what is left
    return str(value).strip()


def _fail(errors: list[FieldError]) -> ValidationFailed:
    return ValidationFailed(errors, code="invalid_roster")


# How each cell is cleaned (domain.text): ids in NFKC, so ``Ｍ００１`` and ``M\u200b001`` are
# the member ``M001`` rather than a second one that looks the same; names with invisible
# characters removed and full-width letters and digits folded.
_CLEANERS = {HEADER_ORG: clean_id, HEADER_NAME: clean_name, HEADER_MEMBER_ID: clean_id}


def parse_members(
    rows: Sequence[Mapping[str, object]],
    *,
    known_orgs: Collection[str],
    first_row_number: int = 2,
) -> MemberRoster:
    """Validate member rows into a :class:`MemberRoster`, or raise :class:`ValidationFailed`
    (code ``invalid_roster``) listing every problem of every row.

    ``known_orgs`` are the organisations the importer may fill (the roster's organisations
    within the caller's scope): any other 组织编号 is refused without saying whether it exists.
    """
    tables = [
        {visible_text(key): _cell(value) for key, value in row.items() if isinstance(key, str)}
        for row in rows
    ]
    headers = {key for cells in tables for key in cells}
    missing = [h for h in MEMBER_HEADERS if h not in headers]
    if missing:
        raise _fail([FieldError(field=f"表头·{h}", reason=f"缺少必填列“{h}”") for h in missing])

    errors: list[FieldError] = []
    members: list[PartyMember] = []
    first_row_of: dict[tuple[str, str], int] = {}
    for index, cells in enumerate(tables):
        if not any(visible_text(value) for value in cells.values()):
            continue  # trailing blank lines (or ones that look blank)
        row_number = first_row_number + index
        row_errors: list[FieldError] = []

        def error(
            header: str, reason: str, row: int = row_number, into: list[FieldError] = row_errors
        ) -> None:
            into.append(FieldError(field=f"第{row}行·{header}", reason=reason))

        cleaned: dict[str, str] = {}
        refused: set[str] = set()
        for header in MEMBER_HEADERS:
            try:
                cleaned[header] = _CLEANERS[header](cells.get(header, ""))
            except TextRefused as exc:
                cleaned[header] = ""
                refused.add(header)
                error(header, exc.reason)
        org_id, name, member_id = (cleaned[h] for h in MEMBER_HEADERS)
        if HEADER_ORG in refused:
            pass
        elif not org_id:
            error(HEADER_ORG, "不能为空")
        elif org_id not in known_orgs:
            error(HEADER_ORG, f"“{org_id}”不在组织名册中或无权导入")
        if HEADER_NAME in refused:
            pass
        elif not name:
            error(HEADER_NAME, "不能为空")
        elif len(name) > _MAX_NAME_LENGTH:
            error(HEADER_NAME, f"不能超过{_MAX_NAME_LENGTH}个字")
        if HEADER_MEMBER_ID in refused:
            pass
        elif not member_id:
            error(HEADER_MEMBER_ID, "不能为空")
        elif len(member_id) > _MAX_ID_LENGTH:
            error(HEADER_MEMBER_ID, f"不能超过{_MAX_ID_LENGTH}个字符")
        elif any(ch.isspace() for ch in member_id):
            error(HEADER_MEMBER_ID, "不能包含空格")  # ids end up in URLs
        elif (org_id, member_id) in first_row_of:
            error(HEADER_MEMBER_ID, f"“{member_id}”与第{first_row_of[(org_id, member_id)]}行重复")
        else:
            first_row_of[(org_id, member_id)] = row_number
        if row_errors:
            errors.extend(row_errors)
            continue
        members.append(PartyMember(org_id=org_id, member_id=member_id, name=name))

    if errors:
        raise _fail(errors)
    if not members:
        raise _fail([FieldError(field="名册", reason="名册中没有任何党员")])
    return MemberRoster(members=tuple(members))


__all__ = ["MEMBER_HEADERS", "MemberRoster", "PartyMember", "parse_members"]
