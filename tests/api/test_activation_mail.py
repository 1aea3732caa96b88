"""Activation codes mailed to the person (issue 12, "where channels are configured, a
message to the person") over the real stack and a real SMTP receiver (aiosmtpd on a free
port), with a channels file written here and named by ``CZ_CHANNELS_FILE``.

A reset of an account with its own address delivers exactly one mail carrying the code, and
that code activates the account; a shared role address (or a personal entry that is really
the shared mailbox) gets nothing; with the relay down the code is still answered with
``mailed: false``; the printed township list marks who was mailed. The code reaches no log
line and no audit row."""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from aiosmtpd.controller import Controller
from openpyxl import load_workbook  # type: ignore[import-untyped]
from sqlalchemy import select

from activities.db import make_engine, session_factory
from activities.tables import AuditRow
from chuangzheng.services.code_mail import SUBJECT
from tests.activities.receivers import MailBox, free_port
from tests.api.conftest import PASSWORD, Stack, token

GOOD_PASSWORD = "柳树村-秋收-2026"
PERSONAL = "liu.zhidao@example.gov.cn"
SHARED = "qingshi-office@example.gov.cn"
SECRETARY = "zhao.qiang@example.gov.cn"


def _write_channels(path: Path, smtp_port: int) -> Path:
    """A channels file: 刘指导 (instructor) and 赵强 (org-c's secretary, by name) have their
    own addresses; townships share an office mailbox; guidance group ``rural`` is listed as
    a recipient but with the shared mailbox, which must not count as personal."""
    config: dict[str, Any] = {
        "public_base_url": "https://cxzy.example.gov.cn",
        "routes": {"instructor": ["email"], "township": ["email"]},
        "smtp": {
            "host": "127.0.0.1",
            "port": smtp_port,
            "security": "none",
            "from_address": "cxzy@example.gov.cn",
            "timeout_seconds": 5,
        },
        "role_addresses": {"township": {"email": SHARED}},
        "recipients": [
            {"role": "instructor", "key": "刘指导", "addresses": {"email": PERSONAL}},
            {"role": "secretary", "key": "赵强", "addresses": {"email": SECRETARY}},
            {"role": "guidance_group", "key": "rural", "addresses": {"email": SHARED}},
        ],
    }
    path.write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")  # JSON is YAML
    return path


@pytest.fixture
def channels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MailBox]:
    """A real SMTP receiver and the channels file over it, named for the API (which runs in
    this process)."""
    box = MailBox(port=free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    path = _write_channels(tmp_path / "channels.yaml", box.port)
    monkeypatch.setenv("CZ_CHANNELS_FILE", str(path))
    try:
        yield box
    finally:
        controller.stop()


@pytest.fixture
def relay_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A channels file whose relay nobody listens on."""
    path = _write_channels(tmp_path / "down.yaml", free_port())
    monkeypatch.setenv("CZ_CHANNELS_FILE", str(path))


@contextmanager
def _captured(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> Iterator[list[str]]:
    """Everything logged inside the block, however logging is set up in this process:
    structlog's events, stdlib records, and what reached stdout and stderr (the API runs in
    this process, on another thread). The list is filled when the block ends."""
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    capfd.readouterr()
    seen: list[str] = []
    with structlog.testing.capture_logs() as events:
        yield seen
    seen.extend(json.dumps(e, ensure_ascii=False, default=str) for e in events)
    seen.extend(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    out, err = capfd.readouterr()
    seen.extend(out.splitlines() + err.splitlines())


def _audit(stack: Stack, username: str) -> list[AuditRow]:
    engine = make_engine(stack.settings.database_url)
    try:
        with session_factory(engine)() as session:
            rows = session.scalars(select(AuditRow).order_by(AuditRow.at)).all()
            return [r for r in rows if r.detail.get("username") == username]
    finally:
        engine.dispose()


def _code_in(body: str) -> str:
    match = re.search(r"激活码：([A-Z0-9-]+)", body)
    assert match is not None, body
    return match.group(1)


async def _create(
    http: httpx.AsyncClient, headers: dict[str, str], role: str, scope_key: str, username: str
) -> dict[str, Any]:
    body = {"username": username, "display_name": f"测试{username}", "role": role}
    created = await http.post(
        "/api/v1/accounts", json={**body, "scope_key": scope_key}, headers=headers
    )
    assert created.status_code == 201, created.text
    answer: dict[str, Any] = created.json()
    return answer


async def _create_or_reset(
    http: httpx.AsyncClient, headers: dict[str, str], role: str, scope_key: str, username: str
) -> dict[str, Any]:
    """:func:`_create`, or the account's reset if it exists already (same answer fields)."""
    body = {"username": username, "display_name": f"测试{username}", "role": role}
    created = await http.post(
        "/api/v1/accounts", json={**body, "scope_key": scope_key}, headers=headers
    )
    if created.status_code == 409 and created.json()["code"] == "account_exists":
        reset = await http.post(f"/api/v1/accounts/{username}/reset", headers=headers)
        assert reset.status_code == 200, reset.text
        answer: dict[str, Any] = reset.json()
        return answer
    assert created.status_code == 201, created.text
    answer = created.json()
    return answer


