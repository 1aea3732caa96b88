"""Signing in over the real stack (uvicorn, the read model on SQLite and PostgreSQL): the
throttle of failed sign-ins per account and per address (429 with Retry-After, backing
off), revocable sessions (sign-out, stale session version), renewal, accounts not yet
activated, and the pages' cookie (throttled login page, sliding renewal, sign-out).

Each test signs in as fresh accounts from its own client address (``X-Forwarded-For``, which
uvicorn trusts from 127.0.0.1 as behind a reverse proxy), so its failures never block the
rest of the suite, which signs in from 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from activities.db import make_engine, session_factory
from activities.tables import AuditRow, UserRow
from activities.tables.access import SignInSessionRow, SignInThrottleRow
from api.auth import upsert_user
from chuangzheng.api_client import SignedInAuth
from chuangzheng.services.sign_in import account_key, address_key, issue_token
from domain.organisation import Role
from tests.api.conftest import PASSWORD, Stack, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")

LOGIN = "/api/v1/auth/login"


@pytest.fixture
def db(stack: Stack) -> Iterator[sessionmaker[Session]]:
    """The stack's read model, for arranging accounts and reading what the API wrote."""
    engine = make_engine(stack.settings.database_url)
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()


def new_account(db: sessionmaker[Session], prefix: str = "signin") -> str:
    """A fresh county office account with the suite's password."""
    username = f"{prefix}-{uuid.uuid4().hex[:8]}"
    with db.begin() as session:
        upsert_user(
            session,
            username=username,
            display_name=username,
            password=PASSWORD,
            role=Role.COUNTY_OFFICE,
        )
    return username


def address() -> dict[str, str]:
    """Headers that make the request come from a fresh client address."""
    # The documentation range of IPv6: unique per call, never a real client.
    return {"X-Forwarded-For": f"2001:db8::{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}"}


async def login(
    http: httpx.AsyncClient, username: str, password: str, headers: dict[str, str]
) -> httpx.Response:
    return await http.post(
        LOGIN, json={"username": username, "password": password}, headers=headers
    )


