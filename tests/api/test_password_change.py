"""A signed-in person changes their own password (``POST /api/v1/users/me/password``), over
the real stack (uvicorn, the read model on SQLite and PostgreSQL): the current password and
the new one twice; the old password no longer signs in, every other session ends at once
while the caller's own goes on under the new token; a wrong current password is 422 in
Chinese and counts toward the sign-in throttle (429 once blocked, even for the right one);
the new password obeys the rule (the person's name in pinyin included); the change is
audited, never the password. Any role may do it, the offices above the county included.

Each test uses fresh accounts from its own client address (``X-Forwarded-For``), so its
failures never block the rest of the suite (see ``tests/api/test_sign_in.py``)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from activities.db import make_engine, session_factory
from activities.tables import AuditRow, UserRow
from activities.tables.access import AccountCountyRow, SignInSessionRow, SignInThrottleRow
from api.auth import upsert_user
from chuangzheng.services.sign_in import account_key, verify_password
from domain.organisation import DEFAULT_COUNTY, Role
from tests.api.conftest import PASSWORD, Stack, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")

CHANGE = "/api/v1/users/me/password"
NEW_PASSWORD = "柳树村-秋收-2027"
PERSONAL = "密码不能是本人姓名或其拼音（加上年份、生日等数字或符号也不行）"


@pytest.fixture
def db(stack: Stack) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(stack.settings.database_url)
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()


def new_account(
    db: sessionmaker[Session],
    role: Role = Role.SECRETARY,
    scope_key: str = "org-a",
    display_name: str = "李明",
) -> str:
    username = f"pw-{uuid.uuid4().hex[:8]}"
    county = "" if role is Role.PROVINCE_OFFICE else DEFAULT_COUNTY
    with db.begin() as session:
        upsert_user(session, username=username, display_name=display_name, password=PASSWORD,
                    role=role, scope_key=scope_key, county=county)  # fmt: skip
        if role is Role.PROVINCE_OFFICE:
            session.merge(AccountCountyRow(username=username, county=DEFAULT_COUNTY))
    return username


def address() -> dict[str, str]:
    return {"X-Forwarded-For": f"2001:db8::{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}"}


async def sign_in(
    http: httpx.AsyncClient, username: str, password: str, here: dict[str, str]
) -> httpx.Response:
    return await http.post(
        "/api/v1/auth/login", json={"username": username, "password": password}, headers=here
    )


async def bearer(http: httpx.AsyncClient, username: str, here: dict[str, str]) -> dict[str, str]:
    signed_in = await sign_in(http, username, PASSWORD, here)
    assert signed_in.status_code == 200, signed_in.text
    return {"Authorization": f"Bearer {signed_in.json()['access_token']}"} | here


def change(current: str, new: str, again: str | None = None) -> dict[str, str]:
    return {"current_password": current, "new_password": new, "new_password_again": again or new}


async def test_the_change_keeps_this_session_and_ends_every_other(
    http: httpx.AsyncClient, db: sessionmaker[Session]
) -> None:
    username, here = new_account(db), address()
    mine, other = await bearer(http, username, here), await bearer(http, username, here)

    changed = await http.post(CHANGE, json=change(PASSWORD, NEW_PASSWORD), headers=mine)
    assert changed.status_code == 200, changed.text
    answer = changed.json()
    assert answer["user"]["username"] == username and answer["token_type"] == "bearer"
    renewed = {"Authorization": f"Bearer {answer['access_token']}"} | here

    # This session goes on under the new token; the token sent is replaced.
    me = await http.get("/api/v1/users/me", headers=renewed)
    assert me.status_code == 200 and me.json()["username"] == username
    assert (await http.get("/api/v1/users/me", headers=mine)).status_code == 401
    # The other session has ended, renewal included.
    assert (await http.get("/api/v1/users/me", headers=other)).status_code == 401
    assert (await http.post("/api/v1/auth/renew", headers=other)).status_code == 401
    # The old password no longer signs in; the new one does.
    old = await sign_in(http, username, PASSWORD, here)
    assert old.status_code == 401 and old.json()["message"] == "用户名或密码错误"
    assert (await sign_in(http, username, NEW_PASSWORD, here)).status_code == 200
    # The same password again is no change.
    same = await http.post(CHANGE, json=change(NEW_PASSWORD, NEW_PASSWORD), headers=renewed)
    assert same.status_code == 422, same.text
    assert same.json()["errors"] == [
        {"field": "new_password", "reason": "新密码不能与当前密码相同"}
    ]

    with db() as session:
        sessions = session.scalars(
            select(SignInSessionRow).where(SignInSessionRow.username == username)
        ).all()
        revoked = [s for s in sessions if s.revoked_at is not None]
        assert len(sessions) == 3 and len(revoked) == 1  # the other; not mine, not the new
        audits = session.scalars(select(AuditRow).where(AuditRow.user == username)).all()
    [audit] = [a for a in audits if a.action == "account.change_password"]
    assert audit.role == "secretary" and audit.org_id == "org-a"
    assert audit.detail["username"] == username and audit.detail["sessions_ended"] == 1
    assert audit.detail["via"] == "api"
    # Never the password, old or new, anywhere in the account's audit.
    written = json.dumps([a.detail for a in audits], ensure_ascii=False)
    assert NEW_PASSWORD not in written and PASSWORD not in written


async def test_a_wrong_current_password_is_refused_and_counts_toward_the_throttle(
    http: httpx.AsyncClient, stack: Stack, db: sessionmaker[Session]
) -> None:
    username, here = new_account(db), address()
    mine = await bearer(http, username, here)
    limit = stack.settings.signin_account_failures
    for attempt in range(1, limit + 1):
        wrong = await http.post(CHANGE, json=change("不是这个密码", NEW_PASSWORD), headers=mine)
        assert wrong.status_code == 422, wrong.text
        assert wrong.json() == {
            "code": "wrong_password",
            "message": "当前密码不正确",
            "errors": [{"field": "current_password", "reason": "当前密码不正确"}],
        }
        with db() as session:
            counter = session.get(SignInThrottleRow, account_key(username))
            assert counter is not None and counter.failures == attempt
    # Blocked now: the right current password is refused too, and so is signing in.
    blocked = await http.post(CHANGE, json=change(PASSWORD, NEW_PASSWORD), headers=mine)
    assert blocked.status_code == 429, blocked.text
    assert "登录失败次数过多" in blocked.json()["message"]
    assert int(blocked.headers["Retry-After"]) > 0
    assert (await sign_in(http, username, PASSWORD, address())).status_code == 429
    # Nothing changed: the session still works, the password is the old one.
    assert (await http.get("/api/v1/users/me", headers=mine)).status_code == 200
    with db() as session:
        failed = session.scalars(
            select(AuditRow).where(AuditRow.user == username, AuditRow.action == "login_failed")
        ).all()
        changed = session.scalars(
            select(AuditRow).where(
                AuditRow.user == username, AuditRow.action == "account.change_password"
            )
        ).all()
    assert len(failed) == limit + 2 and not changed
    assert {f.detail["during"] for f in failed[:limit]} == {"account.change_password"}


def blocked(db: sessionmaker[Session], username: str) -> bool:
    with db() as session:
        row = session.get(SignInThrottleRow, account_key(username))
        return row is not None and row.blocked_until is not None


async def test_parallel_wrong_current_passwords_check_no_more_than_the_limit(
    http: httpx.AsyncClient, stack: Stack, db: sessionmaker[Session]
) -> None:
    """An outside tester sent 20 wrong current passwords at once (all checked), then the
    right one, which changed the password. Every check is counted before it runs: the limit
    is checked, the rest are refused, and so is the right one once the account is blocked."""
    username, here = new_account(db), address()
    mine = await bearer(http, username, here)
    limit, burst = stack.settings.signin_account_failures, 20
    tries = [
        asyncio.create_task(
            http.post(CHANGE, json=change(f"不是这个密码-{i}", NEW_PASSWORD), headers=mine)
        )
        for i in range(burst)
    ]
    await wait_for(lambda: asyncio.to_thread(blocked, db, username), timeout=60)
    right = await http.post(CHANGE, json=change(PASSWORD, NEW_PASSWORD), headers=mine)
    answers = [response.status_code for response in await asyncio.gather(*tries)]
    assert sorted(answers) == [422] * limit + [429] * (burst - limit), answers
    assert right.status_code == 429, right.text
    # Nothing changed: the session still works, the password is the old one.
    assert (await http.get("/api/v1/users/me", headers=mine)).status_code == 200
    with db() as session:
        row = session.get(UserRow, username)
        assert row is not None and verify_password(row.password_hash, PASSWORD)
        counter = session.get(SignInThrottleRow, account_key(username))
        assert counter is not None and counter.failures == limit
        actions = session.scalars(select(AuditRow.action).where(AuditRow.user == username)).all()
    assert "account.change_password" not in actions
    assert actions.count("login_failed") == burst + 1


async def test_the_new_password_obeys_the_rule_and_nothing_is_counted_for_it(
    http: httpx.AsyncClient, db: sessionmaker[Session]
) -> None:
    username, here = new_account(db, display_name="李明"), address()
    mine = await bearer(http, username, here)

    async def reasons(body: dict[str, str]) -> list[dict[str, str]]:
        refused = await http.post(CHANGE, json=body, headers=mine)
        assert refused.status_code == 422, refused.text
        assert refused.json()["message"] == "新密码不符合要求"
        errors: list[dict[str, str]] = refused.json()["errors"]
        return errors

    assert {"field": "new_password", "reason": PERSONAL} in await reasons(
        change(PASSWORD, "LiMing@1985!")
    )
    assert {"field": "new_password", "reason": "密码不能是账号或包含账号"} in await reasons(
        change(PASSWORD, f"{username}-2026")
    )
    assert {"field": "new_password", "reason": "密码不能由一小段字符重复组成"} in await reasons(
        change(PASSWORD, "tea!tea!tea!")
    )
    assert await reasons(change(PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "x")) == [
        {"field": "new_password_again", "reason": "两次输入的新密码不一致"}
    ]
    with db() as session:
        assert session.get(SignInThrottleRow, account_key(username)) is None
    assert (await http.get("/api/v1/users/me", headers=mine)).status_code == 200


async def test_any_role_may_change_its_own_password_the_offices_above_the_county_too(
    http: httpx.AsyncClient, db: sessionmaker[Session]
) -> None:
    for role, scope in (
        (Role.COUNTY_OFFICE, ""),
        (Role.INSTRUCTOR, "张指导"),
        (Role.PROVINCE_OFFICE, ""),
    ):
        username, here = new_account(db, role=role, scope_key=scope, display_name="王芳"), address()
        mine = await bearer(http, username, here)
        changed = await http.post(CHANGE, json=change(PASSWORD, NEW_PASSWORD), headers=mine)
        assert changed.status_code == 200, (role, changed.text)
        assert (await sign_in(http, username, NEW_PASSWORD, here)).status_code == 200


async def test_no_token_is_401(http: httpx.AsyncClient) -> None:
    refused = await http.post(CHANGE, json=change(PASSWORD, NEW_PASSWORD))
    assert refused.status_code == 401, refused.text


async def test_activation_refuses_the_name_in_pinyin_only_once_the_code_is_right(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    """The same rule at activation, with the person's name: told only to someone holding
    the right code (before it, the answer would say that the account exists, and whose it
    is); the refusal does not spend the code."""
    county = await bearer(http, "county", address())
    username = f"pw-{uuid.uuid4().hex[:8]}"
    created = await http.post(
        "/api/v1/accounts",
        json={"username": username, "display_name": "单田芳", "role": "secretary",
              "scope_key": "org-c"},
        headers=county,
    )  # fmt: skip
    assert created.status_code == 201, created.text
    code = created.json()["activation_code"]

    async def activate(code: str, password: str) -> httpx.Response:
        body = {"username": username, "code": code, "new_password": password}
        return await http.post("/api/v1/auth/activate", json=body, headers=address())

    wrong_code = await activate("AAAA-BBBB-CCCC", "shantianfang1935")
    assert wrong_code.status_code == 422
    assert [e["field"] for e in wrong_code.json()["errors"]] == ["code"]
    named = await activate(code, "shantianfang1935")
    assert named.status_code == 422, named.text
    assert named.json()["errors"] == [{"field": "new_password", "reason": PERSONAL}]
    assert (await activate(code, NEW_PASSWORD)).status_code == 200
    assert (await sign_in(http, username, NEW_PASSWORD, address())).status_code == 200


async def test_an_account_without_a_password_here_is_told_so(
    http: httpx.AsyncClient, db: sessionmaker[Session]
) -> None:
    """An account that signs in through the county's identity provider has no password of
    this system (simulated: the hash cleared under a live session): 409, nothing counted."""
    username, here = new_account(db), address()
    mine = await bearer(http, username, here)
    with db.begin() as session:
        session.execute(
            update(UserRow).where(UserRow.username == username).values(password_hash=None)
        )
    refused = await http.post(CHANGE, json=change("anything-at-all", NEW_PASSWORD), headers=mine)
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "no_password"
    with db() as session:
        assert session.get(SignInThrottleRow, account_key(username)) is None
