"""Account administration and activation over the real API stack (uvicorn, the read model on
SQLite and PostgreSQL): create → list → reset → activate → sign in; reused, expired and
wrong codes refused alike; weak passwords refused with reasons; a township manages only its
own organisations' secretaries; the printed lists carry codes that work; every change is
audited. The stack is shared by the session: each test makes accounts of its own."""

from __future__ import annotations

import asyncio
import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pypdf
from openpyxl import load_workbook  # type: ignore[import-untyped]
from sqlalchemy import select, update

from activities.db import make_engine, session_factory
from activities.tables import ActivationCodeRow, AuditRow, UserRow
from chuangzheng.services.activation import BAD_CODE
from tests.api.conftest import Stack, token

GOOD_PASSWORD = "柳树村-春耕-2026"


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def _create(
    http: httpx.AsyncClient,
    headers: dict[str, str],
    *,
    role: str,
    scope_key: str = "",
    display_name: str | None = None,
    username: str | None = None,
) -> dict[str, Any]:
    username = username or _name(role)
    body = {
        "username": username,
        "display_name": display_name or f"测试{username}",
        "role": role,
        "scope_key": scope_key,
    }
    created = await http.post("/api/v1/accounts", json=body, headers=headers)
    assert created.status_code == 201, created.text
    answer: dict[str, Any] = created.json()
    return answer


async def _activate(
    http: httpx.AsyncClient, username: str, code: str, password: str = GOOD_PASSWORD
) -> httpx.Response:
    body = {"username": username, "code": code, "new_password": password}
    return await http.post("/api/v1/auth/activate", json=body)


