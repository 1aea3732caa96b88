"""Real receivers for channel tests: an aiosmtpd mailbox and a local HTTP server standing in
for WeCom and DingTalk robots (it records each request and answers as they document)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session

from chuangzheng.ports import free_port


# ----- receivers -----------------------------------------------------------------------------
@dataclass
class MailBox:
    """An aiosmtpd handler that keeps every mail it accepts."""

    mails: list[EmailMessage] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)
    port: int = 0

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        mail = message_from_bytes(raw, policy=policy.default)
        assert isinstance(mail, EmailMessage)
        self.mails.append(mail)
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 OK"


@dataclass
class Robots:
    """What the fake robot server received, and what it answers (by path)."""

    received: list[tuple[str, dict[str, list[str]], Any]] = field(default_factory=list)
    replies: dict[str, tuple[int, str]] = field(default_factory=dict)
    port: int = 0
    #: The client's address and port of each request, in order (one per connection used).
    peers: list[tuple[str, int]] = field(default_factory=list)

    def url(self, path_and_query: str) -> str:
        return f"http://127.0.0.1:{self.port}{path_and_query}"

    def on(self, path: str) -> list[Any]:
        """The JSON bodies received on ``path``."""
        return [body for p, _, body in self.received if p == path]


@pytest.fixture
def mailbox() -> Iterator[MailBox]:
    box = MailBox(port=free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


@pytest.fixture
def robots() -> Iterator[Robots]:
    state = Robots()

    class Handler(BaseHTTPRequestHandler):
        # Keep-alive, as the robots' HTTPS endpoints have it.
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            state.peers.append(self.client_address)
            parts = urlsplit(self.path)
            length = int(self.headers["Content-Length"])
            body = json.loads(self.rfile.read(length).decode("utf-8"))
            state.received.append((parts.path, parse_qs(parts.query), body))
            status, text = state.replies.get(parts.path, (200, '{"errcode":0,"errmsg":"ok"}'))
            payload = text.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    # A short poll interval: shutdown() waits for it, and every test stops a server.
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
