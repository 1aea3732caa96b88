"""Single sign-on end to end against a real OpenID Connect provider (``oidc-provider-mock``,
a Flask app on a free localhost port, signing ID tokens with its own RSA key).

A second API process (uvicorn in a thread) over the stack's read model and Temporal server
is configured for the provider; the test drives the browser's part with httpx, following
each redirect by hand: the login page's button, the provider's authorization form, the
callback, the signed-in page.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from oidc_provider_mock import (  # type: ignore[import-untyped]
    User as ProviderUser,
)
from oidc_provider_mock import run_server_in_thread
from sqlalchemy import select

from activities.db import make_engine, session_factory
from activities.tables import AuditRow
from activities.tables.access import SignInSessionRow
from api.main import create_app
from chuangzheng import oidc
from chuangzheng.settings import Settings
from tests.api.conftest import Stack, free_port

pytestmark = pytest.mark.asyncio(loop_scope="session")

CLIENT_ID = "chuangzheng-test"
# Subjects at the provider -> the claim that names the local account.
KNOWN = "sub-county-office"
STRANGER = "sub-not-here"


@dataclass(frozen=True)
class SsoStack:
    """The provider's issuer URL, and the API configured for it."""

    issuer: str
    base_url: str
    settings: Settings


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    """A real OpenID provider: the issuer URL."""
    users = [
        ProviderUser(sub=KNOWN, claims={"preferred_username": "county", "name": "县委办"}),
        ProviderUser(sub=STRANGER, claims={"preferred_username": f"nobody-{uuid.uuid4().hex[:6]}"}),
    ]
    with run_server_in_thread(user_claims=users) as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture(scope="module")
def sso(stack: Stack, provider: str) -> Iterator[SsoStack]:
    """A second API process, over the same read model, that offers single sign-on."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    settings = stack.settings.model_copy(
        update={
            "oidc_issuer": provider,
            "oidc_client_id": CLIENT_ID,
            "oidc_client_secret": "client-secret",
            "public_base_url": base_url,
        }
    )
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield SsoStack(issuer=provider, base_url=base_url, settings=settings)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


async def through_provider(
    browser: httpx.AsyncClient, sso: SsoStack, subject: str, next_path: str = "/ui/overview"
) -> tuple[httpx.Response, dict[str, list[str]]]:
    """Press the login page's button, pick ``subject`` on the provider's form, and come back
    to the callback; its answer and the authorization request's query."""
    page = await browser.get(f"{sso.base_url}/ui/login")
    assert page.status_code == 200 and "统一身份认证登录" in page.text
    start = await browser.get(f"{sso.base_url}/ui/login/oidc", params={"next": next_path})
    assert start.status_code == 303, start.text
    authorize = start.headers["location"]
    assert authorize.startswith(f"{sso.issuer}/oauth2/authorize?")
    query = parse_qs(urlsplit(authorize).query)
    # The browser keeps state, nonce and the PKCE verifier in a signed cookie; the request
    # carries only the verifier's S256 challenge.
    pending = oidc.unseal(start.cookies["cz_oidc"], sso.settings)
    assert query["code_challenge"] == [oidc.code_challenge(pending.code_verifier)]
    assert pending.code_verifier not in authorize
    assert query["state"] == [pending.state] and query["nonce"] == [pending.nonce]
    form = await browser.get(authorize)
    assert form.status_code == 200
    chosen = await browser.post(authorize, data={"sub": subject})
    assert chosen.status_code == 302, chosen.text
    callback = chosen.headers["location"]
    assert callback.startswith(f"{sso.base_url}/ui/login/oidc/callback?")
    return await browser.get(callback), query


