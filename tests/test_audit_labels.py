"""Every action the service writes to the audit log has a Chinese name on the audit page.

The actions are found in the service layer's source (the literal action passed to each
audit writer), so an action added without a label fails here rather than showing up in
English on the county office's page.
"""

from __future__ import annotations

import re
from pathlib import Path

from chuangzheng.services.audit_log import ACTION_LABELS, action_choices, action_label
from chuangzheng.services.sign_in import SignInAction
from domain.events import EventKind

SERVICES = Path(__file__).resolve().parents[1] / "chuangzheng" / "services"

# Writers whose action is prefixed by the module (``_audit(caller, "declared", …)`` in
# commendation.py is ``commendation_declared``).
_PREFIXED = {"commitments.py": "commitment_", "commendation.py": "commendation_"}
_LITERAL = [
    re.compile(r'audit_row\(\s*\w+,\s*"([a-z_.]+)"'),
    # Not argparse's action="store_true" (a command line among the services).
    re.compile(r'\baction="(?!store_)([a-z_.]+)"'),
    re.compile(r'_ACTION = "([a-z_.]+)"'),
    re.compile(r'_audit\(\s*session,\s*\w+,\s*"([a-z_.]+)"'),
    re.compile(r'_audit\(\s*actor,\s*"([a-z_.]+)"'),
]
_PREFIXED_CALL = re.compile(r'_audit\(\s*caller,\s*"([a-z_]+)"')
_KIND_CHOICE = re.compile(r'kind = "([a-z_]+)" if \w+ else "([a-z_]+)"')


def recorded_actions() -> set[str]:
    found: set[str] = set()
    for path in SERVICES.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        for pattern in _LITERAL:
            for match in pattern.finditer(text):
                found.add(match.group(1))
        prefix = _PREFIXED.get(path.name)
        if prefix:
            found |= {prefix + m.group(1) for m in _PREFIXED_CALL.finditer(text)}
            for m in _KIND_CHOICE.finditer(text):
                found |= {prefix + m.group(1), prefix + m.group(2)}
    return found


def test_the_scan_finds_the_service_actions() -> None:
    found = recorded_actions()
    # A scan that finds nothing would pass everything: it must see the known writers.
    assert {"account.create", "roster.import", "commitment_reviewed"} <= found
    assert {"commendation_sheet_saved", "evaluation_opened", "round_created"} <= found


def test_every_recorded_action_has_a_chinese_name() -> None:
    unnamed = sorted(a for a in recorded_actions() if action_label(a) == a)
    assert unnamed == []


def test_sign_in_and_workflow_events_are_named_and_offered_in_the_filter() -> None:
    for action in SignInAction:
        assert action.value in ACTION_LABELS
    assert action_label(EventKind.SUBMITTED.value) == EventKind.SUBMITTED.label
    offered = dict(action_choices())
    assert offered["account.code_mail"] == "邮件发送激活码"
    assert offered[EventKind.WAIVED.value] == EventKind.WAIVED.label
    assert action_label("no_such_action") == "no_such_action"


def test_every_role_has_its_chinese_name_on_the_audit_page() -> None:
    from chuangzheng.services.audit_log import ROLE_LABELS
    from domain.organisation import Role

    # 党员领导干部 once showed as "leading_cadre": the table is built from the roles.
    assert set(ROLE_LABELS) == {role.value for role in Role}
    assert all(not label.isascii() for label in ROLE_LABELS.values())


def test_a_deadline_sent_as_iso_text_reads_as_its_last_day_at_24_00() -> None:
    from api.ui.render import deadline_text

    # The supervision page's 限期整改 showed "2026-12-07T16:00:00+00:00".
    assert deadline_text("2026-12-07T16:00:00+00:00") == "2026-12-07 24:00"
    assert deadline_text("not a date") == "not a date"