def bearer(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def unblock(db: sessionmaker[Session], key: str) -> None:
    """Let the block of ``key`` pass (as if its time had run out)."""
    with db.begin() as session:
        session.execute(
            update(SignInThrottleRow)
            .where(SignInThrottleRow.key == key)
            .values(blocked_until=datetime.now(UTC) - timedelta(seconds=1))
        )


async def test_failures_block_the_account_even_for_the_right_password_then_back_off(
    http: httpx.AsyncClient, stack: Stack, db: sessionmaker[Session]
) -> None:
    username, here = new_account(db), address()
    limit = stack.settings.signin_account_failures
    for _ in range(limit):
        wrong = await login(http, username, "wrong-password", here)
        assert wrong.status_code == 401 and wrong.json()["code"] == "unauthorized"
    blocked = await login(http, username, PASSWORD, here)
    assert blocked.status_code == 429, blocked.text
    assert blocked.json()["code"] == "too_many_attempts"
    assert "登录失败次数过多" in blocked.json()["message"]
    first_wait = int(blocked.headers["Retry-After"])
    assert 0 < first_wait <= stack.settings.signin_block_seconds
    # The block is the account's: another address is refused too.
    assert (await login(http, username, PASSWORD, address())).status_code == 429

    # Once the block has passed, failures go on: the next block is twice as long.
    unblock(db, account_key(username))
    assert (await login(http, username, "still-wrong", here)).status_code == 401
    again = await login(http, username, PASSWORD, here)
    assert again.status_code == 429
    assert int(again.headers["Retry-After"]) > first_wait

    # After it, the right password signs in and clears the account's failures.
    unblock(db, account_key(username))
    assert (await login(http, username, PASSWORD, here)).status_code == 200
    with db() as session:
        assert session.get(SignInThrottleRow, account_key(username)) is None
        failed = session.scalars(
            select(AuditRow).where(AuditRow.user == username, AuditRow.action == "login_failed")
        ).all()
    reasons = sorted(row.detail["reason"] for row in failed)
    assert reasons.count("bad_credentials") == limit + 1
    assert reasons.count("throttled") == 3
    assert all("password" not in str(row.detail) for row in failed)


def blocked(db: sessionmaker[Session], key: str) -> bool:
    """Whether ``key`` is blocked now."""
    with db() as session:
        row = session.get(SignInThrottleRow, key)
        return row is not None and row.blocked_until is not None


def failed_reasons(db: sessionmaker[Session], username: str) -> list[str]:
    """The audited reasons of the failed sign-ins of ``username``."""
    with db() as session:
        return sorted(
            row.detail["reason"]
            for row in session.scalars(
                select(AuditRow).where(AuditRow.user == username, AuditRow.action == "login_failed")
            )
        )


async def test_parallel_guesses_check_no_more_passwords_than_the_limit(
    http: httpx.AsyncClient, stack: Stack, db: sessionmaker[Session]
) -> None:
    """An outside tester's 20 wrong passwords sent at once were all checked against a limit
    of 5 (each read the counters before any failure was written), and the right password in
    the same burst signed in. Every check is counted before it runs: the limit is checked,
    the rest are refused, and so is the right password once the account is blocked."""
    username, here = new_account(db), address()
    limit, burst = stack.settings.signin_account_failures, 20
    guesses = [asyncio.create_task(login(http, username, f"guess-{i}", here)) for i in range(burst)]
    # The right password, in the burst once the limit is reached (the guesses may still be
    # being checked, or waiting for their turn).
    await wait_for(lambda: asyncio.to_thread(blocked, db, account_key(username)), timeout=60)
    right = await login(http, username, PASSWORD, here)
    answers = [response.status_code for response in await asyncio.gather(*guesses)]
    assert sorted(answers) == [401] * limit + [429] * (burst - limit), answers
    assert right.status_code == 429, right.text
    reasons = failed_reasons(db, username)
    assert reasons.count("bad_credentials") == limit
    assert reasons.count("throttled") == burst - limit + 1
    with db() as session:
        row = session.get(SignInThrottleRow, account_key(username))
        assert row is not None and row.failures == limit


async def test_parallel_guesses_from_one_address_check_no_more_than_its_limit(
    http: httpx.AsyncClient, stack: Stack, db: sessionmaker[Session]
) -> None:
    """The same for an address trying many usernames at once (password spraying)."""
    guesser = address()
    limit, extra = stack.settings.signin_address_failures, 10
    answers = await asyncio.gather(
        *(login(http, f"nobody-{uuid.uuid4().hex[:8]}", "guess", guesser)
          for _ in range(limit + extra))
    )  # fmt: skip
    codes = sorted(response.status_code for response in answers)
    assert codes == [401] * limit + [429] * extra, codes
    with db() as session:
        row = session.get(SignInThrottleRow, address_key(guesser["X-Forwarded-For"]))
        assert row is not None and row.failures == limit and row.blocked_until is not None


async def test_a_right_password_gives_back_its_attempt_on_the_address(
    http: httpx.AsyncClient, stack: Stack, db: sessionmaker[Session]
) -> None:
    """A check is counted while it runs; a right password hands the address its attempt
    back (a county office behind one address signs in all day), even the one that reached
    the address's limit while it was being checked."""
    username, office = new_account(db), address()
    limit = stack.settings.signin_address_failures
    for _ in range(limit - 1):
        assert (await login(http, f"nobody-{uuid.uuid4().hex[:8]}", "x", office)).status_code == 401
    for _ in range(3):
        assert (await login(http, username, PASSWORD, office)).status_code == 200
    key = address_key(office["X-Forwarded-For"])
    with db() as session:
        row = session.get(SignInThrottleRow, key)
        assert row is not None and (row.failures, row.blocked_until) == (limit - 1, None)
    assert (await login(http, f"nobody-{uuid.uuid4().hex[:8]}", "x", office)).status_code == 401
    assert (await login(http, username, PASSWORD, office)).status_code == 429


async def test_failures_from_one_address_block_it_across_usernames(
    http: httpx.AsyncClient, stack: Stack, db: sessionmaker[Session]
) -> None:
    username, guesser = new_account(db), address()
    for _ in range(stack.settings.signin_address_failures):
        guess = await login(http, f"nobody-{uuid.uuid4().hex[:8]}", "guess", guesser)
        assert guess.status_code == 401
    refused = await login(http, username, PASSWORD, guesser)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    # The same account from another address is not blocked: the block is the address's.
    assert (await login(http, username, PASSWORD, address())).status_code == 200
    # Nor did the guesses count against the real account.
    with db() as session:
        assert session.get(SignInThrottleRow, account_key(username)) is None
        row = session.get(SignInThrottleRow, address_key(guesser["X-Forwarded-For"]))
        assert row is not None and row.failures == stack.settings.signin_address_failures


async def test_an_account_not_yet_activated_is_refused_like_a_wrong_password(
    http: httpx.AsyncClient, db: sessionmaker[Session]
) -> None:
    username, here = f"inactive-{uuid.uuid4().hex[:8]}", address()
    with db.begin() as session:
        session.add(
            UserRow(
                username=username,
                display_name=username,
                password_hash=None,
                role=Role.SECRETARY.value,
                scope_key="org-a",
                active=True,
                created_at=datetime.now(UTC),
            )
        )
    not_activated = await login(http, username, "", here)  # no password at all
    assert not_activated.status_code == 422  # the body is validated first
    not_activated = await login(http, username, "anything", here)
    unknown = await login(http, f"ghost-{uuid.uuid4().hex[:8]}", "anything", here)
    wrong = await login(http, new_account(db), "anything", here)
    assert not_activated.status_code == unknown.status_code == wrong.status_code == 401
    assert not_activated.json() == unknown.json() == wrong.json()


async def test_sign_out_revokes_the_token_at_once(
    http: httpx.AsyncClient, db: sessionmaker[Session]
) -> None:
    username, here = new_account(db), address()
    headers = bearer(await login(http, username, PASSWORD, here))
    other = bearer(await login(http, username, PASSWORD, here))  # a second session
    assert (await http.get("/api/v1/users/me", headers=headers)).status_code == 200
    out = await http.post("/api/v1/auth/logout", headers=headers | here)
    assert out.status_code == 200 and out.json() == {"signed_out": True}
    gone = await http.get("/api/v1/users/me", headers=headers)
    assert gone.status_code == 401 and gone.json()["code"] == "unauthorized"
    assert (await http.post("/api/v1/auth/logout", headers=headers)).status_code == 401
    assert (await http.post("/api/v1/auth/renew", headers=headers)).status_code == 401
    # Only that session ended.
    assert (await http.get("/api/v1/users/me", headers=other)).status_code == 200
    with db() as session:
        actions = session.scalars(
            select(AuditRow.action).where(AuditRow.user == username).order_by(AuditRow.at)
        ).all()
    assert actions == ["login", "login", "logout"]


async def test_renewal_issues_a_new_token_for_the_same_session_and_moves_its_expiry(
    http: httpx.AsyncClient, stack: Stack, db: sessionmaker[Session]
) -> None:
    username = new_account(db)
    first = await login(http, username, PASSWORD, address())
    assert first.status_code == 200
    body = first.json()
    assert 0 < body["expires_in"] <= stack.settings.session_token_minutes * 60
    sid = jwt.decode(body["access_token"], options={"verify_signature": False})["sid"]
    soon = datetime.now(UTC) + timedelta(minutes=1)
    with db.begin() as session:
        session.execute(
            update(SignInSessionRow)
            .where(SignInSessionRow.session_id == sid)
            .values(expires_at=soon)
        )
    renewed = await http.post("/api/v1/auth/renew", headers=bearer(first))
    assert renewed.status_code == 200, renewed.text
    new_token = renewed.json()["access_token"]
    assert new_token != body["access_token"]
    assert jwt.decode(new_token, options={"verify_signature": False})["sid"] == sid
    me = await http.get("/api/v1/users/me", headers=bearer(renewed))
    assert me.status_code == 200 and me.json()["username"] == username
    with db() as session:
        row = session.get(SignInSessionRow, sid)
        assert row is not None and row.renewed_at is not None
        assert row.expires_at > soon + timedelta(minutes=10)

    # A session at its absolute maximum is not renewed: the client signs in again.
    with db.begin() as session:
        session.execute(
            update(SignInSessionRow)
            .where(SignInSessionRow.session_id == sid)
            .values(issued_at=datetime.now(UTC) - timedelta(hours=stack.settings.session_max_hours))
        )
    late = await http.post("/api/v1/auth/renew", headers=bearer(renewed))
    assert late.status_code == 401 and "最长时限" in late.json()["message"]


async def test_tokens_of_a_stale_session_version_or_past_expiry_are_refused(
    http: httpx.AsyncClient, stack: Stack, db: sessionmaker[Session]
) -> None:
    username = new_account(db)
    response = await login(http, username, PASSWORD, address())
    headers = bearer(response)
    claims: dict[str, Any] = jwt.decode(
        response.json()["access_token"], options={"verify_signature": False}
    )
    now = datetime.now(UTC)
    expired = issue_token(
        username=username,
        session_id=claims["sid"],
        session_version=claims["sv"],
        expires_at=now - timedelta(seconds=5),
        now=now - timedelta(minutes=30),
        settings=stack.settings,
    )
    stale = await http.get("/api/v1/users/me", headers={"Authorization": f"Bearer {expired}"})
    assert stale.status_code == 401 and "过期" in stale.json()["message"]
    # Deactivation, a reset or a new password bump the version: every session ends.
    with db.begin() as session:
        session.execute(
            update(UserRow)
            .where(UserRow.username == username)
            .values(session_version=UserRow.session_version + 1)
        )
    assert (await http.get("/api/v1/users/me", headers=headers)).status_code == 401
    # A token without a session (the old format) is refused too.
    legacy = jwt.encode(
        {"sub": username, "exp": now + timedelta(minutes=5)},
        stack.settings.secret_key,
        algorithm="HS256",
    )
    old = await http.get("/api/v1/users/me", headers={"Authorization": f"Bearer {legacy}"})
    assert old.status_code == 401


async def test_the_login_page_is_throttled_with_a_chinese_wait(
    stack: Stack, db: sessionmaker[Session]
) -> None:
    username, here = new_account(db), address()
    headers = here | {"Origin": stack.base_url}
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as browser:
        for _ in range(stack.settings.signin_account_failures):
            wrong = await browser.post(
                "/ui/login", data={"username": username, "password": "nope"}, headers=headers
            )
            assert wrong.status_code == 401 and "用户名或密码错误" in wrong.text
        blocked = await browser.post(
            "/ui/login", data={"username": username, "password": PASSWORD}, headers=headers
        )
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0
    assert "登录失败次数过多" in blocked.text and "秒后再试" in blocked.text
    assert "cz_token" not in blocked.cookies


async def test_the_page_cookie_slides_and_sign_out_revokes_its_session(
    stack: Stack, db: sessionmaker[Session]
) -> None:
    username, here = new_account(db), address()
    headers = here | {"Origin": stack.base_url}
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as browser:
        signed_in = await browser.post(
            "/ui/login",
            data={"username": username, "password": PASSWORD, "next": "/ui/overview"},
            headers=headers,
        )
        assert signed_in.status_code == 303, signed_in.text
        cookie = browser.cookies["cz_token"]
        claims = jwt.decode(cookie, options={"verify_signature": False})

        fresh = await browser.get("/ui/", headers=here)
        assert fresh.status_code == 303 and "cz_token" not in fresh.headers.get("set-cookie", "")

        # A token with less than half its life left is renewed on use.
        now = datetime.now(UTC)
        aged = issue_token(
            username=username,
            session_id=claims["sid"],
            session_version=claims["sv"],
            expires_at=now + timedelta(minutes=stack.settings.session_token_minutes / 4),
            now=now - timedelta(minutes=20),
            settings=stack.settings,
        )
        browser.cookies.set("cz_token", aged)
        slid = await browser.get("/ui/", headers=here)
        assert slid.status_code == 303
        renewed = slid.cookies.get("cz_token")
        assert renewed and renewed != aged
        renewed_claims = jwt.decode(renewed, options={"verify_signature": False})
        assert renewed_claims["sid"] == claims["sid"]
        assert renewed_claims["exp"] > claims["exp"] - 60

        out = await browser.post("/ui/logout", headers=headers)
        assert out.status_code == 303 and out.headers["location"] == "/ui/login"
    # The session is revoked, not only the cookie dropped: its token fails on the API.
    api = httpx.AsyncClient(base_url=stack.base_url, timeout=60)
    async with api:
        refused = await api.get("/api/v1/users/me", headers={"Authorization": f"Bearer {renewed}"})
    assert refused.status_code == 401
    with db() as session:
        row = session.get(SignInSessionRow, claims["sid"])
        assert row is not None and row.revoked_at is not None and row.via == "ui"
        assert session.scalar(
            select(AuditRow.action).where(AuditRow.user == username, AuditRow.action == "logout")
        )


async def test_a_long_running_client_signs_in_again_when_its_token_stops_working(
    stack: Stack, db: sessionmaker[Session]
) -> None:
    username = new_account(db)
    auth = SignedInAuth(username, PASSWORD)
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60, auth=auth) as client:
        first = await client.get("/api/v1/users/me")
        assert first.status_code == 200 and auth.token is not None
        old = auth.token
        # The session ends under the client (as a token expiring after half an hour does).
        out = await client.post("/api/v1/auth/logout")
        assert out.status_code == 200
        again = await client.get("/api/v1/users/me")
        assert again.status_code == 200 and again.json()["username"] == username
        assert auth.token != old
    wrong = SignedInAuth(username, "wrong")
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60, auth=wrong) as client:
        refused = await client.get("/api/v1/users/me")  # the refused sign-in answers
        assert refused.status_code == 401
