"""Activation codes by e-mail, to the person alone (issue 12: "where channels are configured,
a message to the person").

A code goes out only to an address the channels file (``CZ_CHANNELS_FILE``, read with the
notifier's own loader) lists as the account's OWN: a ``recipients`` entry for its role and
key. Shared addresses (``role_addresses``: an office mailbox) and group robots are never
used, and neither is a personal entry whose address is also a shared one: a code read by a
group is no longer a secret. The mail says what the code is for, until when it works (Asia/
Shanghai), where to activate and what to do if it was not expected.

Nothing here keeps the code: it lives in the mail and in the answer shown to the
administrator, never in a log line (only the username and the error's type and text, with
any code scrubbed) or an audit row. Sending is blocking ``smtplib`` and refuses to run on an
event loop: the accounts service runs in worker threads (the API's threadpool, the CLI).
A batch (a township's list) shares one SMTP connection, so a relay that is down costs one
timeout, not one per person; a failed send is reported, never raised: the code is still
shown or printed.
"""

from __future__ import annotations

import asyncio
import functools
import smtplib
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from enum import StrEnum
from pathlib import Path

import structlog

from activities.channels.config import (
    EMAIL,
    ChannelsConfig,
    SmtpSettings,
    channels_file_from_env,
    load_channels_config,
)
from chuangzheng.settings import Settings
from domain.accounts import MIN_PASSWORD_LENGTH
from domain.calendar import SHANGHAI
from domain.organisation import DEFAULT_COUNTY, Role

log = structlog.get_logger(__name__)

SUBJECT = "创先争优活动管理系统账号激活码"


class IssueReason(StrEnum):
    """Why a code was issued: the mail's opening line says it."""

    CREATED = "created"
    RESET = "reset"
    ACTIVATION_LIST = "activation_list"


class MailOutcome(StrEnum):
    """What became of the mail for one issued code."""

    #: No personal e-mail address configured (or no channels file): nothing was sent.
    NONE = "none"
    SENT = "sent"
    FAILED = "failed"


_OPENINGS: dict[IssueReason, str] = {
    IssueReason.CREATED: "县委创先争优活动领导小组办公室为您开通了创先争优活动管理系统账号。",
    IssueReason.RESET: (
        "县委创先争优活动领导小组办公室重置了您在创先争优活动管理系统的账号，原密码已失效。"
    ),
    IssueReason.ACTIVATION_LIST: (
        "县委创先争优活动领导小组办公室为您签发了创先争优活动管理系统账号的激活码"
        "（与乡镇激活码名单上印发的相同）。"
    ),
}


def activation_url(public_base_url: str) -> str:
    """The address of the activation page, as printed and mailed."""
    return public_base_url.rstrip("/") + "/ui/activate"


@dataclass(frozen=True)
class CodeMail:
    """One code to one person's own address."""

    username: str
    display_name: str
    address: str
    code: str
    expires_at: datetime
    reason: IssueReason