async def _login(http: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await http.post("/api/v1/auth/login", json={"username": username, "password": password})


def _audit(stack: Stack, username: str) -> list[tuple[str, str]]:
    engine = make_engine(stack.settings.database_url)
    try:
        with session_factory(engine)() as session:
            rows = session.scalars(select(AuditRow).order_by(AuditRow.at)).all()
            return [(r.action, r.user) for r in rows if r.detail.get("username") == username]
    finally:
        engine.dispose()


def _expire_code(stack: Stack, username: str) -> None:
    engine = make_engine(stack.settings.database_url)
    try:
        with session_factory(engine).begin() as session:
            session.execute(
                update(ActivationCodeRow)
                .where(ActivationCodeRow.username == username)
                .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
            )
    finally:
        engine.dispose()


async def test_create_list_reset_activate_and_sign_in(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    county = await token(http, "county")
    created = await _create(http, county, role="instructor", scope_key="张指导")
    username = created["account"]["username"]
    code = created["activation_code"]
    assert created["account"]["activated"] is False and created["account"]["source"] == "admin"
    assert len(code) == 14 and code.count("-") == 2

    listed = await http.get(
        "/api/v1/accounts", params={"q": username, "activated": "false"}, headers=county
    )
    assert listed.status_code == 200, listed.text
    assert [a["username"] for a in listed.json()["items"]] == [username]
    assert listed.json()["items"][0]["code_expires_at"] is not None

    # No password yet: nothing signs in, not even an empty one.
    assert (await _login(http, username, GOOD_PASSWORD)).status_code == 401

    weak = await _activate(http, username, code, password=username + "1")
    assert weak.status_code == 422, weak.text
    reasons = {e["reason"] for e in weak.json()["errors"]}
    assert "密码不能是账号或包含账号" in reasons

    activated = await _activate(http, username, code.lower().replace("-", " "))
    assert activated.status_code == 200, activated.text
    assert activated.json()["role"] == "instructor"
    signed_in = await _login(http, username, GOOD_PASSWORD)
    assert signed_in.status_code == 200
    old_token = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}
    assert (await http.get("/api/v1/users/me", headers=old_token)).status_code == 200

    reused = await _activate(http, username, code, password="另一个-新密码-2027")
    assert reused.status_code == 422
    assert reused.json()["message"] == BAD_CODE
    assert (await _login(http, username, "另一个-新密码-2027")).status_code == 401

    reset = await http.post(f"/api/v1/accounts/{username}/reset", headers=county)
    assert reset.status_code == 200, reset.text
    assert reset.json()["account"]["activated"] is False
    new_code = reset.json()["activation_code"]
    assert new_code and new_code != code
    assert (await _login(http, username, GOOD_PASSWORD)).status_code == 401
    # A reset ends every session the account had.
    assert (await http.get("/api/v1/users/me", headers=old_token)).status_code == 401
    assert (await _activate(http, username, new_code, "第二次-设置的-新密码")).status_code == 200
    assert (await _login(http, username, "第二次-设置的-新密码")).status_code == 200

    assert [a for a, _ in _audit(stack, username)] == [
        "account.create",
        "account.activate",
        "account.reset",
        "account.activate",
    ]
    assert _audit(stack, username)[1] == ("account.activate", username)


async def test_expired_wrong_and_stopped_are_refused_alike(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    county = await token(http, "county")
    created = await _create(http, county, role="township", scope_key="青石镇")
    username, code = created["account"]["username"], created["activation_code"]

    wrong = await _activate(http, username, "AAAA-BBBB-CCCC")
    unknown = await _activate(http, _name("nobody"), code)
    assert wrong.status_code == unknown.status_code == 422
    assert wrong.json() == unknown.json()
    assert wrong.json()["errors"] == [{"field": "code", "reason": BAD_CODE}]

    stopped = await http.post(f"/api/v1/accounts/{username}/deactivate", headers=county)
    assert stopped.status_code == 200 and stopped.json()["active"] is False
    assert (await _activate(http, username, code)).json() == wrong.json()
    again = await http.post(f"/api/v1/accounts/{username}/reactivate", headers=county)
    assert again.status_code == 200 and again.json()["active"] is True

    _expire_code(stack, username)
    expired = await _activate(http, username, code)
    assert expired.status_code == 422 and expired.json() == wrong.json()

    fresh = (await http.post(f"/api/v1/accounts/{username}/reset", headers=county)).json()
    assert (await _activate(http, username, fresh["activation_code"])).status_code == 200


async def test_weak_passwords_are_refused_with_every_reason(http: httpx.AsyncClient) -> None:
    county = await token(http, "county")
    created = await _create(http, county, role="assessment_group")
    username, code = created["account"]["username"], created["activation_code"]
    for password, reason in [
        ("short", "密码至少 10 个字符"),
        ("woaini1314", "密码过于常见或简单，容易被猜中"),
        ("qwerty123456", "密码过于常见或简单，容易被猜中"),
        (f"x{username}x", "密码不能是账号或包含账号"),
    ]:
        refused = await _activate(http, username, code, password)
        assert refused.status_code == 422, password
        assert {"field": "new_password", "reason": reason} in refused.json()["errors"]
    # The refusals spent nothing: the code still works.
    assert (await _activate(http, username, code)).status_code == 200


async def test_a_township_manages_only_its_own_secretaries(http: httpx.AsyncClient) -> None:
    county, township = await token(http, "county"), await token(http, "tw-chengguan")
    own = (await _create(http, county, role="secretary", scope_key="org-a"))["account"]
    other = (await _create(http, county, role="secretary", scope_key="org-c"))["account"]

    listed = (await http.get("/api/v1/accounts", params={"limit": 200}, headers=township)).json()
    assert {a["role"] for a in listed["items"]} == {"secretary"}
    assert {a["township"] for a in listed["items"]} == {"城关镇"}
    names = {a["username"] for a in listed["items"]}
    assert own["username"] in names and other["username"] not in names
    assert "tw-chengguan" not in names and "county" not in names

    reset = await http.post(f"/api/v1/accounts/{own['username']}/reset", headers=township)
    assert reset.status_code == 200, reset.text
    for path in (f"{other['username']}/reset", f"{other['username']}/deactivate", "county/reset"):
        outside = await http.post(f"/api/v1/accounts/{path}", headers=township)
        assert outside.status_code == 404, path
    assert (
        await http.get(f"/api/v1/accounts/{other['username']}", headers=township)
    ).status_code == 404

    body = {"username": _name("boss"), "display_name": "新主任", "role": "county_office"}
    assert (await http.post("/api/v1/accounts", json=body, headers=township)).status_code == 403
    body = {
        "username": _name("sec"),
        "display_name": "外镇书记",
        "role": "secretary",
        "scope_key": "org-c",
    }
    assert (await http.post("/api/v1/accounts", json=body, headers=township)).status_code == 403
    body["scope_key"] = "org-b"
    assert (await http.post("/api/v1/accounts", json=body, headers=township)).status_code == 201

    moved = await http.patch(
        f"/api/v1/accounts/{own['username']}", json={"scope_key": "org-b"}, headers=township
    )
    assert moved.status_code == 200 and moved.json()["scope_key"] == "org-b"
    away = await http.patch(
        f"/api/v1/accounts/{own['username']}", json={"scope_key": "org-c"}, headers=township
    )
    assert away.status_code == 403
    promote = await http.patch(
        f"/api/v1/accounts/{own['username']}",
        json={"role": "township", "scope_key": "城关镇"},
        headers=township,
    )
    assert promote.status_code == 403

    secretary = await token(http, "sec-a")
    assert (await http.get("/api/v1/accounts", headers=secretary)).status_code == 403
    assert (
        await http.post(f"/api/v1/accounts/{own['username']}/reset", headers=secretary)
    ).status_code == 403


async def test_changes_are_checked_and_audited(http: httpx.AsyncClient, stack: Stack) -> None:
    county = await token(http, "county")
    account = (await _create(http, county, role="instructor", scope_key="刘指导"))["account"]
    username = account["username"]
    bad = await http.patch(
        f"/api/v1/accounts/{username}",
        json={"role": "guidance_group", "scope_key": "城关镇"},
        headers=county,
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "scope_key"
    unknown = await http.patch(
        f"/api/v1/accounts/{username}", json={"scope_key": "没有这个人"}, headers=county
    )
    assert unknown.status_code == 422
    changed = await http.patch(
        f"/api/v1/accounts/{username}",
        json={"role": "guidance_group", "scope_key": "rural", "display_name": "农村指导小组"},
        headers=county,
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["role"], changed.json()["scope_key"]) == ("guidance_group", "rural")
    # The same change again writes nothing more.
    same = await http.patch(
        f"/api/v1/accounts/{username}", json={"scope_key": "rural"}, headers=county
    )
    assert same.status_code == 200
    assert [a for a, _ in _audit(stack, username)] == ["account.create", "account.update"]

    # The county office cannot lock itself out.
    assert (
        await http.post("/api/v1/accounts/county/deactivate", headers=county)
    ).status_code == 409
    taken = await http.post(
        "/api/v1/accounts",
        json={"username": username, "display_name": "重名", "role": "assessment_group"},
        headers=county,
    )
    assert taken.status_code == 409


async def test_retries_with_one_key_have_one_effect(http: httpx.AsyncClient, stack: Stack) -> None:
    county = await token(http, "county")
    username = _name("assessor")
    body = {"username": username, "display_name": "考核员", "role": "assessment_group"}
    key = {**county, "Idempotency-Key": f"create-{username}"}
    first = await http.post("/api/v1/accounts", json=body, headers=key)
    second = await http.post("/api/v1/accounts", json=body, headers=key)
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["activation_code"]
    # The stored answer never holds the code in clear.
    assert second.json()["activation_code"] is None
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json()["account"]["username"] == username

    stop = {**county, "Idempotency-Key": f"stop-{username}"}
    for _ in range(2):
        answer = await http.post(f"/api/v1/accounts/{username}/deactivate", headers=stop)
        assert answer.status_code == 200 and answer.json()["active"] is False
    assert [a for a, _ in _audit(stack, username)] == ["account.create", "account.deactivate"]
    # A stopped account cannot sign in (after activation it still could not).
    assert (await _activate(http, username, first.json()["activation_code"])).status_code == 422


async def test_printed_lists_carry_working_codes(http: httpx.AsyncClient, stack: Stack) -> None:
    county = await token(http, "county")
    formula = '=HYPERLINK("http://evil.example","点我")'
    committee = await _create(http, county, role="township", scope_key="青石镇")
    sec = await _create(http, county, role="secretary", scope_key="org-c", display_name=formula)
    done = await _create(http, county, role="secretary", scope_key="org-c")
    assert (
        await _activate(http, done["account"]["username"], done["activation_code"])
    ).status_code == 200

    pdf = await http.post(
        "/api/v1/accounts/activation-lists", json={"township": "青石镇"}, headers=county
    )
    assert pdf.status_code == 200, pdf.text
    assert pdf.headers["content-type"] == "application/pdf"
    text = "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf.content)).pages)
    assert "青石镇" in text and "/ui/activate" in text
    assert committee["account"]["username"] in text
    assert done["account"]["username"] not in text  # activated: not on the list

    # Printing IS issuing: the codes of the earlier print (and of creation) are replaced.
    assert (
        await _activate(http, sec["account"]["username"], sec["activation_code"])
    ).status_code == 422

    xlsx = await http.post(
        "/api/v1/accounts/activation-lists",
        json={"township": "青石镇", "format": "xlsx"},
        headers=county,
    )
    assert xlsx.status_code == 200, xlsx.text
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == ("乡镇", "组织", "角色", "姓名", "账号", "激活码", "有效期至", "邮件")
    by_user = {r[4]: r for r in rows[1:] if r and r[4]}
    assert by_user[committee["account"]["username"]][2] == "乡镇党委"
    line = by_user[sec["account"]["username"]]
    assert line[1] == "青石镇柳树村党支部" and line[3] == formula
    cell = next(c for c in sheet["D"] if c.value == formula)
    assert cell.data_type == "s"  # text, not a formula
    assert any(r and r[0] and "/ui/activate" in str(r[0]) for r in rows)

    # The Excel's codes are the valid ones now (the PDF's were replaced by it).
    assert (await _activate(http, sec["account"]["username"], line[5])).status_code == 200
    assert (await _login(http, sec["account"]["username"], GOOD_PASSWORD)).status_code == 200

    township = await token(http, "tw-chengguan")
    own = await _create(http, county, role="secretary", scope_key="org-a")
    mine = await http.post(
        "/api/v1/accounts/activation-lists",
        json={"township": "城关镇", "format": "xlsx"},
        headers=township,
    )
    assert mine.status_code == 200
    users = {
        r[4]: r[2]
        for r in load_workbook(io.BytesIO(mine.content)).active.iter_rows(
            min_row=2, values_only=True
        )
        if r[4]
    }
    assert own["account"]["username"] in users and set(users.values()) == {"书记"}
    other = await http.post(
        "/api/v1/accounts/activation-lists", json={"township": "青石镇"}, headers=township
    )
    assert other.status_code == 404

    issued = [a for a, _ in _audit(stack, sec["account"]["username"])]
    assert issued == [
        "account.create",
        "account.issue_code",
        "account.issue_code",
        "account.activate",
    ]


async def test_an_account_without_a_password_cannot_sign_in(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    county = await token(http, "county")
    created = await _create(http, county, role="assessment_group")
    username = created["account"]["username"]
    engine = make_engine(stack.settings.database_url)
    try:
        with session_factory(engine)() as session:
            assert session.get(UserRow, username).password_hash is None  # type: ignore[union-attr]
    finally:
        engine.dispose()
    for password in ("", GOOD_PASSWORD, created["activation_code"]):
        assert (await _login(http, username, password)).status_code in (401, 422)


async def test_copies_of_a_code_issuing_request_issue_one_set(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    """A double click or a client retrying too soon, with the same key: one code issued and
    mailed, not two of which the first no longer works."""
    county = await token(http, "county")
    sec = await _create(http, county, role="secretary", scope_key="org-c")
    username = sec["account"]["username"]

    key = {**county, "Idempotency-Key": f"reset-{username}"}
    answers = await asyncio.gather(
        *(http.post(f"/api/v1/accounts/{username}/reset", headers=key) for _ in range(2))
    )
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    codes = [a.json()["activation_code"] for a in answers]
    assert len([c for c in codes if c]) == 1, codes  # the copy's answer leaves the code out
    assert [a.headers.get("Idempotent-Replayed") for a in answers].count("true") == 1
    code = next(c for c in codes if c)

    printed_key = {**county, "Idempotency-Key": f"list-{username}"}
    qingshi = {"township": "青石镇"}
    lists = await asyncio.gather(
        *(
            http.post("/api/v1/accounts/activation-lists", json=qingshi, headers=printed_key)
            for _ in range(2)
        )
    )
    assert sorted(a.status_code for a in lists) == [200, 409], [a.text[:200] for a in lists]
    refused = next(a for a in lists if a.status_code == 409).json()
    assert refused["code"] == "already_issued" and "新的键" in refused["message"]
    pdf = next(a for a in lists if a.status_code == 200)
    assert pdf.content.startswith(b"%PDF")

    assert [a for a, _ in _audit(stack, username)] == [
        "account.create",
        "account.reset",
        "account.issue_code",
    ], "each request issued once"
    # The list's code is the one that works: the reset's was replaced once, not twice.
    assert (await _activate(http, username, code)).status_code == 422
