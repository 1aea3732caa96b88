"""Turn a county roster table (rows keyed by Chinese headers) into a :class:`Roster`.

Pure: the caller reads the file (``activities/roster_files.py``) and hands over the rows.
Import is all or nothing: every bad cell of every row is reported with its row number and
header, and a roster with any error imports nothing, because a half-imported county would
start rounds for some organisations and silently miss others.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence

from pydantic import PrivateAttr, ValidationError

from domain.errors import FieldError, ValidationFailed
from domain.organisation import (
    ORG_TYPE_LABELS,
    SEED_002_KEYS,
    SEED_002_SYSTEMS,
    GuidanceGroup,
    Organisation,
    OrgType,
    Roster,
    is_system_key,
    system_label,
)
from domain.text import TextRefused, clean_id, clean_name, clean_text, visible_text

HEADER_ID = "组织编号"
HEADER_NAME = "组织名称"
HEADER_TYPE = "组织类型"
HEADER_TOWNSHIP = "所属乡镇"
HEADER_SYSTEM = "所属系统"
HEADER_MEMBERS = "党员人数"
HEADER_SECRETARY = "书记"
HEADER_INSTRUCTOR = "指导员"
# Optional (seed 002 §四): 是/否; blank or a roster without the column means 否.
HEADER_ETHNIC_AREA = "少数民族聚居地区"
# Optional (issue 15): the guidance group's key, written beside 所属系统 for groups a county
# defined itself, so a file written without the county's data (the round's snapshot) reads
# back to the same key. When filled it decides the group (checked against the county's).
HEADER_SYSTEM_KEY = "所属系统编号"

# Column order of an exported roster (and of the demo roster).
ROSTER_HEADERS: tuple[str, ...] = (
    HEADER_ID,
    HEADER_NAME,
    HEADER_TYPE,
    HEADER_TOWNSHIP,
    HEADER_SYSTEM,
    HEADER_MEMBERS,
    HEADER_SECRETARY,
    HEADER_INSTRUCTOR,
)
# Columns a roster may carry; written by :func:`roster_headers` only when some organisation
# needs them, so rosters without them keep their shape.
OPTIONAL_HEADERS: tuple[str, ...] = (HEADER_ETHNIC_AREA, HEADER_SYSTEM_KEY)
# 组织编号 may be left out: ids are then derived from the names (see derive_org_id).
REQUIRED_HEADERS: tuple[str, ...] = tuple(h for h in ROSTER_HEADERS if h != HEADER_ID)

# Which header each Organisation field comes from (to place pydantic's errors).
_FIELD_HEADERS: dict[str, str] = {
    "id": HEADER_ID,
    "name": HEADER_NAME,
    "type": HEADER_TYPE,
    "township": HEADER_TOWNSHIP,
    "system": HEADER_SYSTEM,
    "member_count": HEADER_MEMBERS,
    "secretary": HEADER_SECRETARY,
    "instructor": HEADER_INSTRUCTOR,
    "ethnic_area": HEADER_ETHNIC_AREA,
}

# How clerks write yes and no in the optional 是/否 columns.
_YES = frozenset({"是", "y", "yes", "true", "1", "√", "✓"})
_NO = frozenset({"", "否", "n", "no", "false", "0", "×"})

_MAX_ID_LENGTH = 64
_MAX_NAME_LENGTH = 200
# Townships, secretaries and instructors name accounts ("instructor-<姓名>", "township-<乡镇>")
# whose usernames must fit the 64-character column.
_MAX_PERSON_LENGTH = 50
_MAX_MEMBERS = 100_000
# An id is a path segment of every URL naming the organisation: nothing that ends or
# escapes a segment. Control characters (refused by PostgreSQL (NUL), by the XML of every
# .xlsx export and by api.security in paths) never get this far: every cell goes through
# domain.text, which refuses them and bidirectional overrides and removes invisible format
# characters, so a look-alike cell (``王二\u200b``) is the same person, not a new account.
_ID_FORBIDDEN = re.compile(r"[/\\?#%]")
# How each cell is cleaned (domain.text): ids compare in NFKC (``ｏｒｇ－１`` is ``org-1``);
# the people and townships that name accounts fold full-width letters and digits; the rest
# keep their width (an organisation's name may be hashed into its id).
_CLEANERS: dict[str, Callable[[str], str]] = {
    HEADER_ID: clean_id,
    HEADER_SYSTEM_KEY: clean_id,
    HEADER_TOWNSHIP: clean_name,
    HEADER_SECRETARY: clean_name,
    HEADER_INSTRUCTOR: clean_name,
}


def _normalise(text: str) -> str:
    """Lookup key: clerks mix half- and full-width brackets and letter case."""
    return text.strip().replace("(", "（").replace(")", "）").replace(" ", "").lower()


def _type_aliases() -> dict[str, OrgType]:
    aliases: dict[str, OrgType] = {}
    for org_type, label in ORG_TYPE_LABELS.items():
        aliases[_normalise(label)] = org_type
        aliases[_normalise(org_type.value)] = org_type
    # Short forms seen in county spreadsheets.
    aliases.update(
        {
            _normalise("社区"): OrgType.COMMUNITY,
            _normalise("高校"): OrgType.UNIVERSITY,
            _normalise("国企"): OrgType.STATE_ENTERPRISE,
            _normalise("非公企业"): OrgType.PRIVATE_ENTERPRISE,
        }
    )
    return aliases


def system_aliases(groups: Sequence[GuidanceGroup]) -> dict[str, str]:
    """How a roster may name each of ``groups`` in 所属系统: key, full label, name, the name
    without "指导小组", or the leading department. Earlier groups win a shared alias."""
    aliases: dict[str, str] = {}
    for group in reversed(groups):
        # "农村基层组织指导小组（县农委）" is also known as "农村基层组织" and as "县农委".
        short = group.name.removesuffix("指导小组")
        for alias in (group.label, group.key, group.name, short, group.department):
            if alias:
                aliases[_normalise(alias)] = group.key
    return aliases


_TYPES = _type_aliases()
_SEED_SYSTEMS = system_aliases(SEED_002_SYSTEMS)


def derive_org_id(name: str) -> str:
    """A stable id for a roster without 组织编号: the same name always gives the same id."""
    return "org-" + hashlib.sha1(name.encode("utf-8")).hexdigest()[:12]


def organisation_row(
    org: Organisation, groups: Mapping[str, GuidanceGroup] | None = None
) -> dict[str, str]:
    """One organisation as a roster row with Chinese labels (the inverse of parsing); the
    optional 少数民族聚居地区 cell only for a flagged organisation.

    所属系统 is the group's label from ``groups`` (the county's data), else the seed's label
    (the key for a group neither knows); a group seed 002 does not name also gets its key
    in 所属系统编号, so the row reads back to the same key with or without the county's
    data (the round's roster snapshot is read by activities that have none)."""
    group = groups.get(org.system) if groups is not None else None
    system = group.label if group is not None else _seed_label_or_key(org.system)
    row = {
        HEADER_ID: org.id,
        HEADER_NAME: org.name,
        HEADER_TYPE: org.type.label,
        HEADER_TOWNSHIP: org.township,
        HEADER_SYSTEM: system,
        HEADER_MEMBERS: str(org.member_count),
        HEADER_SECRETARY: org.secretary,
        HEADER_INSTRUCTOR: org.instructor,
    }
    if org.ethnic_area:
        row[HEADER_ETHNIC_AREA] = "是"
    if org.system not in SEED_002_KEYS:
        row[HEADER_SYSTEM_KEY] = org.system
    return row


def _seed_label_or_key(key: str) -> str:
    """The seed's label of a seed group, else the key itself."""
    return system_label(key) if key in SEED_002_KEYS else key


def roster_headers(roster: Roster) -> tuple[str, ...]:
    """The columns to write ``roster`` with: :data:`ROSTER_HEADERS`, plus
    少数民族聚居地区 when some organisation is flagged and 所属系统编号 when some is in a
    group seed 002 does not name (so seed-only rosters keep their shape)."""
    headers = ROSTER_HEADERS
    if any(o.ethnic_area for o in roster.organisations):
        headers = (*headers, HEADER_ETHNIC_AREA)
    if any(o.system not in SEED_002_KEYS for o in roster.organisations):
        headers = (*headers, HEADER_SYSTEM_KEY)
    return headers


def _cell(value: object) -> str:
    """A cell as trimmed text; spreadsheet numbers like 18.0 read as "18"."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _member_count(text: str) -> int | str:
    """The member count, or the reason it is not one."""
    if not text:
        return "不能为空"
    try:
        count = int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            return f"“{text}”不是整数"
        if not number.is_integer():
            return f"“{text}”不是整数"
        count = int(number)
    if count < 1:
        return "应为不小于1的整数"
    if count > _MAX_MEMBERS:
        return f"不能超过{_MAX_MEMBERS}"
    return count


def _choices(labels: Mapping[OrgType, str]) -> str:
    return "、".join(f"{label}（{key.value}）" for key, label in labels.items())


def _clean_cells(cells: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The row's cells cleaned (``_CLEANERS``), and the reason of each cell refused."""
    cleaned: dict[str, str] = {}
    refused: dict[str, str] = {}
    for header, value in cells.items():
        try:
            cleaned[header] = _CLEANERS.get(header, clean_text)(value)
        except TextRefused as exc:
            cleaned[header], refused[header] = "", exc.reason
    return cleaned, refused


class _RowReader:
    """Reads one row, collecting its errors under "第n行·表头"."""

    def __init__(
        self, row_number: int, cells: Mapping[str, str], groups: _Groups | None = None
    ) -> None:
        self.row_number = row_number
        self.cells, self.refused = _clean_cells(cells)
        self.groups = groups
        self.errors: list[FieldError] = []

    def error(self, header: str, reason: str) -> None:
        self.errors.append(FieldError(field=f"第{self.row_number}行·{header}", reason=reason))

    def was_refused(self, header: str) -> bool:
        """Whether the cell was refused by domain.text; its error is reported here, where
        the cell is read, so errors keep the order the cells are checked in."""
        reason = self.refused.get(header)
        if reason is not None:
            self.error(header, reason)
        return reason is not None

    def text(self, header: str, *, max_length: int | None = None) -> str:
        value = self.cells.get(header, "")
        if self.was_refused(header):
            return value
        if not value:
            self.error(header, "不能为空")
        elif max_length is not None and len(value) > max_length:
            self.error(header, f"不能超过{max_length}个字")
        return value

    def org_type(self) -> OrgType | None:
        value = self.cells.get(HEADER_TYPE, "")
        if self.was_refused(HEADER_TYPE):
            return None
        if not value:
            self.error(HEADER_TYPE, "不能为空")
            return None
        found = _TYPES.get(_normalise(value))
        if found is None:
            self.error(
                HEADER_TYPE, f"“{value}”不是可识别的组织类型，应为：{_choices(ORG_TYPE_LABELS)}"
            )
        return found

    def system(self) -> str | None:
        key = self.cells.get(HEADER_SYSTEM_KEY, "")
        if self.was_refused(HEADER_SYSTEM_KEY):
            return None
        if key:
            # The group's key, as ``organisation_row`` writes it beside the name.
            if not is_system_key(key):
                self.error(HEADER_SYSTEM_KEY, f"“{key}”应为小写字母、数字或 _，以字母开头")
                return None
            if self.groups is not None and key not in self.groups.keys:
                self.error(HEADER_SYSTEM_KEY, f"“{key}”不是本县已设立的指导小组的编号")
                return None
            return key
        value = self.cells.get(HEADER_SYSTEM, "")
        if self.was_refused(HEADER_SYSTEM):
            return None
        if not value:
            self.error(HEADER_SYSTEM, "不能为空")
            return None
        if self.groups is None:
            # No county data at hand (a file checked on its own): seed 002's six.
            found = _SEED_SYSTEMS.get(_normalise(value))
            if found is None:
                choices = "、".join(f"{g.label}（{g.key}）" for g in SEED_002_SYSTEMS)
                self.error(HEADER_SYSTEM, f"“{value}”不是可识别的系统，应为：{choices}")
            return found
        found = self.groups.aliases.get(_normalise(value))
        if found is None:
            self.error(
                HEADER_SYSTEM,
                f"“{value}”不是本县已设立的指导小组，应为：{self.groups.choices}"
                "（新的指导小组请县委活动办先在“指导小组”页面设立）",
            )
        return found

    def ethnic_area(self) -> bool:
        value = self.cells.get(HEADER_ETHNIC_AREA, "")
        if self.was_refused(HEADER_ETHNIC_AREA):
            return False
        key = value.strip().lower()
        if key in _YES:
            return True
        if key not in _NO:
            self.error(HEADER_ETHNIC_AREA, f"“{value}”应为“是”或“否”（也可留空，表示否）")
        return False

    def member_count(self) -> int | None:
        if self.was_refused(HEADER_MEMBERS):
            return None
        result = _member_count(self.cells.get(HEADER_MEMBERS, ""))
        if isinstance(result, str):
            self.error(HEADER_MEMBERS, result)
            return None
        return result


class _Groups:
    """A county's guidance groups as the reader looks them up (built once per file)."""

    def __init__(self, groups: Sequence[GuidanceGroup]) -> None:
        self.aliases = system_aliases(groups)
        self.keys = frozenset(g.key for g in groups)
        listed = "、".join(f"{g.label}（{g.key}）" for g in groups)
        self.choices = listed or "（本县尚未设立指导小组）"


def _fail(errors: list[FieldError]) -> ValidationFailed:
    return ValidationFailed(errors, code="invalid_roster")


class ParsedRoster(Roster):
    """A :class:`Roster` as :func:`parse_roster` read it, which also knows the sheet row of
    each organisation (:func:`sheet_rows`), for errors found after parsing (an id another
    county uses): blank rows are skipped, so an organisation's position is not its row.

    The rows are a private attribute, so they travel with the roster (pickled out of the
    API's parse processes) without being a field (payloads and ``model_dump`` unchanged),
    and equality ignores them: a parsed roster equals the Roster of the same organisations.
    """

    _sheet_rows: dict[str, int] = PrivateAttr(default_factory=dict)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Roster):
            return self.organisations == other.organisations
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.organisations)


