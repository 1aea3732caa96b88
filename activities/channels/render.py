"""A notice as the recipient reads it: a mail (subject, plain text) or a robot's markdown.

A notice's own title and body (composed in ``domain.notices``) already say who is late,
with which step, the deadline, how many working days overdue and what is expected; a
digest's body lists a supervisor's laggards. This module frames any :class:`Outgoing` for
the channel and adds the link to the page it is about.
"""

from __future__ import annotations

from dataclasses import dataclass

from activities.channels.message import Outgoing

#: Signed at the bottom of every message: who sends it and that replies are not read.
SENDER = "县委创先争优活动领导小组办公室"
FOOTER = f"—— {SENDER}（系统自动发送，请勿直接回复）"


@dataclass(frozen=True)
class MailContent:
    """Subject and plain-text body of a mail."""

    subject: str
    text: str


@dataclass(frozen=True)
class MarkdownContent:
    """Title (shown in chat notifications) and markdown text of a robot message."""

    title: str
    text: str


def notice_url(message: Outgoing, base_url: str) -> str:
    """The absolute link to the page the message is about."""
    return f"{base_url.rstrip('/')}{message.link_path}"


def render_mail(message: Outgoing, base_url: str) -> MailContent:
    """The mail: the title as subject; body, facts, link and message id in the text.

    The id is printed so a recipient (or a help desk) can quote it.
    """
    lines = [
        f"致：{message.recipient_label}",
        "",
        message.body,
        "",
        *(f"{label}：{value}" for label, value in message.facts),
        f"详情及签收：{notice_url(message, base_url)}",
        "",
        FOOTER,
        f"通知编号：{message.message_id}",
    ]
    return MailContent(subject=message.title, text="\n".join(lines) + "\n")


def render_markdown(
    message: Outgoing, base_url: str, max_bytes: int | None = None
) -> MarkdownContent:
    """The robot message in the markdown subset both WeCom and DingTalk render.

    Robots refuse over-long messages (WeCom: 4096 bytes of markdown); with ``max_bytes`` the
    body is shortened so the title, the facts and the link always arrive.
    """

    def compose(body: str) -> str:
        return "\n".join(
            [
                f"### {message.title}",
                f"> 致：{message.recipient_label}",
                *(f"> {label}：{value}" for label, value in message.facts),
                "",
                body,
                "",
                f"[查看详情并签收]({notice_url(message, base_url)})",
                "",
                FOOTER,
            ]
        )

    text = compose(message.body)
    overflow = len(text.encode("utf-8")) - max_bytes if max_bytes is not None else 0
    if overflow > 0:
        body_bytes = len(message.body.encode("utf-8"))
        text = compose(truncate_utf8(message.body, max(body_bytes - overflow, 0)))
    return MarkdownContent(title=message.title, text=text)


def truncate_utf8(text: str, limit: int, marker: str = "……") -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, ending in ``marker`` when cut."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    room = max(limit - len(marker.encode("utf-8")), 0)
    # errors="ignore" drops a multi-byte character split by the cut instead of failing.
    return data[:room].decode("utf-8", errors="ignore") + marker
