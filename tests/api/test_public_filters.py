"""The public pages' Jinja filters come with their environment (``api.public.render``), not
from whichever public router was imported first: in a fresh interpreter that imports only
the renderer (as a new public page would), the commitments page's template renders its
公示期 end with ``deadline_day`` and the ballot's 投票截止 reads "D 24:00". No server."""

from __future__ import annotations

import subprocess
import sys

from chuangzheng.settings import repo_root

PROBE = """
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

import api.public.render as render

assert "api.public.ballots" not in sys.modules, "the renderer pulled in the ballot router"
env = render.templates.env
assert {"local", "deadline", "deadline_day"} <= set(env.filters), sorted(env.filters)
midnight = datetime(2026, 3, 7, tzinfo=ZoneInfo("Asia/Shanghai"))  # the end of 6 March
print(env.from_string("{{ v | deadline_day }}|{{ none | deadline_day }}").render(v=midnight))
print(env.from_string("{{ v | deadline }}").render(v=midnight))
"""


def test_the_public_filters_come_with_the_public_renderer() -> None:
    ran = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=repo_root(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    day, deadline = ran.stdout.splitlines()
    assert day == "2026-03-06|"
    assert deadline.startswith("2026-03-06 24:00"), deadline
