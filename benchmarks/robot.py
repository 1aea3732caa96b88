"""A WeCom group robot for benchmarks: a local HTTP server that answers as the robot's webhook
does (``{"errcode": 0, "errmsg": "ok"}``), counts what it received and when, and writes the
channels file that routes a role to it.

With it a storm (``--robot``) runs the way a county with its instructors on a WeCom group
does: every notice to an instructor is recorded by the outbox *and* handed to
``deliver_notices``, which posts it here over HTTP. Without it the inbox is the only channel
and ``deliver_notices`` never runs (patch ``external-delivery-only``).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

#: The robot's name in the channels file (addresses name robots, never URLs).
ROBOT_NAME = "风暴镇指导员群"
_OK = b'{"errcode":0,"errmsg":"ok"}'


class RobotReceiver:
    """Use as ``with RobotReceiver() as robot``; ``robot.url`` is its webhook."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0
        #: Epoch seconds of the last message received (0 before any).
        self.last = 0.0
        #: Messages whose markdown content was received before: a message sent twice.
        self.repeats = 0
        self._seen: set[str] = set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            # Keep-alive, as the robots' HTTPS endpoints have it.
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver._received(body["markdown"]["content"])
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(_OK)))
                self.end_headers()
                self.wfile.write(_OK)

            def log_message(self, format: str, *args: Any) -> None:  # no line per message
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _received(self, content: str) -> None:
        with self._lock:
            self.count += 1
            self.last = time.time()
            if content in self._seen:
                self.repeats += 1
            self._seen.add(content)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/cgi-bin/webhook/send?key=bench"

    def channels_file(self, path: Path, role: str = "instructor") -> Path:
        """Write a channels file routing ``role`` (besides the inbox) to this robot."""
        config = {
            "routes": {role: ["wecom"]},
            "robots": {ROBOT_NAME: {"kind": "wecom", "url": self.url}},
            "role_addresses": {role: {"wecom": ROBOT_NAME}},
        }
        path.write_text(yaml.safe_dump(config, allow_unicode=True), "utf-8")
        return path

    def __enter__(self) -> RobotReceiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
