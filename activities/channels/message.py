"""What a channel sends: one message to one recipient, whatever produced it.

Escalation notices, daily digests and circular notices all reach people the same way, so
channels take an :class:`Outgoing` rather than a ``Notice``: its id (the delivery ledger's
key and the mail's ``Message-ID``), the recipient, title and body, the link, and a few
labelled facts shown above the body (the organisation, the phase, the notice's kind).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.notices import Notice
from domain.organisation import Role


@dataclass(frozen=True)
class Outgoing:
    """One message to one recipient, ready for any channel."""

    message_id: str
    recipient_role: Role
    recipient_key: str
    recipient_label: str
    title: str
    body: str
    link_path: str
    created_at: datetime
    #: (label, value) lines, e.g. ("单位", "东关村党支部"); empty for round-wide messages.
    facts: tuple[tuple[str, str], ...] = ()
    #: What the message is about, for its county (an organisation's, else a round's): the
    #: recipient's key is only unique within a county.
    org_id: str = ""
    round_id: str = ""


def _kind_line(notice: Notice) -> str:
    """The notice's kind, with the ladder's rung when it has one (督办 is escalated in rungs)."""
    rung = f"（第{notice.rung}级）" if notice.rung is not None else ""
    return f"{notice.kind.label}{rung}"


def from_notice(notice: Notice) -> Outgoing:
    """An escalation notice (reminder, 督办, 通报, 整改通知) as a message."""
    return Outgoing(
        message_id=notice.notice_id,
        recipient_role=notice.recipient_role,
        recipient_key=notice.recipient_key,
        recipient_label=notice.recipient_label,
        title=notice.title,
        body=notice.body,
        link_path=notice.link_path,
        created_at=notice.created_at,
        facts=(
            ("单位", notice.org_name),
            ("阶段", notice.phase.label),
            ("类别", _kind_line(notice)),
        ),
        org_id=notice.org_id,
        round_id=notice.round_id,
    )


#: Labels of the ``digests`` table's kinds (a daily digest, a circular's notice).
DIGEST_KIND_LABELS = {"digest": "每日督查摘要", "circular": "通报", "briefing": "经验交流简报"}


def from_digest_row(row: Mapping[str, Any]) -> Outgoing:
    """A ``digests`` row (a daily digest or a circular's notice) as a message."""
    return Outgoing(
        message_id=row["message_id"],
        recipient_role=Role(row["recipient_role"]),
        recipient_key=row["recipient_key"],
        recipient_label=row["recipient_label"],
        title=row["title"],
        body=row["body"],
        link_path=row["link_path"],
        created_at=row["created_at"],
        facts=(("类别", DIGEST_KIND_LABELS.get(row["kind"], row["kind"])),),
        round_id=row.get("round_id") or "",
    )
