"""A free TCP port for a server this process is about to start (a dev server, uvicorn, a test
receiver).

The usual trick, binding port 0 and closing the socket, hands out a port from the kernel's
ephemeral range: the same range every outgoing connection takes its source port from. On a
busy machine (the test suite runs in parallel, each test opening gRPC and HTTP connections)
a connection can take that port before the server binds it, and the server fails with
"address already in use" (CI saw this). Ports below the ephemeral range are never handed to
outgoing connections, so a random one of them that binds now is only lost if another
server picks the very same port in the same moment.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

#: Where the kernel's ephemeral range is configured (Linux); elsewhere the IANA default.
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_IANA_EPHEMERAL_LOW = 49152
#: Below this are well-known and commonly configured ports (PostgreSQL's 5432, Temporal's
#: 7233/8233, the API's 8000, Prometheus' 9090 ...): never picked.
_LOWEST = 20000
_ATTEMPTS = 200


def _ephemeral_low() -> int:
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return _IANA_EPHEMERAL_LOW


def free_port(host: str = "127.0.0.1") -> int:
    """A port in [20000, start of the ephemeral range) that nothing listens on right now."""
    high = _ephemeral_low()
    if high - _LOWEST < 1000:
        # A machine whose ephemeral range starts low: fall back to the kernel's choice.
        with socket.socket() as sock:
            sock.bind((host, 0))
            return int(sock.getsockname()[1])
    for _ in range(_ATTEMPTS):
        port = random.randrange(_LOWEST, high)
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in [{_LOWEST}, {high}) after {_ATTEMPTS} tries")