def sheet_rows(roster: Roster, *, first_row_number: int = 2) -> dict[str, int]:
    """The sheet row each organisation of ``roster`` came from (org id → row number), for
    errors in the "第n行·表头" form. For a roster not read by :func:`parse_roster` (built in
    code), its position counted from ``first_row_number``."""
    if isinstance(roster, ParsedRoster):
        return dict(roster._sheet_rows)
    return {org.id: first_row_number + n for n, org in enumerate(roster.organisations)}


def parse_roster(
    rows: Sequence[Mapping[str, object]],
    *,
    first_row_number: int = 2,
    groups: Sequence[GuidanceGroup] | None = None,
) -> Roster:
    """Validate roster rows into a :class:`Roster`, or raise :class:`ValidationFailed`
    (code ``invalid_roster``) listing every problem of every row.

    ``rows`` are keyed by the Chinese headers (``ROSTER_HEADERS``); 组织类型 and 所属系统
    accept the Chinese label or the English id. ``first_row_number`` is the spreadsheet row
    of ``rows[0]`` (2 when row 1 holds the headers), so errors point at the row a clerk
    sees. Entirely blank rows are skipped; a blank 组织编号 is derived from the name.

    ``groups`` are the importing county's guidance groups (issue 15): 所属系统 must name one
    of them (key, label, name or leading department), else the row's error lists them; a
    roster never creates a group (a clerk's typo would otherwise become a new group with an
    account); the county office defines new ones first. Without ``groups`` the seed's six
    are read. An optional 所属系统编号 column names the group by key instead (what the
    service writes for a county's own groups, e.g. in the round's snapshot); with
    ``groups`` it must be one of them.
    """
    tables = [
        {visible_text(key): _cell(value) for key, value in row.items() if isinstance(key, str)}
        for row in rows
    ]
    headers = {key for cells in tables for key in cells}
    missing = [h for h in REQUIRED_HEADERS if h not in headers]
    if missing:
        # Without the column every row would fail the same way; one error per header says it.
        raise _fail([FieldError(field=f"表头·{h}", reason=f"缺少必填列“{h}”") for h in missing])

    county_groups = _Groups(groups) if groups is not None else None
    errors: list[FieldError] = []
    organisations: list[Organisation] = []
    first_row_of_id: dict[str, int] = {}
    row_of_org: dict[str, int] = {}
    for index, cells in enumerate(tables):
        if not any(visible_text(value) for value in cells.values()):
            continue  # spreadsheets often end with blank lines (or ones that look blank)
        reader = _RowReader(first_row_number + index, cells, county_groups)
        name = reader.text(HEADER_NAME, max_length=_MAX_NAME_LENGTH)
        org_type = reader.org_type()
        township = reader.text(HEADER_TOWNSHIP, max_length=_MAX_PERSON_LENGTH)
        system = reader.system()
        member_count = reader.member_count()
        secretary = reader.text(HEADER_SECRETARY, max_length=_MAX_PERSON_LENGTH)
        instructor = reader.text(HEADER_INSTRUCTOR, max_length=_MAX_PERSON_LENGTH)
        ethnic_area = reader.ethnic_area()

        org_id = reader.cells.get(HEADER_ID, "")
        id_header = HEADER_ID
        if not reader.was_refused(HEADER_ID) and not org_id and name:
            org_id, id_header = derive_org_id(name), HEADER_NAME
        if not org_id:
            pass  # refused above, or no name to derive it from (reported as 组织名称)
        elif len(org_id) > _MAX_ID_LENGTH:
            reader.error(HEADER_ID, f"不能超过{_MAX_ID_LENGTH}个字符")
        elif any(ch.isspace() for ch in org_id):
            # Ids end up in workflow ids and URLs.
            reader.error(HEADER_ID, "不能包含空格")
        elif _ID_FORBIDDEN.search(org_id):
            reader.error(HEADER_ID, "不能包含 / \\ ? # %")
        elif org_id in first_row_of_id:
            earlier = first_row_of_id[org_id]
            if id_header == HEADER_ID:
                reader.error(HEADER_ID, f"“{org_id}”与第{earlier}行重复")
            else:
                reader.error(
                    HEADER_NAME, f"与第{earlier}行重名，无法生成唯一的组织编号，请填写组织编号"
                )
        else:
            first_row_of_id[org_id] = reader.row_number

        if reader.errors or org_type is None or system is None or member_count is None:
            errors.extend(reader.errors)
            continue
        try:
            organisations.append(
                Organisation(
                    id=org_id,
                    name=name,
                    type=org_type,
                    township=township,
                    system=system,
                    member_count=member_count,
                    secretary=secretary,
                    instructor=instructor,
                    ethnic_area=ethnic_area,
                )
            )
            row_of_org[org_id] = reader.row_number
        except ValidationError as exc:  # rules the checks above do not repeat
            for problem in exc.errors():
                field = str(problem["loc"][0]) if problem["loc"] else ""
                reader.error(_FIELD_HEADERS.get(field, "(行)"), f"不符合要求（{problem['msg']}）")
            errors.extend(reader.errors)

    if errors:
        raise _fail(errors)
    if not organisations:
        raise _fail([FieldError(field="名册", reason="名册中没有任何组织")])
    roster = ParsedRoster(organisations=tuple(organisations))
    roster._sheet_rows = row_of_org
    return roster


__all__ = [
    "HEADER_ETHNIC_AREA",
    "HEADER_SYSTEM_KEY",
    "OPTIONAL_HEADERS",
    "REQUIRED_HEADERS",
    "ROSTER_HEADERS",
    "ParsedRoster",
    "derive_org_id",
    "organisation_row",
    "parse_roster",
    "roster_headers",
    "sheet_rows",
    "system_aliases",
]
