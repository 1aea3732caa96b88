"""总结交流经验 (seed 002 §六(五) "了解活动进展，通报活动情况，总结交流经验"): a good-practice
briefing (简报) an organisation's secretary or a township submits, and the county office
selects and circulates to the supervisors of the round (inbox and channels, like a
circular). Pure: who may do what, the limits of a briefing and the circulated message's
words; no I/O.
"""

from __future__ import annotations

from enum import StrEnum

from domain.errors import FieldError
from domain.organisation import Role
from domain.text import refusal, visible_length

#: Who submits: an organisation's secretary (for it) or a township (for itself).
SUBMITTER_ROLES: frozenset[Role] = frozenset({Role.SECRETARY, Role.TOWNSHIP})
#: Who selects and circulates: the county leading group's office.
CIRCULATOR_ROLES: frozenset[Role] = frozenset({Role.COUNTY_OFFICE})
#: Who a circulated briefing goes to (each in the round's organisations' structure).
RECIPIENT_ROLES: tuple[Role, ...] = (Role.COUNTY_OFFICE, Role.GUIDANCE_GROUP, Role.TOWNSHIP)

TITLE_MIN, TITLE_MAX = 4, 100
TEXT_MIN, TEXT_MAX = 50, 20_000
NOTE_MAX = 1000
#: The circulated message carries the start of the text; the page has all of it.
EXCERPT = 300


class BriefingStatus(StrEnum):
    """Where a briefing stands."""

    SUBMITTED = "submitted"
    CIRCULATED = "circulated"

    @property
    def label(self) -> str:
        """Chinese name shown on the pages."""
        return {"submitted": "已报送", "circulated": "已选编交流"}[self.value]


def check_briefing(title: str, text: str) -> list[FieldError]:
    """The problems of a briefing's title and text, each naming its field."""
    errors: list[FieldError] = []
    # Counted as a reader sees them: zero-width characters made a "60-character" text of
    # nothing visible (an outside tester). A direction override is refused (domain.text).
    if reason := refusal(title):
        errors.append(FieldError("title", reason))
    elif not TITLE_MIN <= visible_length(title) <= TITLE_MAX:
        errors.append(FieldError("title", f"标题应为{TITLE_MIN}–{TITLE_MAX}个字"))
    if reason := refusal(text):
        errors.append(FieldError("text", reason))
    elif not TEXT_MIN <= visible_length(text) <= TEXT_MAX:
        errors.append(FieldError("text", f"正文应为{TEXT_MIN}–{TEXT_MAX}个字，写清做法和成效"))
    return errors


def check_note(note: str) -> list[FieldError]:
    """The problem of the county office's note (编者按), if any."""
    if reason := refusal(note):
        return [FieldError("note", reason)]
    if len(note.strip()) > NOTE_MAX:
        return [FieldError("note", f"编者按不能超过{NOTE_MAX}个字")]
    return []


def circulated_message(
    *, round_name: str, source: str, title: str, text: str, note: str
) -> tuple[str, str]:
    """The title and body of the message a circulated briefing sends."""
    excerpt = text.strip()
    if len(excerpt) > EXCERPT:
        excerpt = excerpt[:EXCERPT] + "……"
    body = f"县委创先争优活动领导小组办公室选编{source}的经验做法，供学习交流。\n"
    if note.strip():
        body += f"编者按：{note.strip()}\n"
    body += f"\n{excerpt}"
    return f"【经验交流】{round_name}：{title.strip()}（{source}）", body
