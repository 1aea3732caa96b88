"""A notice as the recipient reads it: a mail (subject, plain text) or a robot's markdown.

The notice's own title and body (composed in ``domain.notices``) already say who is late,
with which step, the deadline, how many working days overdue and what is expected; this
module frames them for the channel and adds the link to the organisation's page.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.notices import Notice

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


def notice_url(notice: Notice, base_url: str) -> str:
    """The absolute link to the organisation's page for the notice's round."""
    return f"{base_url.rstrip('/')}{notice.link_path}"


def _kind_line(notice: Notice) -> str:
    """The notice's kind, with the ladder's rung when it has one (督办 is escalated in rungs)."""
    rung = f"（第{notice.rung}级）" if notice.rung is not None else ""
    return f"{notice.kind.label}{rung}"


def render_mail(notice: Notice, base_url: str) -> MailContent:
    """The mail: the notice's title as subject; facts, body, link and notice id in the text.

    The notice id is printed so a recipient (or a help desk) can quote it.
    """
    lines = [
        f"致：{notice.recipient_label}",
        "",
        notice.body,
        "",
        f"单位：{notice.org_name}",
        f"阶段：{notice.phase.label}",
        f"类别：{_kind_line(notice)}",
        f"详情及签收：{notice_url(notice, base_url)}",
        "",
        FOOTER,
        f"通知编号：{notice.notice_id}",
    ]
    return MailContent(subject=notice.title, text="\n".join(lines) + "\n")


def render_markdown(notice: Notice, base_url: str, max_bytes: int | None = None) -> MarkdownContent:
    """The robot message in the markdown subset both WeCom and DingTalk render.

    Robots refuse over-long messages (WeCom: 4096 bytes of markdown); with ``max_bytes`` the
    body is shortened so the title, the facts and the link always arrive.
    """

    def compose(body: str) -> str:
        return "\n".join(
            [
                f"### {notice.title}",
                f"> 致：{notice.recipient_label}",
                f"> 单位：{notice.org_name}　阶段：{notice.phase.label}",
                f"> 类别：{_kind_line(notice)}",
                "",
                body,
                "",
                f"[查看详情并签收]({notice_url(notice, base_url)})",
                "",
                FOOTER,
            ]
        )

    text = compose(notice.body)
    overflow = len(text.encode("utf-8")) - max_bytes if max_bytes is not None else 0
    if overflow > 0:
        body_bytes = len(notice.body.encode("utf-8"))
        text = compose(truncate_utf8(notice.body, max(body_bytes - overflow, 0)))
    return MarkdownContent(title=notice.title, text=text)


def truncate_utf8(text: str, limit: int, marker: str = "……") -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, ending in ``marker`` when cut."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    room = max(limit - len(marker.encode("utf-8")), 0)
    # errors="ignore" drops a multi-byte character split by the cut instead of failing.
    return data[:room].decode("utf-8", errors="ignore") + marker