@dataclass(frozen=True)
class CodeMailer:
    """The SMTP relay and the address book of a channels file, and the site's address."""

    config: ChannelsConfig
    smtp: SmtpSettings
    base_url: str
    #: Defaults to the system's trust store (as ``SmtpChannel``).
    tls_context: ssl.SSLContext | None = None

    def personal_address(
        self, role: Role, keys: Iterable[str], county: str = DEFAULT_COUNTY
    ) -> str | None:
        """The first ``recipients`` e-mail address for ``role`` under one of ``keys`` in
        ``county`` (the same name in another county is another person), unless it is also
        a shared (role) address; None when there is none."""
        shared = {
            address.strip().lower()
            for books in (self.config.role_addresses, *self.config.county_role_addresses.values())
            for book in books.values()
            for channel, address in book.items()
            if channel == EMAIL
        }
        for key in keys:
            for recipient in self.config.recipients:
                if recipient.role is not role or recipient.key != key:
                    continue
                if recipient.county != county:
                    continue
                address = recipient.addresses.get(EMAIL, "").strip()
                if not address:
                    continue
                if address.lower() in shared:
                    return None  # a shared mailbox entered as a person's: not for secrets
                return address
        return None

    def message(self, mail: CodeMail) -> EmailMessage:
        """The mail for ``mail`` (public so it can be previewed)."""
        s = self.smtp
        expires = mail.expires_at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
        url = activation_url(self.base_url)
        text = "\n".join(
            [
                f"{mail.display_name}：",
                "",
                _OPENINGS[mail.reason],
                "",
                f"账号：{mail.username}",
                f"激活码：{mail.code}",
                f"有效期至：{expires}（北京时间）",
                f"激活地址：{url}",
                "",
                f"激活方法：用浏览器打开激活地址，填写账号和激活码，设置不少于 "
                f"{MIN_PASSWORD_LENGTH} 位、不含账号的新密码。激活码只能使用一次，"
                "过期后请向县委活动办申请重置。",
                "",
                "如果您没有预期收到这封邮件：请不要使用这个激活码，也不要转发给任何人，"
                "并尽快告知县委活动办（可直接回复本邮件），由其停用或重置该账号；"
                "激活码过期后自动作废。",
                "",
                "本邮件由系统自动发送，请妥善保管，激活后可删除。",
            ]
        )
        msg = EmailMessage()
        msg["Subject"] = SUBJECT
        msg["From"] = formataddr((s.from_name, s.from_address))
        msg["To"] = mail.address
        msg["Date"] = format_datetime(datetime.now(SHANGHAI))
        domain = s.from_address.rpartition("@")[2] or "chuangzheng.local"
        msg["Message-ID"] = make_msgid("activation", domain=domain)
        msg.set_content(text, charset="utf-8")
        return msg

    def send(self, mails: Sequence[CodeMail]) -> set[str]:
        """Send every mail over one connection; the usernames whose mail the relay took.
        Never raises for a send: each failure is logged (without the code) and left out."""
        _not_on_event_loop()
        if not mails:
            return set()
        codes = [m.code for m in mails]
        sent: set[str] = set()
        try:
            with self._connect() as smtp:
                for mail in mails:
                    try:
                        refused = smtp.send_message(
                            self.message(mail),
                            from_addr=self.smtp.from_address,
                            to_addrs=[mail.address],
                        )
                        if refused:
                            raise smtplib.SMTPRecipientsRefused(refused)
                    except Exception as exc:  # one person's failure is reported, not raised
                        log.warning(
                            "activation code mail failed",
                            username=mail.username,
                            error=_error_text(exc, codes),
                        )
                        continue
                    sent.add(mail.username)
                    log.info("activation code mailed", username=mail.username)
        except Exception as exc:  # connecting, TLS, login or quit: the rest did not go out
            unsent = [m.username for m in mails if m.username not in sent]
            if unsent:
                log.warning(
                    "activation code mail failed", usernames=unsent, error=_error_text(exc, codes)
                )
        return sent

    def _connect(self) -> smtplib.SMTP:
        s = self.smtp
        context = self.tls_context or ssl.create_default_context()
        smtp: smtplib.SMTP
        if s.security == "ssl":
            smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout_seconds, context=context)
        else:
            smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout_seconds)
        try:
            if s.security == "starttls":
                smtp.starttls(context=context)
            if s.username:
                password = s.password.get_secret_value() if s.password is not None else ""
                smtp.login(s.username, password)
        except BaseException:
            smtp.close()
            raise
        return smtp


def _not_on_event_loop() -> None:
    # A blocking SMTP exchange on the API's event loop would stall every request meanwhile.
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError("activation code mail must be sent from a worker thread")


def _error_text(exc: BaseException, codes: Sequence[str]) -> str:
    """The error's type and text for the log, with any code in it blanked out."""
    text = f"{type(exc).__name__}: {exc}"[:300]
    for code in codes:
        text = text.replace(code, "***")
    return text


@functools.lru_cache(maxsize=8)
def _config(path: str) -> ChannelsConfig:
    # Read and validated once per file and process, with the notifier's loader.
    return load_channels_config(Path(path))


def mailer_for(settings: Settings) -> CodeMailer | None:
    """The mailer of ``CZ_CHANNELS_FILE``, or None without a file or without SMTP settings.
    Links use the file's ``public_base_url``, else the settings' (as notices do)."""
    path = channels_file_from_env()
    if path is None:
        return None
    config = _config(str(path))
    if config.smtp is None:
        return None
    return CodeMailer(
        config=config,
        smtp=config.smtp,
        base_url=config.public_base_url or settings.public_base_url,
    )