async def _activates(http: httpx.AsyncClient, username: str, code: str) -> bool:
    body = {"username": username, "code": code, "new_password": GOOD_PASSWORD}
    answer = await http.post("/api/v1/auth/activate", json=body)
    return answer.status_code == 200


async def test_a_reset_mails_the_person_once_and_the_mailed_code_activates(
    http: httpx.AsyncClient, stack: Stack, channels: MailBox
) -> None:
    county = await token(http, "county")
    username = f"mail-ins-{uuid.uuid4().hex[:8]}"
    created = await _create(http, county, "instructor", "刘指导", username)
    assert created["mailed"] is True and len(channels.mails) == 1  # creation mails too
    channels.mails.clear()
    channels.recipients.clear()

    reset = await http.post(f"/api/v1/accounts/{username}/reset", headers=county)
    assert reset.status_code == 200, reset.text
    answer = reset.json()
    assert answer["mailed"] is True and answer["activation_code"]

    assert len(channels.mails) == 1 and channels.recipients == [[PERSONAL]]
    mail = channels.mails[0]
    assert mail["Subject"] == SUBJECT and mail["To"] == PERSONAL
    body = mail.get_content()
    code = _code_in(body)
    assert code == answer["activation_code"]
    assert "https://cxzy.example.gov.cn/ui/activate" in body  # the file's public address
    assert "北京时间" in body and "没有预期收到" in body
    # The creation's code was replaced by the reset's; the mailed one works, once.
    assert not await _activates(http, username, created["activation_code"])
    assert await _activates(http, username, code)
    login = await http.post(
        "/api/v1/auth/login", json={"username": username, "password": GOOD_PASSWORD}
    )
    assert login.status_code == 200

    rows = _audit(stack, username)
    mailed = [r.detail for r in rows if r.action == "account.code_mail"]
    assert [(d["mailed"], d["to"], d["via"]) for d in mailed] == [
        (True, PERSONAL, "created"),
        (True, PERSONAL, "reset"),
    ]
    for row in rows:  # no audit row carries a code, the mailed one or the first
        text = json.dumps(row.detail, ensure_ascii=False)
        assert code not in text and created["activation_code"] not in text


async def test_shared_addresses_get_no_code(
    http: httpx.AsyncClient, stack: Stack, channels: MailBox
) -> None:
    county = await token(http, "county")
    township = f"mail-tw-{uuid.uuid4().hex[:8]}"
    created = await _create(http, county, "township", "青石镇", township)
    reset = await http.post(f"/api/v1/accounts/{township}/reset", headers=county)
    group = f"mail-gg-{uuid.uuid4().hex[:8]}"
    listed_shared = await _create(http, county, "guidance_group", "rural", group)

    assert created["mailed"] is False and reset.json()["mailed"] is False
    assert listed_shared["mailed"] is False  # a "personal" entry that is the shared mailbox
    assert channels.mails == []
    assert not [r for r in _audit(stack, township) if r.action == "account.code_mail"]
    assert await _activates(http, township, reset.json()["activation_code"])


async def test_with_the_relay_down_the_code_is_still_answered(
    http: httpx.AsyncClient, stack: Stack, relay_down: None
) -> None:
    county = await token(http, "county")
    username = f"mail-down-{uuid.uuid4().hex[:8]}"
    created = await _create(http, county, "instructor", "刘指导", username)
    reset = await http.post(f"/api/v1/accounts/{username}/reset", headers=county)
    assert reset.status_code == 200, reset.text
    answer = reset.json()
    code = answer["activation_code"]
    assert answer["mailed"] is False and created["mailed"] is False and code

    mailed = [r.detail for r in _audit(stack, username) if r.action == "account.code_mail"]
    assert [d["mailed"] for d in mailed] == [False, False]
    assert await _activates(http, username, code)


