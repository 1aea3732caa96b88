"""A whole campaign round over a county roster, played in virtual time.

:func:`simulate` starts the time-skipping Temporal test server, a throw-away SQLite read
model and the project's real worker, kicks the round off through ``CampaignRound`` (as the
API does: plan stored by reference, schedule resolved at kick-off) and then plays every
organisation with a seeded behaviour mix: most are punctual, some finish a few working days
late, some only move after the rectification order (整改通知), a few have a submission
returned once, and one may get an approved extension.

The modules, in the order a run uses them:

- :mod:`.model`: behaviours, the mix, planned actions and per-organisation scripts;
- :mod:`.calendar`: supplementary calendar files and years vouched for as weekends-only;
- :mod:`.timing`, :mod:`.scripts`: planning every organisation's actions before the round;
- :mod:`.environment`: inputs, the throw-away read model and the time-skipping server;
- :mod:`.driver`: moving virtual time and sending the updates due (:mod:`.player`), with
  :mod:`.timers` keeping them away from workflow timers;
- :mod:`.report`, :mod:`.render`: the report model and its Chinese tables; the outcomes are
  counted from the read model (``activities.round_progress``), as the round counts them.
"""

from __future__ import annotations

from .calendar import load_plan_files
from .environment import DEFAULT_CALENDARS, DEFAULT_PLAN, DEFAULT_ROSTER, simulate
from .model import (
    Behaviour,
    BehaviourMix,
    Conduct,
    OrgScript,
    SimulationError,
    SimulationStalled,
)
from .render import render_report
from .report import NoticeCount, PhaseOutcomes, SimulationReport

__all__ = [
    "DEFAULT_CALENDARS",
    "DEFAULT_PLAN",
    "DEFAULT_ROSTER",
    "Behaviour",
    "BehaviourMix",
    "Conduct",
    "NoticeCount",
    "OrgScript",
    "PhaseOutcomes",
    "SimulationError",
    "SimulationReport",
    "SimulationStalled",
    "load_plan_files",
    "render_report",
    "simulate",
]
