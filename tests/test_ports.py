"""Ports for the servers the tests, the benchmarks and the dev server start: outside the
kernel's ephemeral range, and a benchmark API whose port was taken starts on another.

CI failed once because the benchmark stack's API could not bind the port it was given
("[Errno 98] … address already in use"): a port from the ephemeral range had been taken
between the pick and uvicorn's bind."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

import benchmarks.stack
from benchmarks.stack import Stack
from chuangzheng.ports import _ephemeral_low, free_port


def test_a_free_port_is_below_the_ephemeral_range_and_binds() -> None:
    low = _ephemeral_low()
    ports = {free_port() for _ in range(50)}
    assert all(20000 <= port < low for port in ports), sorted(ports)
    # Spread, not one fixed port: parallel tests must not all pick the same.
    assert len(ports) > 40
    for port in list(ports)[:5]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


async def test_a_benchmark_api_whose_port_was_taken_starts_on_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port()))
        taken.listen()
        picks: Iterator[int] = iter([taken.getsockname()[1], free_port()])
        monkeypatch.setattr(benchmarks.stack, "free_port", lambda: next(picks))
        async with Stack(label="ports") as stack:
            url = await stack.start_api()
            assert url != f"http://127.0.0.1:{taken.getsockname()[1]}"
            async with httpx.AsyncClient(base_url=url) as http:
                assert (await http.get("/openapi.json")).status_code == 200
            # The refused start is not left among the stack's processes.
            assert [p.name for p in stack.processes] == ["api"]
