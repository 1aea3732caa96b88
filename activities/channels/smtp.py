"""E-mail over SMTP: STARTTLS, implicit TLS or (for a local relay) plain; UTF-8 content.

The standard library's ``smtplib`` runs in a thread: one connection per notice is plenty for
escalations (a handful per deadline), and it avoids another dependency. Every mail carries a
``Message-ID`` derived from the notice id, so a rare second copy (see ``deliveries``) is one
that mail systems and clients recognise as the same message.
"""

from __future__ import annotations

import asyncio
import hashlib
import smtplib
import ssl
import threading
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

from activities.channels.config import EMAIL, SmtpSettings
from activities.channels.message import Outgoing
from activities.channels.render import render_mail


def message_id(notice_id: str, from_address: str) -> str:
    """A stable ``Message-ID`` for a notice: the same notice always gets the same id.

    Hashed because notice ids contain Chinese names and slashes, which a Message-ID cannot.
    """
    digest = hashlib.sha256(notice_id.encode("utf-8")).hexdigest()[:40]
    domain = from_address.rpartition("@")[2] or "chuangzheng.local"
    return f"<notice-{digest}@{domain}>"


class SmtpChannel:
    """Sends a message as a plain-text UTF-8 mail through one SMTP relay."""

    name = EMAIL
    # Mail stores drop a second copy with the same Message-ID (see message_id).
    takes_idempotency_key = True

    def __init__(
        self, settings: SmtpSettings, *, base_url: str, tls_context: ssl.SSLContext | None = None
    ) -> None:
        """Keep the relay settings; ``tls_context`` defaults to the system's trust store."""
        self._settings = settings
        self._base_url = base_url
        self._tls_context = tls_context
        self._context_lock = threading.Lock()

    def build_message(self, message: Outgoing, address: str) -> EmailMessage:
        """The mail for ``message`` to ``address`` (public so it can be previewed and tested)."""
        content = render_mail(message, self._base_url)
        s = self._settings
        msg = EmailMessage()
        # EmailMessage's default policy encodes non-ASCII headers (RFC 2047) and the body.
        msg["Subject"] = content.subject
        msg["From"] = formataddr((s.from_name, s.from_address))
        msg["To"] = address
        msg["Date"] = format_datetime(message.created_at)
        msg["Message-ID"] = message_id(message.message_id, s.from_address)
        msg.set_content(content.text, charset="utf-8")
        return msg

    async def send(self, message: Outgoing, address: str) -> None:
        """Send the mail; any SMTP or network error propagates to the router."""
        msg = self.build_message(message, address)
        await asyncio.to_thread(self._send_blocking, msg, address)

    def _context(self) -> ssl.SSLContext:
        """The TLS context, made once: loading the system's trust store costs about 20 ms of
        CPU, and a context is safe to share between connections and threads."""
        with self._context_lock:
            if self._tls_context is None:
                self._tls_context = ssl.create_default_context()
            return self._tls_context

    def _send_blocking(self, msg: EmailMessage, address: str) -> None:
        """Connect, secure, log in, send, quit (blocking; run in a thread)."""
        s = self._settings
        context = self._context()
        smtp: smtplib.SMTP
        if s.security == "ssl":
            smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout_seconds, context=context)
        else:
            smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout_seconds)
        with smtp:
            if s.security == "starttls":
                smtp.starttls(context=context)
            if s.username:
                password = s.password.get_secret_value() if s.password is not None else ""
                smtp.login(s.username, password)
            refused = smtp.send_message(msg, from_addr=s.from_address, to_addrs=[address])
            # send_message raises when every recipient is refused; with one recipient this
            # stays empty, but checking keeps the contract if more recipients are ever added.
            if refused:
                raise smtplib.SMTPRecipientsRefused(refused)