async def test_single_sign_on_maps_the_claim_to_the_account_and_opens_a_session(
    sso: SsoStack,
) -> None:
    async with httpx.AsyncClient(timeout=30) as browser:
        back, query = await through_provider(browser, sso, KNOWN)
        # The authorization request: code flow, PKCE S256, state and nonce.
        assert query["response_type"] == ["code"] and query["client_id"] == [CLIENT_ID]
        assert query["code_challenge_method"] == ["S256"]
        assert query["redirect_uri"] == [f"{sso.base_url}/ui/login/oidc/callback"]
        assert query["state"][0] and query["nonce"][0]
        assert back.status_code == 303, back.text
        assert back.headers["location"] == "/ui/overview"
        token = back.cookies["cz_token"]
        overview = await browser.get(f"{sso.base_url}/ui/overview")
        assert overview.status_code == 200  # no redirect to the login page
        me = await browser.get(
            f"{sso.base_url}/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}
        )
    assert me.status_code == 200 and me.json()["username"] == "county"
    sid = jwt.decode(token, options={"verify_signature": False})["sid"]
    engine = make_engine(sso.settings.database_url)
    try:
        with session_factory(engine)() as session:
            row = session.get(SignInSessionRow, sid)
            assert row is not None and row.via == "oidc" and row.username == "county"
            audit = session.scalars(
                select(AuditRow).where(AuditRow.action == "login", AuditRow.user == "county")
            ).all()
    finally:
        engine.dispose()
    assert any(
        a.detail.get("session_id") == sid and a.detail.get("subject") == KNOWN for a in audit
    )


async def test_an_identity_without_an_account_is_refused_in_chinese_and_audited(
    sso: SsoStack,
) -> None:
    async with httpx.AsyncClient(timeout=30) as browser:
        back, _ = await through_provider(browser, sso, STRANGER)
    assert back.status_code == 403
    assert "没有对应的启用账号" in back.text
    assert "cz_token" not in back.cookies
    engine = make_engine(sso.settings.database_url)
    try:
        with session_factory(engine)() as session:
            refused = session.scalars(
                select(AuditRow).where(AuditRow.action == "login_failed")
            ).all()
    finally:
        engine.dispose()
    assert any(
        a.detail.get("reason") == "no_account_for_identity" and a.detail.get("subject") == STRANGER
        for a in refused
    )


async def test_a_callback_without_its_state_or_with_a_forged_token_is_refused(
    sso: SsoStack,
) -> None:
    async with httpx.AsyncClient(timeout=30) as browser:
        start = await browser.get(f"{sso.base_url}/ui/login/oidc")
        authorize = start.headers["location"]
        chosen = await browser.post(authorize, data={"sub": KNOWN})
        callback = urlsplit(chosen.headers["location"])
        code = parse_qs(callback.query)["code"][0]
        forged = await browser.get(
            f"{sso.base_url}/ui/login/oidc/callback", params={"code": code, "state": "guessed"}
        )
        assert forged.status_code == 400 and "已失效" in forged.text
        assert "cz_token" not in forged.cookies
        # Without the pending sign-in cookie (another browser) the callback is refused too.
        async with httpx.AsyncClient(timeout=30) as other:
            stolen = await other.get(f"{sso.base_url}{callback.path}?{callback.query}")
        assert stolen.status_code == 400 and "cz_token" not in stolen.cookies

    # An ID token signed with another key (naming the provider's key if it has an id) fails.
    metadata = oidc.discover(sso.issuer)
    published = httpx.get(metadata.jwks_uri).json()["keys"][0]
    headers = {"kid": published["kid"]} if "kid" in published else None
    now = datetime.now(UTC)
    claims = {
        "iss": metadata.issuer,
        "sub": KNOWN,
        "aud": CLIENT_ID,
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "nonce": "n",
        "preferred_username": "county",
    }
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged_token = jwt.encode(claims, other_key, algorithm="RS256", headers=headers)
    with pytest.raises(oidc.SingleSignOnFailed, match="身份令牌校验失败"):
        oidc.verify_id_token(forged_token, sso.settings, metadata, "n")


async def test_without_an_issuer_single_sign_on_is_not_offered(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as browser:
        page = await browser.get("/ui/login")
        assert page.status_code == 200 and "统一身份认证登录" not in page.text
        assert (await browser.get("/ui/login/oidc")).status_code == 404
