"""What submitted evidence must satisfy that only the read model knows, checked before the
Update that submits it: the workflow holds neither the uploaded files nor the members' names,
and its validator must stay as recorded histories ran (a new rule there would refuse, on
replay, what was once accepted). Every route that submits evidence calls
:func:`check_evidence` first: the API's ``…/submissions``, the secretary's page, the
commitment ledger's ``…/commitments/step``.

- A file reference (``{name, sha256}``) names a file uploaded for this round and organisation
  (:func:`require_uploaded`, which the commitment ledger's 践诺 entries use too): a forged
  or stale digest would leave the upper level a link to nothing.
- A plain list of member commitments (``[{member, content, due}]``, what the page sends)
  names members of the organisation's 党员名册, and no due date is before the phase opened;
  the ledger's shape (``{members, commitments, absences}``) names rostered members only.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.orm import Session

from activities.member_store import active_members
from activities.tables import CampaignStatusRow, PhaseStatusRow, UploadedFileRow
from chuangzheng.services.errors import InvalidInput
from domain.calendar import local_date

#: Why a file reference is refused.
NOT_UPLOADED = "文件尚未上传，请先通过 files 接口上传"
_HEX = frozenset("0123456789abcdef")


def _invalid(problems: list[dict[str, str]]) -> InvalidInput:
    return InvalidInput("invalid_evidence", problems[0]["reason"], problems)


def is_digest(value: Any) -> bool:
    """Whether ``value`` is a sha256 as files are stored under (64 lowercase hex digits)."""
    return isinstance(value, str) and len(value) == 64 and set(value) <= _HEX


def require_uploaded(
    session: Session, round_id: str, org_id: str, sha256: str, *, field: str
) -> UploadedFileRow:
    """The file uploaded for ``round_id`` and ``org_id`` under ``sha256``; :class:`InvalidInput`
    naming ``field`` when there is none (another organisation's file, another round's, or a
    digest nobody uploaded)."""
    row = session.get(UploadedFileRow, f"{round_id}/{org_id}/{sha256}")
    if row is None:
        raise InvalidInput("invalid", NOT_UPLOADED, [{"field": field, "reason": NOT_UPLOADED}])
    return row


def _file_problems(
    session: Session, round_id: str, org_id: str, values: Mapping[str, Any]
) -> list[dict[str, str]]:
    problems = []
    for name, value in values.items():
        # A malformed reference is the workflow validator's to name (it says what is wrong
        # with it); a well-formed one must name a stored file.
        if isinstance(value, Mapping) and is_digest(value.get("sha256")):
            try:
                require_uploaded(
                    session, round_id, org_id, value["sha256"], field=f"evidence.{name}"
                )
            except InvalidInput as exc:
                problems.extend(exc.errors)
    return problems


def _aware(moment: datetime) -> datetime:
    # SQLite hands timestamps back without their zone; they are stored in UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _phase_opened(session: Session, round_id: str, org_id: str) -> date | None:
    """The local day the organisation's current phase opened (None if not recorded yet)."""
    status = session.get(CampaignStatusRow, (round_id, org_id))
    if status is None:
        return None
    phase = session.get(PhaseStatusRow, (round_id, org_id, status.phase))
    if phase is None or phase.opened_at is None:
        return None
    return local_date(_aware(phase.opened_at))


def _as_day(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        return None


class _Roster:
    """The organisation's current members, by id and by name (a line may give either)."""

    def __init__(self, session: Session, org_id: str) -> None:
        members = active_members(session, org_id)
        self.keys = {m.member_id for m in members} | {m.name for m in members}

    def __bool__(self) -> bool:
        return bool(self.keys)

    def __contains__(self, who: object) -> bool:
        return isinstance(who, str) and who.strip() in self.keys


_NO_ROSTER = "本组织尚未导入党员名册，无法核对承诺人；请先导入党员名册"


def _plain_list_problems(
    field: str, entries: list[Any], roster: _Roster, opened: date | None
) -> list[dict[str, str]]:
    if not roster:
        return [{"field": field, "reason": _NO_ROSTER}]
    problems = []
    for index, item in enumerate(entries, start=1):
        if not isinstance(item, Mapping):
            continue  # the workflow's validator names a malformed line
        member = str(item.get("member", "")).strip()
        if member and member not in roster:
            reason = f"第{index}条的承诺人“{member}”不在本组织党员名册中"
            problems.append({"field": field, "reason": reason})
        due = _as_day(item.get("due"))
        if due is not None and opened is not None and due < opened:
            reason = f"第{index}条的兑现日期 {due} 早于本阶段开始日期 {opened}"
            problems.append({"field": field, "reason": reason})
    return problems


def _ledger_problems(field: str, value: Mapping[str, Any], roster: _Roster) -> list[dict[str, str]]:
    named = [m for m in value.get("members") or [] if isinstance(m, str)]
    for key in ("commitments", "absences"):
        entries = value.get(key)
        if isinstance(entries, list):
            named += [str(e.get("member", "")) for e in entries if isinstance(e, Mapping)]
    strangers = [m for m in named if m.strip() and m not in roster]
    if not strangers:
        return []
    return [{"field": field, "reason": f"“{strangers[0].strip()}”不在本组织党员名册中"}]


def _commitment_problems(
    session: Session, round_id: str, org_id: str, values: Mapping[str, Any]
) -> list[dict[str, str]]:
    roster: _Roster | None = None
    problems = []
    for name, value in values.items():
        plain = (
            isinstance(value, list)
            and bool(value)
            and all(isinstance(i, Mapping) and "member" in i for i in value)
        )
        ledger = isinstance(value, Mapping) and "commitments" in value
        if not (plain or ledger):
            continue
        roster = roster if roster is not None else _Roster(session, org_id)
        field = f"evidence.{name}"
        if plain:
            opened = _phase_opened(session, round_id, org_id)
            problems += _plain_list_problems(field, value, roster, opened)
        else:
            problems += _ledger_problems(field, value, roster)
    return problems


def check_evidence(session: Session, round_id: str, org_id: str, values: Any) -> None:
    """Refuse (:class:`InvalidInput`, code ``invalid_evidence``, every problem with its
    field ``evidence.<name>``) what the workflow cannot check: file references not uploaded
    for this round and organisation, member commitments naming people off the roster or due
    before the phase opened. Values of another shape are the workflow validator's."""
    if not isinstance(values, Mapping):
        return
    problems = _file_problems(session, round_id, org_id, values)
    problems += _commitment_problems(session, round_id, org_id, values)
    if problems:
        raise _invalid(problems)
