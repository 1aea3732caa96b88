"""The state-machine diagram in the docs is generated from the same data as the machines."""

from __future__ import annotations

from pathlib import Path

from domain.machine import mermaid

DOC = Path(__file__).resolve().parents[2] / "docs/state-machines.md"


def test_state_machine_diagram_is_current() -> None:
    assert mermaid() in DOC.read_text("utf-8"), "regenerate docs/state-machines.md"