async def test_no_log_line_carries_a_code(
    http: httpx.AsyncClient,
    channels: MailBox,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Sent and failed mails are both logged (the username, the error), never the code."""
    county = await token(http, "county")
    username = f"mail-log-{uuid.uuid4().hex[:8]}"
    with _captured(caplog, capfd) as seen:
        created = await _create(http, county, "instructor", "刘指导", username)
        reset = await http.post(f"/api/v1/accounts/{username}/reset", headers=county)
        # The same through a relay that is down: the failure is logged too.
        down = _write_channels(tmp_path / "down.yaml", free_port())
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("CZ_CHANNELS_FILE", str(down))
            failed = await http.post(f"/api/v1/accounts/{username}/reset", headers=county)
    assert reset.json()["mailed"] is True and failed.json()["mailed"] is False
    codes = [created["activation_code"], reset.json()["activation_code"]]
    codes.append(failed.json()["activation_code"])

    assert any("activation code mailed" in line and username in line for line in seen), seen
    assert any("activation code mail failed" in line and username in line for line in seen)
    for code in codes:
        assert not [line for line in seen if code in line]


async def test_the_printed_list_marks_who_was_mailed(
    http: httpx.AsyncClient, stack: Stack, channels: MailBox
) -> None:
    county = await token(http, "county")
    instructor = f"mail-list-{uuid.uuid4().hex[:8]}"
    await _create(http, county, "instructor", "刘指导", instructor)
    # The roster's own account of org-c's secretary 赵强: reached under their name, as
    # notices are; an administrator's other account for org-c is not (a different person).
    # A roster import (another test's, or the county's own) may have made it already: then
    # a reset issues its code, as the county office would do for a roster account.
    roster_secretary = await _create_or_reset(
        http, county, "secretary", "org-c", "secretary-org-c-赵强"
    )
    other_secretary = f"mail-sec-{uuid.uuid4().hex[:8]}"
    other = await _create(http, county, "secretary", "org-c", other_secretary)
    assert roster_secretary["mailed"] is True and other["mailed"] is False
    channels.mails.clear()

    listed = await http.post(
        "/api/v1/accounts/activation-lists",
        json={"township": "青石镇", "format": "xlsx"},
        headers=county,
    )
    assert listed.status_code == 200, listed.text
    rows = list(load_workbook(io.BytesIO(listed.content)).active.iter_rows(values_only=True))
    assert rows[0][-1] == "邮件"
    by_user = {r[4]: r for r in rows[1:] if r and r[4]}
    assert by_user[instructor][7] == "已发送"
    assert by_user["secretary-org-c-赵强"][7] == "已发送"
    assert by_user[other_secretary][7] in (None, "")
    assert any(r and r[0] and "已通过本人邮箱收到同一激活码" in str(r[0]) for r in rows)

    mailed = {str(m["To"]): _code_in(m.get_content()) for m in channels.mails}
    assert mailed[SECRETARY] == by_user["secretary-org-c-赵强"][5]
    # 刘指导's unactivated accounts all get theirs at the one address: this one's is there.
    to_liu = [m for m in channels.mails if m["To"] == PERSONAL]
    assert by_user[instructor][5] in {_code_in(m.get_content()) for m in to_liu}
    assert await _activates(http, instructor, by_user[instructor][5])


async def test_the_reset_page_says_the_code_was_mailed(
    http: httpx.AsyncClient, stack: Stack, channels: MailBox
) -> None:
    county = await token(http, "county")
    username = f"mail-ui-{uuid.uuid4().hex[:8]}"
    await _create(http, county, "instructor", "刘指导", username)
    channels.mails.clear()
    async with httpx.AsyncClient(
        base_url=stack.base_url, timeout=60, headers={"Origin": stack.base_url}
    ) as browser:
        signed_in = await browser.post(
            "/ui/login", data={"username": "county", "password": PASSWORD, "next": "/ui/"}
        )
        assert signed_in.status_code == 303, signed_in.text
        page = await browser.post(f"/ui/accounts/{username}/reset")
    assert page.status_code == 200, page.text
    assert 'data-mailed="true"' in page.text and "已发送到本人邮箱" in page.text
    shown = re.search(r'id="activation-code">([A-Z0-9-]+)<', page.text)
    assert shown is not None and len(channels.mails) == 1
    assert _code_in(channels.mails[0].get_content()) == shown.group(1)
