"""Inputs and outputs of ``DailyDigestWorkflow``, ``CircularWorkflow`` and their activities
(``send_digests``, ``publish_circular``): single frozen models so they can evolve.

They live apart from the workflows so the typed activity references
(:mod:`workflows.activity_refs`) and the activities can import them without the workflows.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

_FROZEN = ConfigDict(frozen=True)


class DailyDigestInput(BaseModel):
    """Which round to digest (the date is the local date of the run)."""

    model_config = _FROZEN

    round_id: str


class CircularInput(BaseModel):
    """Which round to circulate; ``key`` names an on-demand circular (default: the date)."""

    model_config = _FROZEN

    round_id: str
    key: str | None = None


class DigestRun(BaseModel):
    """Input of ``send_digests``: the round and the instant the digest is for."""

    model_config = _FROZEN

    round_id: str
    now: datetime


class CircularRun(BaseModel):
    """Input of ``publish_circular``."""

    model_config = _FROZEN

    round_id: str
    now: datetime
    key: str | None = None


class DigestReport(BaseModel):
    """What ``send_digests`` did: digests new today, and ones sent earlier the same day."""

    model_config = _FROZEN

    sent: int
    already_sent: int
    recipients: tuple[str, ...] = ()


class CircularReport(BaseModel):
    """The published circular: its id, files and digests, and the notices it sent."""

    model_config = _FROZEN

    circular_id: str
    xlsx_path: str
    xlsx_sha256: str
    text_path: str
    notices_sent: int
    already_published: bool
